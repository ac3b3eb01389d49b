/**
 * The in-kernel IOMMU API as the simulator models it: hardware units that allocate domains, and
 * domains that map IOVA pages to physical frames (include/linux/iommu.h, iommu_domain_ops).
 *
 * Model and conventions:
 * - Addresses inside a domain are 4 KiB page-frame numbers (`iovaPfn`, `pfn`) held in plain numbers: a
 *   frame number of any 64-bit address is below 2^52 and exact in a double. Byte addresses (bigint)
 *   appear only in geometry and reserved regions, which are not on hot paths.
 * - Ranges: `end` is exclusive, `last` is inclusive, everywhere.
 * - `map` is iommu_map: one physically contiguous run, split into the largest page sizes that the
 *   alignment of iova and phys and the remaining length allow (iommu_pgsize()). It is all or nothing.
 * - `unmap` is iommu_unmap + iotlb sync: it removes whole leaf entries; a caller that cuts through a
 *   superpage is a simulator bug (VFIO only ever unmaps whole vfio_dma ranges).
 * - `translate` is what the hardware does on a device access: IOTLB lookup, page walk on a miss.
 * - Windowing (PAMU-like apertures and sub-windows) is an optional capability of a domain, not part of
 *   this interface (DESIGN.md §5).
 */

/** Permission bits of a mapping (include/linux/iommu.h). */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
/** DMA is cache coherent; accepted and ignored by the models (type1 always passes it). */
export const IOMMU_CACHE = 1 << 2;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/** iommu_resv_type. Every type but 'direct-relaxable' is cut out of VFIO's usable IOVA ranges. */
export type ReservedRegionType = 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';

/** A reserved IOVA region reported by the IOMMU driver for a group (iommu_get_group_resv_regions). */
export interface ReservedRegion {
  readonly start: bigint;
  /** Inclusive. */
  readonly last: bigint;
  readonly type: ReservedRegionType;
}

/** iommu_domain_geometry: the IOVA window the domain can translate. */
export interface IommuGeometry {
  readonly apertureStart: bigint;
  /** Inclusive. */
  readonly apertureLast: bigint;
  /** DMA outside the aperture is blocked (always true in the models). */
  readonly forceAperture: boolean;
}

/** What a device access resolves to: a frame number (>= 0) or one of these. */
export const TRANSLATE_NO_MAPPING = -1;
export const TRANSLATE_NO_PERMISSION = -2;
/** The requester is blocked as a whole (a PAMU LIODN disabled after a violation, a disabled domain). */
export const TRANSLATE_BLOCKED = -3;

/**
 * Who issues a device access, as the IOMMU identifies it: the PCI requester ID for page-table IOMMUs,
 * the LIODN for PAMU (devices behind one PCIe controller share the controller's LIODN).
 */
export interface DmaRequester {
  readonly bdf: string;
  /** Logical I/O device number, for IOMMUs that identify requesters by LIODN. */
  readonly liodn: number | undefined;
}

/** Called for each mapped run a walk or an unmap visits, in ascending IOVA order. */
export type MappingVisitor = (iovaPfn: number, pfn: number, pageCount: number, prot: number) => void;

/** A translation context (iommu_domain): the object groups attach to. */
export interface IommuDomain {
  /** The hardware unit (and so the ops) that made this domain; VFIO shares a domain only within one. */
  readonly hardware: IommuHardware;
  /** Unique per hardware unit; tags IOTLB entries. */
  readonly id: number;
  readonly geometry: IommuGeometry;
  /** Bit n set: page size 2^n is supported. */
  readonly pgsizeBitmap: bigint;
  readonly enforceCacheCoherency: boolean;

  /**
   * Maps the physically contiguous run [pfn, pfn + pageCount) at [iovaPfn, iovaPfn + pageCount),
   * choosing the largest page sizes that alignment and length allow. All or nothing.
   * @throws SysError EINVAL (outside the aperture, no permission bit), EEXIST (already mapped),
   *   ENOMEM (table allocation failed)
   */
  map(iovaPfn: number, pfn: number, pageCount: number, prot: number): void;

  /**
   * Optional batch form of `map`: run r is `counts[r]` pages from frame `pfns[r]`, the runs placed one
   * after another from `iovaPfn` — what a pinned batch of scattered pages looks like; `pageCount` is the
   * sum of the counts. The result must be that of `map` on each run in order, all or nothing. Models
   * without it are driven run by run.
   * @throws SysError as `map`
   */
  mapRuns?(iovaPfn: number, pfns: Uint32Array, counts: Uint32Array, length: number, pageCount: number, prot: number): void;

  /**
   * Unmaps every leaf in [iovaPfn, iovaPfn + pageCount), then invalidates the IOTLB for the range
   * (iommu_unmap + iotlb sync). `visit` sees each removed run (the physical pages to unpin).
   * @returns the number of 4 KiB pages that were mapped and are now cleared.
   */
  unmap(iovaPfn: number, pageCount: number, visit?: MappingVisitor): number;

  /** Visits the mapped runs in [iovaPfn, iovaPfn + pageCount) without changing anything. */
  walk(iovaPfn: number, pageCount: number, visit: MappingVisitor): void;

  /** iommu_iova_to_phys at page granularity: the frame number, or TRANSLATE_NO_MAPPING. No IOTLB. */
  iovaToPfn(iovaPfn: number): number;

  /**
   * A device access as the hardware performs it: IOTLB lookup, page walk on a miss. Models whose state
   * is per requester (PAMU's per-LIODN enable, disabled on a violation) use `requester`.
   * @returns the frame number, TRANSLATE_NO_MAPPING, TRANSLATE_NO_PERMISSION or TRANSLATE_BLOCKED.
   */
  translate(iovaPfn: number, access: typeof IOMMU_READ | typeof IOMMU_WRITE, requester?: DmaRequester): number;

  /** Bytes of translation tables this domain holds now. */
  tableBytes(): number;

  /** 4 KiB pages currently mapped. */
  mappedPages(): number;

  /** iommu_domain_free. Mappings still present are dropped (the caller unpinned them). */
  free(): void;
}

/** Static facts and counters of one IOMMU hardware unit. */
export interface IommuHardware {
  /** 'intel-vtd', 'arm-smmuv3', ... */
  readonly name: string;
  readonly pgsizeBitmap: bigint;
  readonly geometry: IommuGeometry;
  /** IOMMU_CAP_CACHE_COHERENCY / enforce_cache_coherency. */
  readonly enforceCacheCoherency: boolean;
  /** Allocates a paging domain. @throws SysError ENOMEM */
  allocDomain(): IommuDomain;
  /** Live domains (for invariant checks). */
  domainCount(): number;
  /** A snapshot of the unit's counters, summed over all domains it ever had. */
  counters(): Readonly<Record<string, number>>;
  /** Zeroes the counters (benchmarks, reports). */
  resetCounters(): void;
}
