/**
 * IoPgtable.mapRuns: a pinned batch mapped in one call must leave the same tables, leaves and counters as
 * map() on each run in order, and refuse all or nothing.
 */
import { IOMMU_READ, IOMMU_WRITE } from '../../../../../kernel-sim/iommu/iommu-domain';
import { IoPgtable, IoPgtableStats } from '../../../../../kernel-sim/iommu/paged/io-pgtable';
import { expectSysError } from '../../../../helpers/expect-sys-error';

const RW = IOMMU_READ | IOMMU_WRITE;
const P2M = 512;

function sum(counts: Uint32Array): number {
  return counts.reduce((a, b) => a + b, 0);
}

function batch(runs: [pfn: number, count: number][]): { pfns: Uint32Array; counts: Uint32Array } {
  return { pfns: Uint32Array.from(runs.map((r) => r[0])), counts: Uint32Array.from(runs.map((r) => r[1])) };
}

function snapshot(pt: IoPgtable, stats: IoPgtableStats, from: number, pages: number): unknown {
  const pfns: number[] = [];
  for (let i = 0; i < pages; i++) pfns.push(pt.iovaToPfn(from + i));
  return { pfns, tables: pt.tableCount(), mapped: pt.mappedPages(), written: Array.from(stats.leafWritten) };
}

describe('IoPgtable.mapRuns', () => {
  const cases: [string, number, [number, number][]][] = [
    ['scattered single pages inside one leaf table', 0x10, [[7000, 1], [9, 1], [123456, 1], [5, 1]]],
    ['single pages across a leaf table boundary', P2M - 2, [[1, 1], [3, 1], [5, 1], [7, 1], [9, 1]]],
    ['a 2M-aligned run of 512 (one 2M leaf) between single pages', P2M - 1, [[11, 1], [4 * P2M, P2M], [13, 1]]],
    ['a misaligned contiguous run (4K leaves) then singles', 3, [[100, 40], [1, 1], [2, 1]]],
  ];

  test.each(cases)('%s: same result as map() run by run', (_what, iova, runs) => {
    const pages = runs.reduce((n, r) => n + r[1], 0);
    const byRunStats = new IoPgtableStats();
    const byRun = new IoPgtable({}, byRunStats);
    let at = iova;
    for (const [pfn, count] of runs) {
      byRun.map(at, pfn, count, RW);
      at += count;
    }
    const batchedStats = new IoPgtableStats();
    const batched = new IoPgtable({}, batchedStats);
    const { pfns, counts } = batch(runs);
    batched.mapRuns(iova, pfns, counts, runs.length, sum(counts), RW);
    expect(snapshot(batched, batchedStats, iova, pages)).toEqual(snapshot(byRun, byRunStats, iova, pages));
  });

  test('a present entry in the middle of the batch refuses the whole batch (EEXIST) and changes nothing', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({}, stats);
    pt.map(0x12, 99, 1, RW);
    const before = snapshot(pt, stats, 0x10, 6);
    const { pfns, counts } = batch([[1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 1]]);
    expectSysError(() => pt.mapRuns(0x10, pfns, counts, 6, sum(counts), RW), 'EEXIST');
    expect(snapshot(pt, stats, 0x10, 6)).toEqual(before);
  });

  test('a batch that would reach past the input address space is refused before anything is written', () => {
    const stats = new IoPgtableStats();
    const pt = new IoPgtable({ ias: 39 }, stats);
    const last = 2 ** (39 - 12) - 2;
    const { pfns, counts } = batch([[1, 1], [2, 1], [3, 1]]);
    expectSysError(() => pt.mapRuns(last, pfns, counts, 3, sum(counts), RW), 'ERANGE');
    expect([pt.mappedPages(), stats.leafWritten[0]]).toEqual([0, 0]);
  });

  test('no permission is EINVAL', () => {
    const pt = new IoPgtable();
    const { pfns, counts } = batch([[1, 1]]);
    expectSysError(() => pt.mapRuns(0, pfns, counts, 1, sum(counts), 0), 'EINVAL');
  });
});

test('a single page beyond the output address size refuses the batch (ERANGE) and undoes what was written', () => {
  const stats = new IoPgtableStats();
  const pt = new IoPgtable({ oas: 40 }, stats);
  const pfns = Uint32Array.from([1, 2, 2 ** 28, 4]);
  const counts = new Uint32Array(4).fill(1);
  expectSysError(() => pt.mapRuns(0x10, pfns, counts, 4, 4, RW), 'ERANGE');
  expect([pt.mappedPages(), stats.leafWritten[0], pt.iovaToPfn(0x10)]).toEqual([0, 0, -1]);
});
