/**
 * A guest for virtio-iommu conformance tests: a Kernel, a VMM process with guest RAM, a
 * VirtioIommuDevice, and a driver that initialises it as Linux does and sends requests AS BYTES through
 * the requestq (VirtqueueDriver), the way QEMU's qtest drives the real device (libqos: the request minus
 * the tail in one readable descriptor, the tail in one writable descriptor, kick, wait for the used
 * element). Request builders take the fields of the spec's structs; every reply is checked for a
 * well-formed tail (used length, reserved bytes) by the caller through `Reply`.
 */
import { Kernel, type KernelOptions, type PciDeviceSpec } from '../../index';
import type { MachineName, MachineSpec, PageSize, Process } from '../../kernel-sim';
import { uapi } from '../../index';
import { GuestMemory } from '../../virtio-iommu/guest-memory';
import { VirtqueueDriver, type AddOptions, type Segment, type UsedEntry } from '../../virtio-iommu/virtqueue-driver';
import { VirtioIommuDevice, type EndpointSpec, type VirtioIommuOptions } from '../../virtio-iommu/virtio-iommu-device';

const {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_UNMAP,
  VIRTIO_IOMMU_T_PROBE,
  VirtioIommuReqAttach,
  VirtioIommuReqDetach,
  VirtioIommuReqMap,
  VirtioIommuReqUnmap,
  VirtioIommuReqProbe,
} = uapi;

export const U64_MAX = (1n << 64n) - 1n;
export const READ = uapi.VIRTIO_IOMMU_MAP_F_READ;
export const WRITE = uapi.VIRTIO_IOMMU_MAP_F_WRITE;
export const MMIO = uapi.VIRTIO_IOMMU_MAP_F_MMIO;
export const S = {
  OK: uapi.VIRTIO_IOMMU_S_OK,
  IOERR: uapi.VIRTIO_IOMMU_S_IOERR,
  UNSUPP: uapi.VIRTIO_IOMMU_S_UNSUPP,
  DEVERR: uapi.VIRTIO_IOMMU_S_DEVERR,
  INVAL: uapi.VIRTIO_IOMMU_S_INVAL,
  RANGE: uapi.VIRTIO_IOMMU_S_RANGE,
  NOENT: uapi.VIRTIO_IOMMU_S_NOENT,
  FAULT: uapi.VIRTIO_IOMMU_S_FAULT,
  NOMEM: uapi.VIRTIO_IOMMU_S_NOMEM,
} as const;

/** Feature bit as a mask. */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** The bytes of one request: its device-readable part and how many writable bytes it needs. */
export interface RequestBytes {
  readable: Uint8Array;
  writableLength: number;
}

export function attachReq(domain: number, endpoint: number, flags = 0, reserved = 0): RequestBytes {
  const b = VirtioIommuReqAttach.encode({ type: VIRTIO_IOMMU_T_ATTACH, domain, endpoint, flags, reserved });
  return { readable: b.subarray(0, VirtioIommuReqAttach.offsetof('status')), writableLength: 4 };
}

export function detachReq(domain: number, endpoint: number, reserved = 0n): RequestBytes {
  const b = VirtioIommuReqDetach.encode({ type: VIRTIO_IOMMU_T_DETACH, domain, endpoint, reserved });
  return { readable: b.subarray(0, VirtioIommuReqDetach.offsetof('status')), writableLength: 4 };
}

/** MAP of the inclusive range [virtStart; virtEnd]. */
export function mapReq(domain: number, virtStart: bigint, virtEnd: bigint, physStart: bigint, flags: number = READ | WRITE): RequestBytes {
  const b = VirtioIommuReqMap.encode({ type: VIRTIO_IOMMU_T_MAP, domain, virt_start: virtStart, virt_end: virtEnd, phys_start: physStart, flags });
  return { readable: b.subarray(0, VirtioIommuReqMap.offsetof('status')), writableLength: 4 };
}

/** UNMAP of the inclusive range [virtStart; virtEnd]. */
export function unmapReq(domain: number, virtStart: bigint, virtEnd: bigint, reserved = 0): RequestBytes {
  const b = VirtioIommuReqUnmap.encode({ type: VIRTIO_IOMMU_T_UNMAP, domain, virt_start: virtStart, virt_end: virtEnd, reserved });
  return { readable: b.subarray(0, VirtioIommuReqUnmap.offsetof('status')), writableLength: 4 };
}

export function probeReq(endpoint: number, probeSize: number): RequestBytes {
  const b = VirtioIommuReqProbe.encode({ type: VIRTIO_IOMMU_T_PROBE, endpoint });
  return { readable: b, writableLength: probeSize + 4 };
}

/** What the device returned for one request. */
export interface Reply {
  /** Used length. */
  len: number;
  /** The whole writable part as the device left it. */
  writable: Uint8Array;
  /** writable[len - 4], the tail's status (undefined when len < 4). */
  status: number | undefined;
  /** The tail's reserved bytes (writable[len - 3 .. len - 1]). */
  tailReserved: number[];
}

export interface GuestOptions {
  machine?: MachineName | MachineSpec;
  /** More kernel options (module parameters). */
  kernel?: Omit<KernelOptions, 'machine' | 'devices'>;
  devices?: PciDeviceSpec[];
  endpoints: EndpointSpec[];
  options?: VirtioIommuOptions;
  /** Guest RAM bytes. Default 16 MiB. */
  ramSize?: number;
  /** Page size backing guest RAM in the VMM. Default '4K'. */
  ramPageSize?: PageSize;
  /** Features the driver accepts; default: everything offered. `(offered) => accepted`. */
  accept?: (offered: bigint) => bigint;
  /** Skip DRIVER_OK and queue setup. */
  noStart?: boolean;
  queueSize?: number;
}

/** A kernel, a VMM with guest RAM, the device, and a driver for both queues. */
export class Guest {
  readonly kernel: Kernel;
  readonly vmm: Process;
  readonly ramHva: bigint;
  readonly ramSize: number;
  readonly device: VirtioIommuDevice;
  readonly mem: GuestMemory;
  requestq!: VirtqueueDriver;
  eventq!: VirtqueueDriver;
  /** Guest RAM above the rings, free for test buffers. */
  readonly freeRam: number;

  constructor(opts: GuestOptions) {
    this.kernel = new Kernel({ ...opts.kernel, machine: opts.machine ?? 'x86-vtd', devices: opts.devices ?? [] });
    for (const ep of opts.endpoints) if (ep.kind === 'vfio') this.kernel.bindDriver(ep.bdf, 'vfio-pci');
    this.vmm = this.kernel.spawn({ memlockLimit: 1n << 34n });
    this.ramSize = opts.ramSize ?? 16 << 20;
    this.ramHva = this.vmm.mmap(this.ramSize, { pageSize: opts.ramPageSize ?? '4K' });
    this.device = new VirtioIommuDevice(this.vmm, { guestRam: { hva: this.ramHva, size: BigInt(this.ramSize) }, endpoints: opts.endpoints, options: opts.options ?? {} });
    this.mem = new GuestMemory(this.vmm, this.ramHva, BigInt(this.ramSize));
    this.freeRam = 4 << 20;
    this.negotiate(opts.accept);
    if (opts.noStart !== true) this.start(opts.queueSize ?? 256);
  }

  /** ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck. */
  negotiate(accept?: (offered: bigint) => bigint): boolean {
    const d = this.device;
    d.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    d.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const offered = d.deviceFeatures();
    d.setDriverFeatures(accept === undefined ? offered : accept(offered));
    d.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    return (d.getStatus() & VIRTIO_CONFIG_S_FEATURES_OK) !== 0;
  }

  /** Lays out both queues at 1 MiB and 2 MiB, hands them to the device, sets DRIVER_OK. */
  start(queueSize = 256): void {
    const d = this.device;
    const features = d.driverFeatures() & d.deviceFeatures();
    const ring = { indirect: (features & bit(VIRTIO_F_INDIRECT_DESC)) !== 0n, eventIdx: (features & bit(VIRTIO_F_EVENT_IDX)) !== 0n };
    this.requestq = new VirtqueueDriver(this.mem, 1 << 20, queueSize, ring, { dataBytes: 256 << 10 });
    this.eventq = new VirtqueueDriver(this.mem, 2 << 20, 64, ring, { dataBytes: 64 << 10 });
    d.setupQueue(0, this.requestq.config);
    d.setupQueue(1, this.eventq.config);
    d.setStatus(d.getStatus() | VIRTIO_CONFIG_S_DRIVER_OK);
  }

  /** Adds a chain to the requestq, kicks, and returns the used entry. */
  sendSegments(segments: Segment[], add: AddOptions = {}): UsedEntry {
    this.requestq.add(segments, add);
    if (this.requestq.kick()) this.device.notify(0);
    const used = this.requestq.reap();
    if (used.length !== 1) throw new Error(`expected one used entry, got ${used.length}`);
    return used[0]!;
  }

  /** Sends one request (readable part, then a writable part of its size) and decodes the reply. */
  send(req: RequestBytes, add: AddOptions = {}): Reply {
    const used = this.sendSegments(
      [
        { bytes: req.readable, writable: false },
        { length: req.writableLength, writable: true },
      ],
      add,
    );
    return replyOf(used);
  }

  /** The status of one request (the reply must be a well-formed 4-byte tail with zero reserved bytes). */
  status(req: RequestBytes, add: AddOptions = {}): number {
    const r = this.send(req, add);
    if (r.len !== req.writableLength || r.status === undefined || r.tailReserved.some((b) => b !== 0)) {
      throw new Error(`malformed reply: used length ${r.len}, tail ${[...r.writable.subarray(r.len - 4, r.len)].join(',')}`);
    }
    return r.status;
  }

  attach(domain: number, endpoint: number, flags = 0): number {
    return this.status(attachReq(domain, endpoint, flags));
  }
  detach(domain: number, endpoint: number): number {
    return this.status(detachReq(domain, endpoint));
  }
  map(domain: number, virtStart: bigint, virtEnd: bigint, phys: bigint, flags: number = READ | WRITE): number {
    return this.status(mapReq(domain, virtStart, virtEnd, phys, flags));
  }
  unmap(domain: number, virtStart: bigint, virtEnd: bigint): number {
    return this.status(unmapReq(domain, virtStart, virtEnd));
  }

  /** Posts `count` eventq buffers of `size` bytes and kicks. */
  postEventBuffers(count: number, size = 24): void {
    for (let i = 0; i < count; i++) this.eventq.add([{ length: size, writable: true }]);
    if (this.eventq.kick()) this.device.notify(1);
  }

  /** Fault records the device wrote into eventq buffers since the last call. */
  reapFaults(): Array<{ len: number; reason: number; flags: number; endpoint: number; address: bigint; reserved: number[]; reserved1: number }> {
    return this.eventq.reap().map((u) => ({
      len: u.len,
      ...(u.len >= 24 ? uapi.VirtioIommuFault.decode(u.writable) : { reason: -1, flags: 0, endpoint: 0, reserved1: 0, address: 0n }),
      reserved: [...u.writable.subarray(1, 4)],
    }));
  }

  /** Reads a config field. */
  configU64(offset: number): bigint {
    return uapi.readU64(this.device.readConfig(offset, 8), 0);
  }
  configU32(offset: number): number {
    return uapi.readU32(this.device.readConfig(offset, 4), 0);
  }
}

export function replyOf(used: UsedEntry): Reply {
  const len = used.len;
  return {
    len,
    writable: used.writable,
    status: len >= 4 ? used.writable[len - 4] : undefined,
    tailReserved: len >= 4 ? [...used.writable.subarray(len - 3, len)] : [],
  };
}
