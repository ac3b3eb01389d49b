/**
 * An ordered set of non-overlapping IOVA ranges (type1's rb-tree of vfio_dma, `dma_list`), kept as a
 * sorted list of sorted chunks: lookups are two binary searches, inserts and removals move at most one
 * chunk's worth of entries, so the cost stays flat from ten mappings to the 65,535 that
 * dma_entry_limit allows.
 *
 * Ranges are in 4 KiB pages: [iovaPfn, iovaPfn + pageCount). `end` is exclusive, `last` inclusive.
 */
import { SimBugError } from '../../../kernel-sim/errors';

/** What the tree stores. */
export interface DmaRange {
  readonly iovaPfn: number;
  readonly pageCount: number;
}

const CHUNK_MAX = 128;
/** A position is packed into one number, chunk * SLOT + index, so walking allocates nothing; -1 is none. */
const SLOT = 256;

/** Sorted, non-overlapping ranges. */
export class DmaTree<T extends DmaRange> {
  private _chunks: T[][] = [];
  private _size = 0;

  get size(): number {
    return this._size;
  }

  /** The chunk that would hold a range starting at `pfn`: the last whose first start is <= pfn. */
  private _chunkFor(pfn: number): number {
    const chunks = this._chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (chunks[mid]![0]!.iovaPfn <= pfn) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** The position of the last range starting at or below `pfn`, or -1. */
  private _floor(pfn: number): number {
    if (this._size === 0) return -1;
    const c = this._chunkFor(pfn);
    const items = this._chunks[c]!;
    let lo = 0;
    let hi = items.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (items[mid]!.iovaPfn <= pfn) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? -1 : c * SLOT + found;
  }

  private _at(cursor: number): T {
    return this._chunks[Math.floor(cursor / SLOT)]![cursor % SLOT]!;
  }

  private _next(cursor: number): number {
    const chunk = Math.floor(cursor / SLOT);
    const index = cursor % SLOT;
    if (index + 1 < this._chunks[chunk]!.length) return cursor + 1;
    return chunk + 1 < this._chunks.length ? (chunk + 1) * SLOT : -1;
  }

  /** The range containing page `pfn`, or undefined. */
  find(pfn: number): T | undefined {
    const floor = this._floor(pfn);
    if (floor < 0) return undefined;
    const item = this._at(floor);
    return pfn < item.iovaPfn + item.pageCount ? item : undefined;
  }

  /** The position of the lowest range that intersects [pfn, pfn + pageCount), or -1. */
  private _firstOverlapAt(pfn: number, pageCount: number): number {
    if (this._size === 0) return -1;
    const floor = this._floor(pfn);
    let cursor: number;
    if (floor < 0) {
      cursor = 0;
    } else {
      const item = this._at(floor);
      cursor = pfn < item.iovaPfn + item.pageCount ? floor : this._next(floor);
    }
    if (cursor < 0) return -1;
    return this._at(cursor).iovaPfn < pfn + pageCount ? cursor : -1;
  }

  /** The lowest range that intersects [pfn, pfn + pageCount), or undefined (vfio_find_dma's question). */
  firstOverlap(pfn: number, pageCount: number): T | undefined {
    const cursor = this._firstOverlapAt(pfn, pageCount);
    return cursor < 0 ? undefined : this._at(cursor);
  }

  /** Every range that intersects [pfn, pfn + pageCount), in ascending order. */
  overlapping(pfn: number, pageCount: number): T[] {
    const out: T[] = [];
    const end = pfn + pageCount;
    for (let cursor = this._firstOverlapAt(pfn, pageCount); cursor >= 0; cursor = this._next(cursor)) {
      const item = this._at(cursor);
      if (item.iovaPfn >= end) break;
      out.push(item);
    }
    return out;
  }

  /** Adds a range that overlaps none. Overlap is a caller bug. */
  insert(item: T): void {
    if (this._firstOverlapAt(item.iovaPfn, item.pageCount) >= 0) throw new SimBugError(`dma tree insert overlaps at pfn ${item.iovaPfn}`);
    if (this._size === 0) {
      this._chunks.push([item]);
      this._size = 1;
      return;
    }
    const c = this._chunkFor(item.iovaPfn);
    const items = this._chunks[c]!;
    let lo = 0;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (items[mid]!.iovaPfn < item.iovaPfn) lo = mid + 1;
      else hi = mid;
    }
    if (lo === items.length) items.push(item);
    else items.splice(lo, 0, item);
    this._size++;
    if (items.length > CHUNK_MAX) this._chunks.splice(c + 1, 0, items.splice(CHUNK_MAX >>> 1));
  }

  /** Removes a range that is in the tree. A missing one is a caller bug. */
  remove(item: T): void {
    const floor = this._floor(item.iovaPfn);
    if (floor < 0 || this._at(floor) !== item) throw new SimBugError(`dma tree remove of absent range at pfn ${item.iovaPfn}`);
    const chunk = Math.floor(floor / SLOT);
    const items = this._chunks[chunk]!;
    const index = floor % SLOT;
    if (index === items.length - 1) items.pop();
    else items.splice(index, 1);
    this._size--;
    if (items.length === 0) this._chunks.splice(chunk, 1);
  }

  /** Every range, ascending. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const chunk of this._chunks) yield* chunk;
  }

  /** The ranges as an array, ascending. */
  toArray(): T[] {
    return this._chunks.flat();
  }

  clear(): void {
    this._chunks = [];
    this._size = 0;
  }
}
