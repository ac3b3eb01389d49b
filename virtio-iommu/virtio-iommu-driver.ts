/**
 * VirtioIommuDriver: a guest driver for the virtio-iommu device, modelled on Linux's
 * drivers/iommu/virtio-iommu.c and the DMA API above it (drivers/iommu/dma-iommu.c), driving the device
 * only through the transport-neutral surface and guest memory (requests are bytes in virtqueues).
 *
 * What it does as Linux does (reference/virtio-iommu.md §3.2–§3.4, §7):
 * - init: reset, ACKNOWLEDGE, DRIVER, accept the features Linux knows (VERSION_1, ring INDIRECT_DESC and
 *   EVENT_IDX, INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO, BYPASS_CONFIG — never F_BYPASS),
 *   FEATURES_OK, read the config, set up requestq and eventq, DRIVER_OK, fill the eventq with 24-byte
 *   buffers. A device without VERSION_1 or MAP_UNMAP is refused (`viommu_probe`).
 * - requests: one readable and one writable buffer each, in an indirect table when INDIRECT_DESC is
 *   negotiated (`virtqueue_add_sgs`). ATTACH, DETACH and PROBE are synchronous and their status checked
 *   (`viommu_send_req_sync`); MAP and UNMAP are queued without waiting (`viommu_add_req`) and only the
 *   sync that follows kicks the queue and waits for everything queued (`viommu_sync_req`); their status
 *   is never looked at (counted in `stats.failedRequests` here).
 * - domains: IDs from [domain_range.start; domain_range.end], lowest free first (an IDA); with
 *   BYPASS_CONFIG the first ID is kept for the identity domain, attached with ATTACH_F_BYPASS
 *   (`viommu_domain_alloc_identity`). Without it the identity domain is a paging domain filled with
 *   identity MAPs (READ|WRITE) minus the RESV_MEM regions, granule-rounded — over guest RAM only, where
 *   Linux covers the whole input range: an assigned endpoint's host cannot map GPAs past guest RAM.
 * - the driver keeps its own copy of each domain's mappings: MAP is only sent while the domain has
 *   endpoints, and the copy is replayed (synchronously, status checked) when the first endpoint attaches
 *   (`viommu_replay_mappings`); the device drops a domain's mappings with its last endpoint.
 * - the DMA API: `dmaMap` takes an IOVA from the domain's allocator (granule-aligned, top-down, RESV_MEM
 *   excluded), MAPs it and syncs (`iotlb_sync_map`); `dmaUnmap` queues the UNMAP and then
 *   - strict: syncs at once and frees the IOVA (`iommu.strict=1`);
 *   - lazy: puts the IOVA in a flush queue (`IOVA_FQ_SIZE` 256 entries); the UNMAPs ride along with the
 *     next sync, and the IOVAs are freed only when the queue is flushed (`fq_flush_iotlb` →
 *     `flush_iotlb_all` → sync), so an IOVA is never reused before its UNMAP completed.
 * - the queue is full → sync and retry (`viommu_add_req` on -ENOSPC).
 * - faults: `pollFaults` reaps the eventq, decodes the records (ignoring those with reserved bits set,
 *   as Linux checks `VIOMMU_FAULT_RESV_MASK`), and re-posts the buffers.
 *
 * Errors: a synchronous request that fails throws VirtioIommuDriverError with the status (used length 0
 * reads as S_IOERR, as Linux's `viommu_get_req_errno`). Misuse by the caller throws RangeError.
 */
import type { GuestMemory } from './guest-memory';
import type { IovaRange, ReservedRegion } from './endpoint-mapper';
import { exactNumber } from './exact-number';
import { high32, LITTLE_ENDIAN } from './host-order';
import { IovaAllocator } from './iova-allocator';
import { MappingTree, SmallMapping, type Mapping } from './mapping-tree';
import type { QueueConfig } from './split-virtqueue';
import { VirtqueueDriver, type UsedEntry } from './virtqueue-driver';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_IOMMU_ATTACH_F_BYPASS,
  VIRTIO_IOMMU_EVENT_VQ,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
  VIRTIO_IOMMU_F_DOMAIN_RANGE,
  VIRTIO_IOMMU_F_INPUT_RANGE,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_MAP_F_READ,
  VIRTIO_IOMMU_MAP_F_WRITE,
  VIRTIO_IOMMU_PROBE_T_MASK,
  VIRTIO_IOMMU_PROBE_T_NONE,
  VIRTIO_IOMMU_PROBE_T_PAGE_SIZE_MASK,
  VIRTIO_IOMMU_PROBE_T_RESV_MEM,
  VIRTIO_IOMMU_REQUEST_VQ,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  VIRTIO_IOMMU_S_IOERR,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_PROBE,
  VIRTIO_IOMMU_T_UNMAP,
  VirtioIommuConfig,
  VirtioIommuFault,
  VirtioIommuReqAttach,
  VirtioIommuReqDetach,
  VirtioIommuReqMap,
  VirtioIommuReqProbe,
  VirtioIommuReqUnmap,
} from '../uapi/virtio-iommu';
import { readU16, readU32, readU64, writeU32, writeU64 } from '../uapi/codec';

/** The calls a virtio transport makes on a device: what VirtioIommuDevice offers. */
export interface VirtioTransport {
  deviceFeatures(): bigint;
  setDriverFeatures(bits: bigint): void;
  getStatus(): number;
  setStatus(value: number): void;
  readConfig(offset: number, length: number): Uint8Array;
  setupQueue(index: number, config: QueueConfig): void;
  notify(index: number): void;
}

/** How an invalidation is made visible to the device after an unmap. */
export type InvalidationMode = 'strict' | 'lazy';

/** DMA direction, as the DMA API names it. */
export type DmaDirection = 'to-device' | 'from-device' | 'bidirectional';

/** Driver options. */
export interface VirtioIommuDriverOptions {
  /** GPA of guest RAM the driver owns for its rings, request buffers and request slots (about 240 KiB). */
  base: number;
  /** requestq size. Default 256 (what QEMU offers). */
  queueSize?: number;
  mode?: InvalidationMode;
  /** Lazy mode: UNMAPs held before a flush. Default 256 (Linux IOVA_FQ_SIZE). */
  flushQueueSize?: number;
  /** eventq buffers kept posted. Default 32. */
  eventBuffers?: number;
}

/** A failed synchronous request. */
export class VirtioIommuDriverError extends Error {
  constructor(
    readonly request: string,
    /** VIRTIO_IOMMU_S_* (S_IOERR for a used length of 0). */
    readonly status: number,
  ) {
    super(`virtio-iommu ${request} failed with status ${status}`);
    this.name = 'VirtioIommuDriverError';
  }
}

/** What PROBE said about an endpoint. */
export interface ProbedEndpoint {
  readonly resvRegions: readonly ReservedRegion[];
  /** The PAGE_SIZE_MASK property, when the device reported one. */
  readonly pageSizeMask: bigint | undefined;
}

/** A fault record read from the eventq. */
export interface GuestFault {
  readonly reason: number;
  readonly flags: number;
  readonly endpoint: number;
  readonly address: bigint;
}

/** Counters a workload reports. */
export interface DriverStats {
  /** Notifications of the requestq (each one a VM exit in a real guest). */
  kicks: number;
  /** Requests added to the requestq. */
  requests: number;
  /** Waits for the device to finish everything queued. */
  syncs: number;
  /** MAP/UNMAP requests completed with a non-OK status (Linux never looks). */
  failedRequests: number;
  /** Lazy-mode flushes of the IOVA flush queue. */
  flushes: number;
}

/** One guest IOMMU domain (Linux `struct viommu_domain`). */
export class GuestDomain {
  /** The device-side ID, assigned at first attach (`viommu_domain_finalise`). */
  id: number | undefined = undefined;
  readonly endpoints = new Set<number>();
  /**
   * The driver's copy of the mappings, IOVA → GPA (Linux `vdomain->mappings`), replayed at first attach.
   * Numbers when exact (SmallMapping): the MAP/UNMAP path makes no BigInt.
   */
  readonly mappings = new MappingTree();
  allocator: IovaAllocator | undefined = undefined;
  /** Lazy mode: IOVAs unmapped but not yet flushed. */
  readonly flushQueue: Array<readonly [bigint, bigint]> = [];

  constructor(
    /** A bypass domain (ATTACH_F_BYPASS). */
    readonly identity: boolean,
    /** A paging domain that maps guest RAM by identity (the identity domain without BYPASS_CONFIG). */
    readonly identityMapped = false,
  ) {}
}

const LINUX_FEATURES = [
  VIRTIO_F_VERSION_1,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_IOMMU_F_INPUT_RANGE,
  VIRTIO_IOMMU_F_DOMAIN_RANGE,
  VIRTIO_IOMMU_F_MAP_UNMAP,
  VIRTIO_IOMMU_F_PROBE,
  VIRTIO_IOMMU_F_MMIO,
  VIRTIO_IOMMU_F_BYPASS_CONFIG,
].reduce((m, b) => m | (1n << BigInt(b)), 0n);

const ATTACH_READABLE = VirtioIommuReqAttach.offsetof('status');
const DETACH_READABLE = VirtioIommuReqDetach.offsetof('status');
const MAP_READABLE = VirtioIommuReqMap.offsetof('status');
const UNMAP_READABLE = VirtioIommuReqUnmap.offsetof('status');
const MAP_DOMAIN = VirtioIommuReqMap.offsetof('domain');
const MAP_VIRT_START = VirtioIommuReqMap.offsetof('virt_start');
const MAP_VIRT_END = VirtioIommuReqMap.offsetof('virt_end');
const MAP_PHYS = VirtioIommuReqMap.offsetof('phys_start');
const MAP_FLAGS = VirtioIommuReqMap.offsetof('flags');
const UNMAP_DOMAIN = VirtioIommuReqUnmap.offsetof('domain');
const UNMAP_VIRT_START = VirtioIommuReqUnmap.offsetof('virt_start');
const UNMAP_VIRT_END = VirtioIommuReqUnmap.offsetof('virt_end');
const FAULT_SIZE = VirtioIommuFault.size;
/** Bytes of a requestq slot: an indirect table and the largest MAP/UNMAP (36 + 4 bytes) fit. */
const REQUEST_SLOT = 128;
const U64_LAST = (1n << 64n) - 1n;
const TWO_64 = 1n << 64n;
const TWO_32 = 2 ** 32;
// The same fields as u32 word indices (every offset is 4-aligned), for the number fast path.
const MAP_W_DOMAIN = MAP_DOMAIN >>> 2;
const MAP_W_VIRT_START = MAP_VIRT_START >>> 2;
const MAP_W_VIRT_END = MAP_VIRT_END >>> 2;
const MAP_W_PHYS = MAP_PHYS >>> 2;
const MAP_W_FLAGS = MAP_FLAGS >>> 2;
const UNMAP_W_DOMAIN = UNMAP_DOMAIN >>> 2;
const UNMAP_W_VIRT_START = UNMAP_VIRT_START >>> 2;
const UNMAP_W_VIRT_END = UNMAP_VIRT_END >>> 2;
if (((MAP_DOMAIN | MAP_VIRT_START | MAP_VIRT_END | MAP_PHYS | MAP_FLAGS | UNMAP_DOMAIN | UNMAP_VIRT_START | UNMAP_VIRT_END) & 3) !== 0) {
  throw new Error('virtio-iommu MAP/UNMAP fields are not 4-aligned');
}

/** A Linux-like guest driver for the virtio-iommu device. */
export class VirtioIommuDriver {
  readonly stats: DriverStats = { kicks: 0, requests: 0, syncs: 0, failedRequests: 0, flushes: 0 };
  readonly mode: InvalidationMode;
  private readonly _transport: VirtioTransport;
  private readonly _mem: GuestMemory;
  private readonly _options: VirtioIommuDriverOptions;
  private _requestq: VirtqueueDriver | undefined;
  private _eventq: VirtqueueDriver | undefined;
  private _features = 0n;
  private _pageSizeMask = 0n;
  private _inputRange: IovaRange = { start: 0n, last: U64_LAST };
  private _firstDomain = 0;
  private _lastDomain = 0xffff_ffff;
  private _probeSize = 0;
  private _identityDomainId: number | undefined;
  private readonly _usedDomainIds = new Set<number>();
  private readonly _probed = new Map<number, ProbedEndpoint>();
  private readonly _endpointDomain = new Map<number, GuestDomain>();
  private _indirect = false;
  // Request bytes, reused: add() copies them into the ring's buffers.
  private readonly _map = new Uint8Array(VirtioIommuReqMap.size);
  private readonly _unmap = new Uint8Array(VirtioIommuReqUnmap.size);
  private readonly _mapWords = new Uint32Array(this._map.buffer, 0, this._map.length >>> 2);
  private readonly _unmapWords = new Uint32Array(this._unmap.buffer, 0, this._unmap.length >>> 2);
  /** Where MAP/UNMAP statuses are reaped into (their writable part is the 4-byte tail). */
  private readonly _status = new Uint8Array(4);
  private readonly _addOptions: { indirect: boolean } = { indirect: false };

  constructor(transport: VirtioTransport, mem: GuestMemory, options: VirtioIommuDriverOptions) {
    this._transport = transport;
    this._mem = mem;
    this._options = options;
    this.mode = options.mode ?? 'strict';
    this._map[0] = VIRTIO_IOMMU_T_MAP;
    this._unmap[0] = VIRTIO_IOMMU_T_UNMAP;
  }

  // ---- initialisation ----------------------------------------------------------------------------

  /**
   * Brings the device up as `viommu_probe` does.
   * @throws Error when the device lacks VERSION_1 or MAP_UNMAP, or refuses FEATURES_OK
   */
  init(): void {
    const t = this._transport;
    t.setStatus(0);
    t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const offered = t.deviceFeatures();
    if ((offered & bit(VIRTIO_F_VERSION_1)) === 0n || (offered & bit(VIRTIO_IOMMU_F_MAP_UNMAP)) === 0n) {
      t.setStatus(t.getStatus() | 0x80);
      throw new Error('virtio-iommu: the device lacks VIRTIO_F_VERSION_1 or VIRTIO_IOMMU_F_MAP_UNMAP');
    }
    this._features = offered & LINUX_FEATURES;
    t.setDriverFeatures(this._features);
    t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    if ((t.getStatus() & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      t.setStatus(t.getStatus() | 0x80);
      throw new Error('virtio-iommu: the device refused FEATURES_OK');
    }
    const config = VirtioIommuConfig.decode(t.readConfig(0, VirtioIommuConfig.size));
    this._pageSizeMask = config.page_size_mask;
    if (this.has(VIRTIO_IOMMU_F_INPUT_RANGE)) this._inputRange = { start: config.input_range_start, last: config.input_range_end };
    if (this.has(VIRTIO_IOMMU_F_DOMAIN_RANGE)) {
      this._firstDomain = config.domain_range_start;
      this._lastDomain = config.domain_range_end;
    }
    if (this.has(VIRTIO_IOMMU_F_PROBE)) this._probeSize = config.probe_size;
    if (this.has(VIRTIO_IOMMU_F_BYPASS_CONFIG)) this._identityDomainId = this._firstDomain++;
    const ring = { indirect: this.has(VIRTIO_F_INDIRECT_DESC), eventIdx: this.has(VIRTIO_F_EVENT_IDX) };
    this._indirect = ring.indirect;
    this._addOptions.indirect = ring.indirect;
    const requestq = new VirtqueueDriver(this._mem, this._options.base, this._options.queueSize ?? 256, ring, { dataBytes: 128 << 10, slotBytes: REQUEST_SLOT });
    const eventq = new VirtqueueDriver(this._mem, requestq.end, 64, ring, { dataBytes: 8 << 10 });
    this._requestq = requestq;
    this._eventq = eventq;
    t.setupQueue(VIRTIO_IOMMU_REQUEST_VQ, requestq.config);
    t.setupQueue(VIRTIO_IOMMU_EVENT_VQ, eventq.config);
    t.setStatus(t.getStatus() | VIRTIO_CONFIG_S_DRIVER_OK);
    for (let i = 0; i < (this._options.eventBuffers ?? 32); i++) eventq.add([{ length: FAULT_SIZE, writable: true }]);
    if (eventq.kick()) t.notify(VIRTIO_IOMMU_EVENT_VQ);
  }

  /** Whether feature bit `b` was negotiated. */
  has(b: number): boolean {
    return (this._features & bit(b)) !== 0n;
  }

  /** The config space's page_size_mask. */
  get pageSizeMask(): bigint {
    return this._pageSizeMask;
  }

  /** The input range (the whole 64-bit space without INPUT_RANGE). */
  get inputRange(): IovaRange {
    return this._inputRange;
  }

  /** The first GPA after the driver's rings and buffers. */
  get end(): number {
    return this._eventq?.end ?? this._options.base;
  }

  // ---- endpoints and domains ---------------------------------------------------------------------

  /**
   * PROBE, synchronously (Linux sends it before the first attach when probe_size ≠ 0). Parses RESV_MEM
   * and PAGE_SIZE_MASK properties; an unknown subtype is RESERVED, an unknown type is skipped.
   * @throws VirtioIommuDriverError
   */
  probe(endpoint: number): ProbedEndpoint {
    if (this._probeSize === 0) {
      const none: ProbedEndpoint = { resvRegions: [], pageSizeMask: undefined };
      this._probed.set(endpoint, none);
      return none;
    }
    const readable = VirtioIommuReqProbe.encode({ type: VIRTIO_IOMMU_T_PROBE, endpoint });
    const used = this._sendSync('PROBE', readable, this._probeSize + 4);
    const props = used.writable;
    const resv: ReservedRegion[] = [];
    let pageSizeMask: bigint | undefined;
    for (let at = 0; at + 4 <= this._probeSize; ) {
      const type = readU16(props, at) & VIRTIO_IOMMU_PROBE_T_MASK;
      const length = readU16(props, at + 2);
      if (type === VIRTIO_IOMMU_PROBE_T_NONE) break;
      if (at + 4 + length > this._probeSize) break;
      if (type === VIRTIO_IOMMU_PROBE_T_RESV_MEM && length >= 20) {
        resv.push({ start: readU64(props, at + 8), last: readU64(props, at + 16), subtype: props[at + 4] === VIRTIO_IOMMU_RESV_MEM_T_MSI ? 'msi' : 'reserved' });
      } else if (type === VIRTIO_IOMMU_PROBE_T_PAGE_SIZE_MASK && length >= 8) {
        pageSizeMask = readU64(props, at + 4);
      }
      at += 4 + length;
    }
    resv.sort((a, b) => (a.start < b.start ? -1 : 1));
    const result: ProbedEndpoint = { resvRegions: resv, pageSizeMask };
    this._probed.set(endpoint, result);
    return result;
  }

  /** A new paging domain (no ID until its first attach). */
  createDomain(): GuestDomain {
    return new GuestDomain(false);
  }

  /**
   * The identity domain: a bypass domain with BYPASS_CONFIG, else a paging domain that gets identity
   * MAPs over the input range minus the RESV_MEM regions at its first attach.
   */
  createIdentityDomain(): GuestDomain {
    return this._identityDomainId !== undefined ? new GuestDomain(true) : new GuestDomain(false, true);
  }

  /**
   * Attaches `endpoint` (probed first when PROBE is negotiated and it was not) to `domain`, then, for
   * the domain's first endpoint, replays its mappings synchronously.
   * @throws VirtioIommuDriverError
   */
  attach(domain: GuestDomain, endpoint: number): void {
    const probed = this._probed.get(endpoint) ?? this.probe(endpoint);
    if (domain.id === undefined) this._finalise(domain, probed);
    const flags = domain.identity ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0;
    const readable = VirtioIommuReqAttach.encode({ type: VIRTIO_IOMMU_T_ATTACH, domain: domain.id!, endpoint, flags }).subarray(0, ATTACH_READABLE);
    this._sendSync('ATTACH', readable, 4);
    const previous = this._endpointDomain.get(endpoint);
    if (previous !== undefined && previous !== domain) previous.endpoints.delete(endpoint);
    this._endpointDomain.set(endpoint, domain);
    const first = domain.endpoints.size === 0;
    domain.endpoints.add(endpoint);
    if (first && !domain.identity && domain.mappings.size > 0) {
      // viommu_replay_mappings: MAPs sent synchronously, status checked.
      for (const m of domain.mappings) {
        this._queueMap(domain.id!, m);
        this._syncChecked('MAP (replay)');
      }
    }
  }

  /** DETACH; the device drops the domain's mappings with its last endpoint (the driver keeps its copy). @throws VirtioIommuDriverError */
  detach(domain: GuestDomain, endpoint: number): void {
    if (domain.id === undefined || !domain.endpoints.has(endpoint)) throw new RangeError(`endpoint ${endpoint} is not attached to this domain`);
    const readable = VirtioIommuReqDetach.encode({ type: VIRTIO_IOMMU_T_DETACH, domain: domain.id, endpoint }).subarray(0, DETACH_READABLE);
    this._sendSync('DETACH', readable, 4);
    domain.endpoints.delete(endpoint);
    this._endpointDomain.delete(endpoint);
  }

  // ---- the IOMMU API -----------------------------------------------------------------------------

  /** `iommu_map` + `iotlb_sync_map`: records the mapping, queues MAP (if the domain has endpoints), syncs. */
  map(domain: GuestDomain, iova: bigint, gpa: bigint, size: bigint, flags: number): void {
    this.mapNoSync(domain, iova, gpa, size, flags);
    if (domain.endpoints.size !== 0) this.sync();
  }

  /**
   * `iommu_map_nosync`: records the mapping and queues MAP (if the domain has endpoints) without the
   * `iotlb_sync_map` — what `iommu_map_sg` does for each entry before one sync at the end. The MAP
   * reaches the device at the next `sync` (or when the queue fills).
   */
  mapNoSync(domain: GuestDomain, iova: bigint, gpa: bigint, size: bigint, flags: number): void {
    if (domain.identity) throw new RangeError('MAP on an identity domain');
    const m = guestMapping(iova, gpa, size, flags);
    // The IOMMU API never maps over a live mapping (Linux's DMA API allocates each IOVA once).
    if (!domain.mappings.tryInsert(m)) throw new RangeError(`0x${size.toString(16)} bytes at IOVA 0x${iova.toString(16)} overlap a mapping of the domain`);
    if (domain.endpoints.size === 0) return;
    this._queueMap(domain.id!, m);
  }

  /**
   * `iommu_unmap`: forgets the mapping and queues UNMAP; in strict mode syncs (`iotlb_sync`), in lazy
   * mode leaves the kick to the next sync.
   */
  unmap(domain: GuestDomain, iova: bigint, size: bigint): void {
    const s = exactNumber(iova);
    const n = exactNumber(size);
    const exact = s >= 0 && n >= 1 && s + n <= Number.MAX_SAFE_INTEGER;
    if (!(exact ? domain.mappings.removeExactN(s, n) : domain.mappings.removeExact(iova, size))) {
      throw new RangeError(`no mapping of 0x${size.toString(16)} bytes at IOVA 0x${iova.toString(16)} (Linux: "Trying to split a mapping?")`);
    }
    if (domain.endpoints.size === 0) return;
    if (exact && LITTLE_ENDIAN) this._queueUnmapN(domain.id!, s, n);
    else this._queueUnmap(domain.id!, iova, size);
    if (this.mode === 'strict') this.sync();
  }

  // ---- the DMA API -------------------------------------------------------------------------------

  /**
   * `dma_map_single`: an IOVA for `[gpa, gpa + size)` (whole granules around it), mapped and synced.
   * @returns the bus address (IOVA + the offset of `gpa` in its granule)
   * @throws RangeError when the domain's IOVA space is exhausted
   */
  dmaMap(domain: GuestDomain, gpa: bigint, size: number, direction: DmaDirection): bigint {
    // An identity domain is dma-direct: the bus address is the guest-physical one, nothing to map.
    if (domain.identity || domain.identityMapped) return gpa;
    const alloc = domain.allocator;
    if (alloc === undefined) throw new RangeError('dmaMap on a domain with no endpoint attached yet');
    const g = alloc.granule;
    const offset = gpa % g;
    const base = gpa - offset;
    const span = ((offset + BigInt(size) + g - 1n) / g) * g;
    let iova = alloc.alloc(span);
    if (iova === undefined && domain.flushQueue.length > 0) {
      this.flush(domain);
      iova = alloc.alloc(span);
    }
    if (iova === undefined) throw new RangeError('IOVA space exhausted');
    const flags = direction === 'to-device' ? VIRTIO_IOMMU_MAP_F_READ : direction === 'from-device' ? VIRTIO_IOMMU_MAP_F_WRITE : VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE;
    this.map(domain, iova, base, span, flags);
    return iova + offset;
  }

  /** `dma_unmap_single` for what `dmaMap(domain, gpa, size)` returned. */
  dmaUnmap(domain: GuestDomain, dmaAddress: bigint, size: number): void {
    if (domain.identity || domain.identityMapped) return;
    const alloc = domain.allocator!;
    const g = alloc.granule;
    const offset = dmaAddress % g;
    const iova = dmaAddress - offset;
    const span = ((offset + BigInt(size) + g - 1n) / g) * g;
    this.unmap(domain, iova, span);
    if (this.mode === 'strict' || domain.endpoints.size === 0) {
      alloc.free(iova, span);
      return;
    }
    domain.flushQueue.push([iova, span]);
    if (domain.flushQueue.length >= (this._options.flushQueueSize ?? 256)) this.flush(domain);
  }

  /** Lazy mode: `flush_iotlb_all` (a sync), then the queued IOVAs become free. */
  flush(domain: GuestDomain): void {
    if (domain.flushQueue.length === 0) return;
    this.sync();
    this.stats.flushes++;
    for (const [iova, span] of domain.flushQueue) domain.allocator!.free(iova, span);
    domain.flushQueue.length = 0;
  }

  /** `viommu_sync_req`: kick if needed and wait until every queued request completed. */
  sync(): void {
    const q = this._requestq!;
    this.stats.syncs++;
    if (q.inFlight === 0) return;
    if (q.kick()) {
      this.stats.kicks++;
      this._transport.notify(VIRTIO_IOMMU_REQUEST_VQ);
    }
    const status = this._status;
    // Reap while anything is in flight (no last look at an empty used ring once everything is back).
    while (q.inFlight !== 0) {
      const len = q.reapInto(status);
      if (len < 0) break;
      // A MAP/UNMAP reply is the 4-byte tail: used length 0 (or anything but 4) is a failure.
      if (len !== 4 || status[0] !== VIRTIO_IOMMU_S_OK) this.stats.failedRequests++;
    }
    if (q.inFlight !== 0) throw new VirtioIommuDriverError('sync', VIRTIO_IOMMU_S_IOERR);
  }

  /** Fault records the device wrote since the last call; the buffers go back on the eventq. */
  pollFaults(): GuestFault[] {
    const q = this._eventq!;
    const out: GuestFault[] = [];
    for (let e = q.reapOne(); e !== undefined; e = q.reapOne()) {
      // Linux: a record with reserved bits set in its first word is ignored (VIOMMU_FAULT_RESV_MASK).
      if (e.len >= FAULT_SIZE && (readU32(e.writable, 0) & 0xffffff00) === 0) {
        const f = VirtioIommuFault.decode(e.writable);
        out.push({ reason: f.reason, flags: f.flags, endpoint: f.endpoint, address: f.address });
      }
      q.add([{ length: FAULT_SIZE, writable: true }]);
    }
    if (q.kick()) this._transport.notify(VIRTIO_IOMMU_EVENT_VQ);
    return out;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private _finalise(domain: GuestDomain, probed: ProbedEndpoint): void {
    if (domain.identity) {
      domain.id = this._identityDomainId!;
      return;
    }
    let id = this._firstDomain;
    while (this._usedDomainIds.has(id)) {
      if (id === this._lastDomain) throw new RangeError('no free domain ID');
      id++;
    }
    this._usedDomainIds.add(id);
    domain.id = id;
    const mask = probed.pageSizeMask ?? this._pageSizeMask;
    const granule = mask & -mask;
    domain.allocator = new IovaAllocator(this._inputRange, probed.resvRegions, granule < 4096n ? 4096n : granule);
    if (domain.identityMapped) {
      // viommu_domain_map_identity: every granule of guest RAM outside the RESV_MEM regions, IOVA = GPA.
      const g = domain.allocator.granule;
      const ramEnd = (BigInt(this._mem.size) / g) * g;
      let at = ((this._inputRange.start + g - 1n) / g) * g;
      for (const r of [...probed.resvRegions, { start: ramEnd, last: U64_LAST }]) {
        const cut = (r.start / g) * g;
        const stop = cut < ramEnd ? cut : ramEnd;
        if (stop > at) domain.mappings.insert(guestMapping(at, at, stop - at, VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE));
        const next = ((r.last + 1n + g - 1n) / g) * g;
        if (next > at) at = next;
        if (at >= ramEnd) break;
      }
    }
  }

  // MAP and UNMAP bytes are rewritten field by field in reused buffers (type and reserved bytes stay).
  private _queueMap(domainId: number, m: Mapping): void {
    if (LITTLE_ENDIAN && m instanceof SmallMapping) {
      // Every field exact in a double (SmallMapping.fits): no BigInt work.
      const w = this._mapWords;
      w[MAP_W_DOMAIN] = domainId;
      put64(w, MAP_W_VIRT_START, m.startN);
      put64(w, MAP_W_VIRT_END, m.endN - 1);
      put64(w, MAP_W_PHYS, m.physN);
      w[MAP_W_FLAGS] = m.flags;
      this._add(w, MAP_READABLE);
      return;
    }
    const b = this._map;
    writeU32(b, MAP_DOMAIN, domainId);
    writeU64(b, MAP_VIRT_START, m.start);
    writeU64(b, MAP_VIRT_END, m.end - 1n);
    writeU64(b, MAP_PHYS, m.phys);
    writeU32(b, MAP_FLAGS, m.flags);
    this._add(this._mapWords, MAP_READABLE);
  }

  /** UNMAP of `[s, s + n)`, both exact numbers with s + n − 1 below 2^53, on a little-endian host. */
  private _queueUnmapN(domainId: number, s: number, n: number): void {
    const w = this._unmapWords;
    w[UNMAP_W_DOMAIN] = domainId;
    put64(w, UNMAP_W_VIRT_START, s);
    put64(w, UNMAP_W_VIRT_END, s + n - 1);
    this._add(w, UNMAP_READABLE);
  }

  private _queueUnmap(domainId: number, iova: bigint, size: bigint): void {
    const b = this._unmap;
    writeU32(b, UNMAP_DOMAIN, domainId);
    writeU64(b, UNMAP_VIRT_START, iova);
    writeU64(b, UNMAP_VIRT_END, iova + size - 1n);
    this._add(this._unmapWords, UNMAP_READABLE);
  }

  /** `viommu_add_req`: a full queue is synced and the request retried. */
  private _add(words: Uint32Array, readable: number): void {
    const q = this._requestq!;
    if (q.freeDescriptors < (this._indirect ? 1 : 2)) this.sync();
    q.addRequest(words, readable, 4, this._indirect);
    this.stats.requests++;
  }

  private _account(e: UsedEntry): void {
    if (e.len < 4 || e.writable[e.len - 4] !== VIRTIO_IOMMU_S_OK) this.stats.failedRequests++;
  }

  /** Sends one request and waits for it; everything queued before completes too. */
  private _sendSync(name: string, readable: Uint8Array, writableLength: number): UsedEntry {
    const q = this._requestq!;
    if (q.freeDescriptors < 2) this.sync();
    const head = q.add(
      [
        { bytes: readable, writable: false },
        { length: writableLength, writable: true },
      ],
      this._addOptions,
    );
    this.stats.requests++;
    this.stats.syncs++;
    if (q.kick()) {
      this.stats.kicks++;
      this._transport.notify(VIRTIO_IOMMU_REQUEST_VQ);
    }
    let mine: UsedEntry | undefined;
    for (let e = q.reapOne(); e !== undefined; e = q.reapOne()) {
      if (e.head === head && mine === undefined) mine = e;
      else this._account(e);
    }
    if (mine === undefined) throw new VirtioIommuDriverError(name, VIRTIO_IOMMU_S_IOERR);
    // viommu_get_req_errno: a used length of 0 (or a short reply) is an I/O error.
    const status = mine.len < writableLength ? VIRTIO_IOMMU_S_IOERR : mine.writable[writableLength - 4]!;
    if (status !== VIRTIO_IOMMU_S_OK) throw new VirtioIommuDriverError(name, status);
    return mine;
  }

  private _syncChecked(name: string): void {
    const before = this.stats.failedRequests;
    this.sync();
    if (this.stats.failedRequests !== before) throw new VirtioIommuDriverError(name, VIRTIO_IOMMU_S_IOERR);
  }
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/**
 * The driver's record of one mapping: numbers when every value is exact, else bigints.
 * @throws RangeError for an empty range, or one that leaves the 64-bit IOVA or GPA space
 */
function guestMapping(iova: bigint, gpa: bigint, size: bigint, flags: number): Mapping {
  const s = exactNumber(iova);
  const n = exactNumber(size);
  const g = exactNumber(gpa);
  if (s >= 0 && n >= 1 && g >= 0 && SmallMapping.fits(s, s + n, g)) return new SmallMapping(s, s + n, g, flags);
  if (size <= 0n || iova < 0n || gpa < 0n || iova + size > TWO_64 || gpa + size > TWO_64) {
    throw new RangeError(`0x${size.toString(16)} bytes at IOVA 0x${iova.toString(16)} → GPA 0x${gpa.toString(16)} is not a mappable range`);
  }
  return { start: iova, end: iova + size, size, phys: gpa, flags };
}


/** Stores the non-negative safe integer `v` as a little-endian u64 at word `wi` of `w`. */
function put64(w: Uint32Array, wi: number, v: number): void {
  const hi = high32(v);
  w[wi] = v - hi * TWO_32;
  w[wi + 1] = hi;
}
