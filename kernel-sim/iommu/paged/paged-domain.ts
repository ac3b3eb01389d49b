/**
 * A paging domain of a paged IOMMU unit (iommu_domain with iommu_domain_ops over an io-pgtable): one
 * IoPgtable for the CPU-side map/unmap and the hardware walker, plus the unit's shared IOTLB.
 *
 * Model and constraints:
 * - The aperture is [0, 2^ias - 1] with force_aperture: a map with any page outside is EINVAL, and a device
 *   access outside translates to nothing (the walker faults without reading a descriptor).
 * - `map` is iommu_map: permission check, then the table's greedy largest-page split, all or nothing. It
 *   never touches the IOTLB: non-present descriptors are not cached, so nothing can be stale.
 * - `unmap` is iommu_unmap + iommu_iotlb_sync: clear whole leaves, then one range invalidation for the
 *   unmapped range. An unmap that cleared nothing issues no invalidation (an empty iotlb_gather, which
 *   arm_smmu_iotlb_sync returns early on).
 * - `translate` is the device access: IOTLB lookup, then a walk on a miss; a successful walk fills the
 *   IOTLB with the whole leaf, a fault fills nothing.
 * - After `free` every method is a simulator bug (use after iommu_domain_free).
 *
 * Ranges: `end` is exclusive, `last` is inclusive. Addresses are 4 KiB frame numbers (plain numbers).
 */
import { SimBugError, sysError } from '../../errors';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  TRANSLATE_NO_MAPPING,
  TRANSLATE_NO_PERMISSION,
  type IommuDomain,
  type IommuGeometry,
  type IommuHardware,
  type MappingVisitor,
} from '../iommu-domain';
import { IoPgtable, type IoPgtableStats } from './io-pgtable';
import type { Iotlb } from './iotlb';

/** What a domain receives from the unit that allocates it. */
export interface PagedDomainParams {
  readonly hardware: IommuHardware;
  /** Unique within the unit: the IOTLB tag. A non-negative int32. */
  readonly id: number;
  readonly ias: number;
  readonly oas: number;
  /** The unit's (already restricted) page sizes. */
  readonly pgsizeBitmap: bigint;
  readonly enforceCacheCoherency: boolean;
  readonly iotlb: Iotlb;
  /** The unit's table counters, shared by all its domains. */
  readonly stats: IoPgtableStats;
  /** Called once, by `free`, so the unit can forget the domain. */
  readonly onFree: (domain: PagedDomain) => void;
}

/** A translation context on a paged IOMMU; see the file header. */
export class PagedDomain implements IommuDomain {
  readonly hardware: IommuHardware;
  readonly id: number;
  readonly geometry: IommuGeometry;
  readonly pgsizeBitmap: bigint;
  readonly enforceCacheCoherency: boolean;

  private readonly _pgtable: IoPgtable;
  private readonly _iotlb: Iotlb;
  /** Inclusive last IOVA frame of the aperture. */
  private readonly _apertureLastPfn: number;
  private readonly _onFree: (domain: PagedDomain) => void;
  private _freed = false;

  /** @throws SysError EINVAL when the table configuration is impossible (see IoPgtable). */
  constructor(params: PagedDomainParams) {
    this.hardware = params.hardware;
    this.id = params.id;
    this.geometry = params.hardware.geometry;
    this.enforceCacheCoherency = params.enforceCacheCoherency;
    this._pgtable = new IoPgtable(
      { pgsizeBitmap: params.pgsizeBitmap, ias: params.ias, oas: params.oas },
      params.stats,
    );
    this.pgsizeBitmap = this._pgtable.pgsizeBitmap;
    this._iotlb = params.iotlb;
    this._apertureLastPfn = 2 ** (params.ias - 12) - 1;
    this._onFree = params.onFree;
  }

  /**
   * Maps the physically contiguous run [pfn, pfn + pageCount) at [iovaPfn, iovaPfn + pageCount) with the
   * largest page sizes alignment and length allow. All or nothing; a count of 0 does nothing.
   * @throws SysError EINVAL (a page outside the aperture; prot without IOMMU_READ or IOMMU_WRITE),
   *   EEXIST (already mapped), ERANGE (a frame beyond the unit's output address size)
   * @throws SimBugError after free, or when the arguments are not frame numbers
   */
  /** See IommuDomain.mapRuns: the pinned batch written a leaf table at a time. */
  mapRuns(iovaPfn: number, pfns: Uint32Array, counts: Uint32Array, length: number, pageCount: number, prot: number): void {
    if (this._freed) throw this._useAfterFree();
    if (!(iovaPfn >= 0 && iovaPfn + pageCount - 1 <= this._apertureLastPfn)) {
      throw sysError('EINVAL', 'iova range outside the domain aperture');
    }
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) {
      throw sysError('EINVAL', 'mapping needs IOMMU_READ or IOMMU_WRITE');
    }
    this._pgtable.mapRuns(iovaPfn, pfns, counts, length, pageCount, prot);
  }

  map(iovaPfn: number, pfn: number, pageCount: number, prot: number): void {
    if (this._freed) throw this._useAfterFree();
    // force_aperture: every page of the run must be translatable (iommu_domain_geometry).
    if (!(iovaPfn >= 0 && iovaPfn + pageCount - 1 <= this._apertureLastPfn)) {
      throw sysError('EINVAL', 'iova range outside the domain aperture');
    }
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) {
      throw sysError('EINVAL', 'mapping needs IOMMU_READ or IOMMU_WRITE');
    }
    this._pgtable.map(iovaPfn, pfn, pageCount, prot);
  }

  /**
   * Clears every leaf that starts in [iovaPfn, iovaPfn + pageCount), frees the tables this empties, then
   * invalidates the IOTLB for the range (one invalidation, only when something was cleared). `visit` sees
   * the removed runs in ascending order, adjacent leaves contiguous in IOVA and phys with the same prot
   * merged. It must not call back into this domain.
   * @returns the 4 KiB pages cleared.
   * @throws SimBugError after free, or when the range cuts a superpage
   */
  unmap(iovaPfn: number, pageCount: number, visit?: MappingVisitor): number {
    if (this._freed) throw this._useAfterFree();
    const cleared = this._pgtable.unmap(iovaPfn, pageCount, visit);
    if (cleared > 0) this._iotlb.invalidateRange(this.id, iovaPfn, pageCount);
    return cleared;
  }

  /**
   * Visits the mapped runs in [iovaPfn, iovaPfn + pageCount), merged as in `unmap`; a superpage the range
   * cuts is visited for its part inside. Changes nothing, counts nothing.
   * @throws SimBugError after free
   */
  walk(iovaPfn: number, pageCount: number, visit: MappingVisitor): void {
    if (this._freed) throw this._useAfterFree();
    this._pgtable.walk(iovaPfn, pageCount, visit);
  }

  /**
   * iommu_iova_to_phys at page granularity: a software walk, no IOTLB and no counters.
   * @returns the frame (for a superpage: its base frame + offset), or TRANSLATE_NO_MAPPING.
   * @throws SimBugError after free
   */
  iovaToPfn(iovaPfn: number): number {
    if (this._freed) throw this._useAfterFree();
    return this._pgtable.iovaToPfn(iovaPfn);
  }

  /**
   * A device access: IOTLB lookup (counted), a hardware walk on a miss (counted), an IOTLB fill with the
   * leaf when the walk succeeds and grants `access`.
   * @returns the frame, TRANSLATE_NO_MAPPING or TRANSLATE_NO_PERMISSION.
   * @throws SimBugError after free, or when `access` is not IOMMU_READ or IOMMU_WRITE
   */
  translate(iovaPfn: number, access: typeof IOMMU_READ | typeof IOMMU_WRITE): number {
    if (this._freed) throw this._useAfterFree();
    if (access !== IOMMU_READ && access !== IOMMU_WRITE) {
      throw new SimBugError(`translate: access ${access} is neither IOMMU_READ nor IOMMU_WRITE`);
    }
    // force_aperture: outside the aperture the access is blocked before any lookup.
    if (!(iovaPfn >= 0 && iovaPfn <= this._apertureLastPfn)) return TRANSLATE_NO_MAPPING;
    const iotlb = this._iotlb;
    const slot = iotlb.lookup(this.id, iovaPfn);
    if (slot >= 0) {
      return (iotlb.slotProt(slot) & access) !== 0 ? iotlb.slotPfn(slot, iovaPfn) : TRANSLATE_NO_PERMISSION;
    }
    const pgtable = this._pgtable;
    const prot = pgtable.hardwareWalk(iovaPfn);
    if (prot === 0) return TRANSLATE_NO_MAPPING;
    if ((prot & access) === 0) return TRANSLATE_NO_PERMISSION;
    const pfn = pgtable.walkLeafPfn;
    iotlb.fill(this.id, pgtable.walkLeafLevel, iovaPfn, pfn, prot);
    return pfn;
  }

  /**
   * Bytes of tables held now: 4096 per 512-entry table, the hardware's size (not JS heap).
   * @throws SimBugError after free
   */
  tableBytes(): number {
    if (this._freed) throw this._useAfterFree();
    return this._pgtable.tableBytes();
  }

  /**
   * Tables held now, the root included.
   * @throws SimBugError after free
   */
  tableCount(): number {
    if (this._freed) throw this._useAfterFree();
    return this._pgtable.tableCount();
  }

  /**
   * 4 KiB pages currently mapped.
   * @throws SimBugError after free
   */
  mappedPages(): number {
    if (this._freed) throw this._useAfterFree();
    return this._pgtable.mappedPages();
  }

  /** Whether `free` ran. */
  isFreed(): boolean {
    return this._freed;
  }

  /**
   * iommu_domain_free: flushes the domain's IOTLB entries (one invalidation) and releases every table,
   * mappings included (the caller already unpinned them).
   * @throws SimBugError on a second free
   */
  free(): void {
    if (this._freed) throw this._useAfterFree();
    this._iotlb.invalidateDomain(this.id);
    this._pgtable.free();
    this._freed = true;
    this._onFree(this);
  }

  private _useAfterFree(): SimBugError {
    return new SimBugError(`${this.hardware.name} domain ${this.id} used after free`);
  }
}
