/**
 * A small world for type1 conformance tests: a kernel with one vfio-pci device alone in IOMMU group 26,
 * a process, and a container holding that group with VFIO_SET_IOMMU done (v1 or v2, or not at all).
 *
 * The closures speak in raw ioctl terms and report outcomes as values, so that tables of cases read as
 * the kernel's answers: `map(...)` gives 'ok' or the errno code, `unmap(...)` gives `{ size }` (bytes the
 * kernel wrote back) or `{ code }`.
 */
import {
  DmaFault,
  Kernel,
  SysError,
  VfioContainer,
  VfioGroup,
  uapi,
  type DmaFaultReason,
  type IoctlArg,
  type KernelOptions,
  type MmapOptions,
  type PciDevice,
  type PciDeviceSpec,
  type Process,
  type SpawnOptions,
} from '../../index';

export const BDF = '0000:06:0d.0';
export const GROUP = 26;
export const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
export const PAGE = 0x1000n;

export type Outcome = 'ok' | uapi.ErrnoCode;
export type UnmapOutcome = { size: bigint } | { code: uapi.ErrnoCode };

export interface Type1WorldOptions extends Omit<KernelOptions, 'devices'> {
  /** Which type1 flavour SET_IOMMU selects; 'none' leaves the container without an IOMMU. Default 'v2'. */
  type?: 'v1' | 'v2' | 'none';
  /** RLIMIT_MEMLOCK and capabilities of the process. Default: a 1 TiB limit, no capability. */
  spawn?: SpawnOptions;
  /** More devices besides the one in group 26 (not in the container). */
  extraDevices?: PciDeviceSpec[];
}

/** What a test needs to observe for "a failed ioctl leaves no trace". */
export interface Type1State {
  pinnedPages: number;
  lockedVm: number;
  dmaAvail: number | undefined;
}

export interface Type1World {
  kernel: Kernel;
  proc: Process;
  device: PciDevice;
  /** The userspace helper over the container fd. */
  vfio: VfioContainer;
  group: VfioGroup;
  /** The container fd. */
  container: number;
  /** VFIO_IOMMU_MAP_DMA with argsz 32. */
  map(iova: bigint, size: bigint, vaddr: bigint, flags?: number): Outcome;
  /** VFIO_IOMMU_MAP_DMA with the struct bytes given as they are. */
  mapRaw(bytes: Uint8Array): Outcome;
  /** VFIO_IOMMU_UNMAP_DMA with argsz 24. */
  unmap(iova: bigint, size: bigint, flags?: number): UnmapOutcome;
  /** VFIO_IOMMU_UNMAP_DMA with the struct bytes given as they are; `size` is read back from them. */
  unmapRaw(bytes: Uint8Array): UnmapOutcome;
  /** Any ioctl on the container: 'ok' (result ignored) or the errno code. */
  ioctl(request: number, arg?: IoctlArg): Outcome;
  /** Anonymous read-write memory, or what `options` asks for. */
  mmap(bytes: bigint | number, options?: MmapOptions): bigint;
  /** Pinned pages, the process's locked_vm and DMA_AVAIL, for all-or-nothing checks. */
  state(): Type1State;
}

function outcome(run: () => unknown): Outcome {
  try {
    run();
    return 'ok';
  } catch (err) {
    if (err instanceof SysError) return err.code;
    throw err;
  }
}

/** Builds the world; see the file header. */
export function type1World(options: Type1WorldOptions = {}): Type1World {
  const { type = 'v2', spawn, extraDevices = [], ...kernelOptions } = options;
  const kernel = new Kernel({ ...kernelOptions, devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }, ...extraDevices] });
  const proc = kernel.spawn({ memlockLimit: 1n << 40n, ...spawn });
  const vfio = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, GROUP);
  group.setContainer(vfio);
  if (type !== 'none') vfio.setIommu(type === 'v1' ? uapi.VFIO_TYPE1_IOMMU : uapi.VFIO_TYPE1v2_IOMMU);
  const container = vfio.fd;

  const unmapRaw = (bytes: Uint8Array): UnmapOutcome => {
    try {
      proc.ioctl(container, uapi.VFIO_IOMMU_UNMAP_DMA, bytes);
    } catch (err) {
      if (err instanceof SysError) return { code: err.code };
      throw err;
    }
    return { size: uapi.VfioIommuType1DmaUnmap.read(bytes, 'size') };
  };

  const world: Type1World = {
    kernel,
    proc,
    device: kernel.device(BDF),
    vfio,
    group,
    container,
    map: (iova, size, vaddr, flags = RW) =>
      world.mapRaw(uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags, vaddr, iova, size })),
    mapRaw: (bytes) => outcome(() => proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, bytes)),
    unmap: (iova, size, flags = 0) => unmapRaw(uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags, iova, size })),
    unmapRaw,
    ioctl: (request, arg) => outcome(() => proc.ioctl(container, request, arg)),
    mmap: (bytes, mmapOptions) => proc.mmap(bytes, mmapOptions),
    state: () => ({
      pinnedPages: kernel.phys.stats().pinnedPages,
      lockedVm: proc.mm.lockedVm,
      dmaAvail: type === 'none' ? undefined : vfio.iommuInfo().dmaAvail,
    }),
  };
  return world;
}

/** Whether a device read of `length` bytes at `iova` is translated (true) or faults (the reason). */
export function dmaReadOutcome(device: PciDevice, iova: bigint, length = 1): true | DmaFaultReason {
  try {
    device.dmaRead(iova, length);
    return true;
  } catch (err) {
    if (err instanceof DmaFault) return err.reason;
    throw err;
  }
}
