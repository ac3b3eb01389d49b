/**
 * SplitVirtqueue (device side) driven by VirtqueueDriver (driver side) over guest RAM: round trips of
 * direct and indirect chains split every way, every malformed chain and what pop answers for it, the
 * broken-ring case, queue sizes 1 to 32768, and the rule that the device writes nothing but writable
 * buffers and the used ring. Notification suppression is in virtqueue-notifications.test.ts.
 */
import * as fc from 'fast-check';
import { SimBugError, uapi } from '../../../index';
import {
  checkQueueConfig,
  SplitVirtqueue,
  virtqLayout,
  type DescriptorChain,
  type MalformedReason,
  type PopResult,
} from '../../../virtio-iommu/split-virtqueue';
import type { MalformedKind, Segment } from '../../../virtio-iommu/virtqueue-driver';
import { changedOffsets, snapshot, virtqueueWorld, type VirtqueueWorld } from '../../helpers/virtqueue-world';

const { VIRTQ_DESC_F_NEXT: NEXT, VIRTQ_DESC_F_WRITE: WRITE, VIRTQ_DESC_F_INDIRECT: INDIRECT } = uapi;

/** A MAP request as Linux frames it: 36 readable bytes, then the 4-byte tail. */
const MAP_REQUEST = uapi.VirtioIommuReqMap.encode({
  type: uapi.VIRTIO_IOMMU_T_MAP,
  domain: 7,
  virt_start: 0x10_0000n,
  virt_end: 0x10_ffffn,
  phys_start: 0x8000_0000n,
  flags: uapi.VIRTIO_IOMMU_MAP_F_READ | uapi.VIRTIO_IOMMU_MAP_F_WRITE,
}).subarray(0, 36);
const MAP_SEGMENTS: Segment[] = [
  { bytes: MAP_REQUEST, writable: false },
  { bytes: Uint8Array.of(0xff, 0xff, 0xff, 0xff), writable: true },
];

function chainOf(r: PopResult): DescriptorChain {
  if (r === 'empty' || 'malformed' in r) throw new Error(`expected a chain, got ${JSON.stringify(r)}`);
  return r;
}

/** Pops one chain, writes `reply` at writable offset 0, pushes it with the bytes written. */
function serve(w: VirtqueueWorld, reply: Uint8Array): DescriptorChain {
  const chain = chainOf(w.dev.pop());
  const n = chain.write(0, reply);
  w.dev.push(chain.head, n);
  return chain;
}

describe('layout and configuration', () => {
  test('virtqLayout gives the spec sizes: 16N, 6 + 2N, 6 + 8N, and the event fields at the ends', () => {
    expect(virtqLayout(256)).toEqual({ descBytes: 4096, availBytes: 518, usedBytes: 2054, usedEventOffset: 516, availEventOffset: 2052 });
  });

  test('the driver lays the rings out aligned and back to back', () => {
    const w = virtqueueWorld({ base: 0x1003, size: 8 });
    // desc 16-aligned; avail right after 16·8 bytes; used at the next 4-aligned GPA after 6 + 2·8 bytes.
    expect(w.drv.config).toEqual({ size: 8, desc: 0x1010, avail: 0x1090, used: 0x10a8 });
    expect(checkQueueConfig(w.mem, w.drv.config)).toBeUndefined();
  });

  test.each([
    [{ size: 0 }, 'queue size 0 is not a power of two in [1, 32768]'],
    [{ size: 3 }, 'queue size 3 is not a power of two in [1, 32768]'],
    [{ size: 65536 }, 'queue size 65536 is not a power of two in [1, 32768]'],
    [{ desc: 0x2008 }, 'descriptor table address 8200 is not 16-byte aligned'],
    [{ avail: 0x3001 }, 'available ring address 12289 is not 2-byte aligned'],
    [{ used: 0x4002 }, 'used ring address 16386 is not 4-byte aligned'],
    [{ desc: 0xfff10 }, 'the descriptor table is outside guest memory'],
    [{ avail: 0xfffe0 }, 'the available ring is outside guest memory'],
    [{ used: 0xfffa0 }, 'the used ring is outside guest memory'],
    [{ used: 0x2040 }, 'the used ring overlaps the descriptor table'],
    [{ used: 0x3000 }, 'the used ring overlaps the available ring'],
  ] as const)('config %o is refused: %s', (patch, message) => {
    const w = virtqueueWorld({ size: 16 });
    const config = { size: 16, desc: 0x2000, avail: 0x3000, used: 0x4000, ...patch };
    expect(checkQueueConfig(w.mem, config)).toBe(message);
    expect(() => new SplitVirtqueue(w.mem, config, { indirect: false, eventIdx: false })).toThrow(new RangeError(message));
  });

  test.each([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768])(
    'queue size %d: a full ring of chains, completed in reverse order, crossing the ring end and the u16 wrap',
    (size) => {
      // Start half a ring before index 65536: the ring slots wrap mid-ring and the indices wrap at 65536.
      const start = (65536 - Math.ceil(size / 2)) & 0xffff;
      const rounds = size <= 1024 ? 2 : 1;
      const w = virtqueueWorld({ size, ram: 4n << 20n, dataBytes: 16 * size, startIdx: start });
      for (let round = 0; round < rounds; round++) {
        const heads: number[] = [];
        for (let i = 0; i < size; i++) heads.push(w.drv.add([{ length: 4, writable: true }]));
        expect(w.drv.freeDescriptors).toBe(0);
        const chains: DescriptorChain[] = [];
        for (let i = 0; i < size; i++) chains.push(chainOf(w.dev.pop()));
        expect(w.dev.pop()).toBe('empty');
        expect(chains.map((c) => c.head)).toEqual(heads);
        for (let i = size - 1; i >= 0; i--) {
          const c = chains[i]!;
          c.write(0, Uint8Array.of(i & 0xff, 1, 2, 3));
          w.dev.push(c.head, 4);
        }
        const used = w.drv.reap();
        expect(used.map((e) => e.head)).toEqual([...heads].reverse());
        expect(used.every((e, j) => e.len === 4 && e.writable[0] === ((size - 1 - j) & 0xff))).toBe(true);
        expect(w.drv.freeDescriptors).toBe(size);
      }
      expect(w.dev.lastAvailIdx).toBe((start + rounds * size) & 0xffff);
      expect(w.dev.usedIdx).toBe((start + rounds * size) & 0xffff);
      expect(w.mem.readU16(w.drv.config.used + 2)).toBe((start + rounds * size) & 0xffff);
    },
  );
});

describe.each([
  ['direct', false, 0],
  ['indirect', true, 0],
  ['direct, hva not page aligned', false, 1],
  ['indirect, hva not page aligned', true, 1],
])('round trips (%s)', (_name, indirect, skew) => {
  const world = (size = 64): VirtqueueWorld => virtqueueWorld({ size, indirect, skew });

  test('a MAP request arrives whole; the tail written comes back with its used length', () => {
    const w = world();
    const head = w.drv.add(MAP_SEGMENTS, { indirect });
    const chain = chainOf(w.dev.pop());
    expect(chain.head).toBe(head);
    expect(chain.readable).toEqual(MAP_REQUEST);
    expect(chain.writableLength).toBe(4);
    expect(chain.write(0, Uint8Array.of(0, 0, 0, 0))).toBe(4);
    w.dev.push(chain.head, 4);
    expect(w.drv.reap()).toEqual([{ head, len: 4, writable: Uint8Array.of(0, 0, 0, 0) }]);
    expect(w.drv.freeDescriptors).toBe(64);
    expect([w.dev.inFlight, w.drv.inFlight]).toEqual([0, 0]);
    expect(w.dev.pop()).toBe('empty');
  });

  test('the same request split into 1-byte descriptors (40 of them) arrives whole', () => {
    const w = world();
    const head = w.drv.add(MAP_SEGMENTS, { indirect, splitEvery: 1 });
    expect(w.drv.freeDescriptors).toBe(indirect ? 63 : 24);
    const chain = serve(w, Uint8Array.of(4, 0, 0, 0));
    expect(chain.readable).toEqual(MAP_REQUEST);
    expect(chain.writableLength).toBe(4);
    expect(w.drv.reap()).toEqual([{ head, len: 4, writable: Uint8Array.of(4, 0, 0, 0) }]);
  });

  test.each([1, 3, 7, 35, 36, 37])('split every %d bytes with gaps between the pieces, the request is gathered in order', (n) => {
    const w = world();
    const head = w.drv.add(MAP_SEGMENTS, { indirect, splitEvery: n, gap: 5 });
    const chain = serve(w, Uint8Array.of(5, 0, 0, 0));
    expect(chain.readable).toEqual(MAP_REQUEST);
    expect(w.drv.reap()).toEqual([{ head, len: 4, writable: Uint8Array.of(5, 0, 0, 0) }]);
  });

  test('a reply is scattered over writable pieces in order, clamped to the writable length', () => {
    const w = world();
    const reply = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
    const head = w.drv.add(
      [
        { length: 8, writable: false },
        { length: 60, writable: true },
      ],
      { indirect, splitEvery: 7, gap: 3 },
    );
    const chain = chainOf(w.dev.pop());
    expect(chain.writableLength).toBe(60);
    expect(chain.write(10, reply.subarray(0, 20))).toBe(20);
    expect(chain.write(55, reply.subarray(20))).toBe(5);
    expect(chain.write(60, reply)).toBe(0);
    expect(chain.write(0, new Uint8Array(0))).toBe(0);
    w.dev.push(chain.head, 60);
    const want = new Uint8Array(60);
    want.set(reply.subarray(0, 20), 10);
    want.set(reply.subarray(20, 25), 55);
    expect(w.drv.reap()).toEqual([{ head, len: 60, writable: want }]);
  });

  test('a device-writable-only buffer (an eventq buffer) has no readable bytes', () => {
    const w = world();
    const head = w.drv.add([{ length: 24, writable: true }], { indirect });
    const chain = chainOf(w.dev.pop());
    expect([chain.readable.length, chain.writableLength]).toEqual([0, 24]);
    const record = uapi.VirtioIommuFault.encode({ reason: 2, flags: 0x101, endpoint: 8, address: 0x1000n });
    expect(chain.write(0, record)).toBe(24);
    w.dev.push(chain.head, 24);
    expect(w.drv.reap()).toEqual([{ head, len: 24, writable: record }]);
  });

  test('a readable-only chain has nothing to write into', () => {
    const w = world();
    w.drv.add([{ bytes: Uint8Array.of(1, 2, 3), writable: false }], { indirect });
    const chain = chainOf(w.dev.pop());
    expect([Array.from(chain.readable), chain.writableLength]).toEqual([[1, 2, 3], 0]);
    expect(chain.write(0, Uint8Array.of(9))).toBe(0);
    w.dev.push(chain.head, 0);
  });

  test('chains are completed out of order; a kept chain can still be written after later pops', () => {
    const w = world();
    const a = w.drv.add(MAP_SEGMENTS, { indirect });
    const b = w.drv.add([{ length: 4, writable: false }, { length: 4, writable: true }], { indirect });
    const ca = chainOf(w.dev.pop());
    const cb = chainOf(w.dev.pop());
    cb.write(0, Uint8Array.of(2, 2, 2, 2));
    w.dev.push(cb.head, 4);
    ca.write(0, Uint8Array.of(1, 1, 1, 1));
    w.dev.push(ca.head, 4);
    expect(w.drv.reap()).toEqual([
      { head: b, len: 4, writable: Uint8Array.of(2, 2, 2, 2) },
      { head: a, len: 4, writable: Uint8Array.of(1, 1, 1, 1) },
    ]);
  });

  test('the device writes only the writable buffers and the used ring', () => {
    const w = world();
    const { desc, used } = w.drv.config;
    const region = w.drv.end - desc;
    w.drv.add([{ bytes: MAP_REQUEST, writable: false }, { length: 20, writable: true }], { indirect, splitEvery: 6, gap: 2 });
    const before = snapshot(w.mem, desc, region);
    const chain = chainOf(w.dev.pop());
    chain.write(0, new Uint8Array(20).fill(0xee));
    w.dev.push(chain.head, 20);
    const after = snapshot(w.mem, desc, region);
    const outsideUsedRing = changedOffsets(before, after).filter((o) => o + desc < used || o + desc >= used + 6 + 8 * 64);
    // Every other changed byte now holds 0xee, and there are exactly 20 of them (the writable pieces).
    expect(outsideUsedRing.length).toBe(20);
    expect(outsideUsedRing.every((o) => after[o] === 0xee)).toBe(true);
    expect(w.drv.reap()[0]!.writable).toEqual(new Uint8Array(20).fill(0xee));
  });
});

describe('chain shapes the device must accept', () => {
  test('zero or more direct descriptors followed by one INDIRECT descriptor', () => {
    const w = virtqueueWorld({ indirect: true });
    const data = w.drv.dataStart;
    w.mem.write(data, MAP_REQUEST);
    const table = data + 0x100;
    w.mem.write(table, uapi.VirtqDesc.encode({ addr: BigInt(data + 20), len: 16, flags: NEXT, next: 1 }));
    w.mem.write(table + 16, uapi.VirtqDesc.encode({ addr: BigInt(data + 0x80), len: 4, flags: WRITE, next: 0 }));
    w.drv.addRaw([
      { addr: data, len: 10, flags: NEXT, next: 1 },
      { addr: data + 10, len: 10, flags: NEXT, next: 2 },
      // "The device MUST ignore the write-only flag ... in the descriptor that refers to an indirect table."
      { addr: table, len: 32, flags: INDIRECT | WRITE },
    ]);
    const chain = chainOf(w.dev.pop());
    expect(chain.readable).toEqual(MAP_REQUEST);
    expect(chain.writableLength).toBe(4);
  });

  test('an indirect table of 36 descriptors (35 readable, 1 writable) in a queue of 64', () => {
    const w = virtqueueWorld({ indirect: true, size: 64 });
    const segments: Segment[] = [];
    for (let i = 0; i < 34; i++) segments.push({ bytes: MAP_REQUEST.subarray(i, i + 1), writable: false });
    segments.push({ bytes: MAP_REQUEST.subarray(34), writable: false }, { length: 4, writable: true });
    const head = w.drv.add(segments, { indirect: true });
    expect(w.mem.readU32(w.drv.config.desc + 16 * head + 8)).toBe(36 * 16);
    const chain = serve(w, Uint8Array.of(0, 0, 0, 0));
    expect(chain.readable).toEqual(MAP_REQUEST);
    expect(w.drv.reap()[0]!.len).toBe(4);
  });

  test('the same 36-descriptor table is longer than a queue of 32: indirect-too-long', () => {
    const w = virtqueueWorld({ indirect: true, size: 32 });
    const segments: Segment[] = Array.from({ length: 35 }, (_, i) => ({ bytes: MAP_REQUEST.subarray(i, i + 1), writable: false }));
    segments.push({ length: 4, writable: true });
    const head = w.drv.add(segments, { indirect: true });
    expect(w.dev.pop()).toEqual({ malformed: 'indirect-too-long', head });
  });

  test('zero-length descriptors are accepted wherever their address points', () => {
    const w = virtqueueWorld();
    const data = w.drv.dataStart;
    w.mem.write(data, MAP_REQUEST);
    w.drv.addRaw([
      { addr: 2 ** 60, len: 0, flags: NEXT, next: 1 },
      { addr: data, len: 36, flags: NEXT, next: 2 },
      { addr: -1 >>> 0, len: 0, flags: NEXT | WRITE, next: 3 },
      { addr: data + 64, len: 4, flags: WRITE },
    ]);
    const chain = chainOf(w.dev.pop());
    expect([chain.readable, chain.writableLength]).toEqual([MAP_REQUEST, 4]);
  });

  test('an indirect table that is not 16-byte aligned and straddles a page boundary', () => {
    const w = virtqueueWorld({ indirect: true, ram: 1n << 20n });
    const table = 0x8000 - 24; // entry 1 starts 8 bytes before the page boundary
    const data = 0x9000;
    w.mem.write(data, MAP_REQUEST);
    w.mem.write(table, uapi.VirtqDesc.encode({ addr: BigInt(data), len: 36, flags: NEXT, next: 1 }));
    w.mem.write(table + 16, uapi.VirtqDesc.encode({ addr: BigInt(data + 0x100), len: 4, flags: WRITE, next: 0 }));
    w.drv.addRaw([{ addr: table, len: 32, flags: INDIRECT }]);
    const chain = chainOf(w.dev.pop());
    expect([chain.readable, chain.writableLength]).toEqual([MAP_REQUEST, 4]);
    chain.write(0, Uint8Array.of(1, 2, 3, 4));
    expect(w.mem.readU32(data + 0x100)).toBe(0x04030201);
  });

  test('a readable buffer that spans pages and is longer than the small-copy path', () => {
    const w = virtqueueWorld({ dataBytes: 0x4000 });
    const big = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
    w.drv.add([{ bytes: big, writable: false }, { length: 4, writable: true }]);
    expect(chainOf(w.dev.pop()).readable).toEqual(big);
  });
});

describe('malformed chains', () => {
  test.each<[MalformedKind, MalformedReason]>([
    ['loop', 'loop'],
    ['out-of-range', 'outside-guest-memory'],
    ['readable-after-writable', 'readable-after-writable'],
    ['oversized', 'indirect-too-long'],
    ['nested-indirect', 'nested-indirect'],
    ['indirect-with-next', 'indirect-with-next'],
    ['indirect-bad-length', 'indirect-bad-length'],
    ['indirect-out-of-range', 'outside-guest-memory'],
    ['head-out-of-range', 'head-out-of-range'],
    ['next-out-of-range', 'next-out-of-range'],
    ['writable-over-descriptors', 'overlaps-ring'],
  ])('%s: pop answers %s, writes nothing; completed with length 0 it frees everything', (kind, reason) => {
    const w = virtqueueWorld({ indirect: true, size: 16 });
    const ram = Number(w.mem.size);
    const head = w.drv.addMalformed(kind);
    const before = snapshot(w.mem, 0, ram);
    expect(w.dev.pop()).toEqual({ malformed: reason, head });
    expect(changedOffsets(before, snapshot(w.mem, 0, ram))).toEqual([]);
    w.dev.push(head, 0);
    // Only the used element and used.idx changed.
    const { used } = w.drv.config;
    const changed = changedOffsets(before, snapshot(w.mem, 0, ram));
    expect(changed.every((o) => o >= used + 2 && o < used + 12)).toBe(true);
    const [entry] = w.drv.reap();
    expect([entry!.head, entry!.len]).toEqual([head, 0]);
    expect([w.drv.freeDescriptors, w.drv.inFlight, w.dev.inFlight]).toEqual([16, 0, 0]);
    // The queue still works.
    const next = w.drv.add(MAP_SEGMENTS);
    serve(w, Uint8Array.of(0, 0, 0, 0));
    expect(w.drv.reap().map((e) => e.head)).toEqual([next]);
  });

  test('INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated: indirect-without-feature', () => {
    const w = virtqueueWorld({ indirect: true, deviceIndirect: false });
    const head = w.drv.add(MAP_SEGMENTS, { indirect: true });
    expect(w.dev.pop()).toEqual({ malformed: 'indirect-without-feature', head });
  });

  test('a readable part over the device limit: readable-too-large', () => {
    const w = virtqueueWorld({ device: { maxReadableBytes: 35 } });
    const head = w.drv.add(MAP_SEGMENTS);
    expect(w.dev.pop()).toEqual({ malformed: 'readable-too-large', head });
    const ok = w.drv.add([{ length: 35, writable: false }]);
    w.dev.push(head, 0);
    expect(chainOf(w.dev.pop()).head).toBe(ok);
  });

  test('a chain of more than 2^32 bytes: chain-too-large', () => {
    const ram = 4n << 30n; // 4 GiB + the driver region above it; nothing is touched
    const w = virtqueueWorld({ ram: ram + (1n << 20n), base: Number(ram) });
    const head = w.drv.addRaw([
      { addr: 0, len: 0xffff_ffff, flags: WRITE | NEXT, next: 1 },
      { addr: 0, len: 2, flags: WRITE },
    ]);
    expect(w.dev.pop()).toEqual({ malformed: 'chain-too-large', head });
  });

  test.each<[string, MalformedReason, (table: number) => { addr: number; len: number; flags: number; next: number }[]]>([
    ['a writable buffer over its own indirect table', 'overlaps-ring', (t) => [
      { addr: 0x100, len: 1, flags: NEXT, next: 1 },
      { addr: t + 8, len: 4, flags: WRITE, next: 0 },
    ]],
    ['a loop inside the indirect table', 'loop', () => [
      { addr: 0x100, len: 1, flags: NEXT, next: 1 },
      { addr: 0x100, len: 1, flags: NEXT, next: 0 },
    ]],
    ['next past the end of the indirect table', 'next-out-of-range', () => [
      { addr: 0x100, len: 1, flags: NEXT, next: 1 },
      { addr: 0x100, len: 1, flags: NEXT, next: 2 },
    ]],
    ['a writable buffer that runs past the end of RAM', 'outside-guest-memory', () => [
      { addr: 0x100, len: 1, flags: NEXT, next: 1 },
      { addr: (1 << 20) - 2, len: 4, flags: WRITE, next: 0 },
    ]],
    ['a readable descriptor after a zero-length writable one', 'readable-after-writable', () => [
      { addr: 0x100, len: 0, flags: WRITE | NEXT, next: 1 },
      { addr: 0x100, len: 1, flags: 0, next: 0 },
    ]],
    ['a writable buffer over the available ring', 'overlaps-ring', () => [{ addr: 0x1000 + 16 * 16 + 4, len: 2, flags: WRITE, next: 0 }]],
    ['a writable buffer over the queue\'s descriptor table', 'overlaps-ring', () => [{ addr: 0x1000 + 16 * 15, len: 32, flags: WRITE, next: 0 }]],
  ])('%s: %s', (_name, reason, entries) => {
    const w = virtqueueWorld({ indirect: true });
    const table = w.drv.dataStart;
    const descs = entries(table);
    descs.forEach((d, i) => w.mem.write(table + 16 * i, uapi.VirtqDesc.encode({ addr: BigInt(d.addr), len: d.len, flags: d.flags, next: d.next })));
    const head = w.drv.addRaw([{ addr: table, len: 16 * descs.length, flags: INDIRECT }]);
    expect(w.dev.pop()).toEqual({ malformed: reason, head });
  });

  test('an indirect table over the used ring: overlaps-ring', () => {
    const w = virtqueueWorld({ indirect: true });
    const head = w.drv.addRaw([{ addr: w.drv.config.used, len: 16, flags: INDIRECT }]);
    expect(w.dev.pop()).toEqual({ malformed: 'overlaps-ring', head });
  });

  test('avail.idx more than N ahead: ring, head -1, nothing consumed, and it stays broken', () => {
    const w = virtqueueWorld({ size: 8 });
    w.drv.add(MAP_SEGMENTS);
    serve(w, new Uint8Array(4));
    w.drv.reap();
    w.drv.jumpAvailIdx(9);
    expect(w.dev.pop()).toEqual({ malformed: 'ring', head: -1 });
    expect([w.dev.lastAvailIdx, w.dev.inFlight, w.dev.isBroken]).toEqual([1, 0, true]);
    w.drv.jumpAvailIdx(-9);
    expect(w.dev.pop()).toEqual({ malformed: 'ring', head: -1 });
  });

  test('avail.idx exactly N ahead is not a broken ring', () => {
    const w = virtqueueWorld({ size: 8 });
    w.drv.jumpAvailIdx(8);
    for (let i = 0; i < 8; i++) expect(chainOf(w.dev.pop()).head).toBe(0);
    expect(w.dev.pop()).toBe('empty');
    expect(w.dev.isBroken).toBe(false);
  });

  test('push with nothing popped is a device bug', () => {
    const w = virtqueueWorld();
    expect(() => w.dev.push(0, 0)).toThrow(SimBugError);
  });

  test('a negative writable offset is a device bug (RangeError)', () => {
    const w = virtqueueWorld();
    w.drv.add(MAP_SEGMENTS);
    expect(() => chainOf(w.dev.pop()).write(-1, new Uint8Array(1))).toThrow(RangeError);
  });
});

describe('guest garbage (property)', () => {
  const SIZE = 8;
  const RAM = 0x4000;
  const garbage = fc.record({
    indirect: fc.boolean(),
    eventIdx: fc.boolean(),
    // Descriptors with addresses around the end of RAM, random lengths, flags and next values.
    table: fc.array(
      fc.record({
        addr: fc.oneof(fc.integer({ min: 0, max: RAM + 64 }), fc.constantFrom(0x1000, 0x1080, RAM - 4, 2 ** 40)),
        len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(16, 32, 48, 0xffff_ffff)),
        flags: fc.integer({ min: 0, max: 7 }),
        next: fc.integer({ min: 0, max: 10 }),
      }),
      { minLength: SIZE, maxLength: SIZE },
    ),
    ring: fc.array(fc.integer({ min: 0, max: 12 }), { minLength: SIZE, maxLength: SIZE }),
    availIdx: fc.integer({ min: 0, max: 0xffff }),
    write: fc.boolean(),
  });

  test('pop never throws; without writes only the used ring changes; with writes the rings never change', () => {
    fc.assert(
      fc.property(garbage, (g) => {
        const w = virtqueueWorld({ size: SIZE, ram: BigInt(RAM), base: 0x1000, dataBytes: 0x100, indirect: g.indirect, eventIdx: g.eventIdx });
        const { desc, avail, used } = w.drv.config;
        g.table.forEach((d, i) => w.drv.writeDescriptor(i, d));
        // Indirect tables point into the same garbage: reuse the descriptor table bytes at 0x1080.
        w.mem.write(0x1080, snapshot(w.mem, desc, 16 * SIZE));
        g.ring.forEach((h, i) => w.mem.writeU16(avail + 4 + 2 * i, h));
        w.mem.writeU16(avail + 2, g.availIdx);
        const before = snapshot(w.mem, 0, RAM);
        let served = 0;
        for (let i = 0; i < 2 * SIZE; i++) {
          const r = w.dev.pop();
          if (r === 'empty') break;
          if ('malformed' in r) {
            if (r.malformed === 'ring') break;
            w.dev.push(r.head, 0);
          } else {
            const n = g.write ? r.write(0, new Uint8Array(Math.min(r.writableLength, 64)).fill(0xee)) : 0;
            w.dev.push(r.head, n);
          }
          served++;
        }
        w.dev.needsInterrupt();
        const after = snapshot(w.mem, 0, RAM);
        const usedEnd = used + 6 + 8 * SIZE;
        const changed = changedOffsets(before, after).filter((o) => o < used || o >= usedEnd);
        expect(served).toBeLessThanOrEqual(SIZE);
        if (!g.write) {
          expect(changed).toEqual([]);
        } else {
          // The descriptor table and the available ring are never written.
          expect(changed.filter((o) => o >= desc && o < avail + 6 + 2 * SIZE)).toEqual([]);
        }
        w.proc.exit();
      }),
      { numRuns: 200, seed: 42 },
    );
  });
});
