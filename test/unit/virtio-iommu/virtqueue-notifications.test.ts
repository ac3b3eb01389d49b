/**
 * Notification suppression both ways over a split virtqueue: interrupts (avail.flags NO_INTERRUPT, or
 * used_event with EVENT_IDX) decided by the device, kicks (used.flags NO_NOTIFY, or avail_event with
 * EVENT_IDX) decided by the driver helper, vring_need_event arithmetic, and the u16 wrap at 65536.
 */
import { uapi } from '../../../index';
import { virtqLayout, vringNeedEvent, type DescriptorChain, type PopResult } from '../../../virtio-iommu/split-virtqueue';
import type { Segment } from '../../../virtio-iommu/virtqueue-driver';
import { changedOffsets, snapshot, virtqueueWorld, type VirtqueueWorld } from '../../helpers/virtqueue-world';

const MAP_SEGMENTS: Segment[] = [
  { length: 36, writable: false },
  { length: 4, writable: true },
];

function chainOf(r: PopResult): DescriptorChain {
  if (r === 'empty' || 'malformed' in r) throw new Error(`expected a chain, got ${JSON.stringify(r)}`);
  return r;
}

/** Pops one chain, writes `reply` at writable offset 0, pushes it with the bytes written. */
function serve(w: VirtqueueWorld, reply: Uint8Array): DescriptorChain {
  const chain = chainOf(w.dev.pop());
  w.dev.push(chain.head, chain.write(0, reply));
  return chain;
}

describe('notifications', () => {
  test.each([
    // eventIdx, newIdx, oldIdx, need
    [0, 1, 0, true],
    [0, 0, 0, false],
    [19, 20, 5, true],
    [20, 20, 5, false],
    [5, 20, 5, true],
    [4, 20, 5, false],
    [65535, 0, 65535, true],
    [0, 0, 65535, false],
    [65535, 4, 65530, true],
    [3, 4, 65530, true],
    [4, 4, 65530, false],
    [65529, 4, 65530, false],
    [65530, 4, 65530, true],
  ])('vring_need_event(event %d, new %d, old %d) is %s', (event, next, old, need) => {
    expect(vringNeedEvent(event, next, old)).toBe(need);
  });

  test('without EVENT_IDX: an interrupt after each batch unless avail.flags has NO_INTERRUPT', () => {
    const w = virtqueueWorld();
    expect(w.dev.needsInterrupt()).toBe(false); // nothing used yet
    w.drv.add(MAP_SEGMENTS);
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(true);
    expect(w.dev.needsInterrupt()).toBe(false); // nothing new since
    w.drv.setInterrupts(false);
    expect(w.mem.readU16(w.drv.config.avail)).toBe(uapi.VIRTQ_AVAIL_F_NO_INTERRUPT);
    w.drv.add(MAP_SEGMENTS);
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(false);
    w.drv.setInterrupts(true);
    w.drv.add(MAP_SEGMENTS);
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(true);
    expect(w.dev.notifications).toBe(2);
  });

  test('with EVENT_IDX: an interrupt exactly when used_event is among the indices published', () => {
    const w = virtqueueWorld({ eventIdx: true });
    w.drv.setInterrupts(false); // keep used_event where the test puts it
    w.drv.setUsedEvent(2);
    for (let i = 0; i < 5; i++) w.drv.add(MAP_SEGMENTS);
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(false); // used.idx 0 -> 1
    serve(w, new Uint8Array(4));
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(true); // 1 -> 3 wrote entry 2
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(false); // 3 -> 4
    // The low bit of avail.flags is ignored with EVENT_IDX.
    w.drv.setAvailFlags(uapi.VIRTQ_AVAIL_F_NO_INTERRUPT);
    w.drv.setUsedEvent(4);
    serve(w, new Uint8Array(4));
    expect(w.dev.needsInterrupt()).toBe(true);
    expect(w.dev.notifications).toBe(2);
  });

  test('with EVENT_IDX the driver asks for the next interrupt as it reaps (used_event = last used)', () => {
    const w = virtqueueWorld({ eventIdx: true });
    for (let i = 0; i < 3; i++) {
      w.drv.add(MAP_SEGMENTS);
      serve(w, new Uint8Array(4));
      expect(w.dev.needsInterrupt()).toBe(true);
      w.drv.reap();
      expect(w.mem.readU16(w.drv.config.avail + virtqLayout(16).usedEventOffset)).toBe(i + 1);
    }
  });

  test('without EVENT_IDX: the driver kicks unless used.flags has NO_NOTIFY', () => {
    const w = virtqueueWorld();
    expect(w.drv.kick()).toBe(false); // nothing added
    w.drv.add(MAP_SEGMENTS);
    w.drv.add(MAP_SEGMENTS);
    expect(w.drv.kick()).toBe(true);
    w.dev.setNotification(false);
    expect(w.mem.readU16(w.drv.config.used)).toBe(uapi.VIRTQ_USED_F_NO_NOTIFY);
    w.drv.add(MAP_SEGMENTS);
    expect(w.drv.kick()).toBe(false);
    w.dev.setNotification(true);
    w.drv.add(MAP_SEGMENTS);
    expect(w.drv.kick()).toBe(true);
    expect(w.drv.kicks).toBe(2);
    // setAvailEvent does not exist without EVENT_IDX: nothing is written.
    const before = snapshot(w.mem, 0, Number(w.mem.size));
    w.dev.setAvailEvent(3);
    expect(changedOffsets(before, snapshot(w.mem, 0, Number(w.mem.size)))).toEqual([]);
  });

  test('with EVENT_IDX: each pop asks for a kick on the next chain; a batch needs one kick', () => {
    const w = virtqueueWorld({ eventIdx: true });
    w.drv.add(MAP_SEGMENTS);
    expect(w.drv.kick()).toBe(true); // avail_event starts at 0
    w.drv.add(MAP_SEGMENTS);
    expect(w.drv.kick()).toBe(false); // the device has not popped: avail_event still 0
    serve(w, new Uint8Array(4));
    expect(w.drv.availEvent()).toBe(1);
    serve(w, new Uint8Array(4));
    expect(w.drv.availEvent()).toBe(2);
    w.drv.add(MAP_SEGMENTS);
    w.drv.add(MAP_SEGMENTS);
    w.drv.add(MAP_SEGMENTS);
    expect(w.drv.kick()).toBe(true);
    expect(w.drv.kicks).toBe(2);
  });

  test('with EVENT_IDX: setAvailEvent(i) makes the driver kick exactly when it publishes entry i', () => {
    const w = virtqueueWorld({ eventIdx: true, size: 16 });
    w.dev.setNotification(false); // pops stop publishing avail_event
    w.dev.setAvailEvent(3);
    const kicks: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      w.drv.add([{ length: 4, writable: true }]);
      kicks.push(w.drv.kick());
      serve(w, new Uint8Array(4));
    }
    expect(kicks).toEqual([false, false, false, true, false, false]);
    expect(w.drv.availEvent()).toBe(3);
    w.dev.setNotification(true);
    expect(w.drv.availEvent()).toBe(6);
    w.drv.add([{ length: 4, writable: true }]);
    expect(w.drv.kick()).toBe(true);
  });

  test.each([
    [false, 1],
    [true, 1],
    [false, 3],
    [true, 3],
  ])('EVENT_IDX %s, batches of %d from index 65530: indices wrap at 65536 and every batch kicks and interrupts', (eventIdx, batch) => {
    const w = virtqueueWorld({ eventIdx, size: 4, startIdx: 65530 });
    const rounds = 8;
    const segments: Segment[] = [{ length: 4, writable: true }];
    let kicks = 0;
    let interrupts = 0;
    let reaped = 0;
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < batch; i++) w.drv.add(segments);
      if (w.drv.kick()) kicks++;
      for (let i = 0; i < batch; i++) w.dev.push(chainOf(w.dev.pop()).head, 0);
      if (w.dev.needsInterrupt()) interrupts++;
      while (w.drv.reapOne() !== undefined) reaped++;
    }
    expect([kicks, interrupts, reaped]).toEqual([rounds, rounds, rounds * batch]);
    const total = (65530 + rounds * batch) & 0xffff;
    expect([w.drv.availIdx, w.dev.lastAvailIdx, w.dev.usedIdx, w.drv.lastUsedIdx]).toEqual([total, total, total, total]);
    expect(w.mem.readU16(w.drv.config.used + 2)).toBe(total);
  });

  test('from a fresh queue, 65536 + 6 chains in batches of 3 with EVENT_IDX: every batch kicks and interrupts', () => {
    const w = virtqueueWorld({ eventIdx: true, size: 4 });
    const segments: Segment[] = [{ length: 4, writable: true }];
    const rounds = 21848; // 65544 chains
    let kicks = 0;
    let interrupts = 0;
    for (let r = 0; r < rounds; r++) {
      w.drv.add(segments);
      w.drv.add(segments);
      w.drv.add(segments);
      if (w.drv.kick()) kicks++;
      for (let i = 0; i < 3; i++) w.dev.push(chainOf(w.dev.pop()).head, 0);
      if (w.dev.needsInterrupt()) interrupts++;
      while (w.drv.reapOne() !== undefined);
    }
    expect([kicks, interrupts]).toEqual([rounds, rounds]);
    expect([w.drv.availIdx, w.dev.usedIdx]).toEqual([8, 8]);
  });

  test('with EVENT_IDX, used_event 0 is crossed when used.idx wraps from 65535 to 1', () => {
    const w = virtqueueWorld({ eventIdx: true, size: 4, startIdx: 65533 });
    expect(w.dev.usedIdx).toBe(65533);
    w.drv.setInterrupts(false);
    w.drv.setUsedEvent(0);
    for (let i = 0; i < 4; i++) w.drv.add([{ length: 4, writable: true }]);
    const chains = [0, 1, 2, 3].map(() => chainOf(w.dev.pop()));
    w.dev.push(chains[0]!.head, 0);
    w.dev.push(chains[1]!.head, 0);
    expect(w.dev.needsInterrupt()).toBe(false); // 65533 -> 65535
    w.dev.push(chains[2]!.head, 0);
    w.dev.push(chains[3]!.head, 0);
    expect(w.dev.usedIdx).toBe(1);
    expect(w.dev.needsInterrupt()).toBe(true); // 65535 -> 1 wrote entry 0
  });
});
