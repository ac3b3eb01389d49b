/**
 * DMA of emulated endpoints, translated by the virtio-iommu device itself, and the fault records it
 * writes on the eventq (reference/virtio-iommu.md §4; spec §Fault reporting): DOMAIN for an unattached
 * endpoint out of bypass, MAPPING for an unmapped address, a RESERVED region or the wrong permission.
 */
import { DmaFault, uapi } from '../../index';
import { Guest, READ, S, WRITE } from '../helpers/virtio-iommu-guest';
import type { VirtioIommuOptions } from '../../virtio-iommu/virtio-iommu-device';

const R = uapi.VIRTIO_IOMMU_FAULT_F_READ;
const W = uapi.VIRTIO_IOMMU_FAULT_F_WRITE;
const ADDR = uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS;
const DOMAIN = uapi.VIRTIO_IOMMU_FAULT_R_DOMAIN;
const MAPPING = uapi.VIRTIO_IOMMU_FAULT_R_MAPPING;
const EP = 0x10;

function guest(options: VirtioIommuOptions = { bootBypass: false }): Guest {
  return new Guest({
    endpoints: [{ id: EP, kind: 'emulated', reservedRegions: [{ start: 0x8000_0000n, last: 0x8000_ffffn, subtype: 'reserved' }, { start: 0xfee0_0000n, last: 0xfeef_ffffn, subtype: 'msi' }] }],
    options,
  });
}

function record(reason: number, flags: number, address: bigint): object {
  return { len: 24, reason, flags, endpoint: EP, reserved1: 0, address, reserved: [0, 0, 0] };
}

describe('emulated endpoint DMA', () => {
  test('through a mapping: reads and writes reach guest RAM at PA = VA - virt_start + phys_start', () => {
    const g = guest();
    g.attach(1, EP);
    expect(g.map(1, 0x4000n, 0x5fffn, 0x20_0000n, READ | WRITE)).toBe(S.OK);
    const dma = g.device.endpointDma(EP);
    dma.dmaWrite(0x5ffen, new Uint8Array([1, 2]));
    expect(g.mem.readU16(0x20_1ffe)).toBe(0x0201);
    expect([...dma.dmaRead(0x5ffen, 2)]).toEqual([1, 2]);
  });

  test('an access may span adjacent mappings with different physical targets', () => {
    const g = guest();
    g.attach(1, EP);
    g.map(1, 0x4000n, 0x4fffn, 0x20_0000n);
    g.map(1, 0x5000n, 0x5fffn, 0x30_0000n);
    g.device.endpointDma(EP).dmaWrite(0x4ffen, new Uint8Array([1, 2, 3, 4]));
    expect([g.mem.readU16(0x20_0ffe), g.mem.readU16(0x30_0000)]).toEqual([0x0201, 0x0403]);
  });

  test.each([
    ['unattached, bypass off → DOMAIN', 'none', 'read', 0x4000n, 'no-domain', DOMAIN, R],
    ['an unmapped address → MAPPING', 'attached', 'read', 0x9000n, 'unmapped', MAPPING, R],
    ['a write to a READ-only mapping → MAPPING (WRITE)', 'attached', 'write', 0x4000n, 'permission', MAPPING, W],
    ['a read of a WRITE-only mapping → MAPPING (READ)', 'attached', 'read', 0x6000n, 'permission', MAPPING, R],
    ['a RESERVED region → MAPPING', 'attached', 'read', 0x8000_0010n, 'unmapped', MAPPING, R],
    ['a write running off the end of a mapping → MAPPING at the first unmapped byte', 'attached', 'write', 0x6ffen, 'unmapped', MAPPING, W],
  ])('%s: DmaFault, nothing moved, one record on the eventq', (_name, state, access, iova, reason, virtioReason, flags) => {
    const g = guest();
    if (state === 'attached') {
      g.attach(1, EP);
      g.map(1, 0x4000n, 0x4fffn, 0x20_0000n, READ);
      g.map(1, 0x6000n, 0x6fffn, 0x21_0000n, WRITE);
    }
    g.mem.fill(0x21_0000, 0x1000, 0x5a);
    const dma = g.device.endpointDma(EP);
    let thrown: unknown;
    try {
      if (access === 'read') dma.dmaRead(iova, 4);
      else dma.dmaWrite(iova, new Uint8Array([1, 2, 3, 4]));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DmaFault);
    const fault = (thrown as DmaFault).record;
    const faultAt = iova === 0x6ffen ? 0x7000n : iova;
    expect(fault).toEqual({ bdf: '0000:00:02.0', group: -1, iova: faultAt, access, reason });
    expect(g.mem.readU16(0x21_0ffe)).toBe(0x5a5a); // the write that ran off the end moved nothing
    g.postEventBuffers(2);
    expect(g.reapFaults()).toEqual([record(virtioReason, flags | ADDR, faultAt)]);
  });

  test('an MSI region is translated by identity (QEMU: the doorbell is the host\'s); outside guest RAM nothing answers', () => {
    const g = guest();
    g.attach(1, EP);
    expect(() => g.device.endpointDma(EP).dmaWrite(0xfee0_0000n, new Uint8Array(4))).toThrow(expect.objectContaining({ reason: 'out-of-range' }));
    g.postEventBuffers(1);
    expect(g.reapFaults()).toEqual([]);
  });

  test('a mapping to a GPA outside guest RAM (an MMIO mapping) is translated, but the access faults out-of-range without a record', () => {
    const g = guest();
    g.attach(1, EP);
    expect(g.map(1, 0x1000n, 0x1fffn, 0x4000_0000n, WRITE | uapi.VIRTIO_IOMMU_MAP_F_MMIO)).toBe(S.OK);
    expect(() => g.device.endpointDma(EP).dmaWrite(0x1000n, new Uint8Array(4))).toThrow(expect.objectContaining({ reason: 'out-of-range' }));
    g.postEventBuffers(1);
    expect(g.reapFaults()).toEqual([]);
  });

  test('a VFIO endpoint has no endpointDma (its device DMAs through the host IOMMU)', () => {
    const g = guest();
    expect(() => g.device.endpointDma(0x99)).toThrow(RangeError);
  });
});

describe('eventq delivery', () => {
  function faultTwice(g: Guest): void {
    const dma = g.device.endpointDma(EP);
    expect(() => dma.dmaRead(0x1000n, 1)).toThrow(DmaFault);
    expect(() => dma.dmaWrite(0x2000n, new Uint8Array(1))).toThrow(DmaFault);
  }

  test('records wait for buffers and are delivered in order when the driver posts them', () => {
    const g = guest();
    faultTwice(g);
    expect(g.device.debugState().pendingFaults).toBe(2);
    g.postEventBuffers(1);
    expect(g.reapFaults()).toEqual([record(DOMAIN, R | ADDR, 0x1000n)]);
    g.postEventBuffers(1);
    expect(g.reapFaults()).toEqual([record(DOMAIN, W | ADDR, 0x2000n)]);
    expect(g.device.debugState().deliveredFaults).toBe(2);
  });

  test('a fault goes out at once when a buffer is waiting, with an eventq interrupt', () => {
    const interrupts: number[] = [];
    const g = guest({ bootBypass: false, onInterrupt: (q) => interrupts.push(q) });
    g.postEventBuffers(4);
    expect(() => g.device.endpointDma(EP).dmaRead(0x1000n, 1)).toThrow(DmaFault);
    expect(g.reapFaults()).toEqual([record(DOMAIN, R | ADDR, 0x1000n)]);
    expect(interrupts).toEqual([1]);
  });

  test('a buffer smaller than a record is returned unwritten and the record waits for the next one', () => {
    const g = guest();
    g.postEventBuffers(1, 16);
    faultTwice(g);
    expect(g.reapFaults()).toEqual([{ len: 0, reason: -1, flags: 0, endpoint: 0, reserved1: 0, address: 0n, reserved: [0, 0, 0] }]);
    g.postEventBuffers(2, 32);
    expect(g.reapFaults().map((f) => [f.len, f.address])).toEqual([
      [24, 0x1000n],
      [24, 0x2000n],
    ]);
  });

  test('beyond the waiting capacity new faults are dropped and counted', () => {
    const g = guest({ bootBypass: false, faultQueueCapacity: 1 });
    faultTwice(g);
    expect(g.device.debugState()).toEqual(expect.objectContaining({ pendingFaults: 1, droppedFaults: 1 }));
    g.postEventBuffers(2);
    expect(g.reapFaults().map((f) => f.address)).toEqual([0x1000n]);
  });

  test('device reset drops waiting records', () => {
    const g = guest();
    faultTwice(g);
    g.device.reset();
    expect(g.device.debugState().pendingFaults).toBe(0);
  });
});
