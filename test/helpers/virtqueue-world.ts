/**
 * Builds a VMM process with guest RAM, and a split virtqueue laid out in it by the driver helper with the
 * device side attached: the fixture of the virtqueue tests.
 */
import { Kernel, type Process } from '../../index';
import { GuestMemory } from '../../virtio-iommu/guest-memory';
import { SplitVirtqueue, type SplitVirtqueueOptions, type VirtqueueFeatures } from '../../virtio-iommu/split-virtqueue';
import { VirtqueueDriver } from '../../virtio-iommu/virtqueue-driver';

export interface VirtqueueWorldOptions {
  /** Queue size. Default 16. */
  size?: number;
  /** Features of the driver's layout and of the device (default: both off). */
  indirect?: boolean;
  eventIdx?: boolean;
  /** The device's INDIRECT_DESC when it differs from the driver's intent (default: `indirect`). */
  deviceIndirect?: boolean;
  /** Bytes of guest RAM. Default 1 MiB. */
  ram?: bigint;
  /** GPA of the driver's region. Default 0x1000. */
  base?: number;
  /** Bytes of the driver's buffer area. Default 64 KiB. */
  dataBytes?: number;
  /** hva of guest RAM = the mmap'ed address + skew (the mapping is one page larger). Default 0. */
  skew?: number;
  device?: SplitVirtqueueOptions;
  /** Start both sides' free-running indices here (driver startIdx, device resume). Default 0. */
  startIdx?: number;
}

export interface VirtqueueWorld {
  kernel: Kernel;
  proc: Process;
  hva: bigint;
  mem: GuestMemory;
  drv: VirtqueueDriver;
  dev: SplitVirtqueue;
}

export function virtqueueWorld(options: VirtqueueWorldOptions = {}): VirtqueueWorld {
  const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
  const proc = kernel.spawn({ name: 'vmm' });
  const ram = options.ram ?? 1n << 20n;
  const skew = BigInt(options.skew ?? 0);
  const hva = proc.mmap(ram + (skew === 0n ? 0n : 4096n)) + skew;
  const mem = new GuestMemory(proc, hva, ram);
  const features: VirtqueueFeatures = { indirect: options.indirect ?? false, eventIdx: options.eventIdx ?? false };
  const start = options.startIdx ?? 0;
  const drv = new VirtqueueDriver(mem, options.base ?? 0x1000, options.size ?? 16, features, { dataBytes: options.dataBytes, startIdx: start });
  const dev = new SplitVirtqueue(
    mem,
    drv.config,
    { ...features, indirect: options.deviceIndirect ?? features.indirect },
    { resume: { lastAvailIdx: start, usedIdx: start }, ...options.device },
  );
  return { kernel, proc, hva, mem, drv, dev };
}

/** A copy of guest RAM [gpa, gpa + length). */
export function snapshot(mem: GuestMemory, gpa: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  mem.read(gpa, out);
  return out;
}

/** The offsets in [0, length) where `a` and `b` differ. */
export function changedOffsets(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}
