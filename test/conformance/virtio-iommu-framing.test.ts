/**
 * How requests travel: the same request split across 1-byte descriptors, through an indirect table,
 * with gaps between buffers ("The device MUST NOT make assumptions about the particular arrangement of
 * descriptors"), and malformed chains of every kind, which the device completes with used length 0 and
 * nothing written, then carries on (the decision documented in virtio-iommu-device.ts). A ring whose
 * available index jumps beyond the queue size puts the device in DEVICE_NEEDS_RESET.
 */
import { uapi } from '../../index';
import { Guest, S, U64_MAX, attachReq, bit, detachReq, mapReq, probeReq, replyOf, unmapReq, type RequestBytes } from '../helpers/virtio-iommu-guest';
import { MALFORMED_KINDS, type AddOptions } from '../../virtio-iommu/virtqueue-driver';

const NEEDS_RESET = uapi.VIRTIO_CONFIG_S_NEEDS_RESET;
const F_NEXT = uapi.VIRTQ_DESC_F_NEXT;
const F_WRITE = uapi.VIRTQ_DESC_F_WRITE;
const F_INDIRECT = uapi.VIRTQ_DESC_F_INDIRECT;

function guest(accept?: (o: bigint) => bigint): Guest {
  return new Guest({ endpoints: [{ id: 8, kind: 'emulated' }], options: { probeSize: 64 }, ...(accept ? { accept } : {}) });
}

/** The replies of a fixed sequence of requests, each sent with `add`. */
function runSequence(g: Guest, add: AddOptions): Array<[number, number | undefined, number[], number[]]> {
  const seq: RequestBytes[] = [
    probeReq(8, 64),
    attachReq(1, 8),
    mapReq(1, 0x1000n, 0x2fffn, 0x10000n),
    mapReq(1, 0x2000n, 0x2fffn, 0x10000n),
    unmapReq(1, 0x1000n, 0x1fffn),
    unmapReq(1, 0n, U64_MAX),
    detachReq(1, 8),
    attachReq(1, 444),
  ];
  return seq.map((req) => {
    const r = g.send(req, add);
    return [r.len, r.status, r.tailReserved, [...r.writable.subarray(0, 24)]];
  });
}

describe('arbitrary descriptor layouts give the same replies', () => {
  const reference = runSequence(guest(), {});

  test('the reference replies are what the spec asks for', () => {
    expect(reference.map(([len, status]) => [len, status])).toEqual([
      [68, S.OK],
      [4, S.OK],
      [4, S.OK],
      [4, S.INVAL],
      [4, S.RANGE],
      [4, S.OK],
      [4, S.OK],
      [4, S.NOENT],
    ]);
  });

  test.each<[string, AddOptions]>([
    ['1-byte descriptors', { splitEvery: 1 }],
    ['1-byte descriptors with 3-byte gaps between buffers', { splitEvery: 1, gap: 3 }],
    ['an indirect table', { indirect: true }],
    ['an indirect table of 1-byte descriptors', { indirect: true, splitEvery: 1 }],
    ['7-byte descriptors in an indirect table with gaps', { indirect: true, splitEvery: 7, gap: 5 }],
  ])('%s', (_name, add) => {
    expect(runSequence(guest(), add)).toEqual(reference);
  });

  test('without INDIRECT_DESC and EVENT_IDX negotiated, 1-byte descriptors still work', () => {
    const g = guest((o) => o & ~(bit(uapi.VIRTIO_F_INDIRECT_DESC) | bit(uapi.VIRTIO_F_EVENT_IDX)));
    expect(runSequence(g, { splitEvery: 1 })).toEqual(reference);
  });

  test('a request whose readable part is split over the head boundary and the tail over two descriptors', () => {
    const g = guest();
    const req = attachReq(1, 8);
    const used = g.sendSegments([
      { bytes: req.readable.subarray(0, 3), writable: false },
      { bytes: req.readable.subarray(3), writable: false },
      { length: 1, writable: true },
      { length: 3, writable: true },
    ]);
    expect([used.len, [...used.writable]]).toEqual([4, [S.OK, 0, 0, 0]]);
  });
});

describe('malformed chains complete with used length 0 and the device carries on', () => {
  test.each(MALFORMED_KINDS)('%s', (kind) => {
    const g = guest();
    const bad = g.requestq.addMalformed(kind);
    g.requestq.add([
      { bytes: attachReq(1, 8).readable, writable: false },
      { length: 4, writable: true },
    ]);
    if (g.requestq.kick()) g.device.notify(0);
    const used = g.requestq.reap();
    expect(used.map((u) => [u.head, u.len])).toEqual([
      [bad, 0],
      [used[1]!.head, 4],
    ]);
    expect(replyOf(used[1]!).status).toBe(S.OK);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(0);
  });

  test('INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated', () => {
    const g = guest((o) => o & ~bit(uapi.VIRTIO_F_INDIRECT_DESC));
    const r = g.send(attachReq(1, 8), { indirect: true });
    expect(r.len).toBe(0);
    expect(g.device.debugState().domains).toEqual([]);
    expect(g.attach(1, 8)).toBe(S.OK);
  });

  /** Adds a real ATTACH(1, 8), then rewrites its two ring descriptors before the kick. */
  function corrupted(g: Guest, rewrite: (d0: Desc, d1: Desc) => [Desc, Desc]): { head: number; len: number } {
    const head = g.requestq.add([
      { bytes: attachReq(1, 8).readable, writable: false },
      { length: 4, writable: true },
    ]);
    const d0 = readDesc(g, head);
    const d1 = readDesc(g, d0.next);
    const [n0, n1] = rewrite(d0, d1);
    g.requestq.writeDescriptor(head, n0);
    g.requestq.writeDescriptor(d0.next, n1);
    if (g.requestq.kick()) g.device.notify(0);
    const [used] = g.requestq.reap();
    return { head: used!.head, len: used!.len };
  }
  type Desc = { addr: number; len: number; flags: number; next: number };
  function readDesc(g: Guest, i: number): Desc {
    const at = g.requestq.config.desc + 16 * i;
    return { addr: g.mem.readU64Number(at), len: g.mem.readU32(at + 8), flags: g.mem.readU16(at + 12), next: g.mem.readU16(at + 14) };
  }

  test.each<[string, (d0: Desc, d1: Desc) => [Desc, Desc]]>([
    ['a tail descriptor that loops to itself', (d0, d1) => [d0, { ...d1, flags: F_WRITE | F_NEXT, next: d0.next }]],
    ['a loop back to the head', (d0, d1) => [d0, { ...d1, flags: F_WRITE | F_NEXT, next: 0 }]],
    ['the readable descriptor after the writable one', (d0, d1) => [{ ...d0, flags: F_WRITE | F_NEXT }, { ...d1, flags: 0 }]],
    ['a readable buffer running past guest RAM', (d0, d1) => [{ ...d0, addr: 16 * 1024 * 1024 - 8 }, d1]],
    ['a tail buffer past guest RAM', (d0, d1) => [d0, { ...d1, addr: 16 * 1024 * 1024 }]],
    ['INDIRECT and NEXT together', (d0, d1) => [{ ...d0, flags: F_INDIRECT | F_NEXT }, d1]],
    ['a NEXT index beyond the queue', (d0, d1) => [{ ...d0, next: 256 }, d1]],
  ])('a real ATTACH made malformed (%s) is not executed', (_name, rewrite) => {
    const g = guest();
    expect(corrupted(g, rewrite).len).toBe(0);
    expect(g.device.debugState().domains).toEqual([]);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(0);
    expect(g.attach(1, 8)).toBe(S.OK);
  });

  test('an available index that jumps more than the queue size ahead → NEEDS_RESET; nothing more is processed until reset', () => {
    const g = guest();
    expect(g.attach(1, 8)).toBe(S.OK);
    g.requestq.jumpAvailIdx(300);
    g.device.notify(0);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(NEEDS_RESET);
    g.device.notify(0);
    expect(g.device.debugState().domains.map((d) => d.id)).toEqual([1]);
    g.device.setStatus(0);
    expect(g.device.getStatus()).toBe(0);
    expect(g.negotiate()).toBe(true);
    g.start();
    expect(g.device.getStatus() & NEEDS_RESET).toBe(0);
    expect(g.attach(2, 8)).toBe(S.OK);
  });
});

describe('notifications', () => {
  test('one interrupt per batch of requests; none when the driver sets NO_INTERRUPT (no EVENT_IDX)', () => {
    const interrupts: number[] = [];
    const g = new Guest({
      endpoints: [{ id: 8, kind: 'emulated' }],
      options: { onInterrupt: (q) => interrupts.push(q) },
      accept: (o) => o & ~bit(uapi.VIRTIO_F_EVENT_IDX),
    });
    for (let i = 0; i < 3; i++) g.requestq.add([{ bytes: attachReq(1 + i, 8).readable, writable: false }, { length: 4, writable: true }]);
    if (g.requestq.kick()) g.device.notify(0);
    expect(g.requestq.reap().map((u) => u.writable[0])).toEqual([S.OK, S.OK, S.OK]);
    expect(interrupts).toEqual([0]);
    g.requestq.setInterrupts(false);
    expect(g.attach(9, 8)).toBe(S.OK);
    expect(interrupts).toEqual([0]);
    expect(g.device.debugState().interrupts).toEqual([1, 0]);
  });

  test('with EVENT_IDX the driver is interrupted only when used_event is crossed', () => {
    const interrupts: number[] = [];
    const g = new Guest({ endpoints: [{ id: 8, kind: 'emulated' }], options: { onInterrupt: (q) => interrupts.push(q) } });
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(interrupts).toEqual([0]);
    g.requestq.setInterrupts(false);
    g.requestq.setUsedEvent(1000);
    expect(g.attach(2, 8)).toBe(S.OK);
    expect(interrupts).toEqual([0]);
  });
});
