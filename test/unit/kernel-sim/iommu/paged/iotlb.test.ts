import { SimBugError } from '../../../../../kernel-sim/errors';
import { IOMMU_READ, IOMMU_WRITE } from '../../../../../kernel-sim/iommu/iommu-domain';
import { Iotlb } from '../../../../../kernel-sim/iommu/paged/iotlb';

const RW = IOMMU_READ | IOMMU_WRITE;
const P2M = 512;
const P1G = 262144;

function stats(t: Iotlb): Record<string, number> {
  return {
    lookups: t.lookups,
    hits: t.hits,
    misses: t.misses,
    fills: t.fills,
    evictions: t.evictions,
    invalidations: t.invalidations,
    entriesInvalidated: t.entriesInvalidated,
  };
}

/** The pfn `iovaPfn` translates to through the cache, or -1 on a miss. */
function cached(t: Iotlb, domainId: number, iovaPfn: number): number {
  const slot = t.lookup(domainId, iovaPfn);
  return slot < 0 ? -1 : t.slotPfn(slot, iovaPfn);
}

describe('Iotlb', () => {
  it('has 64 entries by default and starts empty', () => {
    const t = new Iotlb();
    expect([t.entries, t.validEntries()]).toEqual([64, 0]);
  });

  it('counts a miss, then a hit after a fill, with the cached pfn and prot', () => {
    const t = new Iotlb();
    expect(t.lookup(1, 100)).toBe(-1);
    t.fill(1, 0, 100, 700, IOMMU_READ);
    const slot = t.lookup(1, 100);
    expect(slot).toBeGreaterThanOrEqual(0);
    expect([t.slotPfn(slot, 100), t.slotProt(slot)]).toEqual([700, IOMMU_READ]);
    expect(cached(t, 1, 101)).toBe(-1);
    expect(stats(t)).toEqual({
      lookups: 3, hits: 1, misses: 2, fills: 1, evictions: 0, invalidations: 0, entriesInvalidated: 0,
    });
  });

  it('covers a whole 2M block with one entry, translating each page from its base', () => {
    const t = new Iotlb();
    t.fill(1, 1, 3 * P2M + 7, 1000 + 7, RW); // filled by an access to page 7 of the block
    expect(cached(t, 1, 3 * P2M)).toBe(1000);
    expect(cached(t, 1, 3 * P2M + 511)).toBe(1511);
    expect(cached(t, 1, 4 * P2M)).toBe(-1);
    expect(cached(t, 1, 3 * P2M - 1)).toBe(-1);
    expect([t.hits, t.misses, t.validEntries()]).toEqual([2, 2, 1]);
  });

  it('covers a whole 1G block with one entry', () => {
    const t = new Iotlb();
    t.fill(1, 2, P1G, 5 * P1G, RW);
    expect(cached(t, 1, P1G + 123456)).toBe(5 * P1G + 123456);
    expect(cached(t, 1, 2 * P1G)).toBe(-1);
  });

  it('keeps domains apart: the same iova in another domain misses', () => {
    const t = new Iotlb(4096);
    t.fill(1, 0, 100, 700, RW);
    t.fill(2, 0, 100, 800, RW);
    expect(t.evictions).toBe(0);
    expect([cached(t, 1, 100), cached(t, 2, 100), cached(t, 3, 100)]).toEqual([700, 800, -1]);
  });

  it('holds 64 consecutive pages of one domain without conflict', () => {
    const t = new Iotlb();
    for (let p = 0; p < 64; p++) t.fill(1, 0, 1000 + p, p, RW);
    let hits = 0;
    for (let p = 0; p < 64; p++) if (cached(t, 1, 1000 + p) === p) hits++;
    expect([hits, t.evictions, t.validEntries()]).toEqual([64, 0, 64]);
  });

  it('is direct-mapped: pages `entries` apart share a slot and the later fill evicts the earlier', () => {
    const t = new Iotlb();
    expect(t.slotOf(1, 0, 10)).toBe(t.slotOf(1, 0, 74));
    t.fill(1, 0, 10, 1, RW);
    t.fill(1, 0, 74, 2, RW);
    expect([cached(t, 1, 10), cached(t, 1, 74)]).toEqual([-1, 2]);
    expect([t.evictions, t.validEntries()]).toEqual([1, 1]);
  });

  it('works with a size that is not a power of two', () => {
    const t = new Iotlb(10);
    const slots = new Set<number>();
    for (let p = 0; p < 10; p++) {
      slots.add(t.slotOf(4, 0, 2 ** 40 + p));
      t.fill(4, 0, 2 ** 40 + p, p, RW);
    }
    expect(slots.size).toBe(10);
    expect(t.evictions).toBe(0);
    expect(cached(t, 4, 2 ** 40 + 9)).toBe(9);
  });

  it('invalidates by domain and range: 4K entries inside it and blocks overlapping it', () => {
    const t = new Iotlb(4096); // large enough that these entries do not share slots (checked below)
    for (let p = 0; p < 10; p++) t.fill(1, 0, p, 100 + p, RW);
    t.fill(1, 1, P2M, 5000, RW); // pages 512..1023
    t.fill(1, 1, 4 * P2M, 6000, RW); // outside the range
    t.fill(2, 0, 5, 900, RW); // other domain
    expect([t.evictions, t.validEntries()]).toEqual([0, 13]);
    expect(t.invalidateRange(1, 5, 600)).toBe(6);
    expect([cached(t, 1, 4), cached(t, 1, 5), cached(t, 1, P2M + 600)]).toEqual([104, -1, -1]);
    expect([cached(t, 1, 4 * P2M), cached(t, 2, 5)]).toEqual([6000, 900]);
    expect([t.invalidations, t.entriesInvalidated, t.validEntries()]).toEqual([1, 6, 7]);
  });

  it('invalidates a range longer than the cache by scanning, with the same result', () => {
    const t = new Iotlb(8);
    for (let p = 0; p < 4; p++) t.fill(1, 0, 100 + p, p, RW);
    // A page of domain 2 whose slot none of domain 1's pages uses.
    const taken = [100, 101, 102, 103].map((p) => t.slotOf(1, 0, p));
    let q = 0;
    while (taken.includes(t.slotOf(2, 0, q))) q++;
    t.fill(2, 0, q, 9, RW);
    expect(t.evictions).toBe(0);
    expect(t.invalidateRange(1, 0, 1000)).toBe(4);
    expect([t.validEntries(), cached(t, 2, q)]).toEqual([1, 9]);
  });

  it('counts an invalidation even when nothing was cached', () => {
    const t = new Iotlb();
    expect(t.invalidateRange(1, 0, 10)).toBe(0);
    expect(t.invalidateDomain(1)).toBe(0);
    expect([t.invalidations, t.entriesInvalidated]).toEqual([2, 0]);
  });

  it('invalidates a whole domain, and everything', () => {
    const t = new Iotlb(4096);
    t.fill(1, 0, 1, 1, RW);
    t.fill(1, 1, P2M, 0, RW);
    t.fill(2, 0, 1, 2, RW);
    expect(t.validEntries()).toBe(3);
    expect(t.invalidateDomain(1)).toBe(2);
    expect([cached(t, 1, 1), cached(t, 2, 1)]).toEqual([-1, 2]);
    expect(t.invalidateAll()).toBe(1);
    expect([t.validEntries(), t.invalidations, t.entriesInvalidated]).toEqual([0, 2, 3]);
  });

  it('is disabled with 0 entries: no lookups counted, fills ignored, invalidations still counted', () => {
    const t = new Iotlb(0);
    t.fill(1, 0, 1, 1, RW);
    expect(t.lookup(1, 1)).toBe(-1);
    t.invalidateRange(1, 0, 1);
    expect(stats(t)).toEqual({
      lookups: 0, hits: 0, misses: 0, fills: 0, evictions: 0, invalidations: 1, entriesInvalidated: 0,
    });
  });

  it('resets its counters but keeps its entries', () => {
    const t = new Iotlb();
    t.fill(1, 0, 1, 1, RW);
    t.lookup(1, 1);
    t.resetStats();
    expect(stats(t)).toEqual({
      lookups: 0, hits: 0, misses: 0, fills: 0, evictions: 0, invalidations: 0, entriesInvalidated: 0,
    });
    expect(cached(t, 1, 1)).toBe(1);
  });

  it('raises SimBugError for a size that is not a non-negative integer', () => {
    expect(() => new Iotlb(-1)).toThrow(SimBugError);
    expect(() => new Iotlb(1.5)).toThrow(SimBugError);
  });
});
