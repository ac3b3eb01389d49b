/**
 * IntervalFreeList: free space as sorted, disjoint, non-touching `[start, end)` intervals of plain
 * numbers (units are the caller's: bytes, granules), coalesced with both neighbours on free. Shared by
 * the guest's IOVA allocator (iova-allocator.ts, top-down) and the virtqueue driver's buffer area
 * (virtqueue-driver.ts, first-fit from the bottom).
 *
 * - `free` finds its place by binary search; `allocLowest` / `allocHighest` scan for the first interval
 *   large enough from their end (first fit has no better index without an augmented tree).
 * - Storage is one flat array `[start0, end0, start1, end1, …]`: no object per interval.
 */
export class IntervalFreeList {
  /** [start0, end0, start1, end1, …], ascending, disjoint and non-touching. */
  private readonly _v: number[] = [];
  private _total = 0;

  /** Free units in all intervals. */
  get totalFree(): number {
    return this._total;
  }

  /** The free intervals, ascending (a copy, for tests and debugging). */
  intervals(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this._v.length; i += 2) out.push([this._v[i]!, this._v[i + 1]!]);
    return out;
  }

  /**
   * Takes `n` units from the lowest interval that holds them, at its start.
   * @returns the first unit, or −1 when no interval is large enough
   */
  allocLowest(n: number): number {
    const v = this._v;
    for (let i = 0; i < v.length; i += 2) {
      const start = v[i]!;
      const end = v[i + 1]!;
      if (end - start < n) continue;
      if (end - start === n) v.splice(i, 2);
      else v[i] = start + n;
      this._total -= n;
      return start;
    }
    return -1;
  }

  /**
   * Takes `n` units from the highest interval that holds them, at its end.
   * @returns the first unit, or −1 when no interval is large enough
   */
  allocHighest(n: number): number {
    const v = this._v;
    for (let i = v.length - 2; i >= 0; i -= 2) {
      const start = v[i]!;
      const end = v[i + 1]!;
      if (end - start < n) continue;
      const at = end - n;
      if (at === start) v.splice(i, 2);
      else v[i + 1] = at;
      this._total -= n;
      return at;
    }
    return -1;
  }

  /**
   * Gives `[start, end)` back (or adds it at construction), merging it with the intervals it touches.
   * @throws RangeError for an empty or reversed range, or one overlapping free space (a double free)
   */
  free(start: number, end: number): void {
    if (!(end > start)) throw new RangeError(`free of an empty range [${start}, ${end})`);
    const v = this._v;
    // The first interval whose start is ≥ `start` (binary search over interval indices).
    let lo = 0;
    let hi = v.length >> 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v[mid << 1]! < start) lo = mid + 1;
      else hi = mid;
    }
    const i = lo << 1;
    const prevEnd = i > 0 ? v[i - 1]! : -Infinity;
    const nextStart = i < v.length ? v[i]! : Infinity;
    if (prevEnd > start || nextStart < end) throw new RangeError(`[${start}, ${end}) overlaps free space`);
    const joinsPrev = prevEnd === start;
    const joinsNext = nextStart === end;
    if (joinsPrev && joinsNext) {
      v[i - 1] = v[i + 1]!;
      v.splice(i, 2);
    } else if (joinsPrev) {
      v[i - 1] = end;
    } else if (joinsNext) {
      v[i] = start;
    } else {
      v.splice(i, 0, start, end);
    }
    this._total += end - start;
  }
}
