/**
 * EndpointMapper: how one endpoint behind the virtio-iommu reaches the thing that really translates its
 * DMA — a VFIO container of the VMM (an assigned device) or the device's own table (an emulated device).
 * It is crosvm's `MemoryMapper` / cloud-hypervisor's `ExternalDmaMapping` with typed errors
 * (reference/aesthetics.md §9.3):
 *
 * - Expected refusals are values: `'overlap'` (VFIO's EEXIST; the device answers S_INVAL) and
 *   `'would-split'` (type1 v2's bisect EINVAL; the device answers S_RANGE). Real failures throw
 *   `SysError`, which the device turns into a status through the one table of status.ts.
 * - The device validates every request against the mapper's limits (`pageSizeMask`, `inputRange`,
 *   `reservedRegions`) BEFORE calling `map`, so a mapper is only asked for what it can hold; a mapper
 *   still checks what only it can know (a GPA outside guest RAM) and throws.
 * - A mapper holds exactly what the device told it: the mappings of the endpoint's domain, replicated
 *   per endpoint (QEMU: one IOMMU memory region, hence one VFIO container, per endpoint), or the
 *   identity map of guest RAM while the endpoint is in bypass. `unmap` removes exactly one earlier `map`.
 *   A mapper that implements `useDomainMappings` holds no copy: it reads the domain's own mappings.
 *
 * Ranges: `iova`/`gpa` are first bytes, `size` is a byte count (a bigint: a 2^64-byte mapping is legal
 * for an emulated endpoint; or all three exact numbers, see `Addr`). `last` is inclusive, `end` exclusive (DESIGN.md §3).
 */
import type { MappingTree } from './mapping-tree';

/** A RESV_MEM region of one endpoint, as PROBE reports it (reference §2.2, §3.6). `last` is inclusive. */
export interface ReservedRegion {
  readonly start: bigint;
  readonly last: bigint;
  /** RESERVED (0): never map; MSI (1): an MSI doorbell the host translates itself. */
  readonly subtype: 'reserved' | 'msi';
}

/** An inclusive IOVA range `[start; last]`. */
export interface IovaRange {
  readonly start: bigint;
  readonly last: bigint;
}

/**
 * An address or size given to `map` / `unmap`: a bigint, or — the device's fast path for every request
 * below 2^53 — a number. The device passes numbers only when all of a call's values are numbers and
 * exact (`iova + size` and `gpa + size` at most 2^53 − 1), so no BigInt is made per request.
 */
export type Addr = bigint | number;

/** The outcome of `EndpointMapper.map` when it did not throw. */
export type MapOutcome = 'ok' | 'overlap';
/** The outcome of `EndpointMapper.unmap` when it did not throw. */
export type UnmapOutcome = 'ok' | 'would-split';

/** The two kinds of endpoint a virtio-iommu device manages. */
export type EndpointKind = 'vfio' | 'emulated';

/** One endpoint's translation backend. */
export interface EndpointMapper {
  readonly kind: EndpointKind;

  /** Page sizes this endpoint's translation can map; the lowest set bit is its granule. Never 0. */
  pageSizeMask(): bigint;

  /** The IOVAs this endpoint's translation can map (the hull; holes are `reservedRegions`). */
  inputRange(): IovaRange;

  /** Regions PROBE reports for this endpoint, sorted by start and disjoint. */
  reservedRegions(): readonly ReservedRegion[];

  /**
   * Adds one mapping `[iova, iova + size)` → `[gpa, gpa + size)` with virtio MAP flags
   * (VIRTIO_IOMMU_MAP_F_READ | _WRITE | _MMIO).
   * @returns 'overlap' when the backend already maps part of the range (it then changed nothing)
   * @throws SysError with the backend's errno (EFAULT: GPA outside guest RAM; ENOSPC: entry budget;
   *   ENOMEM: memlock; EINVAL: the backend refused the range); nothing was mapped
   */
  map(iova: Addr, gpa: Addr, size: Addr, flags: number): MapOutcome;

  /**
   * Removes the mapping that an earlier `map(iova, …, size, …)` created.
   * @returns 'would-split' when the range bisects a backend mapping (nothing was removed)
   * @throws SysError with the backend's errno
   */
  unmap(iova: Addr, size: Addr): UnmapOutcome;

  /**
   * Enters or leaves bypass: every access is translated by the identity function (spec §Device
   * operations, "bypass mode"). Only called while the mapper holds no domain mapping.
   * @throws SysError when the identity map cannot be built (nothing was changed, unless undoing the
   *   part already built failed too: that part is then still held, and `clear()` removes it), or when leaving
   *   bypass fails part-way (the ranges already removed are gone; the mapper stays in bypass while any
   *   remains, and the device quarantines the endpoint)
   */
  setBypass(on: boolean): void;

  /** Drops every mapping and leaves bypass; cannot fail. Used by device reset and to quarantine. */
  clear(): void;

  /** Gives the backend's resources back (closes the VMM's VFIO fds). The mapper is dead afterwards. */
  release(): void;

  /**
   * Implemented by a mapper that translates through its domain's own mappings instead of holding a copy:
   * the device's emulated endpoints, as QEMU's `virtio_iommu_translate` reads the domain's tree. The
   * state hands it the mappings of the domain it joins (undefined when it leaves) and never calls its
   * `map` or `unmap`.
   */
  useDomainMappings?(mappings: MappingTree | undefined): void;
}
