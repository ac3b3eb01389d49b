/**
 * VirtioIommuDevice: the virtio-iommu device (virtio device 23) as a VMM component, with the
 * transport-neutral surface of DESIGN.md §2 — the calls a virtio-pci or virtio-mmio transport would
 * make (QEMU's VirtioDeviceClass has the same shape): features, device status, config space, queue
 * setup, notifications, reset; plus `endpointDma` for the emulated endpoints it translates itself.
 *
 * Model (reference §1–§4; spec §Device Types / IOMMU Device):
 * - Guest RAM is a region of the VMM process (GPA g = HVA hva + g). Requests arrive on queue 0
 *   (requestq), fault records leave on queue 1 (eventq), both split virtqueues in guest RAM.
 * - Endpoints are fixed at construction: assigned devices (`kind: 'vfio'`, one private VFIO container
 *   each, vfio-endpoint-mapper.ts) and emulated ones (`kind: 'emulated'`, translated by the device,
 *   emulated-endpoint-mapper.ts). The config space's page_size_mask is the AND of every endpoint's
 *   mask, input_range the intersection of their input ranges (QEMU / crosvm: the vIOMMU advertises
 *   what every host behind it can do).
 * - Features offered by default (QEMU's set, reference §1.3): VERSION_1, INDIRECT_DESC, EVENT_IDX,
 *   INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO, BYPASS_CONFIG — never F_BYPASS together with
 *   BYPASS_CONFIG ("Devices SHOULD NOT offer both").
 * - FEATURES_OK reads back cleared when the driver's features are refused: VERSION_1 missing (the device
 *   is modern-only: reference §1.1, mailing-list/003), a feature that was not offered, or — with the
 *   `requireInputRange` option — INPUT_RANGE offered but not accepted (mailing-list/000: "the device may
 *   refuse to set FEATURES_OK … it's important that the driver acknowledges it").
 * - `bypass` is sticky: it survives device reset and is only restored to `bootBypass` by making a new
 *   device (system reset): "Field bypass SHOULD NOT change on device reset, but SHOULD be restored to
 *   its initial value on system reset". Only `bypass` is writable, only once BYPASS_CONFIG is
 *   negotiated, and only its bit 0 is kept ("The device MUST NOT present a value different than 0 or 1
 *   in bypass"); other writes are ignored.
 * - Requests are processed when queue 0 is notified, after DRIVER_OK, until the device needs a reset.
 * - An assigned endpoint that cannot enter bypass when it should (the identity map of guest RAM does
 *   not fit the VMM's RLIMIT_MEMLOCK, say) is left blocked — never with more access than the spec
 *   gives it — and the device sets DEVICE_NEEDS_RESET.
 * - VFIO endpoint faults, going beyond QEMU (which forwards none, reference §4): the host IOMMU's fault
 *   log (the public `Kernel.dmaFaultsSince(seq)`, reached through the VMM process) is read on every notify; the
 *   records of the VFIO endpoints' functions that appeared since the last read become eventq records,
 *   mapped to the closest reason ("When the fault is reported by a physical IOMMU, the fault reasons
 *   may not match exactly … The device does its best to find the closest match"): DOMAIN when the
 *   endpoint is attached to no domain and not in bypass at the time of the read, MAPPING for unmapped /
 *   permission / out-of-range, UNKNOWN otherwise.
 *
 * Malformed chains — THE DECISION (the README quotes it): a chain the virtqueue refuses (a loop, longer
 * than the queue, a descriptor outside guest RAM, readable after writable, INDIRECT with NEXT, nested
 * INDIRECT, INDIRECT without the feature, an indirect table whose length is not a multiple of 16, a head
 * index ≥ the queue size, a writable buffer over a descriptor table) is completed with used length 0 and
 * nothing written, and the device carries on with the next chain. The spec allows it ("When the device
 * fails to parse a request … it returns the buffers without writing to them"; the driver "SHOULD
 * interpret it as a request failure", which Linux does: used length 0 → -EIO), it costs the guest only
 * that request, and cloud-hypervisor and crosvm do the same. DEVICE_NEEDS_RESET is kept for what cannot
 * be answered per chain: an available index that jumped more than the queue size ahead (the ring itself
 * is garbage: nothing can be returned safely), a queue configuration that is not a ring at DRIVER_OK, and
 * an internal error that left device and backend state apart (a failed rollback; the endpoint is
 * quarantined first). QEMU instead raises `virtio_error` (NEEDS_RESET) for short heads and tails.
 */
import type { Process } from '../kernel-sim';
import { DmaFault } from '../kernel-sim';
import { EmulatedEndpointMapper, type EmulatedEndpointConfig } from './emulated-endpoint-mapper';
import { bdfOfRequesterId, Endpoint } from './endpoint';
import type { EndpointMapper, IovaRange, ReservedRegion } from './endpoint-mapper';
import { FaultReporter, type FaultRecord } from './fault-reporter';
import { GuestMemory } from './guest-memory';
import { granuleOf, IommuState, type IommuLimits } from './iommu-state';
import { executeRequest } from './request-dispatcher';
import { checkQueueConfig, SplitVirtqueue, type QueueConfig } from './split-virtqueue';
import { platformMsiWindows, VfioEndpointMapper, type WindowLayout } from './vfio-endpoint-mapper';
import {
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_IOMMU_EVENT_VQ,
  VIRTIO_IOMMU_FAULT_F_ADDRESS,
  VIRTIO_IOMMU_FAULT_F_READ,
  VIRTIO_IOMMU_FAULT_F_WRITE,
  VIRTIO_IOMMU_FAULT_R_DOMAIN,
  VIRTIO_IOMMU_FAULT_R_MAPPING,
  VIRTIO_IOMMU_FAULT_R_UNKNOWN,
  VIRTIO_IOMMU_F_BYPASS,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_DOMAIN_RANGE,
  VIRTIO_IOMMU_F_INPUT_RANGE,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_REQUEST_VQ,
  VirtioIommuConfig,
} from '../uapi/virtio-iommu';

const U64_LAST = (1n << 64n) - 1n;
const CONFIG_SIZE = VirtioIommuConfig.size;
/** The widest config space access a virtio transport makes (virtio-pci / virtio-mmio: 1, 2, 4 or 8 bytes). */
const MAX_CONFIG_ACCESS = 8;
const BYPASS_OFFSET = VirtioIommuConfig.offsetof('bypass');

/** An assigned PCI function behind the device. */
export interface VfioEndpointSpec {
  /** Endpoint ID the guest uses (for PCI, the requester ID bus << 8 | devfn). */
  readonly id: number;
  readonly kind: 'vfio';
  /** The host function, bound to vfio-pci. */
  readonly bdf: string;
  /** MSI windows to report as RESV_MEM MSI. Default: the host's for the function (platformMsiWindows). */
  readonly msiWindows?: readonly IovaRange[];
  /** Window layout when the host IOMMU is windowed (VFIO_TYPE2_IOMMU). */
  readonly windows?: WindowLayout;
}

/** A device the virtio-iommu translates itself. */
export interface EmulatedEndpointSpec extends EmulatedEndpointConfig {
  readonly id: number;
  readonly kind: 'emulated';
}

/** One endpoint behind the device. */
export type EndpointSpec = VfioEndpointSpec | EmulatedEndpointSpec;

/** Features the device offers; each defaults to offered (legacyBypass to not offered). */
export interface OfferedFeatures {
  inputRange?: boolean;
  domainRange?: boolean;
  probe?: boolean;
  mmio?: boolean;
  bypassConfig?: boolean;
  /** VIRTIO_IOMMU_F_BYPASS (3). Needs `bypassConfig: false` ("Devices SHOULD NOT offer both"). */
  legacyBypass?: boolean;
  indirectDesc?: boolean;
  eventIdx?: boolean;
}

/** Device options. */
export interface VirtioIommuOptions {
  /**
   * 'spec' (default): every SHOULD of reference §3 in the order of §3.8. 'qemu': QEMU's lax checks, so
   * sequences written against QEMU (its qtest) replay unchanged — no granule alignment check on MAP, no
   * check of ATTACH's and UNMAP's `reserved`, and DETACH of an endpoint never attached since reset is
   * NOENT (QEMU's endpoint table is filled by ATTACH).
   */
  compat?: 'spec' | 'qemu';
  /** Refuse FEATURES_OK when INPUT_RANGE is offered but not accepted. Default false. */
  requireInputRange?: boolean;
  /** The `bypass` byte at system reset (QEMU's `boot-bypass`). Default true. */
  bootBypass?: boolean;
  /** `probe_size`. Default 512 (QEMU). */
  probeSize?: number;
  /**
   * Report each endpoint's page size mask in PROBE (property type 2, reference §2.4) and align MAPs to
   * the granule of the domain's endpoints rather than the global one. Default false.
   */
  probePageSizeMask?: boolean;
  /** Narrows `input_range` further (inclusive). */
  inputRange?: IovaRange;
  /** `domain_range` (inclusive). Default [0; 0xFFFF_FFFF]. */
  domainRange?: { start: number; last: number };
  /** Default 65536 (cloud-hypervisor). */
  maxDomains?: number;
  /** Default 2^20 (cloud-hypervisor). */
  maxMappingsPerDomain?: number;
  /** Fault records that may wait for an eventq buffer. Default 64. */
  faultQueueCapacity?: number;
  features?: OfferedFeatures;
  /** Called when the device raises a used-buffer interrupt for queue `index`. */
  onInterrupt?: (index: number) => void;
}

/** Where guest RAM lives in the VMM: GPA g is HVA `hva + g`. */
export interface GuestRam {
  readonly hva: bigint;
  readonly size: bigint;
}

/** What `new VirtioIommuDevice` takes. */
export interface VirtioIommuDeviceConfig {
  readonly guestRam: GuestRam;
  readonly endpoints: readonly EndpointSpec[];
  readonly options?: VirtioIommuOptions;
}

/** DMA of an emulated endpoint, translated by the device. */
export interface EndpointDma {
  /** Reads `length` bytes at `iova`. @throws DmaFault (and a fault record goes to the eventq) */
  dmaRead(iova: bigint, length: number): Uint8Array;
  /** Writes `bytes` at `iova`; a faulting write changes nothing. @throws DmaFault */
  dmaWrite(iova: bigint, bytes: Uint8Array): void;
}

/** A snapshot of the device state, for tests and tools. */
export interface VirtioIommuDebugState {
  readonly status: number;
  readonly bypass: number;
  readonly domains: ReadonlyArray<{ id: number; bypass: boolean; endpoints: number[]; mappings: Array<{ start: bigint; end: bigint; phys: bigint; flags: number }> }>;
  readonly endpoints: ReadonlyArray<{ id: number; kind: 'vfio' | 'emulated'; domain: number | undefined; translation: 'blocked' | 'bypass' | 'domain' }>;
  readonly pendingFaults: number;
  readonly deliveredFaults: number;
  readonly droppedFaults: number;
  readonly interrupts: readonly [number, number];
}

/** The virtio-iommu device. */
export class VirtioIommuDevice {
  readonly vmm: Process;
  readonly memory: GuestMemory;
  private readonly _options: VirtioIommuOptions;
  private readonly _offered: bigint;
  private readonly _state: IommuState;
  private readonly _faults: FaultReporter;
  private readonly _vfioByBdf = new Map<string, Endpoint>();
  private readonly _queueConfigs: Array<QueueConfig | undefined> = [undefined, undefined];
  private _requestq: SplitVirtqueue | undefined;
  private _eventq: SplitVirtqueue | undefined;
  private _status = 0;
  private _driverFeatures = 0n;
  private _bypass: number;
  /** The encoded config space, rebuilt after `bypass` changes or a reset (the other fields are fixed). */
  private _configImage: Uint8Array | undefined;
  /** Sequence number of the newest host fault already looked at (Kernel.dmaFaultCount()). */
  private _hostFaultSeq: number;
  private readonly _tail = new Uint8Array(4);
  private readonly _interrupts: [number, number] = [0, 0];
  private _released = false;

  /**
   * Builds the device and opens a VFIO container for each assigned endpoint in the VMM process.
   * @throws RangeError for a bad configuration (duplicate endpoint IDs, endpoints sharing an IOMMU
   *   group, page size masks with no common bit, disjoint input ranges, both bypass features)
   * @throws SysError from the VFIO setup of an assigned endpoint (nothing stays open)
   */
  constructor(vmm: Process, config: VirtioIommuDeviceConfig) {
    this.vmm = vmm;
    this.memory = new GuestMemory(vmm, config.guestRam.hva, config.guestRam.size);
    const options = (this._options = config.options ?? {});
    const f = options.features ?? {};
    if (f.legacyBypass === true && f.bypassConfig !== false) {
      throw new RangeError('offer VIRTIO_IOMMU_F_BYPASS only with features.bypassConfig: false ("Devices SHOULD NOT offer both")');
    }
    this._offered =
      bit(VIRTIO_F_VERSION_1) |
      bit(VIRTIO_IOMMU_F_MAP_UNMAP) |
      (f.indirectDesc !== false ? bit(VIRTIO_F_INDIRECT_DESC) : 0n) |
      (f.eventIdx !== false ? bit(VIRTIO_F_EVENT_IDX) : 0n) |
      (f.inputRange !== false ? bit(VIRTIO_IOMMU_F_INPUT_RANGE) : 0n) |
      (f.domainRange !== false ? bit(VIRTIO_IOMMU_F_DOMAIN_RANGE) : 0n) |
      (f.probe !== false ? bit(VIRTIO_IOMMU_F_PROBE) : 0n) |
      (f.mmio !== false ? bit(VIRTIO_IOMMU_F_MMIO) : 0n) |
      (f.bypassConfig !== false ? bit(VIRTIO_IOMMU_F_BYPASS_CONFIG) : 0n) |
      (f.legacyBypass === true ? bit(VIRTIO_IOMMU_F_BYPASS) : 0n);
    this._bypass = options.bootBypass === false ? 0 : 1;
    this._faults = new FaultReporter(options.faultQueueCapacity ?? 64);

    const endpoints = this._openEndpoints(vmm, config);
    try {
      const limits = this._limits(endpoints.map((e) => e.mapper));
      this._state = new IommuState(
        {
          compat: options.compat ?? 'spec',
          perEndpointGranule: options.probePageSizeMask === true,
          maxDomains: options.maxDomains ?? 65536,
          maxMappingsPerDomain: options.maxMappingsPerDomain ?? 1 << 20,
        },
        limits,
        false,
        () => this._needsReset(),
      );
      for (const ep of endpoints) this._state.endpoints.set(ep.id, ep);
      this._state.reset(this._unattachedBypass());
    } catch (err) {
      for (const ep of endpoints) ep.mapper.release();
      throw err;
    }
    this._hostFaultSeq = vmm.kernel.dmaFaultCount();
  }

  // ---- features and status -----------------------------------------------------------------------

  /** The feature bits the device offers. */
  deviceFeatures(): bigint {
    return this._offered;
  }

  /** The driver writes the features it accepts; ignored once FEATURES_OK is set. */
  setDriverFeatures(bits: bigint): void {
    if ((this._status & VIRTIO_CONFIG_S_FEATURES_OK) !== 0) return;
    this._driverFeatures = BigInt.asUintN(64, bits);
  }

  /** The features the driver wrote. */
  driverFeatures(): bigint {
    return this._driverFeatures;
  }

  /** The device status byte. */
  getStatus(): number {
    return this._status;
  }

  /**
   * The driver writes the device status. 0 resets the device. FEATURES_OK is kept only when the
   * driver's features are acceptable (it then reads back cleared). DRIVER_OK starts the queues; a queue
   * that is not a valid ring, or DRIVER_OK without FEATURES_OK, sets DEVICE_NEEDS_RESET. NEEDS_RESET
   * is the device's own bit: the driver cannot set or clear it except by reset.
   */
  setStatus(value: number): void {
    const v = value & 0xff;
    if (v === 0) {
      this.reset();
      return;
    }
    const before = this._status;
    let next = (v & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (before & VIRTIO_CONFIG_S_NEEDS_RESET);
    let negotiatedNow = false;
    if ((next & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (before & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      if (this._featuresAcceptable()) negotiatedNow = true;
      else next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    this._status = next;
    if (negotiatedNow) this._negotiated();
    if ((next & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (before & VIRTIO_CONFIG_S_DRIVER_OK) === 0) {
      if ((next & VIRTIO_CONFIG_S_FEATURES_OK) === 0) this._needsReset();
      else for (const index of [VIRTIO_IOMMU_REQUEST_VQ, VIRTIO_IOMMU_EVENT_VQ]) this._startQueue(index);
    }
  }

  private _featuresAcceptable(): boolean {
    const d = this._driverFeatures;
    if ((d & ~this._offered) !== 0n) return false;
    // virtio-iommu is modern-only (QEMU forces virtio 1; Linux refuses a device without VERSION_1).
    if ((d & bit(VIRTIO_F_VERSION_1)) === 0n) return false;
    if (this._options.requireInputRange === true && (this._offered & bit(VIRTIO_IOMMU_F_INPUT_RANGE)) !== 0n && (d & bit(VIRTIO_IOMMU_F_INPUT_RANGE)) === 0n) {
      return false;
    }
    return true;
  }

  private _negotiated(): void {
    const limits = this._state.limits;
    limits.mmioNegotiated = this._has(VIRTIO_IOMMU_F_MMIO);
    limits.bypassConfigNegotiated = this._has(VIRTIO_IOMMU_F_BYPASS_CONFIG);
    limits.mapUnmapNegotiated = this._has(VIRTIO_IOMMU_F_MAP_UNMAP);
    // Legacy F_BYPASS applies only once negotiated (spec §Device operations; reference §8.3).
    this._state.setUnattachedBypass(this._unattachedBypass());
  }

  /** Whether feature `b` is negotiated (offered, accepted, FEATURES_OK). */
  private _has(b: number): boolean {
    return (this._status & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (this._driverFeatures & this._offered & bit(b)) !== 0n;
  }

  /** An endpoint attached to no domain is in bypass mode (spec §Device operations). */
  private _unattachedBypass(): boolean {
    // "the VIRTIO_IOMMU_F_BYPASS_CONFIG feature is offered and config field bypass is 1 … This applies
    // even if the driver does not accept the VIRTIO_IOMMU_F_BYPASS_CONFIG feature"
    if ((this._offered & bit(VIRTIO_IOMMU_F_BYPASS_CONFIG)) !== 0n && this._bypass === 1) return true;
    // "or the VIRTIO_IOMMU_F_BYPASS feature is negotiated and the endpoint is not attached to a domain"
    return this._has(VIRTIO_IOMMU_F_BYPASS);
  }

  // ---- config space ------------------------------------------------------------------------------

  /**
   * Reads the 40-byte config space at `offset`; bytes outside it read as 0. A read of up to 8 bytes
   * (the widest access a virtio transport makes) keeps its width; a wider one is clamped to the end of
   * the config space, so no length allocates more than that (nor throws RangeError).
   */
  readConfig(offset: number, length: number): Uint8Array {
    const image = (this._configImage ??= VirtioIommuConfig.encode({
      page_size_mask: this._state.limits.pageSizeMask,
      input_range_start: this._state.limits.inputRange.start,
      input_range_end: this._state.limits.inputRange.last,
      domain_range_start: this._state.limits.domainRange.start,
      domain_range_end: this._state.limits.domainRange.last,
      probe_size: this._state.limits.probeSize,
      bypass: this._bypass,
    }));
    const wanted = length > 0 ? Math.floor(length) : 0; // NaN → 0
    const out = new Uint8Array(Math.min(wanted, Math.max(CONFIG_SIZE - offset, MAX_CONFIG_ACCESS)));
    for (let i = 0; i < out.length; i++) {
      const at = offset + i;
      if (at >= 0 && at < CONFIG_SIZE) out[i] = image[at]!;
    }
    return out;
  }

  /**
   * The driver writes the config space. Only `bypass` (offset 36) is writable, once BYPASS_CONFIG is
   * negotiated ("When the VIRTIO_IOMMU_F_BYPASS_CONFIG feature is negotiated, the driver MAY write to
   * bypass. The driver MUST NOT write to any other device configuration field"); the device keeps bit 0
   * of the byte and ignores every other write, as cloud-hypervisor does (QEMU would break the device).
   */
  writeConfig(offset: number, bytes: Uint8Array): void {
    if (!Number.isInteger(offset) || !(offset <= BYPASS_OFFSET && offset + bytes.length > BYPASS_OFFSET)) return;
    if (!this._has(VIRTIO_IOMMU_F_BYPASS_CONFIG)) return;
    this._bypass = bytes[BYPASS_OFFSET - offset]! & 1;
    this._configImage = undefined;
    this._state.setUnattachedBypass(this._unattachedBypass());
  }

  // ---- queues ------------------------------------------------------------------------------------

  /** The driver places queue `index` (0 requestq, 1 eventq) at these GPAs; other indices are ignored. */
  setupQueue(index: number, config: QueueConfig): void {
    if (index !== VIRTIO_IOMMU_REQUEST_VQ && index !== VIRTIO_IOMMU_EVENT_VQ) return;
    this._queueConfigs[index] = { size: config.size, desc: config.desc, avail: config.avail, used: config.used };
    if ((this._status & VIRTIO_CONFIG_S_DRIVER_OK) !== 0) this._startQueue(index);
  }

  /**
   * The driver kicked queue `index`: process every available request (queue 0), or deliver waiting
   * fault records into the buffers just posted (queue 1). New host faults of VFIO endpoints are
   * collected either way.
   */
  notify(index: number): void {
    if (!this._live()) return;
    if (index === VIRTIO_IOMMU_REQUEST_VQ) this._processRequests();
    this._collectHostFaults();
    this._deliverFaults();
  }

  /**
   * Device reset: no endpoint stays attached, every domain and mapping goes (every backend is emptied),
   * queues stop, features and status return to 0, waiting faults are dropped. `bypass` keeps its value.
   */
  reset(): void {
    if (this._released) return;
    this._status = 0;
    this._driverFeatures = 0n;
    this._configImage = undefined;
    this._requestq = undefined;
    this._eventq = undefined;
    this._queueConfigs[0] = undefined;
    this._queueConfigs[1] = undefined;
    const limits = this._state.limits;
    limits.mmioNegotiated = false;
    limits.bypassConfigNegotiated = false;
    limits.mapUnmapNegotiated = false;
    this._faults.clear();
    this._state.reset(this._unattachedBypass());
  }

  /** Closes every VFIO fd the device opened in the VMM (VMM teardown). The device is dead afterwards. */
  release(): void {
    if (this._released) return;
    this._released = true;
    for (const ep of this._state.endpoints.values()) ep.mapper.release();
    this._requestq = undefined;
    this._eventq = undefined;
  }

  // ---- emulated endpoints ------------------------------------------------------------------------

  /**
   * The DMA of emulated endpoint `id`, translated by the device. An access the translation refuses
   * moves no byte, throws DmaFault (group -1: no host group) and queues a fault record for the eventq:
   * DOMAIN when the endpoint is attached to no domain and not in bypass ("The device SHOULD NOT let
   * unattached endpoints that are not in bypass mode access the guest-physical address space"),
   * MAPPING when no mapping covers the address, it lies in a RESERVED region, or the mapping lacks the
   * permission. A translated address outside guest RAM throws DmaFault 'out-of-range' without a record
   * (the IOMMU allowed it; nothing answered on the bus).
   * @throws RangeError when `id` is not an emulated endpoint
   */
  endpointDma(id: number): EndpointDma {
    const ep = this._state.endpoints.get(id);
    if (ep === undefined || !(ep.mapper instanceof EmulatedEndpointMapper)) throw new RangeError(`endpoint ${id} is not an emulated endpoint of this device`);
    const mapper = ep.mapper;
    return {
      dmaRead: (iova, length) => {
        const out = new Uint8Array(length);
        let done = 0;
        for (const s of this._translate(ep, mapper, iova, length, false)) {
          this.memory.read(Number(s.gpa), out, done, s.length);
          done += s.length;
        }
        return out;
      },
      dmaWrite: (iova, bytes) => {
        let done = 0;
        for (const s of this._translate(ep, mapper, iova, bytes.length, true)) {
          this.memory.write(Number(s.gpa), bytes, done, s.length);
          done += s.length;
        }
      },
    };
  }

  private _translate(ep: Endpoint, mapper: EmulatedEndpointMapper, iova: bigint, length: number, write: boolean): Array<{ gpa: bigint; length: number }> {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('DMA length must be a non-negative integer');
    const access = write ? 'write' : 'read';
    const fault = (at: bigint, reason: 'no-domain' | 'unmapped' | 'permission' | 'out-of-range', virtioReason: number | undefined): never => {
      if (virtioReason !== undefined) {
        this._faults.report({ reason: virtioReason, flags: faultFlags(write), endpoint: ep.id, address: at });
        this._deliverFaults();
      }
      throw new DmaFault({ bdf: ep.bdf, group: -1, iova: at, access, reason });
    };
    if (ep.translation === 'blocked') return fault(iova, 'no-domain', VIRTIO_IOMMU_FAULT_R_DOMAIN);
    const t = mapper.translate(iova, length, write);
    if ('fault' in t) return fault(t.iova, t.fault === 'permission' ? 'permission' : 'unmapped', VIRTIO_IOMMU_FAULT_R_MAPPING);
    let done = 0;
    for (const s of t.segments) {
      // The fault names the failing segment's first IOVA, not the access's.
      if (s.gpa + BigInt(s.length) > BigInt(this.memory.size)) return fault(iova + BigInt(done), 'out-of-range', undefined);
      done += s.length;
    }
    return t.segments;
  }

  // ---- state for tests ---------------------------------------------------------------------------

  /** A snapshot of domains, endpoints and fault counters. */
  debugState(): VirtioIommuDebugState {
    const state = this._state;
    return {
      status: this._status,
      bypass: this._bypass,
      domains: [...state.domains.values()]
        .sort((a, b) => a.id - b.id)
        .map((d) => ({ id: d.id, bypass: d.bypass, endpoints: d.endpoints.map((e) => e.id), mappings: d.mappings.toArray().map((m) => ({ start: m.start, end: m.end, phys: m.phys, flags: m.flags })) })),
      endpoints: [...state.endpoints.values()].map((e) => ({
        id: e.id,
        kind: e.mapper.kind,
        domain: e.domain?.id,
        translation: typeof e.translation === 'string' ? e.translation : 'domain',
      })),
      pendingFaults: this._faults.pending.length,
      deliveredFaults: this._faults.delivered,
      droppedFaults: this._faults.dropped,
      interrupts: [this._interrupts[0], this._interrupts[1]],
    };
  }

  /** The mapper behind endpoint `id` (tests inspect VFIO containers and emulated tables through it). */
  endpointMapper(id: number): EndpointMapper | undefined {
    return this._state.endpoints.get(id)?.mapper;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private _live(): boolean {
    return !this._released && (this._status & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET)) === VIRTIO_CONFIG_S_DRIVER_OK;
  }

  private _processRequests(): void {
    const q = this._requestq;
    if (q === undefined) return;
    const state = this._state;
    const tail = this._tail;
    for (;;) {
      const chain = q.pop();
      // 'empty' is PopResult's only string: a type check, where `=== 'empty'` against objects and
      // strings makes TurboFan call its generic StrictEqual.
      if (typeof chain === 'string') break;
      if ('malformed' in chain) {
        // The ring itself is garbage: nothing can be returned safely (see the file header).
        if (chain.head < 0) {
          this._needsReset();
          break;
        }
        // A malformed chain: returned unwritten, used length 0 (see the file header).
        q.push(chain.head, 0);
        continue;
      }
      q.push(chain.head, executeRequest(state, chain, tail));
      if (!this._live()) break; // a failed rollback broke the device
    }
    this._interruptIfWanted(VIRTIO_IOMMU_REQUEST_VQ, q);
  }

  private _deliverFaults(): void {
    const q = this._eventq;
    if (q === undefined || !this._live() || this._faults.pending.length === 0) return;
    if (this._faults.deliver(q) > 0) this._interruptIfWanted(VIRTIO_IOMMU_EVENT_VQ, q);
    if (q.isBroken) this._needsReset();
  }

  /** New host IOMMU faults of VFIO endpoints since the last look, as eventq records. */
  private _collectHostFaults(): void {
    if (this._vfioByBdf.size === 0) return;
    // By sequence number: no new fault (the common case) costs one comparison; faults that left the
    // kernel's ring before this look are lost (the log holds the newest ones), none is read twice.
    const kernel = this.vmm.kernel;
    const count = kernel.dmaFaultCount();
    if (count === this._hostFaultSeq) return;
    const fresh = kernel.dmaFaultsSince(this._hostFaultSeq);
    this._hostFaultSeq = count;
    for (const f of fresh) {
      const ep = this._vfioByBdf.get(f.bdf);
      if (ep === undefined) continue;
      const reason =
        ep.translation === 'blocked'
          ? VIRTIO_IOMMU_FAULT_R_DOMAIN
          : f.reason === 'unmapped' || f.reason === 'permission' || f.reason === 'out-of-range'
            ? VIRTIO_IOMMU_FAULT_R_MAPPING
            : f.reason === 'no-domain'
              ? VIRTIO_IOMMU_FAULT_R_DOMAIN
              : VIRTIO_IOMMU_FAULT_R_UNKNOWN;
      const record: FaultRecord = { reason, flags: faultFlags(f.access === 'write'), endpoint: ep.id, address: f.iova };
      this._faults.report(record);
    }
  }

  private _interruptIfWanted(index: number, q: SplitVirtqueue): void {
    if (!q.needsInterrupt()) return;
    this._interrupts[index === VIRTIO_IOMMU_REQUEST_VQ ? 0 : 1]++;
    this._options.onInterrupt?.(index);
  }

  private _startQueue(index: number): void {
    const config = this._queueConfigs[index];
    if (config === undefined) return;
    // The driver's ring addresses are guest input: a bad ring breaks the device, never the VMM.
    if (checkQueueConfig(this.memory, config) !== undefined) {
      this._needsReset();
      return;
    }
    // The requestq answers each chain before popping the next: one reused chain object. The eventq's
    // chains wait in the fault reporter, each its own.
    const q = new SplitVirtqueue(
      this.memory,
      config,
      { indirect: this._has(VIRTIO_F_INDIRECT_DESC), eventIdx: this._has(VIRTIO_F_EVENT_IDX) },
      { reuseChain: index === VIRTIO_IOMMU_REQUEST_VQ },
    );
    if (index === VIRTIO_IOMMU_REQUEST_VQ) this._requestq = q;
    else this._eventq = q;
  }

  private _needsReset(): void {
    this._status |= VIRTIO_CONFIG_S_NEEDS_RESET;
  }

  private _openEndpoints(vmm: Process, config: VirtioIommuDeviceConfig): Endpoint[] {
    const endpoints: Endpoint[] = [];
    const groups = new Map<number, number>();
    let emulatedMsi: readonly ReservedRegion[] | undefined;
    const defaultMsi = (): readonly ReservedRegion[] => (emulatedMsi ??= defaultEmulatedMsi(vmm, config.endpoints));
    try {
      for (const spec of config.endpoints) {
        if (!Number.isInteger(spec.id) || spec.id < 0 || spec.id > 0xffff_ffff) throw new RangeError(`endpoint ID ${spec.id} is not a u32`);
        if (endpoints.some((e) => e.id === spec.id)) throw new RangeError(`endpoint ID ${spec.id} is listed twice`);
        if (spec.kind === 'vfio') {
          const group = vmm.kernel.iommuGroupOf(spec.bdf);
          const other = groups.get(group);
          // QEMU: "group %d used in multiple address spaces" — one container per endpoint cannot share a group.
          if (other !== undefined) throw new RangeError(`endpoints ${other} and ${spec.id} share IOMMU group ${group}; each assigned endpoint needs its own group`);
          groups.set(group, spec.id);
          const mapper = new VfioEndpointMapper({
            vmm,
            bdf: spec.bdf,
            guestRam: config.guestRam,
            ...(spec.msiWindows === undefined ? {} : { msiWindows: spec.msiWindows }),
            ...(spec.windows === undefined ? {} : { windows: spec.windows }),
          });
          const ep = new Endpoint(spec.id, mapper, spec.bdf);
          endpoints.push(ep);
          this._vfioByBdf.set(spec.bdf, ep);
        } else {
          const mapper = new EmulatedEndpointMapper({
            ...(spec.pageSizeMask === undefined ? {} : { pageSizeMask: spec.pageSizeMask }),
            ...(spec.inputRange === undefined ? {} : { inputRange: spec.inputRange }),
            reservedRegions: spec.reservedRegions ?? defaultMsi(),
          });
          endpoints.push(new Endpoint(spec.id, mapper, bdfOfRequesterId(spec.id)));
        }
      }
    } catch (err) {
      for (const ep of endpoints) ep.mapper.release();
      throw err;
    }
    return endpoints;
  }

  /** The config-space limits: what every endpoint's backend can do, narrowed by the options. */
  private _limits(mappers: readonly EndpointMapper[]): IommuLimits {
    const options = this._options;
    let mask = mappers.length === 0 ? 0xffff_ffff_ffff_f000n : U64_LAST;
    let biggest = 1n;
    let start = options.inputRange?.start ?? 0n;
    let last = options.inputRange?.last ?? U64_LAST;
    for (const m of mappers) {
      mask &= m.pageSizeMask();
      const g = granuleOf(m.pageSizeMask());
      if (g > biggest) biggest = g;
      const r = m.inputRange();
      if (r.start > start) start = r.start;
      if (r.last < last) last = r.last;
    }
    if (mask === 0n) {
      // "The device MUST set at least one bit in page_size_mask". With per-endpoint masks in PROBE the
      // guest learns each endpoint's own; the global one is the largest granule, which all accept.
      if (options.probePageSizeMask !== true) throw new RangeError('the endpoints have no page size in common (QEMU: incompatible page size masks); set probePageSizeMask');
      mask = biggest;
    }
    if (last < start) throw new RangeError('the endpoints have no input address in common');
    const probeSize = options.probeSize ?? 512;
    if (!Number.isInteger(probeSize) || probeSize < 0 || probeSize > 0xffff_ffff) throw new RangeError(`probe_size ${probeSize} is not a u32`);
    return {
      pageSizeMask: mask,
      inputRange: { start, last },
      inputRangeEnd: last + 1n,
      inputRangeStartN: Number(start),
      inputRangeEndN: Number(last + 1n),
      inputRangeOffered: (this._offered & bit(VIRTIO_IOMMU_F_INPUT_RANGE)) !== 0n,
      domainRange: options.domainRange ?? { start: 0, last: 0xffff_ffff },
      domainRangeOffered: (this._offered & bit(VIRTIO_IOMMU_F_DOMAIN_RANGE)) !== 0n,
      mmioNegotiated: false,
      bypassConfigNegotiated: false,
      mapUnmapNegotiated: false,
      probeOffered: (this._offered & bit(VIRTIO_IOMMU_F_PROBE)) !== 0n,
      probeSize,
      probePageSizeMask: options.probePageSizeMask === true,
    };
  }
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

function faultFlags(write: boolean): number {
  return (write ? VIRTIO_IOMMU_FAULT_F_WRITE : VIRTIO_IOMMU_FAULT_F_READ) | VIRTIO_IOMMU_FAULT_F_ADDRESS;
}

/**
 * The RESV_MEM MSI regions of an emulated endpoint that names none. An emulated device has no host
 * function, hence no group to ask the kernel about; it shares domains with the assigned ones, so it
 * gets the same MSI windows they report: the union of the VFIO endpoints' windows (their `msiWindows`
 * or the host's for their function, `Kernel.reservedRegionsOf`). A device with no assigned endpoint
 * uses the MSI windows of the machine description's first IOMMU unit (`Kernel.machine`, the platform's
 * interrupt range: 0xfee00000–0xfeefffff on x86, the SW_MSI window on Arm), where the virtio-iommu
 * stands in for that unit. The MSI banks a windowed host maps at setup are not included (they are
 * chosen per container).
 */
function defaultEmulatedMsi(vmm: Process, specs: readonly EndpointSpec[]): ReservedRegion[] {
  const windows: IovaRange[] = [];
  let assigned = false;
  for (const spec of specs) {
    if (spec.kind !== 'vfio') continue;
    assigned = true;
    windows.push(...(spec.msiWindows ?? platformMsiWindows(vmm, spec.bdf)));
  }
  if (!assigned) {
    for (const r of vmm.kernel.machine.iommus[0]?.reservedRegions ?? []) if (r.type === 'msi' || r.type === 'sw-msi') windows.push({ start: r.start, last: r.last });
  }
  windows.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  // Disjoint, sorted, one region per window (overlapping duplicates from several functions merged).
  const out: ReservedRegion[] = [];
  for (const w of windows) {
    const prev = out[out.length - 1];
    if (prev !== undefined && w.start <= prev.last + 1n) {
      if (w.last > prev.last) out[out.length - 1] = { start: prev.start, last: w.last, subtype: 'msi' };
    } else {
      out.push({ start: w.start, last: w.last, subtype: 'msi' });
    }
  }
  return out;
}
