/**
 * MappingTree: the mappings of one address space (a domain, or an emulated endpoint's own table), kept
 * as disjoint half-open intervals `[start, end)` sorted by `start` in one array, with O(log n) lookups
 * by binary search.
 *
 * - Ranges: `start` is the first byte, `end` is exclusive and may be 2^64 (a mapping that ends at the
 *   last IOVA; virtio-iommu's inclusive `virt_end` was converted once, in request.ts).
 * - Disjoint intervals sorted by start are also sorted by end, so "the first mapping that ends after
 *   x" is a binary search too; every query below is built on it.
 * - A mapping is exactly what one MAP created (spec §UNMAP: "a mapping as a virtual region created with
 *   a single MAP request"): the tree never merges or splits entries.
 * - Insertion and removal shift the array (memmove); a domain holds at most `maxMappingsPerDomain`
 *   entries and usually a few hundred, which a sorted array serves faster than a balanced tree.
 */
import { SimBugError } from '../kernel-sim';

/** One mapping: `[start, end)` → `[phys, phys + size)` with virtio MAP flags. */
export interface Mapping {
  readonly start: bigint;
  /** Exclusive; at most 2^64. */
  readonly end: bigint;
  /** `end - start`, kept so the hot paths do not recompute it. */
  readonly size: bigint;
  readonly phys: bigint;
  /** VIRTIO_IOMMU_MAP_F_READ | _WRITE | _MMIO. */
  readonly flags: number;
}

/** The largest value carried as a number: below 2^53 every integer is exact in a double. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;
const MAX_EXACT_BIG = BigInt(MAX_EXACT);

/** `v` as a number when exact (≤ 2^53 − 1), else +Infinity: the order against any exact number is kept. */
function keyOf(v: bigint): number {
  return v <= MAX_EXACT_BIG ? Number(v) : Infinity;
}

/**
 * A mapping whose start, end and phys are all exact numbers (below 2^53), as the MAP fast path creates
 * it: no BigInt is made unless a reader asks for the bigint fields (then once, cached).
 */
export class SmallMapping implements Mapping {
  private _start: bigint | undefined;
  private _end: bigint | undefined;
  private _size: bigint | undefined;
  private _phys: bigint | undefined;

  constructor(
    readonly startN: number,
    readonly endN: number,
    readonly physN: number,
    readonly flags: number,
  ) {}

  /** `endN - startN`. */
  get sizeN(): number {
    return this.endN - this.startN;
  }

  get start(): bigint {
    return (this._start ??= BigInt(this.startN));
  }

  get end(): bigint {
    return (this._end ??= BigInt(this.endN));
  }

  get size(): bigint {
    return (this._size ??= BigInt(this.endN - this.startN));
  }

  get phys(): bigint {
    return (this._phys ??= BigInt(this.physN));
  }

  /** Whether these values can be carried as numbers (each below 2^53). */
  static fits(start: number, end: number, phys: number): boolean {
    return start >= 0 && end <= MAX_EXACT && phys >= 0 && phys + (end - start) <= MAX_EXACT;
  }
}

/** Where the mappings fully covered by a range sit in the tree: `count` entries from index `first`. */
export interface CoveredSpan {
  readonly first: number;
  readonly count: number;
}

/** `at`'s error, built out of line (see guest-memory.ts `outsideGuestRam`). */
function noMappingAt(index: number): RangeError {
  return new RangeError(`no mapping at index ${index}`);
}

/** A sorted set of disjoint mappings. */
export class MappingTree {
  private _items: Mapping[] = [];
  /**
   * Each item's start and end as numbers (exact below 2^53, +Infinity above): the searches of the number
   * fast paths (`*N` methods, arguments exact numbers) compare these without BigInt.
   */
  private _starts: number[] = [];
  private _ends: number[] = [];

  /** Number of mappings. */
  get size(): number {
    return this._items.length;
  }

  /** The mapping at sorted position `index`. */
  at(index: number): Mapping {
    const m = this._items[index];
    if (m === undefined) throw noMappingAt(index);
    return m;
  }

  /** Index of the first mapping whose end is above `addr` (it contains `addr` or lies after it). */
  private _firstEndingAfter(addr: bigint): number {
    const items = this._items;
    let lo = 0;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (items[mid]!.end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** `_firstEndingAfter` for an exact number `addr`. */
  private _firstEndingAfterN(addr: number): number {
    const ends = this._ends;
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Where a mapping of `[start, end)` (exact numbers) would go: its sorted position, or −1 when it
   * overlaps one. With `insertSmallAt`, a caller that checks first and inserts later searches once.
   */
  slotForN(start: number, end: number): number {
    const at = this._firstEndingAfterN(start);
    return at < this._starts.length && this._starts[at]! < end ? -1 : at;
  }

  /**
   * Inserts `mapping` at the position `slotForN` gave for it.
   * @throws SimBugError when the position is not where it belongs (the tree changed since)
   */
  insertSmallAt(at: number, mapping: SmallMapping): void {
    const starts = this._starts;
    if (at > starts.length || (at < starts.length && starts[at]! < mapping.endN) || (at > 0 && this._ends[at - 1]! > mapping.startN)) {
      throw new SimBugError(`mapping position ${at} is stale`);
    }
    this._insertAt(at, mapping, mapping.startN, mapping.endN);
  }

  /** `covered` for exact numbers (each ≤ 2^53 − 1). */
  coveredN(start: number, end: number): CoveredSpan | 'would-split' {
    const starts = this._starts;
    const first = this._firstEndingAfterN(start);
    let last = first;
    while (last < starts.length && starts[last]! < end) last++;
    const count = last - first;
    if (count === 0) return { first, count };
    if (starts[first]! < start || this._ends[last - 1]! > end) return 'would-split';
    return { first, count };
  }

  /** `removeExact` for exact numbers (each ≤ 2^53 − 1). */
  removeExactN(start: number, size: number): boolean {
    const at = this._firstEndingAfterN(start);
    if (at >= this._starts.length || this._starts[at] !== start || this._ends[at]! - start !== size) return false;
    this.removeSpan(at, 1);
    return true;
  }

  /** `tryInsert` of a SmallMapping (one number search). */
  private _tryInsertSmall(mapping: SmallMapping): boolean {
    const at = this._firstEndingAfterN(mapping.startN);
    if (at < this._starts.length && this._starts[at]! < mapping.endN) return false;
    this._insertAt(at, mapping, mapping.startN, mapping.endN);
    return true;
  }

  private _insertAt(at: number, mapping: Mapping, startKey: number, endKey: number): void {
    if (at === this._items.length) {
      this._items.push(mapping);
      this._starts.push(startKey);
      this._ends.push(endKey);
    } else {
      this._items.splice(at, 0, mapping);
      this._starts.splice(at, 0, startKey);
      this._ends.splice(at, 0, endKey);
    }
  }

  /** True when some mapping shares a byte with `[start, end)`. */
  overlaps(start: bigint, end: bigint): boolean {
    const m = this._items[this._firstEndingAfter(start)];
    return m !== undefined && m.start < end;
  }

  /** The mapping that contains `addr`, if any. */
  find(addr: bigint): Mapping | undefined {
    const m = this._items[this._firstEndingAfter(addr)];
    return m !== undefined && m.start <= addr ? m : undefined;
  }

  /**
   * The mappings that `[start, end)` covers entirely, or 'would-split' when the range touches a mapping
   * it does not cover (type1 v2 / spec §UNMAP: a mapping is never partially removed). Only the first and
   * the last touched mapping can stick out, so this is two comparisons after the search.
   */
  covered(start: bigint, end: bigint): CoveredSpan | 'would-split' {
    const items = this._items;
    const first = this._firstEndingAfter(start);
    let last = first;
    while (last < items.length && items[last]!.start < end) last++;
    const count = last - first;
    if (count === 0) return { first, count };
    if (items[first]!.start < start || items[last - 1]!.end > end) return 'would-split';
    return { first, count };
  }

  /**
   * Adds a mapping.
   * @throws SimBugError when it overlaps an existing one (callers check `overlaps` first)
   */
  insert(mapping: Mapping): void {
    if (!this.tryInsert(mapping)) {
      throw new SimBugError(`mapping [0x${mapping.start.toString(16)}, 0x${mapping.end.toString(16)}) overlaps one already in the tree`);
    }
  }

  /** Adds a mapping unless it overlaps an existing one; returns whether it was added (one search). */
  tryInsert(mapping: Mapping): boolean {
    if (mapping instanceof SmallMapping) return this._tryInsertSmall(mapping);
    const at = this._firstEndingAfter(mapping.start);
    const next = this._items[at];
    if (next !== undefined && next.start < mapping.end) return false;
    this._insertAt(at, mapping, keyOf(mapping.start), keyOf(mapping.end));
    return true;
  }

  /** Removes `count` mappings from sorted position `first` (a span `covered` returned). */
  removeSpan(first: number, count: number): void {
    if (count === 1 && first === this._items.length - 1) {
      this._items.pop();
      this._starts.pop();
      this._ends.pop();
    } else {
      this._items.splice(first, count);
      this._starts.splice(first, count);
      this._ends.splice(first, count);
    }
  }

  /**
   * Removes the mapping that starts at `start` and is `size` bytes long (what one MAP created); false
   * when there is none. No BigInt arithmetic: the UNMAP fast path of a mapper.
   */
  removeExact(start: bigint, size: bigint): boolean {
    const at = this._firstEndingAfter(start);
    const m = this._items[at];
    if (m === undefined || m.start !== start || m.size !== size) return false;
    this.removeSpan(at, 1);
    return true;
  }

  /** Drops every mapping. */
  clear(): void {
    this._items = [];
    this._starts = [];
    this._ends = [];
  }

  /** Every mapping, in address order (a copy). */
  toArray(): Mapping[] {
    return this._items.slice();
  }

  [Symbol.iterator](): IterableIterator<Mapping> {
    return this._items[Symbol.iterator]();
  }
}
