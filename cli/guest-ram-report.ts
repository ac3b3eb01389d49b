/**
 * Maps the same guest RAM under each IOMMU model and reports what it costs: mappings made, hardware
 * entries written and held, table memory, pages pinned, IOVA space lost to power-of-two rounding, MSI
 * windows used, the MAP's errno when it fails, the simulator's wall-clock time, and the modelled time on
 * real hardware (CostModel), side by side.
 *
 * - type1 (x86-vtd): one MAP_DMA of the RAM at IOVA 0; entries are page-table leaves.
 * - type2 (fsl-p4080): the SDK QEMU flow (reference/pamu-windowed.md §3.6): W = the backing page size,
 *   n = pow2ceil(RAM / W + banks) windows (refused above the hardware maximum), GEOMETRY [0, n·W − 1],
 *   WINDOWS n, every MSI bank at RAM + i·W, then one MAP_DMA of the RAM; entries are PAACEs.
 */
import { CostModel, Kernel, SysError, VfioContainer, VfioGroup, uapi, type PageSize } from '../index';

/** One backing to map with. */
export interface Backing {
  label: string;
  pageSize: PageSize;
  /** Bytes of one backing page. */
  pageBytes: bigint;
}

/** What mapping the guest RAM cost under one model and backing. */
export interface GuestRamRow {
  model: 'type1' | 'type2';
  machine: string;
  backing: string;
  ramBytes: bigint;
  mappings: number;
  entriesWritten: number;
  entriesHeld: number;
  tableBytes: number;
  pagesPinned: number;
  /** IOVA space the aperture covers beyond RAM and MSI windows (power-of-two rounding). */
  iovaLostBytes: bigint;
  msiWindows: number;
  /** The errno of the step that failed, or '' when everything worked. */
  failure: string;
  simMs: number;
  modelledMs: number;
}

const cost = new CostModel();

/** Guest RAM below 4 GiB on x86, as QEMU's pc machines lay it out (below_4g_mem_size, 3 GiB). */
const LOW_RAM = 3n << 30n;
const HIGH_RAM_BASE = 4n << 30n;

/**
 * Maps `ramBytes` through a type1v2 container as an x86 VMM does: one MAP_DMA for the RAM below 3 GiB at
 * IOVA = GPA 0, and one for the rest at GPA 4 GiB, leaving the 32-bit hole (and the MSI window in it) free.
 */
export function mapGuestRamType1(machine: 'x86-vtd' | 'arm-smmuv3', ramBytes: bigint, backing: Backing): GuestRamRow {
  const kernel = new Kernel({ machine, devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: ramBytes * 2n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 26);
  group.setContainer(container);
  container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
  const vaddr = proc.mmap(ramBytes, { pageSize: backing.pageSize, populate: true });
  const hw = kernel.iommus[0]!;
  hw.resetCounters();
  const chunks = ramBytes <= LOW_RAM ? [{ gpa: 0n, iova: 0n, size: ramBytes }] : [{ gpa: 0n, iova: 0n, size: LOW_RAM }, { gpa: LOW_RAM, iova: HIGH_RAM_BASE, size: ramBytes - LOW_RAM }];
  const t0 = process.hrtime.bigint();
  let failure = '';
  let mappings = 0;
  try {
    for (const chunk of chunks) {
      container.mapDma({ vaddr: vaddr + chunk.gpa, iova: chunk.iova, size: chunk.size });
      mappings++;
    }
  } catch (err) {
    failure = errnoOf(err);
  }
  const simMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = hw.counters();
  const pagesPinned = kernel.phys.stats().pinnedPages;
  const row: GuestRamRow = {
    model: 'type1',
    machine,
    backing: backing.label,
    ramBytes,
    mappings,
    entriesWritten: c['leafWritten'] ?? 0,
    entriesHeld: (c['leafWritten'] ?? 0) - (c['leafCleared'] ?? 0),
    tableBytes: c['tableBytes'] ?? 0,
    pagesPinned,
    iovaLostBytes: 0n,
    msiWindows: 0,
    failure,
    simMs,
    modelledMs: cost.modelled({ pagesPinned, leafWritten: c['leafWritten'], tablesAllocated: c['tablesAllocated'], ioctls: chunks.length }).totalNs / 1e6,
  };
  proc.exit();
  kernel.shutdown();
  return row;
}

/** The SDK QEMU flow on a windowed machine, then one MAP_DMA of the RAM. */
export function mapGuestRamType2(machine: 'fsl-p4080' | 'fsl-t4240', ramBytes: bigint, backing: Backing, windowBytes: bigint): GuestRamRow {
  const kernel = new Kernel({ machine, devices: [{ bdf: '0000:01:00.0', group: 1, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: ramBytes * 2n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 1);
  group.setContainer(container);
  container.setIommu(uapi.VFIO_TYPE2_IOMMU);
  const hw = kernel.iommus[0]!;
  hw.resetCounters();
  const row: GuestRamRow = {
    model: 'type2',
    machine,
    backing: backing.label,
    ramBytes,
    mappings: 0,
    entriesWritten: 0,
    entriesHeld: 0,
    tableBytes: 0,
    pagesPinned: 0,
    iovaLostBytes: 0n,
    msiWindows: 0,
    failure: '',
    simMs: 0,
    modelledMs: 0,
  };
  const fd = container.fd;
  const t0 = process.hrtime.bigint();
  let ioctls = 0;
  const ioctl = (request: number, arg?: number | Uint8Array): number => {
    ioctls++;
    return proc.ioctl(fd, request, arg);
  };
  try {
    const banks = ioctl(uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT);
    const max = uapi.VfioPamuAttr.encode({ argsz: 32, attribute: uapi.VFIO_ATTR_WINDOWS });
    ioctl(uapi.VFIO_IOMMU_PAMU_GET_ATTR, max);
    const needed = Number(ramBytes / windowBytes) + banks;
    const windows = 2 ** Math.ceil(Math.log2(needed));
    if (windows > uapi.VfioPamuAttr.read(max, 'windows')) throw new FlowRefused('windows > max');
    const aperture = BigInt(windows) * windowBytes;
    row.iovaLostBytes = aperture - ramBytes - BigInt(banks) * windowBytes;
    ioctl(uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: aperture - 1n }));
    ioctl(uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, attribute: uapi.VFIO_ATTR_WINDOWS, windows }));
    for (let i = 0; i < banks; i++) {
      const flags = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
      ioctl(uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags, msi_bank_index: i, iova: ramBytes + BigInt(i) * windowBytes }));
      row.msiWindows++;
    }
    const vaddr = proc.mmap(ramBytes, { pageSize: backing.pageSize, populate: true });
    ioctl(uapi.VFIO_IOMMU_MAP_DMA, uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: 3, vaddr, iova: 0n, size: ramBytes }));
    row.mappings = 1;
  } catch (err) {
    row.failure = errnoOf(err);
  }
  row.simMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = hw.counters();
  row.entriesWritten = (c['primaryProgrammed'] ?? 0) + (c['secondaryProgrammed'] ?? 0);
  row.entriesHeld = (c['primaryHeld'] ?? 0) + (c['secondaryHeld'] ?? 0);
  row.tableBytes = c['tableBytes'] ?? 0;
  row.pagesPinned = kernel.phys.stats().pinnedPages;
  row.modelledMs = cost.modelled({ pagesPinned: row.pagesPinned, windowEntries: row.entriesWritten, ioctls }).totalNs / 1e6;
  proc.exit();
  kernel.shutdown();
  return row;
}

class FlowRefused extends Error {}

function errnoOf(err: unknown): string {
  if (err instanceof SysError) return err.code;
  if (err instanceof FlowRefused) return err.message;
  throw err;
}
