/**
 * A type1 container ready for benchmarks, built only through the public API: one vfio-pci device in
 * group 26 on the chosen machine, a VMM process without a memlock limit, SET_IOMMU done, and prebuilt
 * MAP/UNMAP struct bytes so the timed path is the ioctl itself.
 */
import { Kernel, VfioContainer, VfioGroup, uapi, type KernelOptions, type Process } from '../index';

export interface Type1World {
  kernel: Kernel;
  proc: Process;
  container: VfioContainer;
  group: VfioGroup;
  /** MAP_DMA bytes for (vaddr, iova, size), READ|WRITE. */
  mapBytes(vaddr: bigint, iova: bigint, size: bigint): Uint8Array;
  unmapBytes(iova: bigint, size: bigint, flags?: number): Uint8Array;
  /** Counters of the first IOMMU unit plus cumulative pin counts. */
  counters(): Record<string, number>;
}

export function type1World(options: KernelOptions = {}, type = uapi.VFIO_TYPE1v2_IOMMU): Type1World {
  const kernel = new Kernel({ ...options, devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: 1n << 50n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 26);
  group.setContainer(container);
  container.setIommu(type);
  return {
    kernel,
    proc,
    container,
    group,
    mapBytes: (vaddr, iova, size) =>
      uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE, vaddr, iova, size }),
    unmapBytes: (iova, size, flags = 0) => uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags, iova, size }),
    counters: () => {
      const stats = kernel.phys.stats();
      return { ...kernel.iommus[0]!.counters(), pagesPinned: stats.pinnedTotal, pagesUnpinned: stats.unpinnedTotal };
    },
  };
}

/** The difference of two counter snapshots. */
export function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of Object.keys(after)) out[key] = (after[key] ?? 0) - (before[key] ?? 0);
  return out;
}
