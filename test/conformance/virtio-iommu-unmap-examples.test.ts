/**
 * The UNMAP example table of the virtio-iommu spec (§UNMAP request; reference/virtio-iommu.md §3.5),
 * sent as bytes through the requestq, each sequence on a fresh domain. The examples use byte-granular
 * ranges, so the endpoint offers a 1-byte granule (page_size_mask bit 0: "It is legal for the driver to
 * map one byte at a time if bit 0 of page_size_mask is set") and the device runs its strict checks.
 */
import { Guest, S, U64_MAX } from '../helpers/virtio-iommu-guest';

function byteGranuleGuest(): Guest {
  return new Guest({ endpoints: [{ id: 8, kind: 'emulated', pageSizeMask: U64_MAX, reservedRegions: [] }] });
}

type Step = ['map' | 'unmap', bigint, bigint, number];

// [request, virt_start, virt_end (inclusive), expected status]
const EXAMPLES: Array<[string, Step[], Array<[bigint, bigint]>]> = [
  ['(1) unmap(0,4) succeeds and removes nothing', [['unmap', 0n, 4n, S.OK]], []],
  ['(2) a=map(0,9); unmap(0,9) removes a', [['map', 0n, 9n, S.OK], ['unmap', 0n, 9n, S.OK]], []],
  ['(3) a=map(0,4); b=map(5,9); unmap(0,9) removes a and b', [['map', 0n, 4n, S.OK], ['map', 5n, 9n, S.OK], ['unmap', 0n, 9n, S.OK]], []],
  ['(4) a=map(0,9); unmap(0,4) fails with RANGE and removes nothing', [['map', 0n, 9n, S.OK], ['unmap', 0n, 4n, S.RANGE]], [[0n, 10n]]],
  ['(5) a=map(0,4); b=map(5,9); unmap(0,4) removes a only', [['map', 0n, 4n, S.OK], ['map', 5n, 9n, S.OK], ['unmap', 0n, 4n, S.OK]], [[5n, 10n]]],
  ['(6) a=map(0,4); unmap(0,9) removes a', [['map', 0n, 4n, S.OK], ['unmap', 0n, 9n, S.OK]], []],
  ['(7) a=map(0,4); b=map(10,14); unmap(0,14) removes a and b', [['map', 0n, 4n, S.OK], ['map', 10n, 14n, S.OK], ['unmap', 0n, 14n, S.OK]], []],
];

describe('spec UNMAP examples, as bytes through the requestq', () => {
  test.each(EXAMPLES)('%s', (_name, steps, remaining) => {
    const g = byteGranuleGuest();
    expect(g.attach(1, 8)).toBe(S.OK);
    for (const [op, start, last, expected] of steps) {
      const status = op === 'map' ? g.map(1, start, last, 0x10000n + start) : g.unmap(1, start, last);
      expect([op, start, last, status]).toEqual([op, start, last, expected]);
    }
    const domain = g.device.debugState().domains[0]!;
    expect(domain.mappings.map((m) => [m.start, m.end])).toEqual(remaining);
    // The endpoint's own table holds exactly the domain's mappings.
    const table = (g.device.endpointMapper(8) as unknown as { mappings(): Array<{ start: bigint; end: bigint }> }).mappings();
    expect(table.map((m) => [m.start, m.end])).toEqual(remaining);
  });

  test('the failed unmap of example (4) leaves the mapping usable', () => {
    const g = byteGranuleGuest();
    g.attach(1, 8);
    g.mem.write(0x10000, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    expect(g.map(1, 0n, 9n, 0x10000n, 1)).toBe(S.OK);
    expect(g.unmap(1, 0n, 4n)).toBe(S.RANGE);
    expect([...g.device.endpointDma(8).dmaRead(3n, 4)]).toEqual([4, 5, 6, 7]);
  });

  test('UNMAP(0, ~0) removes every mapping of the domain, including one that ends at the last IOVA', () => {
    const g = byteGranuleGuest();
    g.attach(1, 8);
    expect(g.map(1, 0n, 0xfffn, 0n)).toBe(S.OK);
    expect(g.map(1, 0x1_0000_0000n, 0x1_0000_ffffn, 0x10000n)).toBe(S.OK);
    expect(g.map(1, U64_MAX - 0xfffn, U64_MAX, 0x20000n)).toBe(S.OK);
    expect(g.map(1, 0x8000_0000_0000_0000n, 0x8000_0000_0000_0000n, 0x30000n)).toBe(S.OK);
    expect(g.device.debugState().domains[0]!.mappings).toHaveLength(4);
    expect(g.unmap(1, 0n, U64_MAX)).toBe(S.OK);
    expect(g.device.debugState().domains[0]!.mappings).toEqual([]);
    // The domain itself stays: the endpoint is still attached.
    expect(g.device.debugState().domains.map((d) => d.id)).toEqual([1]);
  });

  test('a MAP of the whole 64-bit space is one mapping that UNMAP(0, ~0) removes', () => {
    const g = byteGranuleGuest();
    g.attach(1, 8);
    expect(g.map(1, 0n, U64_MAX, 0n, 1)).toBe(S.OK);
    expect(g.device.debugState().domains[0]!.mappings).toEqual([{ start: 0n, end: 1n << 64n, phys: 0n, flags: 1 }]);
    expect(g.map(1, 0x1000n, 0x1fffn, 0n)).toBe(S.INVAL);
    expect(g.unmap(1, 0n, U64_MAX - 1n)).toBe(S.RANGE);
    expect(g.unmap(1, 0n, U64_MAX)).toBe(S.OK);
    expect(g.device.debugState().domains[0]!.mappings).toEqual([]);
  });
});
