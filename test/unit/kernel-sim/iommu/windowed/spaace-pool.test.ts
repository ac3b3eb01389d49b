import { SimBugError } from '../../../../../kernel-sim/errors';
import { SpaacePool } from '../../../../../kernel-sim/iommu/windowed/spaace-pool';

describe('SpaacePool', () => {
  it('hands out contiguous runs first fit from entry 0', () => {
    const pool = new SpaacePool(2048);
    expect([pool.alloc(255), pool.alloc(255), pool.alloc(1)]).toEqual([0, 255, 510]);
    expect(pool.freeEntries()).toBe(2048 - 511);
    expect(pool.largestFreeRun()).toBe(2048 - 511);
  });

  it('fits exactly 8 runs of 255 in 2048 entries and refuses a 9th without changing anything', () => {
    const pool = new SpaacePool(2048);
    const bases = Array.from({ length: 8 }, () => pool.alloc(255));
    expect(bases).toEqual([0, 255, 510, 765, 1020, 1275, 1530, 1785]);
    expect(pool.alloc(255)).toBe(-1);
    expect(pool.freeEntries()).toBe(8);
    expect(pool.alloc(8)).toBe(2040);
    expect(pool.freeEntries()).toBe(0);
  });

  it('refuses a run longer than every free run even when enough entries are free in total', () => {
    const pool = new SpaacePool(10);
    const [a, b, c] = [pool.alloc(3), pool.alloc(3), pool.alloc(3)];
    expect([a, b, c]).toEqual([0, 3, 6]);
    pool.free(b, 3);
    expect([pool.freeEntries(), pool.largestFreeRun()]).toEqual([4, 3]);
    expect(pool.alloc(4)).toBe(-1);
    expect(pool.alloc(3)).toBe(3);
  });

  it('merges a freed run with both neighbours', () => {
    const pool = new SpaacePool(9);
    const runs = [pool.alloc(3), pool.alloc(3), pool.alloc(3)];
    pool.free(runs[0]!, 3);
    pool.free(runs[2]!, 3);
    expect(pool.largestFreeRun()).toBe(3);
    pool.free(runs[1]!, 3);
    expect([pool.freeEntries(), pool.largestFreeRun()]).toEqual([9, 9]);
    expect(pool.alloc(9)).toBe(0);
  });

  it('restores a snapshot, undoing allocations and frees made since', () => {
    const pool = new SpaacePool(16);
    const a = pool.alloc(4);
    const snap = pool.snapshot();
    pool.free(a, 4);
    pool.alloc(16);
    pool.restore(snap);
    expect([pool.freeEntries(), pool.largestFreeRun(), pool.alloc(4)]).toEqual([12, 12, 4]);
  });

  it('treats a double free, a run outside the pool or a bad length as a simulator bug', () => {
    const pool = new SpaacePool(8);
    const a = pool.alloc(4);
    pool.free(a, 4);
    expect(() => pool.free(a, 4)).toThrow(SimBugError);
    expect(() => pool.free(6, 4)).toThrow(SimBugError);
    expect(() => pool.alloc(0)).toThrow(SimBugError);
    expect(() => pool.alloc(1.5)).toThrow(SimBugError);
    expect(pool.freeEntries()).toBe(8);
  });

  it('is always empty when its size is 0', () => {
    const pool = new SpaacePool(0);
    expect([pool.freeEntries(), pool.largestFreeRun(), pool.alloc(1)]).toEqual([0, 0, -1]);
  });
});
