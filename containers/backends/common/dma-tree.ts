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

/** A position in the tree: chunk index and index inside it. */
interface Cursor {
  chunk: number;
  index: number;
}

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

  /** The position of the last range starting at or below `pfn`, or undefined. */
  private _floor(pfn: number): Cursor | undefined {
    if (this._size === 0) return undefined;
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
    return found < 0 ? undefined : { chunk: c, index: found };
  }

  private _at(cursor: Cursor): T {
    return this._chunks[cursor.chunk]![cursor.index]!;
  }

  private _next(cursor: Cursor): Cursor | undefined {
    if (cursor.index + 1 < this._chunks[cursor.chunk]!.length) return { chunk: cursor.chunk, index: cursor.index + 1 };
    return cursor.chunk + 1 < this._chunks.length ? { chunk: cursor.chunk + 1, index: 0 } : undefined;
  }

  /** The range containing page `pfn`, or undefined. */
  find(pfn: number): T | undefined {
    const floor = this._floor(pfn);
    if (floor === undefined) return undefined;
    const item = this._at(floor);
    return pfn < item.iovaPfn + item.pageCount ? item : undefined;
  }

  /** The lowest range that intersects [pfn, pfn + pageCount), or undefined (vfio_find_dma's question). */
  firstOverlap(pfn: number, pageCount: number): T | undefined {
    const end = pfn + pageCount;
    const floor = this._floor(pfn);
    let cursor: Cursor | undefined;
    if (floor === undefined) {
      cursor = this._size === 0 ? undefined : { chunk: 0, index: 0 };
    } else {
      const item = this._at(floor);
      cursor = pfn < item.iovaPfn + item.pageCount ? floor : this._next(floor);
    }
    if (cursor === undefined) return undefined;
    const item = this._at(cursor);
    return item.iovaPfn < end ? item : undefined;
  }

  /** Every range that intersects [pfn, pfn + pageCount), in ascending order. */
  overlapping(pfn: number, pageCount: number): T[] {
    const out: T[] = [];
    const first = this.firstOverlap(pfn, pageCount);
    if (first === undefined) return out;
    const end = pfn + pageCount;
    let cursor: Cursor | undefined = this._floor(first.iovaPfn);
    while (cursor !== undefined) {
      const item = this._at(cursor);
      if (item.iovaPfn >= end) break;
      out.push(item);
      cursor = this._next(cursor);
    }
    return out;
  }

  /** Adds a range that overlaps none. Overlap is a caller bug. */
  insert(item: T): void {
    if (this.firstOverlap(item.iovaPfn, item.pageCount) !== undefined) throw new SimBugError(`dma tree insert overlaps at pfn ${item.iovaPfn}`);
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
    items.splice(lo, 0, item);
    this._size++;
    if (items.length > CHUNK_MAX) this._chunks.splice(c + 1, 0, items.splice(CHUNK_MAX >>> 1));
  }

  /** Removes a range that is in the tree. A missing one is a caller bug. */
  remove(item: T): void {
    const floor = this._floor(item.iovaPfn);
    if (floor === undefined || this._at(floor) !== item) throw new SimBugError(`dma tree remove of absent range at pfn ${item.iovaPfn}`);
    const items = this._chunks[floor.chunk]!;
    items.splice(floor.index, 1);
    this._size--;
    if (items.length === 0) this._chunks.splice(floor.chunk, 1);
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
