/**
 * The IOTLB of a paged IOMMU unit: a small cache of leaf translations shared by all the unit's domains and
 * tagged by domain id, like the VT-d IOTLB tagged by domain-id or the SMMU TLB tagged by ASID/VMID.
 *
 * Model and constraints:
 * - An entry caches one leaf: it is tagged by (domain id, leaf level, IOVA page number at the leaf's size),
 *   so one entry covers a whole 2 MiB or 1 GiB block, as real IOTLBs hold superpage entries.
 * - Direct-mapped, a deliberate simplification that keeps every hit and miss predictable: a tag has exactly
 *   one slot, `slotOf(domain, level, page)` = (page + fmix32(4 * domain + level)) mod 2^31 mod entries,
 *   with fmix32 the MurmurHash3 finalizer. Consecutive pages of one size in one domain take consecutive
 *   slots, so a run of up to `entries` pages never conflicts with itself, while each (domain, size) starts
 *   at a scattered offset. A fill replaces whatever its slot held (an eviction).
 *   Lookups probe one slot per leaf size that currently has entries.
 * - Only successful translations are cached: a fault (no mapping, or a permission the leaf lacks) fills
 *   nothing. Map never invalidates (non-present descriptors are not cached), unmap must: the domain calls
 *   `invalidateRange` after clearing leaves (iommu_iotlb_sync), and `invalidateDomain` on free
 *   (flush_iotlb_all).
 * - `entries` 0 disables the cache: lookups and fills do nothing and are not counted; invalidations are
 *   still counted, because the driver still issues the command.
 *
 * Storage is parallel typed arrays, so lookups allocate nothing. IOVA and frame numbers are plain numbers.
 */
import { SimBugError } from '../../errors';
import { leafSpan, MAX_LEAF_LEVEL, pageAtLevel } from './io-pgtable';

/** Default number of entries, within the range of real IOTLBs (QEMU models 256 for SMMUv3, 1024 for VT-d). */
export const IOTLB_DEFAULT_ENTRIES = 64;
/** Upper bound on `entries`, to keep a typo from allocating gigabytes. */
export const IOTLB_MAX_ENTRIES = 1 << 20;

const NO_DOMAIN = -1;

/** A cache of leaf translations tagged by domain; see the file header for the replacement policy. */
export class Iotlb {
  /** Capacity in entries; 0 means disabled. */
  readonly entries: number;
  /** `lookup` calls while enabled. */
  lookups = 0;
  /** Lookups that found their translation. */
  hits = 0;
  /** Lookups that did not (the domain then walks the tables). */
  misses = 0;
  /** Entries inserted by `fill`. */
  fills = 0;
  /** Fills that replaced a valid entry of another tag. */
  evictions = 0;
  /** Invalidation commands: one per `invalidateRange`, `invalidateDomain` or `invalidateAll` call. */
  invalidations = 0;
  /** Valid entries those commands removed. */
  entriesInvalidated = 0;

  /** entries - 1 when entries is a power of two (slot by mask), else -1 (slot by modulo). */
  private readonly _mask: number;
  private readonly _domain: Int32Array;
  private readonly _level: Uint8Array;
  private readonly _page: Float64Array;
  private readonly _pfn: Float64Array;
  private readonly _prot: Uint8Array;
  /** Valid entries per leaf level: lookups skip levels that have none, invalidation too. */
  private readonly _validPerLevel = new Int32Array(MAX_LEAF_LEVEL + 1);
  private _valid = 0;

  /** @throws SimBugError when `entries` is not an integer in 0 .. IOTLB_MAX_ENTRIES. */
  constructor(entries: number = IOTLB_DEFAULT_ENTRIES) {
    if (!Number.isInteger(entries) || entries < 0 || entries > IOTLB_MAX_ENTRIES) {
      throw new SimBugError(`IOTLB size ${entries} is not an integer in 0..${IOTLB_MAX_ENTRIES}`);
    }
    this.entries = entries;
    this._mask = entries > 0 && (entries & (entries - 1)) === 0 ? entries - 1 : -1;
    this._domain = new Int32Array(entries).fill(NO_DOMAIN);
    this._level = new Uint8Array(entries);
    this._page = new Float64Array(entries);
    this._pfn = new Float64Array(entries);
    this._prot = new Uint8Array(entries);
  }

  /** The one slot a tag may occupy. `page` is the IOVA page number at the leaf's size. */
  slotOf(domainId: number, level: number, page: number): number {
    // Kept in int32 arithmetic (& 0x7fffffff, then a mask or an integer modulo): a uint32 operand would
    // make `%` a floating-point remainder, several times slower on the lookup path.
    const h = (page + fmix32(Math.imul(domainId, 4) + level)) & 0x7fffffff;
    return this._mask >= 0 ? h & this._mask : h % this.entries;
  }

  /**
   * Looks up the translation of `iovaPfn` in `domainId`, counting a lookup and a hit or miss.
   * @returns the slot holding it (read it with `slotPfn` and `slotProt`), or -1 on a miss or when disabled.
   */
  lookup(domainId: number, iovaPfn: number): number {
    if (this.entries === 0) return -1;
    this.lookups++;
    for (let level = 0; level <= MAX_LEAF_LEVEL; level++) {
      if (this._validPerLevel[level] === 0) continue;
      const page = level === 0 ? iovaPfn : pageAtLevel(iovaPfn, level);
      const s = this.slotOf(domainId, level, page);
      if (this._domain[s] === domainId && this._level[s] === level && this._page[s] === page) {
        this.hits++;
        return s;
      }
    }
    this.misses++;
    return -1;
  }

  /** The frame that the entry in `slot` translates `iovaPfn` to (the leaf's base frame + offset). */
  slotPfn(slot: number, iovaPfn: number): number {
    const level = this._level[slot]!;
    return level === 0 ? this._pfn[slot]! : this._pfn[slot]! + iovaPfn - this._page[slot]! * leafSpan(level);
  }

  /** The permissions (IOMMU_READ | IOMMU_WRITE) cached in `slot`. */
  slotProt(slot: number): number {
    return this._prot[slot]!;
  }

  /**
   * Caches the leaf at `level` that translates `iovaPfn` to `pfn` with `prot`, replacing its slot's entry.
   * Does nothing when disabled.
   */
  fill(domainId: number, level: number, iovaPfn: number, pfn: number, prot: number): void {
    if (this.entries === 0) return;
    const span = leafSpan(level);
    const page = level === 0 ? iovaPfn : pageAtLevel(iovaPfn, level);
    const s = this.slotOf(domainId, level, page);
    if (this._domain[s] !== NO_DOMAIN) {
      this.evictions++;
      this._drop(s);
    }
    this._domain[s] = domainId;
    this._level[s] = level;
    this._page[s] = page;
    // Stored as the leaf's base frame so any page of a block translates from it.
    this._pfn[s] = level === 0 ? pfn : pfn - (iovaPfn - page * span);
    this._prot[s] = prot;
    this._validPerLevel[level] = this._validPerLevel[level]! + 1;
    this._valid++;
    this.fills++;
  }

  /**
   * Removes every entry of `domainId` whose leaf overlaps [iovaPfn, iovaPfn + pageCount): one
   * invalidation command (iotlb_sync after unmap). Probes the slots of the range's pages when they are
   * fewer than the entries, else scans.
   * @returns the entries removed.
   */
  invalidateRange(domainId: number, iovaPfn: number, pageCount: number): number {
    this.invalidations++;
    if (this._valid === 0 || pageCount <= 0) return 0;
    let removed = 0;
    for (let level = 0; level <= MAX_LEAF_LEVEL; level++) {
      if (this._validPerLevel[level] === 0) continue;
      const first = pageAtLevel(iovaPfn, level);
      const last = pageAtLevel(iovaPfn + pageCount - 1, level);
      if (last - first < this.entries) {
        for (let page = first; page <= last; page++) {
          const s = this.slotOf(domainId, level, page);
          if (this._domain[s] === domainId && this._level[s] === level && this._page[s] === page) {
            this._drop(s);
            removed++;
          }
        }
      } else {
        for (let s = 0; s < this.entries; s++) {
          const page = this._page[s]!;
          if (this._domain[s] === domainId && this._level[s] === level && page >= first && page <= last) {
            this._drop(s);
            removed++;
          }
        }
      }
    }
    this.entriesInvalidated += removed;
    return removed;
  }

  /** Removes every entry of `domainId`: one invalidation command (flush_iotlb_all). @returns entries removed. */
  invalidateDomain(domainId: number): number {
    this.invalidations++;
    let removed = 0;
    if (this._valid === 0) return 0;
    for (let s = 0; s < this.entries; s++) {
      if (this._domain[s] === domainId) {
        this._drop(s);
        removed++;
      }
    }
    this.entriesInvalidated += removed;
    return removed;
  }

  /** Removes every entry: one invalidation command (a global invalidation). @returns entries removed. */
  invalidateAll(): number {
    this.invalidations++;
    const removed = this._valid;
    this._domain.fill(NO_DOMAIN);
    this._validPerLevel.fill(0);
    this._valid = 0;
    this.entriesInvalidated += removed;
    return removed;
  }

  /** Valid entries now. */
  validEntries(): number {
    return this._valid;
  }

  /** Zeroes the counters; the cached entries stay. */
  resetStats(): void {
    this.lookups = 0;
    this.hits = 0;
    this.misses = 0;
    this.fills = 0;
    this.evictions = 0;
    this.invalidations = 0;
    this.entriesInvalidated = 0;
  }

  private _drop(s: number): void {
    const level = this._level[s]!;
    this._validPerLevel[level] = this._validPerLevel[level]! - 1;
    this._valid--;
    this._domain[s] = NO_DOMAIN;
  }
}

/** The MurmurHash3 32-bit finalizer: scatters the (domain, level) offsets of `slotOf`. */
function fmix32(x: number): number {
  let h = x ^ (x >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
