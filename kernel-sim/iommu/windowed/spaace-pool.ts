/**
 * The pool of secondary PAACEs (the SPAACT): a fixed array of entries shared by every LIODN, handed out
 * as contiguous runs, as the PAMU driver does with a genalloc pool (reference/pamu-windowed.md §1.2).
 *
 * Model and constraints:
 * - A LIODN with N > 1 sub-windows needs N − 1 contiguous SPAACEs (sub-window 0 lives in its PPAACE; the
 *   PPAACE's `fspi` names the first SPAACE), so the pool can refuse a run while holding enough free
 *   entries in total: fragmentation is part of the model.
 * - Allocation is first fit (genalloc's default `gen_pool_first_fit`); freeing coalesces neighbours.
 * - `snapshot`/`restore` let a caller make a batch of frees and allocations all or nothing.
 *
 * Ranges: a run is [start, start + length); `end` is exclusive.
 */
import { SimBugError } from '../../errors';

/** The pool's free runs at one moment (see `SpaacePool.snapshot`). */
export interface SpaacePoolSnapshot {
  readonly starts: readonly number[];
  readonly lengths: readonly number[];
  readonly free: number;
}

/** A first-fit allocator of contiguous entry runs; see the file header. */
export class SpaacePool {
  /** Free runs sorted by start, disjoint and never adjacent (adjacent runs are merged). */
  private _starts: number[];
  private _lengths: number[];
  private _free: number;

  /** @param size entries in the pool (PAMU: SPAACE_NUMBER_ENTRIES 0x800) */
  constructor(readonly size: number) {
    this._starts = size > 0 ? [0] : [];
    this._lengths = size > 0 ? [size] : [];
    this._free = size;
  }

  /** Entries not allocated now. */
  freeEntries(): number {
    return this._free;
  }

  /** The longest run that one allocation could get now. */
  largestFreeRun(): number {
    let best = 0;
    for (const n of this._lengths) if (n > best) best = n;
    return best;
  }

  /**
   * Takes the first free run of `length` contiguous entries.
   * @returns the run's first entry, or -1 when no free run is long enough (the pool is unchanged).
   * @throws SimBugError when `length` is not a positive integer
   */
  alloc(length: number): number {
    if (!Number.isInteger(length) || length <= 0) throw new SimBugError(`SPAACE alloc of ${length} entries`);
    const starts = this._starts;
    const lengths = this._lengths;
    for (let i = 0; i < starts.length; i++) {
      const n = lengths[i]!;
      if (n < length) continue;
      const start = starts[i]!;
      if (n === length) {
        starts.splice(i, 1);
        lengths.splice(i, 1);
      } else {
        starts[i] = start + length;
        lengths[i] = n - length;
      }
      this._free -= length;
      return start;
    }
    return -1;
  }

  /**
   * Returns the run [start, start + length) to the pool, merging it with free neighbours.
   * @throws SimBugError when the run is outside the pool or overlaps a free run (a double free)
   */
  free(start: number, length: number): void {
    if (!Number.isInteger(start) || !Number.isInteger(length) || length <= 0 || start < 0 || start + length > this.size) {
      throw new SimBugError(`SPAACE free of [${start}, ${start + length}) outside the pool of ${this.size}`);
    }
    const starts = this._starts;
    const lengths = this._lengths;
    // The first free run that starts after `start`.
    let i = 0;
    while (i < starts.length && starts[i]! < start) i++;
    const prevEnd = i > 0 ? starts[i - 1]! + lengths[i - 1]! : -1;
    const next = i < starts.length ? starts[i]! : Infinity;
    if (prevEnd > start || start + length > next) {
      throw new SimBugError(`SPAACE free of [${start}, ${start + length}) overlaps a free run`);
    }
    const joinPrev = prevEnd === start;
    const joinNext = start + length === next;
    if (joinPrev && joinNext) {
      lengths[i - 1] = lengths[i - 1]! + length + lengths[i]!;
      starts.splice(i, 1);
      lengths.splice(i, 1);
    } else if (joinPrev) {
      lengths[i - 1] = lengths[i - 1]! + length;
    } else if (joinNext) {
      starts[i] = start;
      lengths[i] = lengths[i]! + length;
    } else {
      starts.splice(i, 0, start);
      lengths.splice(i, 0, length);
    }
    this._free += length;
  }

  /** The free runs now, for `restore`. */
  snapshot(): SpaacePoolSnapshot {
    return { starts: this._starts.slice(), lengths: this._lengths.slice(), free: this._free };
  }

  /** Puts the pool back as `snapshot` found it (undoes every alloc and free since). */
  restore(snapshot: SpaacePoolSnapshot): void {
    this._starts = snapshot.starts.slice();
    this._lengths = snapshot.lengths.slice();
    this._free = snapshot.free;
  }
}
