/**
 * The cost model: turns what the hardware models counted into modelled time on real hardware, using
 * per-operation costs taken from published measurements (reference/perf-ecosystem.md). Modelled time
 * is always reported beside the simulator's own wall-clock time, never mixed with it.
 *
 * Defaults, with their provenance ([V] quoted, [D] derived from a quoted figure, [E] estimate):
 * - pinPageNs 12: pinning one 4 KiB page of a hugetlb/THP folio — VFIO maps 16 GiB of hugepages in
 *   0.049–0.051 s (Li Zhe, v6.16) = 4M pages, almost all of it pinning [D].
 * - leafWriteNs 52: one IOPTE written — 4 KiB MAP_DMA costs 64 ns/page in all (Li Zhe, v6.16, 16 GiB in
 *   0.268 s) minus the 12 ns pin [D].
 * - leafClearNs 61: one IOPTE cleared — 4 KiB UNMAP_DMA 73 ns/page (same source) minus the unpin [D].
 * - unpinPageNs 12: as pinning [E].
 * - tableAllocNs 250: allocating and zeroing a 4 KiB table page [E] (clear_page ≈ 80 % of 1 µs per
 *   faulted page in Daniel Jordan's batch-pinning numbers [D], without the fault).
 * - ioctlNs 1000: syscall entry, copy in/out and locking of one VFIO ioctl — iova_stress's 2.66 µs per
 *   MAP+UNMAP pair of one page includes two ioctls plus table allocation [D/E].
 * - iotlbInvalidationNs 1000: a strict invalidate-and-wait — dma_map_benchmark's 1.3 µs unmap [E].
 * - walkNs 250: an IOTLB miss walked without walk-cache hits, 0.1–0.4 µs [E].
 * - windowEntryNs 100: programming one PAMU PAACE (64-byte table entry + sync) [E: no published figure].
 * - vmExitNs 1500: a virtqueue kick trapping to the VMM and the interrupt back [E]; "virtio-iommu operations
 *   in a guest on a linux host require a vmexit, involvement of the VMM, and a VFIO syscall" (D. Stevens),
 *   several µs per synchronous request in all (perf-ecosystem §A.3).
 * - requestDecodeNs 300: the VMM reading and validating one virtio-iommu request [E].
 */

/** Per-operation costs in nanoseconds. */
export interface CostParams {
  pinPageNs: number;
  unpinPageNs: number;
  leafWriteNs: number;
  leafClearNs: number;
  tableAllocNs: number;
  ioctlNs: number;
  iotlbInvalidationNs: number;
  walkNs: number;
  windowEntryNs: number;
  vmExitNs: number;
  requestDecodeNs: number;
}

export const DEFAULT_COSTS: Readonly<CostParams> = {
  pinPageNs: 12,
  unpinPageNs: 12,
  leafWriteNs: 52,
  leafClearNs: 61,
  tableAllocNs: 250,
  ioctlNs: 1000,
  iotlbInvalidationNs: 1000,
  walkNs: 250,
  windowEntryNs: 100,
  vmExitNs: 1500,
  requestDecodeNs: 300,
};

/** The operations a scenario performed, from counters (missing ones count as 0). */
export interface CountedWork {
  pagesPinned?: number;
  pagesUnpinned?: number;
  leafWritten?: number;
  leafCleared?: number;
  tablesAllocated?: number;
  ioctls?: number;
  iotlbInvalidations?: number;
  walks?: number;
  windowEntries?: number;
  /** Virtqueue kicks that trapped to the VMM. */
  kicks?: number;
  /** virtio-iommu requests the VMM decoded. */
  requests?: number;
}

/** Modelled time, total and per component, in nanoseconds. */
export interface ModelledTime {
  totalNs: number;
  parts: Record<keyof CostParams, number>;
}

/** Modelled cost of a scenario on real hardware. */
export class CostModel {
  readonly params: Readonly<CostParams>;

  constructor(overrides: Partial<CostParams> = {}) {
    this.params = { ...DEFAULT_COSTS, ...overrides };
  }

  /** Modelled time of the counted work. */
  modelled(work: CountedWork): ModelledTime {
    const p = this.params;
    const parts: Record<keyof CostParams, number> = {
      pinPageNs: (work.pagesPinned ?? 0) * p.pinPageNs,
      unpinPageNs: (work.pagesUnpinned ?? 0) * p.unpinPageNs,
      leafWriteNs: (work.leafWritten ?? 0) * p.leafWriteNs,
      leafClearNs: (work.leafCleared ?? 0) * p.leafClearNs,
      tableAllocNs: (work.tablesAllocated ?? 0) * p.tableAllocNs,
      ioctlNs: (work.ioctls ?? 0) * p.ioctlNs,
      iotlbInvalidationNs: (work.iotlbInvalidations ?? 0) * p.iotlbInvalidationNs,
      walkNs: (work.walks ?? 0) * p.walkNs,
      windowEntryNs: (work.windowEntries ?? 0) * p.windowEntryNs,
      vmExitNs: (work.kicks ?? 0) * p.vmExitNs,
      requestDecodeNs: (work.requests ?? 0) * p.requestDecodeNs,
    };
    const totalNs = Object.values(parts).reduce((a, b) => a + b, 0);
    return { totalNs, parts };
  }
}
