/**
 * VirtqueueDriver (the guest side used by tests, benchmarks and the guest driver model): the ring layout
 * it writes, the descriptors and indirect tables it builds for each way of splitting a buffer, its free
 * list and buffer area, reaping (with a caller buffer), raw and malformed chains, and its refusals.
 */
import { SimBugError, uapi } from '../../../index';
import { SplitVirtqueue, type DescriptorChain, type PopResult } from '../../../virtio-iommu/split-virtqueue';
import { MALFORMED_KINDS, VirtqueueDriver, type MalformedKind } from '../../../virtio-iommu/virtqueue-driver';
import { snapshot, virtqueueWorld } from '../../helpers/virtqueue-world';

const { VIRTQ_DESC_F_NEXT: NEXT, VIRTQ_DESC_F_WRITE: WRITE, VIRTQ_DESC_F_INDIRECT: INDIRECT } = uapi;

function chainOf(r: PopResult): DescriptorChain {
  if (r === 'empty' || 'malformed' in r) throw new Error(`expected a chain, got ${JSON.stringify(r)}`);
  return r;
}

function descAt(w: ReturnType<typeof virtqueueWorld>, gpa: number) {
  const d = uapi.VirtqDesc.decode(snapshot(w.mem, gpa, 16));
  return { addr: Number(d.addr), len: d.len, flags: d.flags, next: d.next };
}

describe('layout', () => {
  test('rings are zeroed at construction, whatever guest RAM held', () => {
    const w = virtqueueWorld({ size: 8 });
    const base = 0x20000;
    w.mem.fill(base, 0x1000, 0xff);
    const drv = new VirtqueueDriver(w.mem, base, 8, { indirect: false, eventIdx: true });
    const { desc, used } = drv.config;
    expect(snapshot(w.mem, desc, used + 6 + 64 - desc).every((b) => b === 0)).toBe(true);
    // desc 0x20000 (128 bytes), avail 0x20080 (22 bytes), used 0x20098 (4-aligned, 70 bytes, ends 0x200de),
    // buffer area at the next 16-aligned GPA.
    expect([drv.config.avail, drv.config.used, drv.dataStart]).toEqual([0x20080, 0x20098, 0x200e0]);
    expect(drv.end).toBe(drv.dataStart + 65536);
  });

  test('a region outside guest RAM and bad queue sizes are refused', () => {
    const w = virtqueueWorld();
    const features = { indirect: false, eventIdx: false };
    expect(() => new VirtqueueDriver(w.mem, 0xf0000, 256, features)).toThrow(RangeError);
    expect(() => new VirtqueueDriver(w.mem, 0x20000, 6, features)).toThrow(RangeError);
    expect(() => new VirtqueueDriver(w.mem, 0x20000, 65536, features)).toThrow(RangeError);
  });
});

describe('building chains', () => {
  test('a direct chain: one descriptor per segment, linked with NEXT, WRITE on the writable ones', () => {
    const w = virtqueueWorld({ size: 8 });
    const head = w.drv.add([
      { bytes: Uint8Array.of(1, 2, 3), writable: false },
      { length: 5, writable: true },
    ]);
    expect(head).toBe(0);
    const { desc, avail } = w.drv.config;
    const d0 = descAt(w, desc + 16 * head);
    expect(d0).toEqual({ addr: w.drv.dataStart, len: 3, flags: NEXT, next: 1 });
    expect(descAt(w, desc + 16 * 1)).toEqual({ addr: w.drv.dataStart + 3, len: 5, flags: WRITE, next: 0 });
    expect(Array.from(snapshot(w.mem, d0.addr, 3))).toEqual([1, 2, 3]);
    // avail.ring[0] = head, avail.idx = 1: published at add().
    expect([w.mem.readU16(avail + 4), w.mem.readU16(avail + 2)]).toEqual([head, 1]);
    expect(w.drv.freeDescriptors).toBe(6);
  });

  test('an indirect chain: one ring descriptor with INDIRECT pointing at a table of 16·n bytes', () => {
    const w = virtqueueWorld({ size: 8, indirect: true });
    const head = w.drv.add(
      [
        { bytes: Uint8Array.of(9, 8), writable: false },
        { length: 4, writable: true },
      ],
      { indirect: true },
    );
    const ring = descAt(w, w.drv.config.desc + 16 * head);
    expect(ring).toEqual({ addr: w.drv.dataStart, len: 32, flags: INDIRECT, next: 0 });
    expect(descAt(w, ring.addr)).toEqual({ addr: ring.addr + 32, len: 2, flags: NEXT, next: 1 });
    expect(descAt(w, ring.addr + 16)).toEqual({ addr: ring.addr + 34, len: 4, flags: WRITE, next: 0 });
    expect(w.drv.freeDescriptors).toBe(7);
  });

  test.each([
    [1, 10, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    [3, 4, [3, 3, 3, 1]],
    [10, 1, [10]],
    [64, 1, [10]],
  ])('splitEvery %d turns a 10-byte segment into %d descriptors', (n, count, lens) => {
    const w = virtqueueWorld({ size: 16, indirect: true });
    const head = w.drv.add([{ length: 10, writable: false }], { indirect: true, splitEvery: n });
    const table = descAt(w, w.drv.config.desc + 16 * head);
    expect(table.len).toBe(16 * count);
    const got = Array.from({ length: count }, (_, i) => descAt(w, table.addr + 16 * i).len);
    expect(got).toEqual(lens);
  });

  test('a zero-length segment is one zero-length descriptor', () => {
    const w = virtqueueWorld();
    const head = w.drv.add([{ length: 0, writable: false }, { length: 4, writable: true }]);
    expect(descAt(w, w.drv.config.desc + 16 * head)).toMatchObject({ len: 0, flags: NEXT });
    const chain = chainOf(w.dev.pop());
    expect([chain.readable.length, chain.writableLength]).toEqual([0, 4]);
  });

  test('gap leaves that many bytes between consecutive descriptors\' buffers', () => {
    const w = virtqueueWorld({ size: 16 });
    const head = w.drv.add([{ bytes: Uint8Array.of(1, 2, 3, 4, 5), writable: false }], { splitEvery: 2, gap: 7 });
    const { desc } = w.drv.config;
    const addrs: number[] = [];
    for (let i = 0, d = head; i < 3; i++) {
      const x = descAt(w, desc + 16 * d);
      addrs.push(x.addr);
      d = x.next;
    }
    expect(addrs.map((a) => a - addrs[0]!)).toEqual([0, 9, 18]);
    expect(Array.from(chainOf(w.dev.pop()).readable)).toEqual([1, 2, 3, 4, 5]);
  });

  test('a writable area with bytes is pre-filled with them; without bytes it is zeroed', () => {
    const w = virtqueueWorld();
    w.mem.fill(w.drv.dataStart, 64, 0xaa);
    w.drv.add([
      { bytes: Uint8Array.of(7, 7), writable: true },
      { length: 2, writable: true },
    ]);
    const chain = chainOf(w.dev.pop());
    w.dev.push(chain.head, 0);
    expect(Array.from(w.drv.reapOne()!.writable)).toEqual([7, 7, 0, 0]);
  });
});

describe('free list and buffer area', () => {
  test('the queue fills up; adding more is a RangeError that takes nothing; reaping frees', () => {
    const w = virtqueueWorld({ size: 4 });
    w.drv.add([{ length: 1, writable: false }, { length: 1, writable: true }]);
    w.drv.add([{ length: 1, writable: false }, { length: 1, writable: true }]);
    expect(w.drv.freeDescriptors).toBe(0);
    expect(() => w.drv.add([{ length: 1, writable: true }])).toThrow(new RangeError('1 descriptors needed, 0 free'));
    expect([w.drv.inFlight, w.drv.availIdx]).toEqual([2, 2]);
    for (let i = 0; i < 2; i++) w.dev.push(chainOf(w.dev.pop()).head, 0);
    expect(w.drv.reap().length).toBe(2);
    expect(w.drv.freeDescriptors).toBe(4);
    // Freed descriptors are reused.
    w.drv.add([{ length: 1, writable: false }, { length: 1, writable: true }, { length: 1, writable: true }, { length: 1, writable: true }]);
    expect(w.drv.freeDescriptors).toBe(0);
  });

  test('an exhausted buffer area is a RangeError that takes no descriptor; space comes back on reap', () => {
    const w = virtqueueWorld({ size: 8, dataBytes: 64 });
    w.drv.add([{ length: 48, writable: false }]);
    expect(() => w.drv.add([{ length: 32, writable: false }])).toThrow(RangeError);
    expect(w.drv.freeDescriptors).toBe(7);
    w.dev.push(chainOf(w.dev.pop()).head, 0);
    w.drv.reap();
    w.drv.add([{ length: 64, writable: false }]);
  });

  test('freed areas coalesce: out-of-order reaping gives the whole area back', () => {
    const w = virtqueueWorld({ size: 8, dataBytes: 96 });
    for (let i = 0; i < 3; i++) w.drv.add([{ length: 32, writable: true }]);
    const chains = [0, 1, 2].map(() => chainOf(w.dev.pop()));
    for (const i of [1, 0, 2]) w.dev.push(chains[i]!.head, 0);
    expect(w.drv.reap().length).toBe(3);
    w.drv.add([{ length: 96, writable: true }]);
  });

  test.each(['splitEvery 0', 'negative gap', 'no segment', 'a segment longer than 2^32'])('bad arguments are RangeErrors: %s', (kind) => {
    const w = virtqueueWorld();
    const call = {
      'splitEvery 0': () => w.drv.add([{ length: 1, writable: false }], { splitEvery: 0 }),
      'negative gap': () => w.drv.add([{ length: 1, writable: false }], { gap: -1 }),
      'no segment': () => w.drv.add([]),
      'a segment longer than 2^32': () => w.drv.add([{ length: 2 ** 32, writable: true }]),
    }[kind]!;
    expect(call).toThrow(RangeError);
    expect(w.drv.freeDescriptors).toBe(16);
  });
});

describe('reaping', () => {
  test('nothing used: undefined; a used entry: head, len and the writable part; into a caller buffer', () => {
    const w = virtqueueWorld();
    expect(w.drv.reapOne()).toBeUndefined();
    const head = w.drv.add([{ length: 4, writable: false }, { length: 8, writable: true }]);
    const chain = chainOf(w.dev.pop());
    chain.write(0, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    w.dev.push(chain.head, 3);
    const out = new Uint8Array(4);
    const entry = w.drv.reapOne(out)!;
    expect(entry).toEqual({ head, len: 3, writable: Uint8Array.of(1, 2, 3, 4) });
    expect(entry.writable).toBe(out);
    expect(w.drv.lastUsedIdx).toBe(1);
  });

  test('a used entry naming a head that is not in flight is a device bug', () => {
    const w = virtqueueWorld({ size: 4 });
    const { used } = w.drv.config;
    w.mem.writeU32(used + 4, 2);
    w.mem.writeU16(used + 2, 1);
    expect(() => w.drv.reapOne()).toThrow(SimBugError);
  });

  test('with EVENT_IDX and interrupts on, used_event follows the last used index', () => {
    const w = virtqueueWorld({ eventIdx: true });
    const usedEvent = w.drv.config.avail + 4 + 2 * 16;
    w.drv.add([{ length: 4, writable: true }]);
    w.dev.push(chainOf(w.dev.pop()).head, 0);
    w.drv.reap();
    expect(w.mem.readU16(usedEvent)).toBe(1);
    w.drv.setInterrupts(false);
    w.drv.add([{ length: 4, writable: true }]);
    w.dev.push(chainOf(w.dev.pop()).head, 0);
    w.drv.reap();
    expect(w.mem.readU16(usedEvent)).toBe(1);
    w.drv.setInterrupts(true);
    expect(w.mem.readU16(usedEvent)).toBe(2);
  });
});

describe('raw and malformed chains', () => {
  test('addRaw writes descriptors verbatim, links `next` by list index and `nextRaw` as given', () => {
    const w = virtqueueWorld({ size: 8 });
    w.drv.add([{ length: 1, writable: false }]); // takes descriptor 0
    const head = w.drv.addRaw([
      { addr: 0x1234, len: 5, flags: NEXT, next: 1 },
      { addr: 0x5678, len: 6, flags: NEXT | WRITE, nextRaw: 0x7777 },
    ]);
    expect(head).toBe(1);
    const { desc } = w.drv.config;
    expect(descAt(w, desc + 16)).toEqual({ addr: 0x1234, len: 5, flags: NEXT, next: 2 });
    expect(descAt(w, desc + 32)).toEqual({ addr: 0x5678, len: 6, flags: NEXT | WRITE, next: 0x7777 });
    expect(() => w.drv.addRaw([{ addr: 0, len: 0, flags: NEXT, next: 5 }])).toThrow(RangeError);
  });

  test.each<MalformedKind>(MALFORMED_KINDS)('%s: completed with length 0 by the device, reaping gives every descriptor and byte back', (kind) => {
    const w = virtqueueWorld({ size: 8, indirect: true, dataBytes: 512 });
    const head = w.drv.addMalformed(kind);
    const r = w.dev.pop();
    expect(r).toMatchObject({ head });
    w.dev.push(head, 0);
    expect(w.drv.reap().map((e) => [e.head, e.len])).toEqual([[head, 0]]);
    expect([w.drv.freeDescriptors, w.drv.inFlight]).toEqual([8, 0]);
    // The whole buffer area is free again.
    w.drv.add([{ length: 512, writable: true }]);
  });

  test('jumpAvailIdx moves avail.idx without adding chains', () => {
    const w = virtqueueWorld({ size: 4 });
    w.drv.jumpAvailIdx(70000);
    expect([w.drv.availIdx, w.mem.readU16(w.drv.config.avail + 2)]).toEqual([70000 & 0xffff, 70000 & 0xffff]);
  });

  test('writeDescriptor refuses an index outside the table', () => {
    const w = virtqueueWorld({ size: 4 });
    expect(() => w.drv.writeDescriptor(4, { addr: 0, len: 0, flags: 0, next: 0 })).toThrow(RangeError);
  });
});

describe('driver and device built on one queue config', () => {
  test('the device accepts the driver\'s config for every layout the driver makes', () => {
    const w = virtqueueWorld();
    for (const base of [0x20000, 0x20001, 0x2000f, 0x30008]) {
      const drv = new VirtqueueDriver(w.mem, base, 32, { indirect: true, eventIdx: true }, { dataBytes: 4096 });
      const dev = new SplitVirtqueue(w.mem, drv.config, { indirect: true, eventIdx: true });
      const head = drv.add([{ length: 36, writable: false }, { length: 4, writable: true }], { indirect: true });
      expect(chainOf(dev.pop()).head).toBe(head);
    }
  });
});
