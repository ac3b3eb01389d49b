/**
 * A multi-level radix I/O page table with a 4 KiB granule, the format behind VT-d second-level tables and
 * Arm SMMU LPAE stage 1/2 tables (include/linux/io-pgtable.h, drivers/iommu/io-pgtable-arm.c). It is a
 * pure data structure: it writes and clears descriptors and counts what it does; TLB maintenance belongs
 * to the IOMMU that uses it (paged-domain.ts), as io-pgtable leaves it to the driver's flush ops.
 *
 * Model and constraints:
 * - Each table holds 512 descriptors and resolves 9 bits of IOVA (ARM_LPAE_BITS_PER_LEVEL, VT-d
 *   LEVEL_STRIDE). Level 0 tables hold 4 KiB pages; a level-L descriptor spans 512^L pages. The number of
 *   levels follows the input address size: ceil((ias - 12) / 9), so ias 39 → 3, 48 → 4, 57 → 5 levels
 *   (ARM_LPAE_START_LVL, VT-d AGAW). The root table always exists.
 * - Leaves (blocks) exist at level 0 (4 KiB), 1 (2 MiB) and 2 (1 GiB) only, and only for the sizes left in
 *   the page-size bitmap. The cfg is in/out as in io-pgtable: sizes the format cannot produce are dropped
 *   (arm_lpae_restrict_pgsizes), and the 4 KiB granule is mandatory.
 * - `map` splits a physically contiguous run into the largest sizes that the alignment of iova and phys,
 *   the remaining length and the bitmap allow: the greedy choice of iommu_pgsize() in
 *   drivers/iommu/iommu.c. It is all or nothing: every target descriptor is checked before any is written,
 *   and a present descriptor (a leaf, or a table where a block should go) is -EEXIST, as in
 *   __arm_lpae_map ("We require an unmap first").
 * - `unmap` clears whole leaves only. A range that cuts a block is a caller bug here (VFIO unmaps whole
 *   vfio_dma ranges), so it raises SimBugError instead of splitting the block the way
 *   arm_lpae_split_blk_unmap once did. A table that an unmap empties is freed and its parent descriptor
 *   cleared, as __arm_lpae_unmap frees a table whose whole range is unmapped; the root is never freed.
 * - Table memory is what the hardware would hold: 4096 bytes per table (512 eight-byte descriptors).
 *
 * Representation (performance is part of the contract: a 64 GiB guest mapped with 4 KiB pages is 16M
 * leaves, and VMMs map page by page):
 * - Each table is a Float64Array(512), so a leaf costs 8 bytes of JS memory plus a small share of its
 *   table's object. Descriptor encoding: 0 = empty; leaf = pfn * 4 + prot with prot in {1, 2, 3}
 *   (IOMMU_READ | IOMMU_WRITE; IOMMU_CACHE and other attributes are not stored); table = -(index + 1).
 *   Every value is an integer below 2^53, so it is exact in a double (pfn < 2^(oas - 12) <= 2^40).
 * - Tables live in a pool indexed by number with a free list; a freed table's array is dropped (or kept in
 *   a small reserve) so unmapped guests give their memory back.
 * - The last level-0 table used is cached by (iova >> 9), so consecutive single-page maps and unmaps do
 *   not walk from the root. No BigInt, Map or allocation on the hot paths.
 *
 * Ranges: `end` is exclusive, `last` is inclusive. Addresses are 4 KiB frame numbers (plain numbers).
 */
import { SimBugError, sysError } from '../../errors';
import { IOMMU_READ, IOMMU_WRITE, type MappingVisitor } from '../iommu-domain';

/** Descriptors per table: 9 bits of IOVA per level with a 4 KiB granule. */
export const PTES_PER_TABLE = 512;
/** Bytes one table occupies in the modelled hardware: 512 eight-byte descriptors, one 4 KiB page. */
export const TABLE_BYTES = 4096;
/** The highest level that may hold a leaf: 1 GiB blocks at level 2 (no 512 GiB blocks with 4 KiB granule). */
export const MAX_LEAF_LEVEL = 2;
/** Page sizes the format can produce: 4 KiB | 2 MiB | 1 GiB (ARM LPAE 4K granule, VT-d SLPS). */
export const IO_PGTABLE_PGSIZES = 0x40201000n;
/** Smallest input address size: one full level of 512 entries. */
export const IO_PGTABLE_MIN_IAS = 21;
/** Largest input address size: five levels (VT-d 5-level paging). */
export const IO_PGTABLE_MAX_IAS = 57;
/** Largest output address size: 52-bit physical addresses (Arm LPA, VT-d HAW limit). */
export const IO_PGTABLE_MAX_OAS = 52;

const IDX_MASK = PTES_PER_TABLE - 1;
const INV_TABLE = 1 / PTES_PER_TABLE;
/** 4 KiB pages spanned by one descriptor at level L: 512^L, for L = 0 .. 5. */
const SPAN = [1, 512, 262144, 134217728, 68719476736, 35184372088832];
/** 1 / SPAN[L]: exact powers of two, so `Math.floor(x * INV_SPAN[L])` is x >> 9L without a division. */
const INV_SPAN = SPAN.map((s) => 1 / s);
/**
 * Freed, empty tables kept for reuse so map/unmap churn does not allocate (the kernel's page allocator
 * keeps freed table pages hot the same way); beyond this they are dropped. 1024 tables (4 MiB) cover the
 * leaf tables of a 2 GiB mapping of 4 KiB pages.
 */
const SPARE_TABLES = 1024;
/** What a freed pool slot holds, so the pool array keeps one element kind. */
const NO_TABLE = new Float64Array(0);
const PROT_MASK = IOMMU_READ | IOMMU_WRITE;

/** The 4 KiB-page span of a leaf at `level` (1, 512 or 262144). */
export function leafSpan(level: number): number {
  return SPAN[level]!;
}

/** The page number of `iovaPfn` at `level`'s size: iovaPfn >> 9 * level, exact for any frame number. */
export function pageAtLevel(iovaPfn: number, level: number): number {
  return Math.floor(iovaPfn * INV_SPAN[level]!);
}

/** What the page-table walker and the CPU-side updates did; shared by all tables of one IOMMU unit. */
export class IoPgtableStats {
  /** Leaf descriptors written, by level (0: 4 KiB, 1: 2 MiB, 2: 1 GiB). */
  readonly leafWritten = new Float64Array(MAX_LEAF_LEVEL + 1);
  /** Leaf descriptors cleared by unmap, by level. Leaves dropped by `free` are not counted here. */
  readonly leafCleared = new Float64Array(MAX_LEAF_LEVEL + 1);
  /** Tables allocated, the root included. */
  tablesAllocated = 0;
  /** Tables freed: emptied by an unmap, or released by `free`. */
  tablesFreed = 0;
  /** Hardware page walks (`hardwareWalk`), i.e. IOTLB misses that reached the tables. */
  walks = 0;
  /** Descriptors read by those walks: one per level visited, down to the leaf or the empty descriptor. */
  walkReads = 0;

  /** Zeroes every counter. */
  reset(): void {
    this.leafWritten.fill(0);
    this.leafCleared.fill(0);
    this.tablesAllocated = 0;
    this.tablesFreed = 0;
    this.walks = 0;
    this.walkReads = 0;
  }
}

/** The configuration a page table is asked for (io_pgtable_cfg); the table exposes what it provides. */
export interface IoPgtableCfg {
  /** Requested page sizes (bit n: 2^n bytes). Default IO_PGTABLE_PGSIZES; unsupported sizes are dropped. */
  readonly pgsizeBitmap?: bigint;
  /** Input (IOVA) address size in bits, IO_PGTABLE_MIN_IAS .. IO_PGTABLE_MAX_IAS. Default 48. */
  readonly ias?: number;
  /** Output (physical) address size in bits, 32 .. IO_PGTABLE_MAX_OAS. Default 52. */
  readonly oas?: number;
}

/** What a page table provides for a cfg: the checked sizes and the restricted bitmap. */
export interface IoPgtableGeometry {
  readonly ias: number;
  readonly oas: number;
  readonly pgsizeBitmap: bigint;
}

/**
 * Checks a cfg and works out what a table would provide: defaults applied, the bitmap restricted to the
 * sizes the format can produce with this ias (arm_lpae_restrict_pgsizes).
 * @throws SysError EINVAL: ias or oas out of range, or no 4 KiB granule in the bitmap (alloc_io_pgtable_ops
 *   would fail)
 */
export function resolveIoPgtableCfg(cfg: IoPgtableCfg): IoPgtableGeometry {
  const ias = cfg.ias ?? 48;
  const oas = cfg.oas ?? IO_PGTABLE_MAX_OAS;
  if (!Number.isInteger(ias) || ias < IO_PGTABLE_MIN_IAS || ias > IO_PGTABLE_MAX_IAS) {
    throw sysError('EINVAL', `ias ${ias} outside ${IO_PGTABLE_MIN_IAS}..${IO_PGTABLE_MAX_IAS}`);
  }
  if (!Number.isInteger(oas) || oas < 32 || oas > IO_PGTABLE_MAX_OAS) {
    throw sysError('EINVAL', `oas ${oas} outside 32..${IO_PGTABLE_MAX_OAS}`);
  }
  const requested = cfg.pgsizeBitmap ?? IO_PGTABLE_PGSIZES;
  if ((requested & 0x1000n) === 0n) throw sysError('EINVAL', 'page-size bitmap lacks the 4 KiB granule');
  let pgsizeBitmap = requested & IO_PGTABLE_PGSIZES;
  // A 1 GiB block is a level-2 descriptor, which a table of one or two levels does not have.
  if (Math.ceil((ias - 12) / 9) < 3) pgsizeBitmap &= ~0x40000000n;
  return { ias, oas, pgsizeBitmap };
}

/**
 * One I/O page table (one io_pgtable_ops instance): the CPU-side map/unmap and the hardware walker.
 *
 * Re-entrancy: a `MappingVisitor` passed to `unmap` or `walk` must not call back into the same table, and
 * must not throw (an unmap interrupted by a throwing visitor leaves its range partly cleared).
 */
export class IoPgtable {
  /** Page sizes this table produces (the cfg's request restricted to the format). */
  readonly pgsizeBitmap: bigint;
  readonly ias: number;
  readonly oas: number;
  /** Number of table levels (ceil((ias - 12) / 9)). */
  readonly levels: number;
  readonly stats: IoPgtableStats;

  /** stats.leafWritten, held here to save a load on the per-page path. */
  private readonly _leafWritten: Float64Array;
  private readonly _top: number;
  /** Exclusive end of the IOVA frame space: 2^(ias - 12). */
  private readonly _iovaPfnEnd: number;
  /** Exclusive end of the physical frame space: 2^(oas - 12). */
  private readonly _pfnEnd: number;
  private readonly _has2M: boolean;
  private readonly _has1G: boolean;

  /** The pool: table index → descriptors. Index 0 is the root. */
  private _tables: Float64Array[] = [];
  /** Non-empty descriptors (leaves and table pointers) per table; a non-root table at 0 is freed. */
  private _live = new Uint16Array(64);
  private readonly _freeIdx: number[] = [];
  private readonly _spare: Float64Array[] = [];
  private _tableCount = 0;
  private _mapped = 0;
  private _freed = false;

  /** Cache of the last level-0 table reached: its key (iova >> 9), pool index and array. */
  private _cacheKey = -1;
  private _cacheT = -1;
  private _cacheTab: Float64Array = NO_TABLE;

  /** Out-values of the last `hardwareWalk` that found a leaf. */
  private _walkLevel = 0;
  private _walkPfn = 0;

  /** Traversal stack for unmap/walk, one slot per level: table, entry index, end index, table base. */
  private readonly _stT: Int32Array;
  private readonly _stI: Int32Array;
  private readonly _stEnd: Int32Array;
  private readonly _stBase: Float64Array;

  /**
   * @param stats where to count; an IOMMU unit shares one among all its domains' tables.
   * @throws SysError EINVAL: ias or oas out of range, or no 4 KiB granule in the bitmap
   *   (alloc_io_pgtable_ops fails).
   */
  constructor(cfg: IoPgtableCfg = {}, stats: IoPgtableStats = new IoPgtableStats()) {
    const { ias, oas, pgsizeBitmap: bitmap } = resolveIoPgtableCfg(cfg);
    this.pgsizeBitmap = bitmap;
    this.ias = ias;
    this.oas = oas;
    this.levels = Math.ceil((ias - 12) / 9);
    this.stats = stats;
    this._leafWritten = stats.leafWritten;
    this._top = this.levels - 1;
    this._iovaPfnEnd = 2 ** (ias - 12);
    this._pfnEnd = 2 ** (oas - 12);
    this._has2M = (bitmap & 0x200000n) !== 0n;
    this._has1G = (bitmap & 0x40000000n) !== 0n;
    this._stT = new Int32Array(this.levels);
    this._stI = new Int32Array(this.levels);
    this._stEnd = new Int32Array(this.levels);
    this._stBase = new Float64Array(this.levels);
    this._allocTable(); // the root, index 0
  }

  /**
   * Maps the physically contiguous run [pfn, pfn + pageCount) at [iovaPfn, iovaPfn + pageCount) with the
   * largest leaves alignment and length allow (iommu_pgsize()). All or nothing. A count of 0 does nothing.
   * @throws SysError EINVAL (prot has neither IOMMU_READ nor IOMMU_WRITE), ERANGE (iova beyond ias or
   *   phys beyond oas, as io-pgtable-arm), EEXIST (a target descriptor is present)
   * @throws SimBugError after free, or when the arguments are not frame numbers
   */
  map(iovaPfn: number, pfn: number, pageCount: number, prot: number): void {
    // The checks stay cheap and the throws live in cold helpers, so this stays small enough for V8 to
    // inline into callers: one call per 4 KiB page is the common VMM pattern.
    if (this._freed || !(Number.isInteger(iovaPfn) && Number.isInteger(pfn) && Number.isInteger(pageCount))
      || iovaPfn < 0 || pfn < 0 || pageCount < 0) {
      this._throwBadCall('map', iovaPfn, pfn, pageCount);
    }
    const p = prot & PROT_MASK;
    if (p === 0 || iovaPfn + pageCount > this._iovaPfnEnd || pfn + pageCount > this._pfnEnd) {
      throwMapRefused(p, iovaPfn + pageCount > this._iovaPfnEnd);
    }
    if (pageCount !== 1) {
      if (pageCount > 1) {
        // Validate before mutating: walk the exact leaf plan once without allocating, then write it.
        this._mapRun(iovaPfn, pfn, pageCount, p, false);
        this._mapRun(iovaPfn, pfn, pageCount, p, true);
      }
      return;
    }
    // One 4 KiB page: the cached leaf table, or one walk that allocates. Tables are allocated only below
    // an empty descriptor, so nothing below can conflict: -2 (a block covers the page) comes first.
    const t = Math.floor(iovaPfn * INV_TABLE) === this._cacheKey ? this._cacheT : this._findTable(iovaPfn, 0, true);
    if (t < 0) throw sysError('EEXIST', 'iova is inside a mapped block');
    const tab = this._tables[t]!;
    const i = iovaPfn & IDX_MASK;
    if (tab[i] !== 0) throw sysError('EEXIST', 'iova is already mapped');
    tab[i] = pfn * 4 + p;
    this._live[t] = this._live[t]! + 1;
    this._leafWritten[0] = this._leafWritten[0]! + 1;
    this._mapped++;
  }

  /**
   * Maps consecutive runs: run r is `counts[r]` pages from frame `pfns[r]`, placed one after another from
   * `iovaPfn`. The result is that of `map` on each run in order (the same leaf sizes), all or nothing; it
   * exists so that a pinned batch of scattered 4 KiB pages is written a leaf table at a time instead of a
   * call per page.
   * @throws SysError EINVAL, ERANGE, EEXIST as `map`
   */
  mapRuns(iovaPfn: number, pfns: Uint32Array, counts: Uint32Array, length: number, pageCount: number, prot: number): void {
    if (this._freed) throw useAfterFree();
    const p = prot & PROT_MASK;
    if (p === 0 || iovaPfn + pageCount > this._iovaPfnEnd) throwMapRefused(p, iovaPfn + pageCount > this._iovaPfnEnd);
    if (pageCount === length) {
      // Scattered 4 KiB pages, the common case: one pass that writes as it checks, undone on a refusal.
      this._singlePagesPass(iovaPfn, pfns, length, p);
      return;
    }
    for (let r = 0; r < length; r++) {
      if (pfns[r]! + counts[r]! > this._pfnEnd) throwMapRefused(p, false);
    }
    // Check every target first, then write: a refusal changes nothing.
    this._runsPass(iovaPfn, pfns, counts, length, p, false);
    this._runsPass(iovaPfn, pfns, counts, length, p, true);
  }

  /**
   * Maps `length` single pages from `iovaPfn` in one pass, a leaf table at a time. A page already mapped
   * (or under a block) makes it clear what this call wrote and throw EEXIST: nothing stays changed.
   */
  private _singlePagesPass(iovaPfn: number, pfns: Uint32Array, length: number, p: number): void {
    let r = 0;
    let iova = iovaPfn;
    while (r < length) {
      const inTable = Math.min(length - r, PTES_PER_TABLE - (iova & IDX_MASK));
      const t = this._findTable(iova, 0, true);
      if (t < 0) {
        this._undoSinglePages(iovaPfn, r);
        throw sysError('EEXIST', 'iova range is inside a mapped block');
      }
      const tab = this._tables[t]!;
      const first = iova & IDX_MASK;
      const pfnEnd = this._pfnEnd;
      let k = 0;
      for (; k < inTable; k++) {
        const pfn = pfns[r + k]!;
        if (tab[first + k] !== 0 || pfn >= pfnEnd) break;
        tab[first + k] = pfn * 4 + p;
      }
      this._live[t] = this._live[t]! + k;
      this._mapped += k;
      this._leafWritten[0] = this._leafWritten[0]! + k;
      if (k < inTable) {
        this._undoSinglePages(iovaPfn, r + k);
        if (tab[first + k] !== 0) throw sysError('EEXIST', 'iova is already mapped');
        throwMapRefused(p, false); // the frame is beyond the output address size (ERANGE)
      }
      r += inTable;
      iova += inTable;
    }
  }

  /** Clears the `count` single pages a failing _singlePagesPass wrote from `iovaPfn`, uncounting them. */
  private _undoSinglePages(iovaPfn: number, count: number): void {
    for (let k = 0; k < count; k++) {
      const t = this._findTable(iovaPfn + k, 0, false);
      this._tables[t]![(iovaPfn + k) & IDX_MASK] = 0;
      this._live[t] = this._live[t]! - 1;
    }
    this._mapped -= count;
    this._leafWritten[0] = this._leafWritten[0]! - count;
  }

  /**
   * One pass of mapRuns. Single-page runs that share a leaf table are handled together: one table lookup,
   * then a plain loop over the entries; longer runs go through the superpage-choosing path of `map`.
   */
  private _runsPass(iovaPfn: number, pfns: Uint32Array, counts: Uint32Array, length: number, p: number, write: boolean): void {
    let iova = iovaPfn;
    let r = 0;
    while (r < length) {
      const n = counts[r]!;
      if (n !== 1) {
        this._mapRun(iova, pfns[r]!, n, p, write);
        iova += n;
        r++;
        continue;
      }
      // A stretch of single-page runs inside one leaf table: [r, end).
      const tableEnd = (Math.floor(iova * INV_TABLE) + 1) * PTES_PER_TABLE;
      let end = r;
      let at = iova;
      while (end < length && counts[end] === 1 && at < tableEnd) {
        end++;
        at++;
      }
      const t = this._findTable(iova, 0, write);
      if (t === -2) throw sysError('EEXIST', 'iova range is inside a mapped block');
      if (t >= 0) {
        const tab = this._tables[t]!;
        let i = iova & IDX_MASK;
        if (write) {
          for (let k = r; k < end; k++, i++) tab[i] = pfns[k]! * 4 + p;
          this._live[t] = this._live[t]! + (end - r);
          this._leafWritten[0] = this._leafWritten[0]! + (end - r);
          this._mapped += end - r;
        } else {
          for (let k = r; k < end; k++, i++) if (tab[i] !== 0) throw sysError('EEXIST', 'iova is already mapped');
        }
      } else if (write) {
        throw new SimBugError('io-pgtable mapRuns: no leaf table after allocation');
      }
      iova = at;
      r = end;
    }
  }

  /**
   * Clears every leaf in [iovaPfn, iovaPfn + pageCount) and frees the tables the range covers whole. `visit` sees
   * the removed runs in ascending IOVA order, adjacent leaves that are contiguous in IOVA and phys with the
   * same prot merged into one call. Does not touch any TLB.
   * @returns the number of 4 KiB pages cleared.
   * @throws SimBugError when the range cuts a leaf (callers unmap whole mappings only).
   */
  unmap(iovaPfn: number, pageCount: number, visit?: MappingVisitor): number {
    if (this._freed) throw useAfterFree();
    checkRange('unmap', iovaPfn, pageCount);
    if (pageCount === 0 || iovaPfn >= this._iovaPfnEnd) return 0;

    if (pageCount === 1) {
      // The page-by-page case: reach the leaf table through the cache (or one walk that fills it).
      const t = this._findTable(iovaPfn, 0, false);
      if (t === -1) return 0;
      if (t >= 0) {
        // One page never covers a whole table, so nothing is freed: clear the one descriptor here.
        const tab = this._tables[t]!;
        const i = iovaPfn & IDX_MASK;
        const e = tab[i]!;
        if (e === 0) return 0;
        tab[i] = 0;
        this._live[t] = this._live[t]! - 1;
        this.stats.leafCleared[0] = this.stats.leafCleared[0]! + 1;
        this._mapped--;
        if (visit !== undefined) {
          const prot = e & 3;
          visit(iovaPfn, (e - prot) * 0.25, 1, prot);
        }
        return 1;
      }
      // A block covers the page: the general path reports the cut.
    }

    const end = Math.min(iovaPfn + pageCount, this._iovaPfnEnd);
    // Check both boundaries before clearing anything, so a caller bug leaves the table intact.
    this._assertNoLeafCut(iovaPfn);
    if (end < this._iovaPfnEnd) this._assertNoLeafCut(end);
    return this._traverse(iovaPfn, end, true, visit);
  }

  /**
   * Visits the mapped runs in [iovaPfn, iovaPfn + pageCount) without changing anything, merged as in
   * `unmap`. A leaf that the range cuts is visited for its part inside the range.
   */
  walk(iovaPfn: number, pageCount: number, visit: MappingVisitor): void {
    if (this._freed) throw useAfterFree();
    checkRange('walk', iovaPfn, pageCount);
    if (pageCount === 0 || iovaPfn >= this._iovaPfnEnd) return;
    this._traverse(iovaPfn, Math.min(iovaPfn + pageCount, this._iovaPfnEnd), false, visit);
  }

  /** iova_to_phys at page granularity: the frame mapped at `iovaPfn` (inside a block: base + offset), or -1. */
  iovaToPfn(iovaPfn: number): number {
    if (this._freed) throw useAfterFree();
    if (!(iovaPfn >= 0 && iovaPfn < this._iovaPfnEnd)) return -1;
    return this._lookup(iovaPfn, false) === 0 ? -1 : this._walkPfn;
  }

  /**
   * The hardware walker, as the IOMMU performs it on an IOTLB miss: reads one descriptor per level from
   * the root down to a leaf or an empty descriptor, and counts the walk and its reads in `stats`.
   * @returns the leaf's prot (IOMMU_READ and/or IOMMU_WRITE), or 0 when nothing is mapped. When non-zero,
   *   `walkLeafLevel` and `walkLeafPfn` describe the leaf.
   */
  hardwareWalk(iovaPfn: number): number {
    if (this._freed) throw useAfterFree();
    this.stats.walks++;
    if (!(iovaPfn >= 0 && iovaPfn < this._iovaPfnEnd)) {
      // Beyond ias the walker faults before reading anything (the address does not fit the tables).
      return 0;
    }
    return this._lookup(iovaPfn, true);
  }

  /** Level of the leaf the last successful `hardwareWalk` found (0: 4 KiB, 1: 2 MiB, 2: 1 GiB). */
  get walkLeafLevel(): number {
    return this._walkLevel;
  }

  /** Frame the last successful `hardwareWalk` translated its page to (leaf base + offset). */
  get walkLeafPfn(): number {
    return this._walkPfn;
  }

  /** Tables this page table holds now, the root included. */
  tableCount(): number {
    return this._tableCount;
  }

  /** Bytes of tables held now, as the hardware would: 4096 per table. */
  tableBytes(): number {
    return this._tableCount * TABLE_BYTES;
  }

  /** 4 KiB pages currently mapped. */
  mappedPages(): number {
    return this._mapped;
  }

  /** Whether `free` ran. */
  isFreed(): boolean {
    return this._freed;
  }

  /**
   * Releases every table, mapped leaves included (free_io_pgtable_ops: the caller already unmapped or no
   * longer cares). Counts the tables in `tablesFreed`; the dropped leaves are not counted as cleared.
   * @throws SimBugError on a second free.
   */
  free(): void {
    if (this._freed) throw useAfterFree();
    this.stats.tablesFreed += this._tableCount;
    this._freed = true;
    this._tables = [];
    this._live = new Uint16Array(0);
    this._freeIdx.length = 0;
    this._spare.length = 0;
    this._tableCount = 0;
    this._mapped = 0;
    this._cacheKey = -1;
    this._cacheT = -1;
    this._cacheTab = NO_TABLE;
  }

  /**
   * One pass of `map` over the greedy leaf plan. `write` false: check that every target descriptor is
   * empty and no block covers the run (throws EEXIST, changes nothing). `write` true: allocate and write.
   */
  /** Whether no leaf is mapped anywhere below table `t`. */
  private _subtreeEmpty(t: number): boolean {
    if (this._live[t] === 0) return true;
    const tab = this._tables[t]!;
    for (let k = 0; k < PTES_PER_TABLE; k++) {
      const ent = tab[k]!;
      if (ent > 0 || (ent < 0 && !this._subtreeEmpty(-ent - 1))) return false;
    }
    return true;
  }

  /** Frees table `t` and every table below it (all of them hold no leaf). */
  private _freeSubtree(t: number): void {
    const tab = this._tables[t]!;
    for (let k = 0; k < PTES_PER_TABLE; k++) {
      const ent = tab[k]!;
      if (ent < 0) {
        this._freeSubtree(-ent - 1);
        tab[k] = 0;
      }
    }
    this._live[t] = 0;
    this._freeTable(t);
  }

  private _mapRun(iovaPfn: number, pfn: number, pageCount: number, prot: number, write: boolean): void {
    let iova = iovaPfn;
    let phys = pfn;
    let left = pageCount;
    while (left > 0) {
      // iommu_pgsize(): the largest size in the bitmap that divides both iova and phys and fits in what
      // remains. ToInt32 keeps the low 32 bits, which is all the alignment test needs.
      const merged = iova | phys;
      let level = 0;
      if (this._has1G && left >= 262144 && (merged & 262143) === 0) level = 2;
      else if (this._has2M && left >= 512 && (merged & 511) === 0) level = 1;
      const span = SPAN[level]!;
      const idx = level === 0 ? iova & IDX_MASK : Math.floor(iova * INV_SPAN[level]!) & IDX_MASK;
      // The same size stays the greedy choice up to the end of this table: a larger size needs the next
      // table boundary, and the alignment of iova and phys only improves in steps of `span`.
      const n = Math.min(Math.floor(left / span), PTES_PER_TABLE - idx);
      if (!write) {
        const t = this._findTable(iova, level, false);
        if (t === -2) throw sysError('EEXIST', 'iova range is inside a mapped block');
        if (t >= 0) {
          const tab = this._tables[t]!;
          for (let k = idx; k < idx + n; k++) {
            const ent = tab[k]!;
            // A table where a block goes is fine while nothing below it is mapped (see the write pass).
            if (ent > 0 || (ent < 0 && !this._subtreeEmpty(-ent - 1))) throw sysError('EEXIST', 'iova range overlaps a mapping');
          }
        }
      } else {
        const t = this._findTable(iova, level, true);
        if (t < 0) throw new SimBugError('io-pgtable map: a block appeared between check and write');
        const tab = this._tables[t]!;
        if (level > 0) {
          // Replace empty lower tables by the block, as arm_lpae_init_pte and Intel's __domain_mapping
          // free old small-page tables to make room for a superpage.
          for (let k = idx; k < idx + n; k++) {
            const ent = tab[k]!;
            if (ent < 0) {
              this._freeSubtree(-ent - 1);
              tab[k] = 0;
              this._live[t] = this._live[t]! - 1;
            }
          }
        }
        let e = phys * 4 + prot;
        const step = span * 4;
        for (let k = idx; k < idx + n; k++, e += step) tab[k] = e;
        this._live[t] = this._live[t]! + n;
        this.stats.leafWritten[level] = this.stats.leafWritten[level]! + n;
        this._mapped += n * span;
      }
      iova += n * span;
      phys += n * span;
      left -= n * span;
    }
  }

  /**
   * The table at `level` whose range holds `iova`: its pool index, -1 when absent (and not allocated), or
   * -2 when a block at a higher level covers `iova`. With `allocate`, missing tables are created.
   */
  private _findTable(iova: number, level: number, allocate: boolean): number {
    if (level === 0 && Math.floor(iova * INV_TABLE) === this._cacheKey) return this._cacheT;
    let t = 0;
    for (let l = this._top; l > level; l--) {
      const tab = this._tables[t]!;
      const i = Math.floor(iova * INV_SPAN[l]!) & IDX_MASK;
      const e = tab[i]!;
      if (e < 0) {
        t = -e - 1;
        continue;
      }
      if (e > 0) return -2;
      if (!allocate) return -1;
      const n = this._allocTable();
      tab[i] = -n - 1;
      this._live[t] = this._live[t]! + 1;
      t = n;
    }
    if (level === 0) {
      this._cacheKey = Math.floor(iova * INV_TABLE);
      this._cacheT = t;
      this._cacheTab = this._tables[t]!;
    }
    return t;
  }

  /**
   * Reads down to the descriptor that resolves `iova`. Returns the leaf's prot (sets _walkLevel and
   * _walkPfn) or 0. With `count`, adds the walk's descriptor reads to stats.walkReads.
   */
  private _lookup(iova: number, count: boolean): number {
    let e: number;
    let level: number;
    if (Math.floor(iova * INV_TABLE) === this._cacheKey) {
      // The cached leaf table exists, so the hardware would read one descriptor per level.
      e = this._cacheTab[iova & IDX_MASK]!;
      level = 0;
    } else {
      let t = 0;
      level = this._top;
      for (;;) {
        e = this._tables[t]![level === 0 ? iova & IDX_MASK : Math.floor(iova * INV_SPAN[level]!) & IDX_MASK]!;
        if (e >= 0) break;
        t = -e - 1;
        level--;
      }
    }
    if (count) this.stats.walkReads += this._top - level + 1;
    if (e === 0) return 0;
    const prot = e & 3;
    const span = SPAN[level]!;
    this._walkLevel = level;
    this._walkPfn = (e - prot) * 0.25 + (level === 0 ? 0 : iova - Math.floor(iova * INV_SPAN[level]!) * span);
    return prot;
  }

  /** SimBugError if a leaf starts before `x` and covers it (an unmap boundary at `x` would cut it). */
  private _assertNoLeafCut(x: number): void {
    if (this._lookup(x, false) === 0 || this._walkLevel === 0) return;
    const span = SPAN[this._walkLevel]!;
    if (x % span !== 0) {
      throw new SimBugError(`io-pgtable unmap boundary at iova pfn ${x} cuts a ${span * 4} KiB block`);
    }
  }

  /**
   * Depth-first, ascending traversal of [s, e) that visits leaves (merged into runs) and, with `clear`,
   * clears them and frees every table the range covers whole. Iterative with a per-level stack: no recursion, no
   * allocation. Returns the pages cleared (0 without `clear`).
   */
  private _traverse(s: number, e: number, clear: boolean, visit: MappingVisitor | undefined): number {
    const tables = this._tables;
    const live = this._live;
    const leafCleared = this.stats.leafCleared;
    const stT = this._stT;
    const stI = this._stI;
    const stEnd = this._stEnd;
    const stBase = this._stBase;
    const top = this._top;

    let level = top;
    let t = 0;
    let tab = tables[0]!;
    let base = 0;
    let span = SPAN[level]!;
    let i = Math.floor(s / span);
    let iEnd = Math.min(PTES_PER_TABLE, Math.ceil(e / span));
    let cleared = 0;
    let runIova = 0;
    let runPfn = 0;
    let runCount = 0;
    let runProt = 0;

    for (;;) {
      if (i < iEnd) {
        const ent = tab[i]!;
        if (ent === 0) {
          i++;
          continue;
        }
        const entBase = base + i * span;
        if (ent < 0) {
          // Descend into the next-level table; resume at i when it is done.
          stT[level] = t;
          stI[level] = i;
          stEnd[level] = iEnd;
          stBase[level] = base;
          t = -ent - 1;
          tab = tables[t]!;
          level--;
          base = entBase;
          span = SPAN[level]!;
          i = s > base ? Math.floor((s - base) / span) : 0;
          iEnd = e < base + PTES_PER_TABLE * span ? Math.ceil((e - base) / span) : PTES_PER_TABLE;
          continue;
        }
        const prot = ent & 3;
        let pfn = (ent - prot) * 0.25;
        let iova = entBase;
        let count = span;
        if (clear) {
          tab[i] = 0;
          live[t] = live[t]! - 1;
          leafCleared[level] = leafCleared[level]! + 1;
          this._mapped -= span;
          cleared += span;
        } else {
          // walk: only the part of a cut block inside [s, e).
          if (iova < s) {
            pfn += s - iova;
            count -= s - iova;
            iova = s;
          }
          if (iova + count > e) count = e - iova;
        }
        if (visit !== undefined) {
          if (runCount > 0 && iova === runIova + runCount && pfn === runPfn + runCount && prot === runProt) {
            runCount += count;
          } else {
            if (runCount > 0) visit(runIova, runPfn, runCount, runProt);
            runIova = iova;
            runPfn = pfn;
            runCount = count;
            runProt = prot;
          }
        }
        i++;
        continue;
      }
      if (level === top) break;
      // This table is done: back to the parent descriptor that points at it.
      const child = t;
      level++;
      t = stT[level]!;
      i = stI[level]!;
      iEnd = stEnd[level]!;
      base = stBase[level]!;
      span = SPAN[level]!;
      tab = tables[t]!;
      const childBase = base + i * span;
      if (clear && s <= childBase && e >= childBase + span) {
        // The range covers the whole table: free it and clear the pointer, as __arm_lpae_unmap does for a
        // table-sized range and Intel's domain_unmap for tables inside [start, last]. A table the range
        // only partly covers stays, even when empty, so map/unmap of single pages does not churn tables.
        tab[i] = 0;
        live[t] = live[t]! - 1;
        this._freeTable(child);
      }
      i++;
    }
    if (runCount > 0) visit!(runIova, runPfn, runCount, runProt);
    return cleared;
  }

  private _throwBadCall(op: string, iovaPfn: number, pfn: number, pageCount: number): never {
    if (this._freed) throw useAfterFree();
    throw new SimBugError(`io-pgtable ${op}(${iovaPfn}, ${pfn}, ${pageCount}): not frame numbers`);
  }

  private _allocTable(): number {
    const tab = this._spare.pop() ?? new Float64Array(PTES_PER_TABLE);
    let n: number;
    if (this._freeIdx.length > 0) {
      n = this._freeIdx.pop()!;
      this._tables[n] = tab;
    } else {
      n = this._tables.length;
      this._tables.push(tab);
      if (n >= this._live.length) {
        const grown = new Uint16Array(this._live.length * 2);
        grown.set(this._live);
        this._live = grown;
      }
    }
    this._tableCount++;
    this.stats.tablesAllocated++;
    return n;
  }

  private _freeTable(n: number): void {
    const tab = this._tables[n]!;
    // Only empty tables are freed, so a reserved array is all zeros when it is reused.
    if (this._spare.length < SPARE_TABLES) this._spare.push(tab);
    this._tables[n] = NO_TABLE;
    this._freeIdx.push(n);
    this._tableCount--;
    this.stats.tablesFreed++;
    if (n === this._cacheT) {
      this._cacheKey = -1;
      this._cacheT = -1;
      this._cacheTab = NO_TABLE;
    }
  }
}

/** The refusal `map` reports for a bad prot or an address beyond ias / oas. */
function throwMapRefused(prot: number, iovaTooHigh: boolean): never {
  if (prot === 0) throw sysError('EINVAL', 'mapping needs IOMMU_READ or IOMMU_WRITE');
  throw sysError('ERANGE', iovaTooHigh ? 'iova beyond the input address size' : 'phys beyond the output address size');
}

function checkRange(op: string, iovaPfn: number, pageCount: number): void {
  if (!(Number.isInteger(iovaPfn) && Number.isInteger(pageCount)) || iovaPfn < 0 || pageCount < 0) {
    throw new SimBugError(`io-pgtable ${op}(${iovaPfn}, ${pageCount}): not a frame range`);
  }
}

function useAfterFree(): SimBugError {
  return new SimBugError('io-pgtable used after free');
}
