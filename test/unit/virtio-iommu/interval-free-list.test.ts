/**
 * IntervalFreeList: the one free list of the IOVA allocator and the virtqueue driver's buffer area —
 * coalescing with both neighbours, lowest / highest first fit, double frees refused.
 */
import { IntervalFreeList } from '../../../virtio-iommu/interval-free-list';

function list(...ranges: Array<[number, number]>): IntervalFreeList {
  const l = new IntervalFreeList();
  for (const [s, e] of ranges) l.free(s, e);
  return l;
}

describe('IntervalFreeList', () => {
  test.each([
    ['before every interval', [10, 20], [[10, 20], [30, 40], [50, 60]]],
    ['between two intervals, touching neither', [42, 45], [[30, 40], [42, 45], [50, 60]]],
    ['touching the previous interval', [40, 45], [[30, 45], [50, 60]]],
    ['touching the next interval', [45, 50], [[30, 40], [45, 60]]],
    ['filling the gap: the three merge', [40, 50], [[30, 60]]],
    ['after every interval, touching the last', [60, 70], [[30, 40], [50, 70]]],
    ['after every interval', [80, 90], [[30, 40], [50, 60], [80, 90]]],
  ] as Array<[string, [number, number], Array<[number, number]>]>)('free %s', (_name, [s, e], expected) => {
    const l = list([30, 40], [50, 60]);
    l.free(s, e);
    expect(l.intervals()).toEqual(expected);
    expect(l.totalFree).toBe(expected.reduce((sum, [a, b]) => sum + b - a, 0));
  });

  test('frees given in any order end up sorted and coalesced (binary search over many intervals)', () => {
    const l = new IntervalFreeList();
    const order = [7, 3, 9, 1, 5, 0, 8, 2, 6, 4];
    for (const k of order) l.free(k * 20, k * 20 + 10);
    expect(l.intervals()).toEqual(Array.from({ length: 10 }, (_, k) => [k * 20, k * 20 + 10]));
    for (const k of [4, 0, 8, 2, 6, 1, 3, 5, 7]) l.free(k * 20 + 10, k * 20 + 20);
    expect(l.intervals()).toEqual([[0, 190]]);
    expect(l.totalFree).toBe(190);
  });

  test('allocLowest takes from the start of the lowest interval large enough', () => {
    const l = list([0, 4], [10, 30], [40, 100]);
    expect(l.allocLowest(8)).toBe(10);
    expect(l.intervals()).toEqual([[0, 4], [18, 30], [40, 100]]);
    expect(l.allocLowest(4)).toBe(0);
    expect(l.intervals()).toEqual([[18, 30], [40, 100]]);
    expect(l.allocLowest(61)).toBe(-1);
    expect(l.totalFree).toBe(72);
  });

  test('allocHighest takes from the end of the highest interval large enough', () => {
    const l = list([0, 40], [50, 60], [70, 74]);
    expect(l.allocHighest(8)).toBe(52);
    expect(l.intervals()).toEqual([[0, 40], [50, 52], [70, 74]]);
    expect(l.allocHighest(4)).toBe(70);
    expect(l.intervals()).toEqual([[0, 40], [50, 52]]);
    expect(l.allocHighest(41)).toBe(-1);
    expect(l.totalFree).toBe(42);
  });

  test.each([
    ['overlapping an interval from below', 25, 31],
    ['overlapping an interval from above', 39, 45],
    ['inside an interval', 32, 35],
    ['covering an interval', 20, 50],
    ['empty', 45, 45],
    ['reversed', 46, 45],
  ])('a free %s is refused with RangeError and changes nothing', (_name, s, e) => {
    const l = list([30, 40], [50, 60]);
    expect(() => l.free(s, e)).toThrow(RangeError);
    expect(l.intervals()).toEqual([[30, 40], [50, 60]]);
  });
});
