/**
 * The guest driver model (virtio-iommu/virtio-iommu-driver.ts) against the device: Linux's
 * initialisation, PROBE parsing, domain IDs, replay of a domain's mappings at its first attach, the
 * identity domain with and without BYPASS_CONFIG, the DMA API in strict and lazy invalidation modes
 * (kicks per operation, when an unmapped IOVA stops translating, when it is reused), a full queue, and
 * fault records read back from the eventq. Everything travels as bytes through the virtqueues.
 */
import { DmaFault, Kernel, uapi } from '../../index';
import { GuestMemory } from '../../virtio-iommu/guest-memory';
import { VirtioIommuDevice, type EndpointSpec, type VirtioIommuOptions } from '../../virtio-iommu/virtio-iommu-device';
import { VirtioIommuDriver, VirtioIommuDriverError, type VirtioIommuDriverOptions, type VirtioTransport } from '../../virtio-iommu/virtio-iommu-driver';

const RAM = 16 << 20;
const EP = 0x10;

function world(options: VirtioIommuOptions = {}, driver: Partial<VirtioIommuDriverOptions> = {}, endpoints: EndpointSpec[] = [{ id: EP, kind: 'emulated' }]) {
  const kernel = new Kernel();
  const vmm = kernel.spawn({ memlockLimit: 1n << 34n });
  const hva = vmm.mmap(RAM);
  const device = new VirtioIommuDevice(vmm, { guestRam: { hva, size: BigInt(RAM) }, endpoints, options });
  const mem = new GuestMemory(vmm, hva, BigInt(RAM));
  const guest = new VirtioIommuDriver(device, mem, { base: 1 << 20, ...driver });
  guest.init();
  return { kernel, vmm, device, mem, guest, dma: device.endpointDma(EP) };
}

const bit = (n: number): bigint => 1n << BigInt(n);

describe('initialisation', () => {
  test('negotiates the features Linux knows and reaches DRIVER_OK', () => {
    const { device, guest } = world();
    expect(device.getStatus()).toBe(15);
    expect(device.driverFeatures()).toBe(device.deviceFeatures());
    expect(guest.has(uapi.VIRTIO_IOMMU_F_BYPASS_CONFIG)).toBe(true);
    expect(guest.pageSizeMask).toBe(0xffff_ffff_ffff_f000n);
  });

  test('never accepts legacy F_BYPASS', () => {
    const { device } = world({ features: { bypassConfig: false, legacyBypass: true } });
    expect(device.driverFeatures() & bit(uapi.VIRTIO_IOMMU_F_BYPASS)).toBe(0n);
  });

  test('refuses a device without MAP_UNMAP and sets FAILED', () => {
    let status = 0;
    const transport: VirtioTransport = {
      deviceFeatures: () => bit(uapi.VIRTIO_F_VERSION_1),
      setDriverFeatures: () => undefined,
      getStatus: () => status,
      setStatus: (v) => (status = v),
      readConfig: (_o, n) => new Uint8Array(n),
      setupQueue: () => undefined,
      notify: () => undefined,
    };
    const kernel = new Kernel();
    const vmm = kernel.spawn();
    const hva = vmm.mmap(RAM);
    const guest = new VirtioIommuDriver(transport, new GuestMemory(vmm, hva, BigInt(RAM)), { base: 1 << 20 });
    expect(() => guest.init()).toThrow(/MAP_UNMAP/);
    expect(status & uapi.VIRTIO_CONFIG_S_FAILED).toBe(uapi.VIRTIO_CONFIG_S_FAILED);
  });
});

describe('endpoints and domains', () => {
  test('PROBE gives the RESV_MEM regions, and PAGE_SIZE_MASK when the device reports it', () => {
    const { guest } = world({ probePageSizeMask: true });
    expect(guest.probe(EP)).toEqual({ resvRegions: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn, subtype: 'msi' }], pageSizeMask: 0xffff_ffff_ffff_f000n });
  });

  test('PROBE of an endpoint that does not exist throws NOENT', () => {
    const { guest } = world();
    expect(() => guest.probe(0x99)).toThrow(expect.objectContaining({ name: 'VirtioIommuDriverError', status: uapi.VIRTIO_IOMMU_S_NOENT }));
    expect(() => guest.attach(guest.createDomain(), 0x99)).toThrow(VirtioIommuDriverError);
  });

  test('domain IDs start after the identity domain\'s with BYPASS_CONFIG, at domain_range.start without it', () => {
    const a = world({}, {}, [{ id: 1, kind: 'emulated' }, { id: 2, kind: 'emulated' }, { id: EP, kind: 'emulated' }]);
    a.guest.attach(a.guest.createDomain(), 1);
    a.guest.attach(a.guest.createDomain(), 2);
    a.guest.attach(a.guest.createIdentityDomain(), EP);
    expect(a.device.debugState().domains.map((d) => [d.id, d.bypass, d.endpoints])).toEqual([
      [0, true, [EP]],
      [1, false, [1]],
      [2, false, [2]],
    ]);
    const b = world({ features: { bypassConfig: false } }, {}, [{ id: 1, kind: 'emulated' }, { id: EP, kind: 'emulated' }]);
    b.guest.attach(b.guest.createDomain(), 1);
    expect(b.device.debugState().domains.map((d) => d.id)).toEqual([0]);
  });

  test('MAPs of a domain without endpoints stay in the driver and are replayed at its first attach', () => {
    const { device, guest } = world();
    const d = guest.createDomain();
    const before = guest.stats.requests;
    guest.map(d, 0x10_0000n, 0x20_0000n, 0x1000n, uapi.VIRTIO_IOMMU_MAP_F_READ);
    guest.map(d, 0x20_0000n, 0x30_0000n, 0x2000n, uapi.VIRTIO_IOMMU_MAP_F_WRITE);
    expect(guest.stats.requests).toBe(before);
    guest.attach(d, EP);
    expect(device.debugState().domains[0]!.mappings.map((m) => [m.start, m.end, m.phys, m.flags])).toEqual([
      [0x10_0000n, 0x10_1000n, 0x20_0000n, 1],
      [0x20_0000n, 0x20_2000n, 0x30_0000n, 2],
    ]);
    // The last DETACH takes the device's copy; the next first attach replays it again.
    guest.detach(d, EP);
    expect(device.debugState().domains).toEqual([]);
    guest.attach(d, EP);
    expect(device.debugState().domains[0]!.mappings).toHaveLength(2);
  });

  test('the identity domain without BYPASS_CONFIG identity-maps guest RAM', () => {
    const { device, guest, dma, mem } = world({ features: { bypassConfig: false } });
    guest.attach(guest.createIdentityDomain(), EP);
    expect(device.debugState().domains[0]!.mappings).toEqual([{ start: 0n, end: BigInt(RAM), phys: 0n, flags: 3 }]);
    mem.write(0x5000, new Uint8Array([4, 5]));
    expect([...dma.dmaRead(0x5000n, 2)]).toEqual([4, 5]);
  });
});

describe('the DMA API', () => {
  const buffer = 0x40_0000n;

  test('dmaMap hands out granule-aligned IOVAs top-down below the input range end, keeping the offset in the page', () => {
    const { guest } = world({ inputRange: { start: 0n, last: 0xffff_ffffn } });
    const d = guest.createDomain();
    guest.attach(d, EP);
    expect(guest.dmaMap(d, buffer + 0x10n, 1500, 'to-device')).toBe(0xffff_f010n);
    expect(guest.dmaMap(d, buffer, 0x1001, 'to-device')).toBe(0xffff_d000n);
  });

  test('IOVAs avoid the RESV_MEM regions', () => {
    const { guest } = world({ inputRange: { start: 0xfee0_0000n, last: 0xfef0_0fffn } });
    const d = guest.createDomain();
    guest.attach(d, EP);
    expect(guest.dmaMap(d, buffer, 4096, 'bidirectional')).toBe(0xfef0_0000n);
    expect(() => guest.dmaMap(d, buffer, 4096, 'bidirectional')).toThrow(/exhausted/);
  });

  test('strict: the device DMAs through the mapping; after dmaUnmap it faults; one kick per map and per unmap', () => {
    const { guest, dma, mem } = world({ bootBypass: false });
    const d = guest.createDomain();
    guest.attach(d, EP);
    const kicks = guest.stats.kicks;
    const iova = guest.dmaMap(d, buffer, 1500, 'from-device');
    dma.dmaWrite(iova, new Uint8Array([1, 2, 3]));
    expect(mem.readU16(Number(buffer))).toBe(0x0201);
    expect(() => dma.dmaRead(iova, 1)).toThrow(expect.objectContaining({ reason: 'permission' }));
    guest.dmaUnmap(d, iova, 1500);
    expect(() => dma.dmaWrite(iova, new Uint8Array(1))).toThrow(DmaFault);
    expect(guest.stats.kicks - kicks).toBe(2);
    // The IOVA is free again at once.
    expect(guest.dmaMap(d, buffer, 1500, 'from-device')).toBe(iova);
  });

  test('lazy: the UNMAP waits for the next sync, the IOVA for the flush', () => {
    const { guest, dma } = world({ bootBypass: false }, { mode: 'lazy', flushQueueSize: 4 });
    const d = guest.createDomain();
    guest.attach(d, EP);
    const first = guest.dmaMap(d, buffer, 1500, 'from-device');
    const kicks = guest.stats.kicks;
    guest.dmaUnmap(d, first, 1500);
    expect(guest.stats.kicks).toBe(kicks);
    dma.dmaWrite(first, new Uint8Array(1)); // not invalidated yet: still translates
    const second = guest.dmaMap(d, buffer, 1500, 'from-device');
    expect(second).not.toBe(first); // not reused before the flush
    expect(guest.stats.kicks).toBe(kicks + 1); // the UNMAP rode along with the MAP's sync
    expect(() => dma.dmaWrite(first, new Uint8Array(1))).toThrow(DmaFault);
    for (let i = 0; i < 3; i++) guest.dmaUnmap(d, guest.dmaMap(d, buffer, 1500, 'from-device'), 1500);
    guest.dmaUnmap(d, second, 1500);
    expect(guest.stats.flushes).toBe(1);
    expect(guest.dmaMap(d, buffer, 1500, 'from-device')).toBe(first);
  });

  test('a full requestq is synced before more requests are added', () => {
    const { device, guest } = world({ bootBypass: false }, { mode: 'lazy', queueSize: 8, flushQueueSize: 1000 });
    const d = guest.createDomain();
    guest.attach(d, EP);
    const iovas = Array.from({ length: 20 }, () => guest.dmaMap(d, buffer, 4096, 'to-device'));
    const syncs = guest.stats.syncs;
    for (const iova of iovas) guest.dmaUnmap(d, iova, 4096);
    expect(guest.stats.syncs).toBe(syncs + 2);
    guest.flush(d);
    expect(device.debugState().domains[0]!.mappings).toEqual([]);
    expect(guest.stats.failedRequests).toBe(0);
  });

  test('a NIC-like workload: kicks per packet are 2 in strict mode and about 1 in lazy mode', () => {
    const run = (mode: 'strict' | 'lazy'): number => {
      const { guest, dma } = world({ bootBypass: false }, { mode });
      const d = guest.createDomain();
      guest.attach(d, EP);
      const start = guest.stats.kicks;
      const packet = new Uint8Array(1500).fill(0xab);
      for (let i = 0; i < 512; i++) {
        const gpa = buffer + BigInt((i % 64) * 2048);
        const iova = guest.dmaMap(d, gpa, 1500, 'from-device');
        dma.dmaWrite(iova, packet);
        guest.dmaUnmap(d, iova, 1500);
      }
      expect(guest.stats.failedRequests).toBe(0);
      return (guest.stats.kicks - start) / 512;
    };
    expect(run('strict')).toBe(2);
    expect(run('lazy')).toBeCloseTo(1 + 1 / 256, 5);
  });
});

describe('faults', () => {
  test('fault records come back through pollFaults and the eventq buffers are re-posted', () => {
    const { guest, dma } = world({ bootBypass: false });
    const d = guest.createDomain();
    guest.attach(d, EP);
    expect(() => dma.dmaRead(0x1234_5000n, 4)).toThrow(DmaFault);
    expect(() => dma.dmaWrite(0x2000n, new Uint8Array(4))).toThrow(DmaFault);
    expect(guest.pollFaults()).toEqual([
      { reason: uapi.VIRTIO_IOMMU_FAULT_R_MAPPING, flags: uapi.VIRTIO_IOMMU_FAULT_F_READ | uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint: EP, address: 0x1234_5000n },
      { reason: uapi.VIRTIO_IOMMU_FAULT_R_MAPPING, flags: uapi.VIRTIO_IOMMU_FAULT_F_WRITE | uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS, endpoint: EP, address: 0x2000n },
    ]);
    for (let i = 0; i < 40; i++) expect(() => dma.dmaRead(0x3000n, 1)).toThrow(DmaFault);
    expect(guest.pollFaults()).toHaveLength(32);
    expect(guest.pollFaults()).toHaveLength(8);
    expect(guest.pollFaults()).toHaveLength(0);
  });
});
