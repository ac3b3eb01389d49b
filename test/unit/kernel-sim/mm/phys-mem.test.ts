/**
 * PhysMemory: the scattered anonymous zone, naturally aligned contiguous hugetlb folios, reference
 * counts (mappings and pins), reuse of freed frames, and sparse page bytes.
 */
import { SimBugError } from '../../../../kernel-sim/errors';
import { ANON_BASE_PFN, HUGE_BASE_PFN, PhysMemory } from '../../../../kernel-sim/mm/phys-mem';
import { codeOf } from '../../../helpers/expect-sys-error';

const ORDER_2M = 9;
const ORDER_256M = 16;
const ORDER_1G = 18;

function allocAnon(phys: PhysMemory, count: number): number[] {
  return Array.from({ length: count }, () => phys.allocAnon());
}

describe('anonymous zone', () => {
  test('consecutive allocations are scattered: distinct, unsorted, almost never physically adjacent', () => {
    const frames = allocAnon(new PhysMemory(), 4096);
    expect(new Set(frames).size).toBe(4096);
    let adjacent = 0;
    let ascending = 0;
    for (let i = 1; i < frames.length; i++) {
      if (Math.abs(frames[i]! - frames[i - 1]!) === 1) adjacent++;
      if (frames[i]! > frames[i - 1]!) ascending++;
    }
    // A random order would give about 2 adjacent pairs in 4096 and half the steps ascending.
    expect(adjacent).toBeLessThanOrEqual(8);
    expect(ascending).toBeGreaterThan(1500);
    expect(ascending).toBeLessThan(2600);
  });

  test('the same seed gives the same frames; another seed gives other frames', () => {
    const a = allocAnon(new PhysMemory({ seed: 7 }), 256);
    const b = allocAnon(new PhysMemory({ seed: 7 }), 256);
    const c = allocAnon(new PhysMemory({ seed: 8 }), 256);
    expect(b).toEqual(a);
    const same = a.filter((pfn, i) => c[i] === pfn).length;
    expect(same).toBeLessThan(8);
  });

  test.each([
    ['16 MiB', 1n << 24n],
    ['1 MiB', 1n << 20n],
    ['64 KiB', 1n << 16n],
  ])('a %s zone hands out exactly its frames, each inside the zone, then ENOMEM', (_name, anonBytes) => {
    const phys = new PhysMemory({ anonBytes });
    const frames = Number(anonBytes >> 12n);
    const got = allocAnon(phys, frames);
    expect(new Set(got).size).toBe(frames);
    expect(got.filter((pfn) => pfn < ANON_BASE_PFN || pfn >= ANON_BASE_PFN + frames)).toEqual([]);
    expect(codeOf(() => phys.allocAnon())).toBe('ENOMEM');
    expect(phys.stats().anonFramesInUse).toBe(frames);
  });

  test('anonBytes must be a power of two', () => {
    expect(() => new PhysMemory({ anonBytes: 3n << 20n })).toThrow(RangeError);
    expect(() => new PhysMemory({ anonBytes: 0n })).toThrow(RangeError);
  });

  test('a released frame is freed and handed out again first; its bytes do not survive', () => {
    const phys = new PhysMemory();
    const [a, b] = allocAnon(phys, 2) as [number, number];
    phys.write(a, 10, new Uint8Array([1, 2, 3]), 0, 3);
    expect(phys.refCount(a)).toBe(1);
    phys.release(a);
    expect(phys.refCount(a)).toBe(0);
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 1, pagesWithData: 0 });
    expect(phys.allocAnon()).toBe(a);
    const out = new Uint8Array(3).fill(0xff);
    phys.read(a, 10, out, 0, 3);
    expect(out).toEqual(new Uint8Array(3));
    expect(phys.refCount(b)).toBe(1);
  });

  test('a pin keeps a frame alive after its mapping reference goes; the last unpin frees it', () => {
    const phys = new PhysMemory();
    const pfn = phys.allocAnon();
    phys.pin(pfn, 1);
    phys.pin(pfn, 1);
    expect(phys.refCount(pfn)).toBe(3);
    expect(phys.stats().pinnedPages).toBe(2);
    phys.release(pfn);
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 1, pinnedPages: 2 });
    phys.unpin(pfn, 1);
    expect(phys.stats().anonFramesInUse).toBe(1);
    phys.unpin(pfn, 1);
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 0, pinnedPages: 0 });
  });

  test('refcount underflow and pins of free frames are simulator bugs', () => {
    const phys = new PhysMemory();
    const pfn = phys.allocAnon();
    phys.release(pfn);
    expect(() => phys.release(pfn)).toThrow(SimBugError);
    expect(() => phys.pin(pfn, 1)).toThrow(SimBugError);
    expect(() => phys.unpin(pfn, 1)).toThrow(SimBugError);
    const other = phys.allocAnon();
    phys.pin(other, 1);
    expect(() => phys.unpin(other, 2)).toThrow(SimBugError);
  });
});

describe('hugetlb zone', () => {
  test.each([
    ['2 MiB', ORDER_2M],
    ['256 MiB', ORDER_256M],
    ['1 GiB', ORDER_1G],
  ])('%s folios are naturally aligned, physically contiguous and disjoint', (_name, order) => {
    const phys = new PhysMemory();
    const pages = 2 ** order;
    const heads = Array.from({ length: 4 }, () => phys.allocHuge(order));
    for (const head of heads) {
      expect(head % pages).toBe(0);
      expect(head).toBeGreaterThanOrEqual(HUGE_BASE_PFN);
      expect(phys.isHuge(head)).toBe(true);
      // Every frame of the folio belongs to it: the first, the middle and the last.
      for (const at of [head, head + pages / 2, head + pages - 1]) expect(phys.refCount(at)).toBe(1);
    }
    const sorted = [...heads].sort((x, y) => x - y);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]! - sorted[i - 1]!).toBeGreaterThanOrEqual(pages);
    expect(phys.stats()).toMatchObject({ hugeFoliosInUse: 4, hugePagesInUse: 4 * pages, anonFramesInUse: 0 });
  });

  test('folios of mixed sizes stay aligned and never overlap', () => {
    const phys = new PhysMemory();
    const folios = [ORDER_2M, ORDER_1G, ORDER_2M, ORDER_256M, 10, ORDER_1G, ORDER_2M].map((order) => ({ order, head: phys.allocHuge(order) }));
    for (const { order, head } of folios) expect(head % 2 ** order).toBe(0);
    const spans = folios.map(({ order, head }) => [head, head + 2 ** order] as const).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  });

  test('consecutive 2 MiB folios are not handed out as one ascending contiguous run', () => {
    const phys = new PhysMemory();
    const heads = Array.from({ length: 64 }, () => phys.allocHuge(ORDER_2M));
    let adjacentAscending = 0;
    for (let i = 1; i < heads.length; i++) if (heads[i] === heads[i - 1]! + 512) adjacentAscending++;
    expect(adjacentAscending).toBeLessThan(16);
  });

  test('a freed folio is reused for the next folio of its size', () => {
    const phys = new PhysMemory();
    const head = phys.allocHuge(ORDER_2M);
    phys.write(head + 3, 0, new Uint8Array([9]), 0, 1);
    phys.release(head);
    expect(phys.stats()).toMatchObject({ hugeFoliosInUse: 0, hugePagesInUse: 0, pagesWithData: 0 });
    expect(phys.refCount(head + 3)).toBe(0);
    expect(phys.allocHuge(ORDER_2M)).toBe(head);
  });

  test('pins on a folio keep it alive after the mapping goes; release needs the folio head', () => {
    const phys = new PhysMemory();
    const head = phys.allocHuge(ORDER_2M);
    phys.pin(head + 10, 100);
    expect(phys.refCount(head)).toBe(101);
    expect(phys.stats().pinnedPages).toBe(100);
    expect(() => phys.release(head + 1)).toThrow(SimBugError);
    phys.release(head);
    expect(phys.stats().hugeFoliosInUse).toBe(1);
    phys.unpin(head + 10, 60);
    expect(phys.refCount(head + 200)).toBe(40);
    phys.unpin(head + 70, 40);
    expect(phys.stats()).toMatchObject({ hugeFoliosInUse: 0, pinnedPages: 0 });
    expect(() => phys.release(head)).toThrow(SimBugError);
  });

  test('a pinned run may span two adjacent folios: each folio takes the references of its part', () => {
    const phys = new PhysMemory();
    const heads = Array.from({ length: 64 }, () => phys.allocHuge(ORDER_2M));
    const set = new Set(heads);
    const first = heads.find((h) => set.has(h + 512))!;
    expect(first).toBeDefined();
    phys.pin(first + 500, 20);
    expect(phys.refCount(first)).toBe(1 + 12);
    expect(phys.refCount(first + 512)).toBe(1 + 8);
    phys.unpin(first + 500, 20);
    expect(phys.refCount(first)).toBe(1);
  });

  test('an exhausted pool fails with ENOMEM, and canAllocHuge says so beforehand', () => {
    const phys = new PhysMemory({ hugeBytes: 4n << 20n });
    expect(phys.canAllocHuge(ORDER_2M, 2)).toBe(true);
    expect(phys.canAllocHuge(ORDER_2M, 3)).toBe(false);
    expect(phys.canAllocHuge(ORDER_1G, 1)).toBe(false);
    const a = phys.allocHuge(ORDER_2M);
    phys.allocHuge(ORDER_2M);
    expect(phys.canAllocHuge(ORDER_2M, 1)).toBe(false);
    expect(codeOf(() => phys.allocHuge(ORDER_2M))).toBe('ENOMEM');
    expect(codeOf(() => phys.allocHuge(ORDER_1G))).toBe('ENOMEM');
    phys.release(a);
    expect(phys.canAllocHuge(ORDER_2M, 1)).toBe(true);
    expect(phys.allocHuge(ORDER_2M)).toBe(a);
  });
});

describe('page bytes', () => {
  test('memory is sparse: untouched frames read as zeros and hold no data', () => {
    const phys = new PhysMemory();
    const pfn = phys.allocAnon();
    const out = new Uint8Array(4096).fill(1);
    phys.read(pfn, 0, out, 0, 4096);
    expect(out.every((b) => b === 0)).toBe(true);
    expect(phys.stats().pagesWithData).toBe(0);
  });

  test('writes land at the offset given and read back; other bytes of the page stay zero', () => {
    const phys = new PhysMemory();
    const pfn = phys.allocAnon();
    phys.write(pfn, 4090, new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]), 2, 6);
    const out = new Uint8Array(10);
    phys.read(pfn, 4086, out, 0, 10);
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 2, 3, 4, 5, 6, 7]);
    expect(phys.stats().pagesWithData).toBe(1);
  });
});
