/**
 * The device carries MAP/UNMAP values as numbers when every field is below 2^53 and as bigints
 * otherwise (request.ts). These sequences mix both kinds of request and mapping in one domain around
 * the boundary (T = 2^53 − 2^32: a u64 whose high word is 0x1f_ffff or more takes the bigint path) and
 * at the top of the address space, and check statuses and what the domain and the endpoint hold.
 */
import { Guest, READ, S, U64_MAX, WRITE } from '../helpers/virtio-iommu-guest';

const T = (1n << 53n) - (1n << 32n);
const TWO_53 = 1n << 53n;

function byteGranuleGuest(): Guest {
  const g = new Guest({ endpoints: [{ id: 8, kind: 'emulated', pageSizeMask: U64_MAX, reservedRegions: [] }] });
  expect(g.attach(1, 8)).toBe(S.OK);
  return g;
}

/** [start, end) of the domain's mappings, and the same from the endpoint's own table. */
function held(g: Guest): { domain: Array<[bigint, bigint]>; endpoint: Array<[bigint, bigint]> } {
  const d = g.device.debugState().domains.find((x) => x.id === 1);
  const table = (g.device.endpointMapper(8) as unknown as { mappings(): Array<{ start: bigint; end: bigint }> }).mappings();
  return { domain: (d?.mappings ?? []).map((m) => [m.start, m.end]), endpoint: table.map((m) => [m.start, m.end]) };
}

function expectHeld(g: Guest, ranges: Array<[bigint, bigint]>): void {
  expect(held(g)).toEqual({ domain: ranges, endpoint: ranges });
}

describe('number and bigint requests in one domain', () => {
  test('a number-path UNMAP touching a mapping that ends above the boundary fails with RANGE and removes nothing', () => {
    const g = byteGranuleGuest();
    expect(g.map(1, T - 0x1000n, T + 0xfffn, 0x10000n)).toBe(S.OK); // virt_end ≥ T: bigint path
    expect(g.unmap(1, T - 0x1000n, T - 1n)).toBe(S.RANGE); // all below T: number path
    expectHeld(g, [[T - 0x1000n, T + 0x1000n]]);
    expect(g.unmap(1, T - 0x1000n, T + 0xfffn)).toBe(S.OK);
    expectHeld(g, []);
  });

  test('number-path MAPs beside a bigint mapping: overlap is INVAL, the neighbour is OK', () => {
    const g = byteGranuleGuest();
    expect(g.map(1, T - 0x1000n, T + 0xfffn, 0x10000n)).toBe(S.OK);
    expect(g.map(1, T - 0x800n, T - 0x7ffn, 0x10000n)).toBe(S.INVAL);
    expect(g.map(1, T - 0x2000n, T - 0x1001n, 0x10000n)).toBe(S.OK);
    expect(g.map(1, T - 0x1001n, T - 0x1000n, 0x10000n)).toBe(S.INVAL);
    expectHeld(g, [
      [T - 0x2000n, T - 0x1000n],
      [T - 0x1000n, T + 0x1000n],
    ]);
  });

  test('mappings straddling and above 2^53 stay exact; number-path requests below leave them alone', () => {
    const g = byteGranuleGuest();
    expect(g.map(1, TWO_53 - 1n, TWO_53 + 1n, 0x10000n)).toBe(S.OK); // 3 bytes across 2^53
    expect(g.map(1, TWO_53 + 2n, TWO_53 + 2n, 0x10000n)).toBe(S.OK); // the next byte, not rounded into it
    expect(g.map(1, TWO_53 + 1n, TWO_53 + 1n, 0x10000n)).toBe(S.INVAL);
    expect(g.map(1, 0x1000n, 0x1fffn, 0x20000n)).toBe(S.OK);
    expect(g.unmap(1, 0n, 0x10_0000n)).toBe(S.OK); // number path: removes only the low mapping
    expectHeld(g, [
      [TWO_53 - 1n, TWO_53 + 2n],
      [TWO_53 + 2n, TWO_53 + 3n],
    ]);
    expect(g.unmap(1, TWO_53 + 2n, TWO_53 + 2n)).toBe(S.OK);
    expect(g.unmap(1, TWO_53, TWO_53 + 1n)).toBe(S.RANGE);
    expectHeld(g, [[TWO_53 - 1n, TWO_53 + 2n]]);
  });

  test('UNMAP(0, ~0) removes number-path and bigint-path mappings alike, up to the last IOVA', () => {
    const g = byteGranuleGuest();
    expect(g.map(1, 0x1000n, 0x1fffn, 0x20000n)).toBe(S.OK);
    expect(g.map(1, T - 0x1000n, T - 1n, 0x20000n)).toBe(S.OK);
    expect(g.map(1, 1n << 60n, (1n << 60n) + 0xfffn, 0x20000n)).toBe(S.OK);
    expect(g.map(1, U64_MAX - 0xfffn, U64_MAX, 0x20000n)).toBe(S.OK);
    expect(g.map(1, 0x2000n, 0x2fffn, 0x20000n)).toBe(S.OK); // a number-path insert among bigint ones
    expectHeld(g, [
      [0x1000n, 0x2000n],
      [0x2000n, 0x3000n],
      [T - 0x1000n, T],
      [1n << 60n, (1n << 60n) + 0x1000n],
      [U64_MAX - 0xfffn, 1n << 64n],
    ]);
    expect(g.unmap(1, 0n, U64_MAX)).toBe(S.OK);
    expectHeld(g, []);
  });

  test('a number-path MAP whose physical end passes 2^53 maps exactly', () => {
    const g = byteGranuleGuest();
    // virt and phys each below T, phys + size above 2^53 − 1: not carried as a number mapping.
    expect(g.map(1, 0x1000n, 0x1fffn, T - 0x800n)).toBe(S.OK);
    const d = g.device.debugState().domains.find((x) => x.id === 1)!;
    expect(d.mappings).toEqual([{ start: 0x1000n, end: 0x2000n, phys: T - 0x800n, flags: READ | WRITE }]);
    expect(g.unmap(1, 0x1000n, 0x1fffn)).toBe(S.OK);
    expectHeld(g, []);
  });
});
