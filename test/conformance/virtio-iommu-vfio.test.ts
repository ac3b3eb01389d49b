/**
 * virtio-iommu over VFIO type1 on x86-vtd, end to end (reference/virtio-iommu.md §5): the guest maps a
 * buffer through the requestq, the assigned device DMAs through its private VFIO container and the bytes
 * land in guest RAM (the VMM's memory); after UNMAP the DMA faults and the fault reaches the eventq.
 * Moving endpoints between domains replays and removes exactly the right container mappings; a VFIO
 * failure rolls back every container; nothing leaks after device reset or after the VMM's fds close.
 */
import { DmaFault, type PciDeviceSpec } from '../../index';
import { uapi } from '../../index';
import { Guest, MMIO, READ, S, U64_MAX, WRITE, probeReq, type GuestOptions } from '../helpers/virtio-iommu-guest';
import { VfioEndpointMapper } from '../../virtio-iommu/vfio-endpoint-mapper';
import type { EndpointSpec } from '../../virtio-iommu/virtio-iommu-device';

const A = '0000:06:0d.0';
const B = '0000:07:00.0';
const EP_A = 0x0668; // bus 6, device 0x0d, function 0
const EP_B = 0x0700;
const DEVICES: PciDeviceSpec[] = [
  { bdf: A, group: 26 },
  { bdf: B, group: 27 },
];
const RAM = 16 << 20;

function vfioGuest(endpoints: EndpointSpec[], more: Partial<GuestOptions> = {}): Guest {
  return new Guest({ devices: DEVICES, endpoints, ramSize: RAM, ...more });
}

function forwarded(g: Guest, id: number): Array<[bigint, bigint]> {
  return (g.device.endpointMapper(id) as VfioEndpointMapper).forwardedMappings();
}

function pinned(g: Guest): number {
  return g.kernel.phys.stats().pinnedPages;
}

const data = new Uint8Array([0x11, 0x22, 0x33, 0x44, 0x55]);

describe('a VFIO type1 endpoint on x86-vtd', () => {
  const oneA: EndpointSpec[] = [{ id: EP_A, kind: 'vfio', bdf: A }];

  test('the config space advertises the host: page sizes 4K|2M|1G and a 48-bit input range', () => {
    const g = vfioGuest(oneA);
    expect(g.configU64(0)).toBe(0x4020_1000n);
    expect(g.configU64(8)).toBe(0n);
    expect(g.configU64(16)).toBe((1n << 48n) - 1n);
  });

  test('PROBE reports the host\'s reserved IOVA space: the interrupt window as MSI, above 2^48 as RESERVED', () => {
    const g = vfioGuest(oneA);
    const r = g.send(probeReq(EP_A, 512));
    expect(r.status).toBe(S.OK);
    expect(uapi.VirtioIommuProbeResvMem.decode(r.writable, 0)).toEqual({ type: 1, length: 20, subtype: 1, start: 0xfee0_0000n, end: 0xfeef_ffffn });
    expect(uapi.VirtioIommuProbeResvMem.decode(r.writable, 24)).toEqual({ type: 1, length: 20, subtype: 0, start: 1n << 48n, end: U64_MAX });
    expect(r.writable.subarray(48, 512).every((b) => b === 0)).toBe(true);
  });

  test('PROBE on arm-smmuv3 reports the SW_MSI window as MSI', () => {
    const g = vfioGuest(oneA, { machine: 'arm-smmuv3' });
    const r = g.send(probeReq(EP_A, 512));
    expect(uapi.VirtioIommuProbeResvMem.decode(r.writable, 0)).toEqual({ type: 1, length: 20, subtype: 1, start: 0x800_0000n, end: 0x80f_ffffn });
  });

  test('in bypass (boot default) the container maps guest RAM by identity; ATTACH replaces it with the domain', () => {
    const g = vfioGuest(oneA);
    const dev = g.kernel.device(A);
    expect(pinned(g)).toBe(RAM / 4096);
    dev.dmaWrite(0x5000n, data);
    expect(g.mem.readU32(0x5000)).toBe(0x44332211);
    expect(g.attach(1, EP_A)).toBe(S.OK);
    expect(pinned(g)).toBe(0);
    expect(() => dev.dmaWrite(0x5000n, data)).toThrow(DmaFault);
    expect(g.detach(1, EP_A)).toBe(S.OK);
    expect(pinned(g)).toBe(RAM / 4096);
  });

  test('the guest maps a buffer, the device DMAs into it, the bytes land in guest RAM; after UNMAP the DMA faults', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    const dev = g.kernel.device(A);
    expect(g.attach(1, EP_A)).toBe(S.OK);
    expect(g.map(1, 0x10_0000n, 0x10_1fffn, 0x30_0000n, READ | WRITE)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([[0x10_0000n, 0x2000n]]);
    dev.dmaWrite(0x10_1ffbn, data);
    const back = new Uint8Array(5);
    g.mem.read(0x30_1ffb, back);
    expect(back).toEqual(data);
    // …and through the VMM's own memory: guest RAM is the VMM's mapping at ramHva.
    expect(g.vmm.readMemory(g.ramHva + 0x30_1ffbn, 5)).toEqual(data);
    g.mem.write(0x30_0000, new Uint8Array([7, 7, 7]));
    expect([...dev.dmaRead(0x10_0000n, 3)]).toEqual([7, 7, 7]);
    expect(g.unmap(1, 0x10_0000n, 0x10_1fffn)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([]);
    expect(() => dev.dmaWrite(0x10_1ffbn, data)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
    expect(pinned(g)).toBe(0);
  });

  test('a host IOMMU fault of the assigned device reaches the eventq as a MAPPING record', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    const dev = g.kernel.device(A);
    g.attach(1, EP_A);
    g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n, READ);
    expect(() => dev.dmaWrite(0x10_0000n, data)).toThrow(expect.objectContaining({ reason: 'permission' }));
    expect(() => dev.dmaRead(0x20_0000n, 4)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
    g.postEventBuffers(4);
    expect(g.reapFaults()).toEqual([
      { len: 24, reason: uapi.VIRTIO_IOMMU_FAULT_R_MAPPING, flags: uapi.VIRTIO_IOMMU_FAULT_F_WRITE | uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint: EP_A, reserved1: 0, address: 0x10_0000n, reserved: [0, 0, 0] },
      { len: 24, reason: uapi.VIRTIO_IOMMU_FAULT_R_MAPPING, flags: uapi.VIRTIO_IOMMU_FAULT_F_READ | uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint: EP_A, reserved1: 0, address: 0x20_0000n, reserved: [0, 0, 0] },
    ]);
    // Each host fault is reported once.
    g.device.notify(0);
    g.postEventBuffers(0);
    expect(g.reapFaults()).toEqual([]);
  });

  test('a host fault of an unattached endpoint with bypass off is a DOMAIN record; faults of other devices or from before the device are not reported', () => {
    const kernelFault = vfioGuest([{ id: EP_B, kind: 'vfio', bdf: B }], { options: { bootBypass: false } });
    const g = kernelFault;
    expect(() => g.kernel.device(A).dmaRead(0n, 4)).toThrow(DmaFault); // not behind the virtio-iommu
    expect(() => g.kernel.device(B).dmaRead(0x4000n, 4)).toThrow(DmaFault);
    g.postEventBuffers(2);
    expect(g.reapFaults().map((f) => [f.reason, f.endpoint, f.address])).toEqual([[uapi.VIRTIO_IOMMU_FAULT_R_DOMAIN, EP_B, 0x4000n]]);
  });

  test('faults wait for eventq buffers and are delivered when the driver posts them', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    expect(() => g.kernel.device(A).dmaRead(0x9000n, 4)).toThrow(DmaFault);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n)).toBe(S.OK); // the notify collects the host fault
    expect(g.device.debugState().pendingFaults).toBe(1);
    g.postEventBuffers(1);
    expect(g.reapFaults().map((f) => [f.reason, f.address])).toEqual([[uapi.VIRTIO_IOMMU_FAULT_R_MAPPING, 0x9000n]]);
    expect(g.device.debugState().pendingFaults).toBe(0);
  });

  test.each([
    ['a GPA range outside guest RAM → FAULT (never another part of the VMM)', 0x10_0000n, 0x10_0fffn, BigInt(RAM), READ, S.FAULT],
    ['a GPA range crossing the end of guest RAM → FAULT', 0x10_0000n, 0x10_1fffn, BigInt(RAM - 4096), READ, S.FAULT],
    ['misaligned to the host granule → RANGE', 0x10_0800n, 0x10_17ffn, 0x30_0000n, READ, S.RANGE],
    ['beyond the host aperture (2^48) → RANGE', 1n << 48n, (1n << 48n) + 0xfffn, 0x30_0000n, READ, S.RANGE],
    ['over the interrupt window → INVAL', 0xfee0_0000n, 0xfee0_0fffn, 0x30_0000n, READ, S.INVAL],
  ])('MAP %s; the container stays empty', (_name, start, last, phys, flags, expected) => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    expect(g.map(1, start, last, phys, flags)).toBe(expected);
    expect(forwarded(g, EP_A)).toEqual([]);
    expect(g.device.debugState().domains[0]!.mappings).toEqual([]);
    expect(pinned(g)).toBe(0);
  });

  test('MMIO mappings and mappings without permission stay in the device (QEMU does not forward them)', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    expect(g.map(1, 0x1000n, 0x1fffn, 0x4000_0000n, WRITE | MMIO)).toBe(S.OK);
    expect(g.map(1, 0x2000n, 0x2fffn, 0x30_0000n, 0)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([]);
    expect(g.device.debugState().domains[0]!.mappings).toHaveLength(2);
    expect(g.unmap(1, 0n, U64_MAX)).toBe(S.OK);
    expect(g.device.debugState().domains[0]!.mappings).toEqual([]);
  });

  test('UNMAP(0, ~0) removes every container mapping one by one (a 2^64 range no VFIO call can express)', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    for (let i = 0n; i < 4n; i++) expect(g.map(1, i * 0x10_0000n, i * 0x10_0000n + 0xfffn, 0x30_0000n + i * 0x1000n)).toBe(S.OK);
    expect(pinned(g)).toBe(4);
    expect(g.unmap(1, 0n, U64_MAX)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([]);
    expect(pinned(g)).toBe(0);
  });

  test('an endpoint whose bypass identity map does not fit RLIMIT_MEMLOCK stays blocked and the device needs a reset', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    g.vmm.setMemlockLimit(1n << 20n);
    g.device.writeConfig(36, new Uint8Array([1]));
    expect(g.device.getStatus() & uapi.VIRTIO_CONFIG_S_NEEDS_RESET).toBe(uapi.VIRTIO_CONFIG_S_NEEDS_RESET);
    expect(g.device.debugState().endpoints).toEqual([{ id: EP_A, kind: 'vfio', domain: undefined, translation: 'blocked' }]);
    expect(() => g.kernel.device(A).dmaRead(0x5000n, 4)).toThrow(DmaFault);
    expect(pinned(g)).toBe(0);
    g.kernel.checkInvariants();
  });

  test('the container\'s dma_entry_limit (ENOSPC) surfaces as NOMEM', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false }, kernel: { dmaEntryLimit: 2 } });
    g.attach(1, EP_A);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n)).toBe(S.OK);
    expect(g.map(1, 0x20_0000n, 0x20_0fffn, 0x30_0000n)).toBe(S.OK);
    expect(g.map(1, 0x30_0000n, 0x30_0fffn, 0x30_0000n)).toBe(S.NOMEM);
    expect(g.device.debugState().domains[0]!.mappings).toHaveLength(2);
  });
});

describe('endpoints moving between domains', () => {
  const both: EndpointSpec[] = [
    { id: EP_A, kind: 'vfio', bdf: A },
    { id: EP_B, kind: 'vfio', bdf: B },
  ];

  test('a domain\'s mappings are replicated into every endpoint container in it', () => {
    const g = vfioGuest(both, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    g.attach(1, EP_B);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([[0x10_0000n, 0x1000n]]);
    expect(forwarded(g, EP_B)).toEqual([[0x10_0000n, 0x1000n]]);
    g.kernel.device(A).dmaWrite(0x10_0000n, data);
    expect([...g.kernel.device(B).dmaRead(0x10_0000n, 5)]).toEqual([...data]);
    expect(g.unmap(1, 0x10_0000n, 0x10_0fffn)).toBe(S.OK);
    expect([forwarded(g, EP_A), forwarded(g, EP_B)]).toEqual([[], []]);
  });

  test('ATTACH to another domain removes the old domain\'s mappings and replays the new one\'s; DETACH removes them', () => {
    const g = vfioGuest(both, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n);
    g.map(1, 0x20_0000n, 0x20_1fffn, 0x31_0000n);
    g.attach(2, EP_B);
    g.map(2, 0x40_0000n, 0x40_0fffn, 0x32_0000n, READ);
    expect(g.attach(2, EP_A)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([[0x40_0000n, 0x1000n]]);
    expect(forwarded(g, EP_B)).toEqual([[0x40_0000n, 0x1000n]]);
    expect(g.device.debugState().domains.map((d) => d.id)).toEqual([2]);
    expect(() => g.kernel.device(A).dmaRead(0x10_0000n, 1)).toThrow(DmaFault);
    expect(() => g.kernel.device(A).dmaWrite(0x40_0000n, data)).toThrow(expect.objectContaining({ reason: 'permission' }));
    expect(pinned(g)).toBe(2);
    expect(g.detach(2, EP_B)).toBe(S.OK);
    expect(forwarded(g, EP_B)).toEqual([]);
    expect(forwarded(g, EP_A)).toEqual([[0x40_0000n, 0x1000n]]);
    expect(g.detach(2, EP_A)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([]);
    expect(pinned(g)).toBe(0);
    g.kernel.checkInvariants();
  });

  test('a VFIO failure in the second container rolls the first back: device and containers agree (NOMEM from memlock)', () => {
    const g = vfioGuest(both, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    g.attach(1, EP_B);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n)).toBe(S.OK);
    // Two more pages fit in RLIMIT_MEMLOCK for one container, not for both.
    g.vmm.setMemlockLimit(BigInt(4 * 4096));
    expect(g.map(1, 0x20_0000n, 0x20_1fffn, 0x31_0000n)).toBe(S.NOMEM);
    expect(forwarded(g, EP_A)).toEqual([[0x10_0000n, 0x1000n]]);
    expect(forwarded(g, EP_B)).toEqual([[0x10_0000n, 0x1000n]]);
    expect(g.device.debugState().domains[0]!.mappings.map((m) => m.start)).toEqual([0x10_0000n]);
    expect(g.vmm.mm.lockedVm).toBe(2);
    expect(() => g.kernel.device(A).dmaRead(0x20_0000n, 1)).toThrow(DmaFault);
    g.kernel.checkInvariants();
  });

  test('a pin failure during the replay of ATTACH leaves the endpoint where it was, with its mappings restored', () => {
    const g = vfioGuest(both, { options: { bootBypass: false } });
    g.attach(1, EP_A);
    g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n);
    g.attach(2, EP_B);
    g.map(2, 0x40_0000n, 0x40_0fffn, 0x32_0000n);
    g.map(2, 0x50_0000n, 0x50_0fffn, 0x33_0000n);
    // Tearing domain 1 down pins nothing; the replay pins 1 page, then fails on the second mapping.
    g.kernel.faultInjector.failPinAfter(1);
    expect(g.attach(2, EP_A)).toBe(S.FAULT);
    expect(g.device.debugState().domains.map((d) => [d.id, d.endpoints])).toEqual([
      [1, [EP_A]],
      [2, [EP_B]],
    ]);
    expect(forwarded(g, EP_A)).toEqual([[0x10_0000n, 0x1000n]]);
    g.kernel.device(A).dmaWrite(0x10_0000n, data);
    expect(g.attach(2, EP_A)).toBe(S.OK);
    expect(forwarded(g, EP_A)).toEqual([
      [0x40_0000n, 0x1000n],
      [0x50_0000n, 0x1000n],
    ]);
    g.kernel.checkInvariants();
  });

  test('endpoints sharing an IOMMU group are refused at construction (QEMU: "group used in multiple address spaces")', () => {
    expect(
      () =>
        new Guest({
          devices: [
            { bdf: A, group: 26 },
            { bdf: '0000:06:0d.1', group: 26 },
          ],
          endpoints: [
            { id: 1, kind: 'vfio', bdf: A },
            { id: 2, kind: 'vfio', bdf: '0000:06:0d.1' },
          ],
        }),
    ).toThrow(RangeError);
  });
});

describe('nothing leaks', () => {
  const mixed: EndpointSpec[] = [
    { id: EP_A, kind: 'vfio', bdf: A },
    { id: EP_B, kind: 'vfio', bdf: B },
    { id: 0x10, kind: 'emulated' },
  ];

  function busy(g: Guest): void {
    g.attach(1, EP_A);
    g.attach(1, 0x10);
    g.attach(2, EP_B);
    g.map(1, 0x10_0000n, 0x10_ffffn, 0x30_0000n);
    g.map(2, 0x20_0000n, 0x20_0fffn, 0x31_0000n);
  }

  test('device reset empties every container (bypass off): no pin, no locked_vm, invariants hold', () => {
    const g = vfioGuest(mixed, { options: { bootBypass: false } });
    busy(g);
    expect(pinned(g)).toBe(17);
    g.device.setStatus(0);
    expect(pinned(g)).toBe(0);
    expect(g.vmm.mm.lockedVm).toBe(0);
    expect([forwarded(g, EP_A), forwarded(g, EP_B)]).toEqual([[], []]);
    g.kernel.checkInvariants();
  });

  test('device reset with bypass on leaves exactly the identity maps', () => {
    const g = vfioGuest(mixed);
    busy(g);
    g.device.reset();
    expect(pinned(g)).toBe((2 * RAM) / 4096);
    g.kernel.checkInvariants();
    g.kernel.device(B).dmaWrite(0x6000n, data);
    expect(g.mem.readU32(0x6000)).toBe(0x44332211);
  });

  test('closing the VMM\'s fds (the device\'s release) unpins everything', () => {
    const g = vfioGuest(mixed);
    busy(g);
    const before = g.vmm.openFds().length;
    g.device.release();
    expect(g.vmm.openFds().length).toBe(before - 4);
    expect(pinned(g)).toBe(0);
    expect(g.vmm.mm.lockedVm).toBe(0);
    g.kernel.checkInvariants();
  });

  test('the VMM exiting with the device busy leaves nothing behind, and a later release is harmless', () => {
    const g = vfioGuest(mixed);
    busy(g);
    g.vmm.exit();
    g.kernel.checkInvariants();
    expect(pinned(g)).toBe(0);
    g.device.release();
  });
});
