import { SimBugError } from '../../../../../kernel-sim/errors';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '../../../../../kernel-sim/iommu/iommu-domain';
import { IoPgtable, IoPgtableStats, resolveIoPgtableCfg } from '../../../../../kernel-sim/iommu/paged/io-pgtable';
import { expectSysError } from '../../../../helpers/expect-sys-error';

const RW = IOMMU_READ | IOMMU_WRITE;
/** 4 KiB pages per 2 MiB and per 1 GiB. */
const P2M = 512;
const P1G = 262144;

type Run = [iovaPfn: number, pfn: number, pageCount: number, prot: number];

function walkRuns(pt: IoPgtable, iovaPfn = 0, pageCount = 2 ** (pt.ias - 12)): Run[] {
  const runs: Run[] = [];
  pt.walk(iovaPfn, pageCount, (i, p, n, prot) => runs.push([i, p, n, prot]));
  return runs;
}

function unmapRuns(pt: IoPgtable, iovaPfn: number, pageCount: number): { cleared: number; runs: Run[] } {
  const runs: Run[] = [];
  const cleared = pt.unmap(iovaPfn, pageCount, (i, p, n, prot) => runs.push([i, p, n, prot]));
  return { cleared, runs };
}

/** Everything observable about a table, to prove a failed call changed nothing. */
function snapshot(pt: IoPgtable): unknown {
  const s = pt.stats;
  return {
    tables: pt.tableCount(),
    mapped: pt.mappedPages(),
    written: Array.from(s.leafWritten),
    cleared: Array.from(s.leafCleared),
    allocated: s.tablesAllocated,
    freed: s.tablesFreed,
    runs: walkRuns(pt),
  };
}


describe('IoPgtable configuration', () => {
  it('derives the level count from ias: 39 → 3, 48 → 4, 57 → 5, 21 → 1', () => {
    expect(new IoPgtable({ ias: 39 }).levels).toBe(3);
    expect(new IoPgtable({ ias: 48 }).levels).toBe(4);
    expect(new IoPgtable({ ias: 57 }).levels).toBe(5);
    expect(new IoPgtable({ ias: 21 }).levels).toBe(1);
  });

  it('defaults to ias 48, oas 52 and 4K|2M|1G', () => {
    const pt = new IoPgtable();
    expect([pt.ias, pt.oas, pt.pgsizeBitmap]).toEqual([48, 52, 0x40201000n]);
  });

  it('keeps only the page sizes the format can produce (cfg is in/out)', () => {
    expect(new IoPgtable({ pgsizeBitmap: 0xfffff000n }).pgsizeBitmap).toBe(0x40201000n);
    expect(new IoPgtable({ pgsizeBitmap: 0x40001000n }).pgsizeBitmap).toBe(0x40001000n);
    expect(resolveIoPgtableCfg({ ias: 30 })).toEqual({ ias: 30, oas: 52, pgsizeBitmap: 0x201000n });
    expect(resolveIoPgtableCfg({ ias: 32 })).toEqual({ ias: 32, oas: 52, pgsizeBitmap: 0x40201000n });
  });

  it('refuses a bitmap without the 4 KiB granule and out-of-range ias/oas with EINVAL', () => {
    expectSysError(() => new IoPgtable({ pgsizeBitmap: 0x40200000n }), 'EINVAL');
    expectSysError(() => new IoPgtable({ ias: 20 }), 'EINVAL');
    expectSysError(() => new IoPgtable({ ias: 58 }), 'EINVAL');
    expectSysError(() => new IoPgtable({ oas: 53 }), 'EINVAL');
    expectSysError(() => new IoPgtable({ oas: 31 }), 'EINVAL');
  });

  it('starts with the root table only, counted as allocated', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    expect([pt.tableCount(), pt.tableBytes(), pt.mappedPages(), stats.tablesAllocated]).toEqual([1, 4096, 0, 1]);
  });
});

// The io-pgtable selftest sequence (arm_lpae_run_tests) over a matrix of page-size sets × ias.
describe.each([
  [0x1000n, 'with 4K only'],
  [0x201000n, 'with 4K|2M'],
  [0x40201000n, 'with 4K|2M|1G'],
])('io-pgtable selftest sequence %#: bitmap %s', (bitmap) => {
  const sizes: [level: number, pages: number][] = [
    [0, 1],
    [1, P2M],
    [2, P1G],
  ].filter(([level]) => (bitmap & (1n << BigInt(12 + 9 * level!))) !== 0n) as [number, number][];

  it.each([32, 36, 39, 40, 42, 44, 48, 57])('ias %i: empty, map each granule, overlap, unmap, remap, full unmap', (ias) => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({ pgsizeBitmap: bitmap, ias }, stats);
    const last = 2 ** (ias - 12) - 1;

    // 1. An empty table translates nothing.
    expect(pt.iovaToPfn(0)).toBe(-1);
    expect(pt.iovaToPfn(P1G + 1)).toBe(-1);
    expect(pt.iovaToPfn(last)).toBe(-1);
    expect(walkRuns(pt)).toEqual([]);

    // 2. One map per granule, each in its own 1 GiB region, lands as exactly one leaf of that size.
    sizes.forEach(([level, pages], k) => {
      const iova = k * P1G;
      const phys = (k + 10) * P1G;
      const before = Array.from(stats.leafWritten);
      pt.map(iova, phys, pages, RW);
      const expected = before.slice();
      expected[level] = expected[level]! + 1;
      expect(Array.from(stats.leafWritten)).toEqual(expected);
      expect(pt.iovaToPfn(iova)).toBe(phys);
      expect(pt.iovaToPfn(iova + pages - 1)).toBe(phys + pages - 1);
      expect(pt.iovaToPfn(iova + pages)).toBe(-1);
    });
    const mapped = sizes.reduce((sum, [, pages]) => sum + pages, 0);
    expect(pt.mappedPages()).toBe(mapped);

    // 3. Overlapping maps fail with EEXIST and change nothing.
    const before = snapshot(pt);
    sizes.forEach(([, pages], k) => {
      const iova = k * P1G;
      expectSysError(() => pt.map(iova, 7 * P1G, pages, RW), 'EEXIST');
      expectSysError(() => pt.map(iova + pages - 1, 5, 1, RW), 'EEXIST');
    });
    expect(snapshot(pt)).toEqual(before);

    // 4. Unmap of the smallest granule works and can be remapped.
    const iova0 = 0;
    expect(unmapRuns(pt, iova0, 1)).toEqual({ cleared: 1, runs: [[iova0, 10 * P1G, 1, RW]] });
    expect(pt.iovaToPfn(iova0)).toBe(-1);
    pt.map(iova0, 10 * P1G, 1, RW);
    expect(pt.iovaToPfn(iova0)).toBe(10 * P1G);

    // The last page of the input address space maps; the one beyond is out of range.
    pt.map(last, 3, 1, IOMMU_READ);
    expect(pt.iovaToPfn(last)).toBe(3);
    expectSysError(() => pt.map(last + 1, 3, 1, RW), 'ERANGE');

    // 5. A full unmap clears everything, frees every table but the root, and the table can be reused.
    const { cleared, runs } = unmapRuns(pt, 0, last + 1);
    expect(cleared).toBe(mapped + 1);
    expect(runs.length).toBe(sizes.length + 1);
    expect([pt.tableCount(), pt.mappedPages()]).toEqual([1, 0]);
    expect(stats.tablesAllocated - stats.tablesFreed).toBe(1);
    expect(walkRuns(pt)).toEqual([]);
    sizes.forEach(([, pages], k) => pt.map(k * P1G, (k + 10) * P1G, pages, RW));
    expect(pt.mappedPages()).toBe(mapped);
  });
});

describe('IoPgtable superpage selection (iommu_pgsize)', () => {
  it('maps a 2M-aligned iova and phys with 512 pages as exactly one 2M leaf', () => {
    const pt = new IoPgtable();
    pt.map(10 * P2M, 20 * P2M, P2M, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([0, 1, 0]);
    expect(pt.tableCount()).toBe(3); // root, level 2, level 1: no leaf table
    expect(walkRuns(pt)).toEqual([[10 * P2M, 20 * P2M, P2M, RW]]);
  });

  it('maps 512 pages with misaligned phys as 512 4K leaves', () => {
    const pt = new IoPgtable();
    pt.map(10 * P2M, 20 * P2M + 1, P2M, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([512, 0, 0]);
    expect(pt.tableCount()).toBe(4);
    expect(walkRuns(pt)).toEqual([[10 * P2M, 20 * P2M + 1, P2M, RW]]);
  });

  it('maps 511 pages at a 2M-aligned iova and phys as 511 4K leaves', () => {
    const pt = new IoPgtable();
    pt.map(10 * P2M, 20 * P2M, P2M - 1, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([511, 0, 0]);
  });

  it('maps a 1 GiB-aligned 1 GiB run as exactly one 1G leaf', () => {
    const pt = new IoPgtable();
    pt.map(3 * P1G, 5 * P1G, P1G, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([0, 0, 1]);
    expect(pt.tableCount()).toBe(2); // root, level 2
    expect(pt.iovaToPfn(3 * P1G + 12345)).toBe(5 * P1G + 12345);
  });

  it('splits a mixed run into 4K head, 2M body and 4K tail', () => {
    const pt = new IoPgtable();
    const iova = 10 * P2M - 3;
    pt.map(iova, 40 * P2M - 3, 3 + 2 * P2M + 5, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([8, 2, 0]);
    // root, level 2, level 1, the head's and the tail's leaf tables
    expect(pt.tableCount()).toBe(5);
    expect(walkRuns(pt)).toEqual([[iova, 40 * P2M - 3, 3 + 2 * P2M + 5, RW]]);
  });

  it('climbs to 1G and back down: 4K, 2M, 1G, 2M, 4K', () => {
    const pt = new IoPgtable();
    const iova = P1G - P2M - 1;
    pt.map(iova, 2 * P1G + iova, 1 + P2M + P1G + P2M + 1, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([2, 2, 1]);
    expect(pt.iovaToPfn(P1G)).toBe(3 * P1G);
  });

  it('writes exactly 512 2M leaves for a 1 GiB run that is 2M- but not 1G-aligned', () => {
    const pt = new IoPgtable();
    pt.map(P1G + P2M, 4 * P1G + P2M, P1G, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([0, 512, 0]);
  });

  it('uses only 4K leaves when the bitmap is 0x1000 (hugepages disabled)', () => {
    const pt = new IoPgtable({ pgsizeBitmap: 0x1000n });
    pt.map(P1G, 2 * P1G, P1G, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([P1G, 0, 0]);
    expect(pt.tableCount()).toBe(1 + 1 + 1 + 512); // root, level 2, level 1, 512 leaf tables
    expect(pt.tableBytes()).toBe(515 * 4096);
    expect(walkRuns(pt)).toEqual([[P1G, 2 * P1G, P1G, RW]]);
  });

  it('skips 2M when the bitmap is 4K|1G', () => {
    const pt = new IoPgtable({ pgsizeBitmap: 0x40001000n });
    pt.map(P1G, 2 * P1G, P1G + P2M, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([P2M, 0, 1]);
  });
});

describe('IoPgtable map refusals', () => {
  it('refuses a prot without IOMMU_READ or IOMMU_WRITE with EINVAL', () => {
    const pt = new IoPgtable();
    expectSysError(() => pt.map(0, 0, 1, 0), 'EINVAL');
    expectSysError(() => pt.map(0, 0, 1, IOMMU_CACHE), 'EINVAL');
    expect(pt.mappedPages()).toBe(0);
  });

  it('stores READ|WRITE only: IOMMU_CACHE is stripped', () => {
    const pt = new IoPgtable();
    pt.map(0, 9, 1, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    pt.map(1, 10, 1, IOMMU_WRITE | IOMMU_CACHE);
    expect(walkRuns(pt)).toEqual([
      [0, 9, 1, RW],
      [1, 10, 1, IOMMU_WRITE],
    ]);
  });

  it('refuses frames beyond oas with ERANGE', () => {
    const pt = new IoPgtable({ oas: 32 });
    pt.map(0, 2 ** 20 - 1, 1, RW);
    expectSysError(() => pt.map(1, 2 ** 20, 1, RW), 'ERANGE');
    expectSysError(() => pt.map(2, 2 ** 20 - 1, 2, RW), 'ERANGE');
    expect(pt.mappedPages()).toBe(1);
  });

  it('refuses a 4K page inside a 2M block, and a 2M block over a 1G block, with EEXIST', () => {
    const pt = new IoPgtable();
    pt.map(P2M, P2M, P2M, RW);
    pt.map(P1G, P1G, P1G, RW);
    const before = snapshot(pt);
    expectSysError(() => pt.map(P2M + 7, 1, 1, RW), 'EEXIST');
    expectSysError(() => pt.map(P1G + P2M, 0, P2M, RW), 'EEXIST');
    expectSysError(() => pt.map(P1G + 3, 0, 2, RW), 'EEXIST');
    expect(snapshot(pt)).toEqual(before);
  });

  it('refuses a 2M block over a table holding 4K pages with EEXIST', () => {
    const pt = new IoPgtable();
    pt.map(P2M + 100, 7, 1, RW);
    expectSysError(() => pt.map(P2M, 0, P2M, RW), 'EEXIST');
    expect(pt.mappedPages()).toBe(1);
  });

  it('allocates and writes nothing when a later part of a run overlaps (all or nothing)', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(P1G + 5, 77, 1, RW);
    const before = snapshot(pt);
    // First 2M would go into a level-1 table that does not exist yet; the second hits the 4K page's table.
    expectSysError(() => pt.map(P1G - P2M, 0, 2 * P2M, RW), 'EEXIST');
    // A long 4K run whose last page collides.
    expectSysError(() => pt.map(P1G + 5 - 1000, 1, 1001, RW), 'EEXIST');
    expect(snapshot(pt)).toEqual(before);
    expect(pt.iovaToPfn(P1G - P2M)).toBe(-1);
  });

  it('treats a count of 0 as a no-op', () => {
    const pt = new IoPgtable();
    pt.map(5, 5, 0, RW);
    expect(snapshot(pt)).toEqual(snapshot(new IoPgtable()));
  });

  it('raises SimBugError for arguments that are not frame numbers', () => {
    const pt = new IoPgtable();
    expect(() => pt.map(1.5, 0, 1, RW)).toThrow(SimBugError);
    expect(() => pt.map(0, -1, 1, RW)).toThrow(SimBugError);
    expect(() => pt.map(0, 0, -1, RW)).toThrow(SimBugError);
    expect(() => pt.unmap(-1, 1)).toThrow(SimBugError);
    expect(() => pt.walk(0, 0.5, () => undefined)).toThrow(SimBugError);
  });
});

describe('IoPgtable unmap and walk visiting', () => {
  it('merges adjacent 4K leaves contiguous in iova and phys with the same prot into one visit', () => {
    const pt = new IoPgtable();
    pt.map(100, 500, 1, RW);
    pt.map(101, 501, 1, RW);
    pt.map(102, 502, 1, RW);
    expect(unmapRuns(pt, 0, 1000)).toEqual({ cleared: 3, runs: [[100, 500, 3, RW]] });
  });

  it('starts a new visit at a phys gap, an iova gap or a prot change', () => {
    const pt = new IoPgtable();
    pt.map(100, 500, 1, RW);
    pt.map(101, 600, 1, RW); // phys gap
    pt.map(103, 601, 1, RW); // iova gap
    pt.map(104, 602, 1, IOMMU_READ); // prot change
    expect(unmapRuns(pt, 0, 1000).runs).toEqual([
      [100, 500, 1, RW],
      [101, 600, 1, RW],
      [103, 601, 1, RW],
      [104, 602, 1, IOMMU_READ],
    ]);
  });

  it('merges a 2M leaf with the contiguous 4K leaf after it', () => {
    const pt = new IoPgtable();
    pt.map(P2M, 4 * P2M, P2M, RW);
    pt.map(2 * P2M, 5 * P2M, 1, RW);
    expect(Array.from(pt.stats.leafWritten)).toEqual([1, 1, 0]);
    expect(unmapRuns(pt, P2M, P2M + 1)).toEqual({ cleared: P2M + 1, runs: [[P2M, 4 * P2M, P2M + 1, RW]] });
    expect(Array.from(pt.stats.leafCleared)).toEqual([1, 1, 0]);
  });

  it('visits scattered pages once each, in ascending iova order across leaf tables', () => {
    const pt = new IoPgtable();
    const phys = [9, 3, 77, 12, 5];
    phys.forEach((p, k) => pt.map(k * 300, p, 1, RW));
    expect(unmapRuns(pt, 0, 5 * 300).runs).toEqual(phys.map((p, k) => [k * 300, p, 1, RW]));
  });

  it('clears only leaves inside the range and returns the pages cleared', () => {
    const pt = new IoPgtable();
    pt.map(0, 0, 10, RW);
    expect(unmapRuns(pt, 3, 4)).toEqual({ cleared: 4, runs: [[3, 3, 4, RW]] });
    expect(walkRuns(pt)).toEqual([
      [0, 0, 3, RW],
      [7, 7, 3, RW],
    ]);
    expect(pt.mappedPages()).toBe(6);
  });

  it('returns 0 and visits nothing for an empty range', () => {
    const pt = new IoPgtable();
    pt.map(P1G, 0, 1, RW);
    const visit = jest.fn();
    expect(pt.unmap(0, P2M, visit)).toBe(0);
    expect(pt.unmap(5, 1, visit)).toBe(0);
    expect(pt.unmap(P1G + 1, 1, visit)).toBe(0);
    expect(pt.unmap(P1G, 0, visit)).toBe(0);
    expect(visit).not.toHaveBeenCalled();
  });

  it('raises SimBugError when the range cuts a superpage, and changes nothing', () => {
    const pt = new IoPgtable();
    pt.map(P2M, P2M, P2M, RW);
    pt.map(0, 0, 1, RW);
    const before = snapshot(pt);
    expect(() => pt.unmap(0, P2M + 1)).toThrow(SimBugError);
    expect(() => pt.unmap(P2M + 1, P2M)).toThrow(SimBugError);
    expect(() => pt.unmap(P2M + 5, 1)).toThrow(SimBugError);
    expect(snapshot(pt)).toEqual(before);
  });

  it('walks the part of a cut superpage inside the range', () => {
    const pt = new IoPgtable();
    pt.map(P2M, 8 * P2M, P2M, IOMMU_READ);
    expect(walkRuns(pt, P2M + 10, 20)).toEqual([[P2M + 10, 8 * P2M + 10, 20, IOMMU_READ]]);
  });

  it('walks a 4K run that crosses leaf tables as one run', () => {
    const pt = new IoPgtable();
    pt.map(P2M - 2, 1001, 1024, RW);
    expect(walkRuns(pt)).toEqual([[P2M - 2, 1001, 1024, RW]]);
  });
});

describe('IoPgtable table freeing', () => {
  it('frees a table only when the unmap covers its whole span (domain_unmap, __arm_lpae_unmap), never the root', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(0, 1, 1, RW);
    expect([pt.tableCount(), pt.tableBytes(), stats.tablesAllocated]).toEqual([4, 16384, 4]);
    pt.map(P2M, 2, 1, RW); // another leaf table under the same level-1 table
    expect(pt.tableCount()).toBe(5);
    expect(pt.unmap(0, 1)).toBe(1);
    expect([pt.tableCount(), stats.tablesFreed]).toEqual([5, 0]); // a page does not cover its table
    expect(pt.unmap(0, 2 * P2M)).toBe(1);
    expect([pt.tableCount(), stats.tablesFreed]).toEqual([3, 2]); // both leaf tables covered whole
    expect(pt.unmap(0, P1G)).toBe(0);
    expect([pt.tableCount(), stats.tablesFreed]).toEqual([2, 3]); // the level-1 table covered whole
    expect(pt.unmap(0, 512 * P1G)).toBe(0);
    expect([pt.tableCount(), stats.tablesFreed, pt.tableBytes()]).toEqual([1, 4, 4096]);
  });

  it('maps and unmaps single pages without allocating or freeing tables after the first', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    for (let round = 0; round < 3; round++) {
      pt.map(0x100, 7, 1, RW);
      expect(pt.unmap(0x100, 1)).toBe(1);
    }
    expect([stats.tablesAllocated, stats.tablesFreed, pt.tableCount()]).toEqual([4, 0, 4]);
  });

  it('keeps a leaf table while it still holds a page', () => {
    const pt = new IoPgtable();
    pt.map(0, 1, 2, RW);
    expect(pt.unmap(0, 1)).toBe(1);
    expect(pt.tableCount()).toBe(4);
    expect(pt.iovaToPfn(1)).toBe(2);
  });

  it('keeps the tables above a 2M leaf when the unmap covers only that leaf', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(P2M, 0, P2M, RW);
    expect(pt.tableCount()).toBe(3);
    pt.unmap(P2M, P2M);
    expect([pt.tableCount(), stats.tablesFreed]).toEqual([3, 0]);
  });

  it('replaces an emptied leaf table by a superpage (arm_lpae_init_pte frees it first)', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(P2M + 3, 0, 1, RW);
    pt.unmap(P2M + 3, 1);
    expect(pt.tableCount()).toBe(4); // the emptied leaf table stays
    pt.map(P2M, 0, P2M, RW);
    expect(pt.iovaToPfn(P2M + 3)).toBe(3);
    expect([pt.tableCount(), stats.tablesFreed, stats.leafWritten[1]]).toEqual([3, 1, 1]);
  });

  it('refuses a superpage over a table that still holds a page, and changes nothing', () => {
    const pt = new IoPgtable();
    pt.map(P2M + 3, 9, 1, RW);
    expect(() => pt.map(P2M, 0, P2M, RW)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect([pt.iovaToPfn(P2M + 3), pt.iovaToPfn(P2M), pt.tableCount()]).toEqual([9, -1, 4]);
  });

  it('releases every table on free and refuses further use', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(0, 0, 1, RW); // root, level 2, level 1, leaf table
    pt.map(P1G, 0, P1G, RW); // a 1G leaf in the same level-2 table
    pt.free();
    expect([stats.tablesAllocated, stats.tablesFreed, pt.tableCount(), pt.isFreed()]).toEqual([4, 4, 0, true]);
    expect(Array.from(stats.leafCleared)).toEqual([0, 0, 0]);
    expect(() => pt.map(0, 0, 1, RW)).toThrow(SimBugError);
    expect(() => pt.unmap(0, 1)).toThrow(SimBugError);
    expect(() => pt.walk(0, 1, () => undefined)).toThrow(SimBugError);
    expect(() => pt.iovaToPfn(0)).toThrow(SimBugError);
    expect(() => pt.hardwareWalk(0)).toThrow(SimBugError);
    expect(() => pt.free()).toThrow(SimBugError);
  });
});

describe('IoPgtable hardware walker', () => {
  it('reads one descriptor per level down to the leaf: 4 for 4K, 3 for 2M, 2 for 1G', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(5, 50, 1, IOMMU_READ);
    pt.map(P2M, 2 * P2M, P2M, RW);
    pt.map(P1G, 3 * P1G, P1G, IOMMU_WRITE);

    expect(pt.hardwareWalk(5)).toBe(IOMMU_READ);
    expect([pt.walkLeafLevel, pt.walkLeafPfn, stats.walks, stats.walkReads]).toEqual([0, 50, 1, 4]);
    expect(pt.hardwareWalk(P2M + 9)).toBe(RW);
    expect([pt.walkLeafLevel, pt.walkLeafPfn, stats.walks, stats.walkReads]).toEqual([1, 2 * P2M + 9, 2, 7]);
    expect(pt.hardwareWalk(P1G + 1000)).toBe(IOMMU_WRITE);
    expect([pt.walkLeafLevel, pt.walkLeafPfn, stats.walks, stats.walkReads]).toEqual([2, 3 * P1G + 1000, 3, 9]);
  });

  it('stops at the first empty descriptor', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(5, 50, 1, RW);
    expect(pt.hardwareWalk(600 * P1G)).toBe(0); // empty root descriptor
    expect(stats.walkReads).toBe(1);
    expect(pt.hardwareWalk(6)).toBe(0); // empty descriptor in the leaf table
    expect([stats.walks, stats.walkReads]).toEqual([2, 5]);
  });

  it('reads 3 descriptors for a 4K leaf with 3 levels (ias 39)', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({ ias: 39 }, stats);
    pt.map(5, 50, 1, RW);
    pt.hardwareWalk(5);
    expect(stats.walkReads).toBe(3);
  });
});
