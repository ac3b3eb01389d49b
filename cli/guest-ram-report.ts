/**
 * Maps the same guest RAM with different backings and reports what each costs: mappings made, leaf
 * entries written by size, page-table memory, pages pinned, locked_vm, the simulator's wall-clock time
 * and the modelled time on real hardware (CostModel), side by side.
 */
import { CostModel, Kernel, VfioContainer, VfioGroup, uapi, type KernelOptions, type PageSize } from '../index';

/** One backing to map with. */
export interface Backing {
  label: string;
  pageSize: PageSize;
}

/** What mapping the guest RAM cost with one backing. */
export interface GuestRamRow {
  machine: string;
  backing: string;
  ramBytes: bigint;
  mappings: number;
  leaf4K: number;
  leaf2M: number;
  leaf1G: number;
  tableBytes: number;
  pagesPinned: number;
  lockedVmBytes: bigint;
  simMs: number;
  modelledMs: number;
}

/** Maps `ramBytes` of guest RAM at IOVA 0 through a type1v2 container with one MAP_DMA. */
export function mapGuestRamType1(machine: KernelOptions['machine'], ramBytes: bigint, backing: Backing): GuestRamRow {
  const kernel = new Kernel({ machine, devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: ramBytes * 2n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 26);
  group.setContainer(container);
  container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
  const vaddr = proc.mmap(ramBytes, { pageSize: backing.pageSize, populate: true });
  const hw = kernel.iommus[0]!;
  hw.resetCounters();
  const pinnedBefore = kernel.phys.stats().pinnedTotal;
  const t0 = process.hrtime.bigint();
  container.mapDma({ vaddr, iova: 0n, size: ramBytes });
  const simMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = hw.counters();
  const pagesPinned = kernel.phys.stats().pinnedTotal - pinnedBefore;
  const modelled = new CostModel().modelled({
    pagesPinned,
    leafWritten: c['leafWritten'],
    tablesAllocated: c['tablesAllocated'],
    ioctls: 1,
  });
  const row: GuestRamRow = {
    machine: kernel.machine.name,
    backing: backing.label,
    ramBytes,
    mappings: 1,
    leaf4K: c['leafWritten4K'] ?? 0,
    leaf2M: c['leafWritten2M'] ?? 0,
    leaf1G: c['leafWritten1G'] ?? 0,
    tableBytes: c['tableBytes'] ?? 0,
    pagesPinned,
    lockedVmBytes: BigInt(proc.mm.lockedVm) * 4096n,
    simMs,
    modelledMs: modelled.totalNs / 1e6,
  };
  proc.exit();
  kernel.shutdown();
  return row;
}
