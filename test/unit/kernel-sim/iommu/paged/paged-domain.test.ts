import { SimBugError } from '../../../../../kernel-sim/errors';
import {
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  TRANSLATE_NO_MAPPING,
  TRANSLATE_NO_PERMISSION,
  type IommuDomain,
} from '../../../../../kernel-sim/iommu/iommu-domain';
import { PagedIommu, type PagedIommuCounters } from '../../../../../kernel-sim/iommu/paged/paged-iommu';
import { expectSysError } from '../../../../helpers/expect-sys-error';

const RW = IOMMU_READ | IOMMU_WRITE;
const P2M = 512;
const P1G = 262144;
/** Last IOVA frame of the default 48-bit aperture. */
const LAST_PFN = 2 ** 36 - 1;

type Run = [iovaPfn: number, pfn: number, pageCount: number, prot: number];

function setup(iotlbEntries?: number): { hw: PagedIommu; d: IommuDomain } {
  const hw = new PagedIommu({ name: 'test-vtd', iotlbEntries });
  return { hw, d: hw.allocDomain() };
}


function runs(d: IommuDomain, iovaPfn = 0, pageCount = LAST_PFN + 1): Run[] {
  const out: Run[] = [];
  d.walk(iovaPfn, pageCount, (i, p, n, prot) => out.push([i, p, n, prot]));
  return out;
}

/** The counters a test cares about, picked from a snapshot. */
function pick<K extends keyof PagedIommuCounters>(hw: PagedIommu, ...keys: K[]): Pick<PagedIommuCounters, K> {
  const c = hw.counters();
  const out = {} as Pick<PagedIommuCounters, K>;
  for (const k of keys) out[k] = c[k];
  return out;
}

describe('PagedDomain map', () => {
  it('maps the last page of the aperture and refuses any page beyond it with EINVAL', () => {
    const { hw, d } = setup();
    d.map(LAST_PFN, 1, 1, RW);
    expect(d.iovaToPfn(LAST_PFN)).toBe(1);
    const before = hw.counters();
    expectSysError(() => d.map(LAST_PFN + 1, 1, 1, RW), 'EINVAL');
    expectSysError(() => d.map(LAST_PFN - 1, 1, 3, RW), 'EINVAL');
    expectSysError(() => d.map(-1, 1, 1, RW), 'EINVAL');
    expect(hw.counters()).toEqual(before);
    expect(d.mappedPages()).toBe(1);
  });

  it('follows a smaller aperture (ias 39)', () => {
    const hw = new PagedIommu({ name: 'vtd-3level', ias: 39 });
    const d = hw.allocDomain();
    expect(d.geometry.apertureLast).toBe((1n << 39n) - 1n);
    d.map(2 ** 27 - 1, 0, 1, RW);
    expectSysError(() => d.map(2 ** 27, 0, 1, RW), 'EINVAL');
  });

  it('refuses a prot without IOMMU_READ or IOMMU_WRITE with EINVAL', () => {
    const { d } = setup();
    expectSysError(() => d.map(0, 0, 1, 0), 'EINVAL');
    expectSysError(() => d.map(0, 0, 1, IOMMU_CACHE), 'EINVAL');
    expect(d.mappedPages()).toBe(0);
  });

  it('accepts IOMMU_CACHE and stores READ|WRITE only', () => {
    const { d } = setup();
    d.map(0, 0, 1, RW | IOMMU_CACHE);
    expect(runs(d)).toEqual([[0, 0, 1, RW]]);
  });

  it('refuses an overlapping map with EEXIST and changes nothing', () => {
    const { hw, d } = setup();
    d.map(P2M, P2M, P2M, RW);
    const before = hw.counters();
    expectSysError(() => d.map(P2M - 1, 0, 2, RW), 'EEXIST');
    expectSysError(() => d.map(0, 0, 2 * P2M, RW), 'EEXIST');
    expect(hw.counters()).toEqual(before);
    expect(runs(d)).toEqual([[P2M, P2M, P2M, RW]]);
  });

  it('counts leaves by size: 4K head, 2M body, 4K tail', () => {
    const { hw, d } = setup();
    d.map(10 * P2M - 3, 40 * P2M - 3, 3 + 2 * P2M + 5, RW);
    expect(pick(hw, 'leafWritten', 'leafWritten4K', 'leafWritten2M', 'leafWritten1G', 'tableBytes')).toEqual({
      leafWritten: 10, leafWritten4K: 8, leafWritten2M: 2, leafWritten1G: 0, tableBytes: 5 * 4096,
    });
    expect([d.mappedPages(), d.tableBytes()]).toEqual([1032, 5 * 4096]);
  });

  it('maps only 4K leaves with hugepages disabled (bitmap 0x1000)', () => {
    const hw = new PagedIommu({ name: 'no-huge', pgsizeBitmap: 0x1000n });
    const d = hw.allocDomain();
    d.map(P1G, P1G, P1G, RW);
    expect(pick(hw, 'leafWritten4K', 'leafWritten2M', 'leafWritten1G')).toEqual({
      leafWritten4K: P1G, leafWritten2M: 0, leafWritten1G: 0,
    });
  });
});

describe('PagedDomain unmap', () => {
  it('visits merged runs, clears leaves, frees the tables it covers whole and invalidates the range once', () => {
    const { hw, d } = setup();
    d.map(100, 500, 3, RW);
    d.map(103, 900, 1, IOMMU_READ);
    const seen: Run[] = [];
    expect(d.unmap(0, 1000, (i, p, n, prot) => seen.push([i, p, n, prot]))).toBe(4);
    expect(seen).toEqual([
      [100, 500, 3, RW],
      [103, 900, 1, IOMMU_READ],
    ]);
    expect(pick(hw, 'leafCleared4K', 'tablesFreed', 'tableBytes', 'iotlbInvalidations')).toEqual({
      // [0, 1000) covers the leaf table of [0, 512) but not the level-1 table above it.
      leafCleared4K: 4, tablesFreed: 1, tableBytes: 3 * 4096, iotlbInvalidations: 1,
    });
  });

  it('issues no invalidation when nothing was cleared', () => {
    const { hw, d } = setup();
    expect(d.unmap(0, 100)).toBe(0);
    expect(hw.counters().iotlbInvalidations).toBe(0);
  });

  it('raises SimBugError when the range cuts a superpage', () => {
    const { d } = setup();
    d.map(P2M, P2M, P2M, RW);
    expect(() => d.unmap(P2M, 10)).toThrow(SimBugError);
    expect(d.mappedPages()).toBe(P2M);
  });

  it('drops the cached translation of an unmapped page', () => {
    const { hw, d } = setup();
    d.map(7, 70, 1, RW);
    expect(d.translate(7, IOMMU_READ)).toBe(70);
    d.unmap(7, 1);
    expect(d.translate(7, IOMMU_READ)).toBe(TRANSLATE_NO_MAPPING);
    expect(pick(hw, 'iotlbInvalidations', 'iotlbEntriesInvalidated', 'iotlbHits', 'iotlbMisses', 'walks')).toEqual({
      iotlbInvalidations: 1, iotlbEntriesInvalidated: 1, iotlbHits: 0, iotlbMisses: 2, walks: 2,
    });
  });
});

describe('PagedDomain translate', () => {
  it('misses and walks once, then hits the IOTLB', () => {
    const { hw, d } = setup();
    d.map(7, 70, 1, RW);
    expect(d.translate(7, IOMMU_WRITE)).toBe(70);
    expect(d.translate(7, IOMMU_READ)).toBe(70);
    expect(d.translate(7, IOMMU_READ)).toBe(70);
    expect(pick(hw, 'iotlbLookups', 'iotlbHits', 'iotlbMisses', 'iotlbFills', 'walks', 'walkReads')).toEqual({
      iotlbLookups: 3, iotlbHits: 2, iotlbMisses: 1, iotlbFills: 1, walks: 1, walkReads: 4,
    });
  });

  it('covers a 2M superpage with one IOTLB entry: 1 miss then 511 hits', () => {
    const { hw, d } = setup();
    d.map(2 * P2M, 8 * P2M, P2M, RW);
    for (let p = 0; p < P2M; p++) expect(d.translate(2 * P2M + p, IOMMU_READ)).toBe(8 * P2M + p);
    expect(pick(hw, 'iotlbHits', 'iotlbMisses', 'iotlbFills', 'walks', 'walkReads')).toEqual({
      iotlbHits: 511, iotlbMisses: 1, iotlbFills: 1, walks: 1, walkReads: 3,
    });
    expect(hw.iotlbValidEntries()).toBe(1);
  });

  it('reports TRANSLATE_NO_PERMISSION for an access the leaf lacks, and does not cache the fault', () => {
    const { hw, d } = setup();
    d.map(7, 70, 1, IOMMU_READ);
    expect(d.translate(7, IOMMU_WRITE)).toBe(TRANSLATE_NO_PERMISSION);
    expect(pick(hw, 'iotlbFills', 'walks')).toEqual({ iotlbFills: 0, walks: 1 });
    expect(d.translate(7, IOMMU_READ)).toBe(70);
    // Now cached: the permission check is answered from the IOTLB without a walk.
    expect(d.translate(7, IOMMU_WRITE)).toBe(TRANSLATE_NO_PERMISSION);
    expect(pick(hw, 'iotlbFills', 'walks', 'iotlbHits', 'iotlbMisses')).toEqual({
      iotlbFills: 1, walks: 2, iotlbHits: 1, iotlbMisses: 2,
    });
  });

  it('reports TRANSLATE_NO_MAPPING for an unmapped page, walking only as far as the tables go', () => {
    const { hw, d } = setup();
    d.map(7, 70, 1, RW);
    expect(d.translate(8, IOMMU_READ)).toBe(TRANSLATE_NO_MAPPING);
    expect(d.translate(100 * P1G, IOMMU_READ)).toBe(TRANSLATE_NO_MAPPING);
    expect(pick(hw, 'walks', 'walkReads', 'iotlbFills')).toEqual({ walks: 2, walkReads: 4 + 2, iotlbFills: 0 });
  });

  it('blocks an access outside the aperture before any lookup', () => {
    const { hw, d } = setup();
    expect(d.translate(LAST_PFN + 1, IOMMU_READ)).toBe(TRANSLATE_NO_MAPPING);
    expect(pick(hw, 'iotlbLookups', 'walks')).toEqual({ iotlbLookups: 0, walks: 0 });
  });

  it('walks on every access when the IOTLB is disabled', () => {
    const { hw, d } = setup(0);
    d.map(7, 70, 1, RW);
    expect(d.translate(7, IOMMU_READ)).toBe(70);
    expect(d.translate(7, IOMMU_READ)).toBe(70);
    expect(pick(hw, 'iotlbLookups', 'iotlbFills', 'walks', 'walkReads')).toEqual({
      iotlbLookups: 0, iotlbFills: 0, walks: 2, walkReads: 8,
    });
  });

  it('keeps the IOTLB entries of two domains apart', () => {
    const hw = new PagedIommu({ name: 'shared' });
    const a = hw.allocDomain();
    const b = hw.allocDomain();
    a.map(7, 70, 1, RW);
    b.map(7, 80, 1, RW);
    expect([a.translate(7, IOMMU_READ), b.translate(7, IOMMU_READ)]).toEqual([70, 80]);
    expect([a.translate(7, IOMMU_READ), b.translate(7, IOMMU_READ)]).toEqual([70, 80]);
    expect(pick(hw, 'iotlbHits', 'iotlbMisses', 'iotlbEvictions')).toEqual({
      iotlbHits: 2, iotlbMisses: 2, iotlbEvictions: 0,
    });
  });

  it('raises SimBugError for an access that is neither READ nor WRITE', () => {
    const { d } = setup();
    expect(() => d.translate(0, 3 as typeof IOMMU_READ)).toThrow(SimBugError);
  });

  it('leaves the counters alone in iovaToPfn', () => {
    const { hw, d } = setup();
    d.map(P2M, 4 * P2M, P2M, RW);
    const before = hw.counters();
    expect([d.iovaToPfn(P2M + 3), d.iovaToPfn(0)]).toEqual([4 * P2M + 3, TRANSLATE_NO_MAPPING]);
    expect(hw.counters()).toEqual(before);
  });
});

describe('PagedDomain free', () => {
  it('flushes its IOTLB entries, releases its tables and refuses further use', () => {
    const { hw, d } = setup();
    d.map(7, 70, 1, RW);
    d.translate(7, IOMMU_READ);
    d.free();
    expect(pick(hw, 'tablesAllocated', 'tablesFreed', 'tableBytes', 'domainsFreed', 'iotlbInvalidations',
      'iotlbEntriesInvalidated', 'leafCleared')).toEqual({
      tablesAllocated: 4, tablesFreed: 4, tableBytes: 0, domainsFreed: 1, iotlbInvalidations: 1,
      iotlbEntriesInvalidated: 1, leafCleared: 0,
    });
    expect([hw.domainCount(), hw.iotlbValidEntries()]).toEqual([0, 0]);
    expect(() => d.map(0, 0, 1, RW)).toThrow(SimBugError);
    expect(() => d.unmap(0, 1)).toThrow(SimBugError);
    expect(() => d.walk(0, 1, () => undefined)).toThrow(SimBugError);
    expect(() => d.iovaToPfn(0)).toThrow(SimBugError);
    expect(() => d.translate(0, IOMMU_READ)).toThrow(SimBugError);
    expect(() => d.tableBytes()).toThrow(SimBugError);
    expect(() => d.mappedPages()).toThrow(SimBugError);
    expect(() => d.free()).toThrow(SimBugError);
  });
});
