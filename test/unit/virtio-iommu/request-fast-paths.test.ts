/**
 * The shortcuts of the request path give the answers of the general code they bypass:
 * - exactNumber (the bigint → number test of every Addr fast path) on both sides of 0, 2^53 and 2^64;
 * - decodeRequest from the virtqueue's words and from bytes alone (any alignment) decode alike;
 * - the walk of Linux's request chain (INDIRECT head, [readable, NEXT] [writable] table) accepts it,
 *   and every damaged variant gets the general walk's answer;
 * - the guest driver refuses to map over a live mapping and keeps its record unchanged.
 */
import { GuestMemory, Kernel, uapi, VirtioIommuDevice, VirtioIommuDriver } from '../../../index';
import { exactNumber } from '../../../virtio-iommu/exact-number';
import { decodeRequest } from '../../../virtio-iommu/request';
import type { PopResult } from '../../../virtio-iommu/split-virtqueue';
import { attachReq, detachReq, mapReq, probeReq, READ, unmapReq, WRITE } from '../../helpers/virtio-iommu-guest';
import { virtqueueWorld } from '../../helpers/virtqueue-world';

const { VIRTQ_DESC_F_NEXT: NEXT, VIRTQ_DESC_F_WRITE: WRITE_DESC, VIRTQ_DESC_F_INDIRECT: INDIRECT } = uapi;

describe('exactNumber', () => {
  test.each([
    [0n, 0],
    [1n, 1],
    [0xffff_ffffn, 0xffff_ffff],
    [0x1_0000_0000n, 0x1_0000_0000],
    [0x12_3456_789a_bcden, 0x12_3456_789a_bcde],
    [(1n << 53n) - 1n, Number.MAX_SAFE_INTEGER],
    [1n << 53n, -1],
    [(1n << 64n) - 1n, -1],
    [(1n << 64n) + 5n, -1],
    [-1n, -1],
    [-(1n << 64n) + 5n, -1],
  ])('%s → %s', (v, expected) => {
    expect(exactNumber(v)).toBe(expected);
  });
});

describe('decodeRequest: words and bytes decode alike', () => {
  const requests: Array<[string, Uint8Array]> = [
    ['MAP', mapReq(7, 0x10_0000n, 0x10_ffffn, 0x8000_0000n, READ | WRITE).readable],
    ['MAP past 2^53', mapReq(7, 1n << 60n, (1n << 64n) - 1n, 0xffff_ffff_0000_0000n, READ).readable],
    ['UNMAP', unmapReq(7, 0x10_0000n, 0x10_ffffn).readable],
    ['UNMAP(0, ~0)', unmapReq(7, 0n, (1n << 64n) - 1n, 9).readable],
    ['ATTACH', attachReq(3, 0x10, 1, 5).readable],
    ['DETACH', detachReq(3, 0x10).readable],
    ['PROBE', probeReq(0x10, 512).readable],
    ['truncated MAP', mapReq(7, 0n, 0xfffn, 0n).readable.subarray(0, 20)],
    ['unknown type', Uint8Array.of(0x42, 0, 0, 0, 1, 2, 3, 4)],
    ['no head', Uint8Array.of(1, 0)],
  ];

  test.each(requests)('%s', (_name, bytes) => {
    // The device's way: the bytes at the start of a word-aligned scratch, read through its words.
    const scratch = new Uint8Array(128);
    scratch.set(bytes);
    const fromWords = decodeRequest(scratch.subarray(0, bytes.length), new Uint32Array(scratch.buffer));
    // Bytes alone, at an odd offset of their buffer.
    const odd = new Uint8Array(bytes.length + 1);
    odd.set(bytes, 1);
    const fromBytes = decodeRequest(odd.subarray(1));
    expect({ ...fromWords }).toEqual({ ...fromBytes });
    if (fromWords.kind === 'map' && fromBytes.kind === 'map') {
      expect([fromWords.start, fromWords.end, fromWords.phys]).toEqual([fromBytes.start, fromBytes.end, fromBytes.phys]);
    }
  });

  test('fields land where the spec puts them (MAP past 2^53 keeps every bit)', () => {
    const req = decodeRequest(mapReq(9, 1n << 60n, (1n << 64n) - 1n, 0xffff_ffff_0000_0000n, READ).readable);
    expect(req).toMatchObject({ kind: 'map', domain: 9, flags: READ, small: false, start: 1n << 60n, end: 1n << 64n, phys: 0xffff_ffff_0000_0000n });
  });
});

/** The fields of the chain the walk tests lay out. */
interface Layout {
  readAddr: number;
  readLen: number;
  readFlags: number;
  next: number;
  writeAddr: number;
  writeLen: number;
  writeFlags: number;
  tableLen: number;
  headFlags: number;
}

describe("the walk of Linux's request chain", () => {
  const request = mapReq(7, 0x10_0000n, 0x10_ffffn, 0x8000_0000n).readable;

  /** Lays out head → [table: readable (NEXT → 1), writable] and applies `damage` to the layout first. */
  function pop(damage: (t: Layout) => void, world: { size?: number; ram?: bigint } = {}): PopResult {
    const w = virtqueueWorld({ indirect: true, ...world });
    const data = w.drv.dataStart;
    const table = data + 0x100;
    w.mem.write(data, request);
    const t = { readAddr: data, readLen: request.length, readFlags: NEXT, next: 1, writeAddr: data + 0x80, writeLen: 4, writeFlags: WRITE_DESC, tableLen: 32, headFlags: INDIRECT };
    damage(t);
    w.mem.write(table, uapi.VirtqDesc.encode({ addr: BigInt(t.readAddr), len: t.readLen, flags: t.readFlags, next: t.next }));
    w.mem.write(table + 16, uapi.VirtqDesc.encode({ addr: BigInt(t.writeAddr), len: t.writeLen, flags: t.writeFlags, next: 0 }));
    w.drv.addRaw([{ addr: table, len: t.tableLen, flags: t.headFlags }]);
    return w.dev.pop();
  }

  test('the chain as Linux lays it out', () => {
    const r = pop(() => {});
    if (r === 'empty' || 'malformed' in r) throw new Error(`expected a chain, got ${JSON.stringify(r)}`);
    expect(r.readable).toEqual(request);
    expect(r.writableLength).toBe(4);
  });

  test.each([
    ['the writable buffer inside the indirect table', (t: Layout) => (t.writeAddr = t.readAddr + 0x100 + 8), 'overlaps-ring'],
    ['the writable buffer on the descriptor table', (t: Layout) => (t.writeAddr = 0x1000), 'overlaps-ring'],
    ['readable after writable', (t: Layout) => ((t.readFlags = NEXT | WRITE_DESC), (t.writeFlags = 0)), 'readable-after-writable'],
    ['NEXT past the table', (t: Layout) => (t.next = 5), 'next-out-of-range'],
    ['a readable buffer outside guest RAM', (t: Layout) => (t.readAddr = (1 << 20) - 8), 'outside-guest-memory'],
    ['INDIRECT with NEXT', (t: Layout) => (t.headFlags = INDIRECT | NEXT), 'indirect-with-next'],
    ['a table length that is not a multiple of 16', (t: Layout) => (t.tableLen = 33), 'indirect-bad-length'],
    ['a nested INDIRECT', (t: Layout) => (t.readFlags = INDIRECT), 'nested-indirect'],
  ] as Array<[string, (t: Layout) => void, string]>)('%s: the general walk names it', (_name, damage, reason) => {
    expect(pop(damage)).toMatchObject({ malformed: reason });
  });

  test('a two-entry table in a queue of one: indirect-too-long', () => {
    expect(pop(() => {}, { size: 1 })).toMatchObject({ malformed: 'indirect-too-long' });
  });

  test('more than 2^32 bytes in the chain: chain-too-large', () => {
    expect(pop((t) => ((t.writeAddr = 0x1000_0000), (t.writeLen = 0xffff_ffff)), { ram: 1n << 33n })).toMatchObject({ malformed: 'chain-too-large' });
  });

  test.each([
    ['a readable part that is not whole words', (t: Layout) => (t.readLen = request.length - 1), request.subarray(0, request.length - 1)],
    ['a table of three descriptors (the writable one split)', (t: Layout) => (t.tableLen = 48), request],
  ] as Array<[string, (t: Layout) => void, Uint8Array]>)('%s: the general walk accepts it', (_name, damage, readable) => {
    const r = pop(damage);
    if (r === 'empty' || 'malformed' in r) throw new Error(`expected a chain, got ${JSON.stringify(r)}`);
    expect(r.readable).toEqual(readable);
  });
});

describe('the guest driver', () => {
  test('refuses a MAP over a live mapping and keeps its record', () => {
    const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
    const vmm = kernel.spawn({ name: 'vmm' });
    const ram = 16 << 20;
    const hva = vmm.mmap(ram);
    const device = new VirtioIommuDevice(vmm, { guestRam: { hva, size: BigInt(ram) }, endpoints: [{ id: 0x10, kind: 'emulated' }] });
    const driver = new VirtioIommuDriver(device, new GuestMemory(vmm, hva, BigInt(ram)), { base: 1 << 20 });
    driver.init();
    const d = driver.createDomain();
    driver.attach(d, 0x10);
    driver.map(d, 0x10_0000n, 0x40_0000n, 0x2000n, READ | WRITE);
    const requests = driver.stats.requests;
    expect(() => driver.map(d, 0x10_1000n, 0x50_0000n, 0x1000n, READ)).toThrow(new RangeError('0x1000 bytes at IOVA 0x101000 overlap a mapping of the domain'));
    expect(driver.stats.requests).toBe(requests);
    expect([...d.mappings].map((m) => [m.start, m.size, m.phys])).toEqual([[0x10_0000n, 0x2000n, 0x40_0000n]]);
    driver.unmap(d, 0x10_0000n, 0x2000n);
    expect(d.mappings.size).toBe(0);
    expect(device.debugState().domains[0]!.mappings).toEqual([]);
    expect(driver.stats.failedRequests).toBe(0);
  });

  test.each([
    ['an empty range', 0x1000n, 0n],
    ['a range past 2^64', (1n << 64n) - 0x1000n, 0x2000n],
    ['a negative IOVA', -0x1000n, 0x1000n],
  ])('refuses %s', (_name, iova, size) => {
    const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
    const vmm = kernel.spawn({ name: 'vmm' });
    const hva = vmm.mmap(16 << 20);
    const device = new VirtioIommuDevice(vmm, { guestRam: { hva, size: 16n << 20n }, endpoints: [{ id: 0x10, kind: 'emulated' }] });
    const driver = new VirtioIommuDriver(device, new GuestMemory(vmm, hva, 16n << 20n), { base: 1 << 20 });
    driver.init();
    const d = driver.createDomain();
    expect(() => driver.map(d, iova, 0x40_0000n, size, READ)).toThrow(RangeError);
    expect(d.mappings.size).toBe(0);
  });
});
