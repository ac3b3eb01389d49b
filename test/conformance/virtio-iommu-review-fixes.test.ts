/**
 * Fixes from the review of the virtio-iommu device: a quarantined endpoint stays empty, bypass teardown
 * keeps its bookkeeping on a partial failure, UNMAP_DMA errors other than a split, host faults
 * forwarded by sequence number.
 */
import { DmaFault, MACHINE_PRESETS, SysError, type MachineSpec, type PciDeviceSpec } from '../../index';
import { uapi } from '../../index';
import { Guest, READ, S, WRITE, probeReq, type GuestOptions } from '../helpers/virtio-iommu-guest';
import { VfioEndpointMapper } from '../../virtio-iommu/vfio-endpoint-mapper';
import type { EndpointSpec } from '../../virtio-iommu/virtio-iommu-device';

const A = '0000:06:0d.0';
const B = '0000:07:00.0';
const EP_A = 0x0668;
const EP_B = 0x0700;
const DEVICES: PciDeviceSpec[] = [
  { bdf: A, group: 26 },
  { bdf: B, group: 27 },
];
const RAM = 16 << 20;
const NEEDS_RESET = uapi.VIRTIO_CONFIG_S_NEEDS_RESET;
const both: EndpointSpec[] = [
  { id: EP_A, kind: 'vfio', bdf: A },
  { id: EP_B, kind: 'vfio', bdf: B },
];

function vfioGuest(endpoints: EndpointSpec[], more: Partial<GuestOptions> = {}): Guest {
  return new Guest({ devices: DEVICES, endpoints, ramSize: RAM, ...more });
}

function mapperOf(g: Guest, id: number): VfioEndpointMapper {
  return g.device.endpointMapper(id) as VfioEndpointMapper;
}

/** VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL through the endpoint's container: bytes removed. */
function unmapAllBytes(g: Guest, id: number): bigint {
  return mapperOf(g, id).container.unmapAll();
}

describe('quarantine during ATTACH', () => {
  test('a replay whose rollback fails quarantines the endpoint and does not rebuild its old domain in the container', () => {
    const g = vfioGuest(both, { options: { bootBypass: false } });
    expect(g.attach(1, EP_A)).toBe(S.OK);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n, READ | WRITE)).toBe(S.OK);
    expect(g.attach(2, EP_B)).toBe(S.OK);
    expect(g.map(2, 0x40_0000n, 0x40_0fffn, 0x32_0000n, READ | WRITE)).toBe(S.OK);
    expect(g.map(2, 0x50_0000n, 0x50_0fffn, 0x33_0000n, READ | WRITE)).toBe(S.OK);
    const mapper = mapperOf(g, EP_A);
    // Teardown of domain 1 unmaps 0x10_0000 (allowed); the replay maps 0x40_0000, then the second pin
    // fails; the rollback's unmap of 0x40_0000 fails too.
    const realUnmap = mapper.unmap.bind(mapper);
    let calls = 0;
    mapper.unmap = (iova, size) => {
      calls++;
      if (calls === 2) throw new SysError('EIO', { reason: 'injected' });
      return realUnmap(iova, size);
    };
    g.kernel.faultInjector.failPinAfter(1);
    expect(g.attach(2, EP_A)).toBe(S.FAULT);
    expect(calls).toBe(2);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(NEEDS_RESET);
    expect(g.device.debugState().endpoints.find((e) => e.id === EP_A)).toEqual({ id: EP_A, kind: 'vfio', domain: undefined, translation: 'blocked' });
    expect(mapper.forwardedMappings()).toEqual([]);
    expect(unmapAllBytes(g, EP_A)).toBe(0n);
    expect(g.device.debugState().domains.map((d) => [d.id, d.endpoints])).toEqual([[2, [EP_B]]]);
  });
});

describe('entering and leaving bypass when an identity unmap fails', () => {
  // x86-vtd with a reserved hole at 8 MiB: the bypass identity map of 16 MiB of guest RAM is two ranges.
  const vtd = MACHINE_PRESETS['x86-vtd'];
  const holed: MachineSpec = {
    ...vtd,
    iommus: [{ ...vtd.iommus[0]!, reservedRegions: [...vtd.iommus[0]!.reservedRegions, { start: 0x80_0000n, last: 0x8f_ffffn, type: 'reserved' }] }],
  };
  const oneA: EndpointSpec[] = [{ id: EP_A, kind: 'vfio', bdf: A }];

  /** Makes the `n`th UNMAP_DMA of the endpoint's container (from now on) fail with EIO. */
  function failUnmapNumber(mapper: VfioEndpointMapper, n: number): void {
    const real = mapper.container.unmapDma.bind(mapper.container);
    let calls = 0;
    mapper.container.unmapDma = (iova, size, flags) => {
      if (++calls === n) throw new SysError('EIO', { reason: 'injected' });
      return real(iova, size, flags);
    };
  }

  test('setBypass(false) keeps the ranges still mapped, stays in bypass, and rethrows', () => {
    const g = vfioGuest(oneA, { machine: holed });
    const mapper = mapperOf(g, EP_A);
    expect(mapper.isBypass).toBe(true);
    failUnmapNumber(mapper, 2);
    expect(() => mapper.setBypass(false)).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(mapper.isBypass).toBe(true);
    // The range that was removed is gone from the container; the other one is still there.
    expect(() => g.kernel.device(A).dmaRead(0x90_0000n, 4)).toThrow(DmaFault);
    expect(g.kernel.device(A).dmaRead(0x1000n, 4)).toHaveLength(4);
    mapper.setBypass(false);
    expect(mapper.isBypass).toBe(false);
    expect(unmapAllBytes(g, EP_A)).toBe(0n);
  });

  test('setBypass(true) whose build and undo both fail keeps what is still mapped listed, and clear() removes it', () => {
    const g = vfioGuest(oneA, { machine: holed, options: { bootBypass: false } });
    const mapper = mapperOf(g, EP_A);
    expect(mapper.isBypass).toBe(false);
    // The first range (8 MiB, 2048 pages) maps; the second fails to pin; the undo's unmap fails.
    g.kernel.faultInjector.failPinAfter(2048);
    failUnmapNumber(mapper, 1);
    expect(() => mapper.setBypass(true)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(mapper.isBypass).toBe(true);
    expect(g.kernel.device(A).dmaRead(0x1000n, 4)).toHaveLength(4);
    mapper.clear();
    expect(mapper.isBypass).toBe(false);
    expect(unmapAllBytes(g, EP_A)).toBe(0n);
  });

  test('a bypass write whose identity build and undo both fail leaves the endpoint blocked with an empty container', () => {
    const g = vfioGuest(oneA, { machine: holed, options: { bootBypass: false } });
    const mapper = mapperOf(g, EP_A);
    g.kernel.faultInjector.failPinAfter(2048);
    failUnmapNumber(mapper, 1);
    g.device.writeConfig(uapi.VirtioIommuConfig.offsetof('bypass'), new Uint8Array([1]));
    expect(g.device.debugState().endpoints).toEqual([{ id: EP_A, kind: 'vfio', domain: undefined, translation: 'blocked' }]);
    expect(mapper.isBypass).toBe(false);
    expect(unmapAllBytes(g, EP_A)).toBe(0n);
  });

  test('an ATTACH whose identity teardown fails part-way quarantines the endpoint: blocked, container empty, NEEDS_RESET', () => {
    const g = vfioGuest(oneA, { machine: holed });
    failUnmapNumber(mapperOf(g, EP_A), 2);
    expect(g.attach(1, EP_A)).toBe(S.IOERR);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(NEEDS_RESET);
    expect(g.device.debugState().endpoints).toEqual([{ id: EP_A, kind: 'vfio', domain: undefined, translation: 'blocked' }]);
    expect(g.device.debugState().domains).toEqual([]);
    expect(mapperOf(g, EP_A).isBypass).toBe(false);
    expect(unmapAllBytes(g, EP_A)).toBe(0n);
  });
});

describe('an UNMAP_DMA EINVAL for an exact mapping', () => {
  const oneA: EndpointSpec[] = [{ id: EP_A, kind: 'vfio', bdf: A }];

  test('is EIO from the mapper (device and backend disagree), not a would-split', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    expect(g.attach(1, EP_A)).toBe(S.OK);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n, READ | WRITE)).toBe(S.OK);
    const mapper = mapperOf(g, EP_A);
    // The group leaves the container: the container has no IOMMU any more and answers EINVAL.
    mapper.group.unsetContainer();
    expect(() => mapper.unmap(0x10_0000n, 0x1000n)).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(mapper.forwardedMappings()).toEqual([[0x10_0000n, 0x1000n]]);
  });

  test('an UNMAP request then completes with S_IOERR and the domain keeps the mapping', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    expect(g.attach(1, EP_A)).toBe(S.OK);
    expect(g.map(1, 0x10_0000n, 0x10_0fffn, 0x30_0000n, READ | WRITE)).toBe(S.OK);
    mapperOf(g, EP_A).group.unsetContainer();
    expect(g.unmap(1, 0x10_0000n, 0x10_0fffn)).toBe(S.IOERR);
    expect(g.device.debugState().domains[0]!.mappings).toHaveLength(1);
  });
});

describe('host faults are followed by sequence number', () => {
  const oneA: EndpointSpec[] = [{ id: EP_A, kind: 'vfio', bdf: A }];

  /** Delivers every fault record the device holds; their addresses in delivery order. */
  function drainFaultAddresses(g: Guest): bigint[] {
    const out: bigint[] = [];
    for (let pending = g.device.debugState().pendingFaults; pending > 0; pending = g.device.debugState().pendingFaults) {
      const n = Math.min(pending, 32); // the eventq has 64 descriptors
      g.postEventBuffers(n);
      const got = g.reapFaults();
      expect(got.map((f) => f.len)).toEqual(new Array<number>(n).fill(24));
      out.push(...got.map((f) => f.address));
    }
    return out;
  }

  test('more faults than the kernel log holds between two notifies: the 1024 held are forwarded, none twice', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false, faultQueueCapacity: 4096 } });
    expect(g.attach(1, EP_A)).toBe(S.OK);
    const dev = g.kernel.device(A);
    expect(() => dev.dmaRead(0x1000n, 4)).toThrow(DmaFault);
    g.device.notify(0);
    expect(drainFaultAddresses(g)).toEqual([0x1000n]);
    const total = 1500;
    for (let i = 0; i < total; i++) expect(() => dev.dmaRead(BigInt(0x100_0000 + i * 0x1000), 4)).toThrow(DmaFault);
    g.device.notify(0);
    const expected = Array.from({ length: 1024 }, (_, k) => BigInt(0x100_0000 + (total - 1024 + k) * 0x1000));
    expect(drainFaultAddresses(g)).toEqual(expected);
    // Three more: exactly those, once.
    for (let i = 0; i < 3; i++) expect(() => dev.dmaRead(BigInt(0x800_0000 + i * 0x1000), 4)).toThrow(DmaFault);
    g.device.notify(0);
    g.device.notify(0);
    expect(drainFaultAddresses(g)).toEqual([0x800_0000n, 0x800_1000n, 0x800_2000n]);
  });

  test('a notify with no new host fault does not read the kernel fault log', () => {
    const g = vfioGuest(oneA, { options: { bootBypass: false } });
    expect(g.attach(1, EP_A)).toBe(S.OK);
    for (let i = 0; i < 1100; i++) expect(() => g.kernel.device(A).dmaRead(BigInt(i * 0x1000), 4)).toThrow(DmaFault);
    g.device.notify(0);
    const copies = jest.spyOn(g.kernel, 'dmaFaults');
    const since = jest.spyOn(g.kernel, 'dmaFaultsSince');
    for (let i = 0; i < 10; i++) g.device.notify(0);
    expect(copies).toHaveBeenCalledTimes(0);
    expect(since).toHaveBeenCalledTimes(0);
  });
});

describe('MSI windows of emulated endpoints follow the assigned ones', () => {
  // Two IOMMU units: unit 1 (translating B) reserves its MSI doorbells at 128 MiB, not at 0xfee00000.
  const vtd = MACHINE_PRESETS['x86-vtd'];
  const twoUnits: MachineSpec = {
    ...vtd,
    iommus: [vtd.iommus[0]!, { ...vtd.iommus[0]!, name: 'intel-vtd-1', reservedRegions: [{ start: 0x800_0000n, last: 0x80f_ffffn, type: 'msi' }] }],
  };
  const devices: PciDeviceSpec[] = [{ bdf: B, group: 27, iommu: 1 }];

  function msiOf(g: Guest, id: number): { start: bigint; end: bigint } {
    const r = g.send(probeReq(id, 512));
    expect(r.status).toBe(S.OK);
    const p = uapi.VirtioIommuProbeResvMem.decode(r.writable, 0);
    expect(p.subtype).toBe(uapi.VIRTIO_IOMMU_RESV_MEM_T_MSI);
    return { start: p.start, end: p.end };
  }

  test('an emulated endpoint beside a VFIO endpoint on the second unit reports that unit\'s MSI window, as the VFIO endpoint does', () => {
    const g = new Guest({ machine: twoUnits, devices, endpoints: [{ id: 8, kind: 'emulated' }, { id: EP_B, kind: 'vfio', bdf: B }], ramSize: RAM, options: { bootBypass: false } });
    expect(msiOf(g, EP_B)).toEqual({ start: 0x800_0000n, end: 0x80f_ffffn });
    expect(msiOf(g, 8)).toEqual({ start: 0x800_0000n, end: 0x80f_ffffn });
    // Sharing a domain: the emulated endpoint's MSI window is the VFIO endpoint's, so a MAP there is refused for both.
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(g.attach(1, EP_B)).toBe(S.OK);
    expect(g.map(1, 0xfee0_0000n, 0xfee0_0fffn, 0x30_0000n, READ | WRITE)).toBe(S.OK);
    expect(g.map(1, 0x800_0000n, 0x800_0fffn, 0x31_0000n, READ | WRITE)).toBe(S.INVAL);
  });

  test('without an assigned endpoint an emulated endpoint reports the machine\'s interrupt window', () => {
    const g = new Guest({ machine: twoUnits, devices, endpoints: [{ id: 8, kind: 'emulated' }], ramSize: RAM });
    expect(msiOf(g, 8)).toEqual({ start: 0xfee0_0000n, end: 0xfeef_ffffn });
  });
});

describe('emulated endpoint DMA out of guest RAM', () => {
  test('the out-of-range fault names the IOVA of the segment that leaves guest RAM, and no byte moves', () => {
    const g = new Guest({ endpoints: [{ id: 8, kind: 'emulated' }], ramSize: RAM, options: { bootBypass: false } });
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(g.map(1, 0x1000n, 0x1fffn, 0x30_0000n, READ | WRITE)).toBe(S.OK);
    expect(g.map(1, 0x2000n, 0x2fffn, 0x4000_0000n, READ | WRITE | uapi.VIRTIO_IOMMU_MAP_F_MMIO)).toBe(S.OK);
    let caught: unknown;
    try {
      g.device.endpointDma(8).dmaWrite(0x1ff0n, new Uint8Array(32).fill(0xaa));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DmaFault);
    expect((caught as DmaFault).record).toEqual({ bdf: '0000:00:01.0', group: -1, iova: 0x2000n, access: 'write', reason: 'out-of-range' });
    expect(g.mem.readU32(0x30_0ff0)).toBe(0);
  });
});

describe('config space reads', () => {
  function emulatedGuest(): Guest {
    return new Guest({ endpoints: [{ id: 8, kind: 'emulated' }], ramSize: RAM });
  }

  test.each([
    ['a huge length', 0, 2 ** 40, 40],
    ['an infinite length', 0, Infinity, 40],
    ['a length past the end from offset 32', 32, 1 << 20, 8],
    ['a NaN length', 0, NaN, 0],
  ])('%s is clamped to the config space and does not throw', (_name, offset, length, expected) => {
    const g = emulatedGuest();
    const whole = g.device.readConfig(0, 40);
    const got = g.device.readConfig(offset, length);
    expect(got.length).toBe(expected);
    expect([...got]).toEqual([...whole.subarray(offset, offset + expected)]);
  });

  test('reads of up to 8 bytes keep their width; bytes past the end read as 0', () => {
    const g = emulatedGuest();
    expect([...g.device.readConfig(36, 8)]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect([...g.device.readConfig(100, 2)]).toEqual([0, 0]);
  });

  test('the config image is encoded once, and again only after a bypass write or a reset', () => {
    const g = emulatedGuest();
    const encode = jest.spyOn(uapi.VirtioIommuConfig, 'encode');
    for (let i = 0; i < 10; i++) g.device.readConfig(0, 8);
    expect(encode).toHaveBeenCalledTimes(1);
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([1]));
    g.device.writeConfig(36, new Uint8Array([0]));
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([0]));
    expect(encode).toHaveBeenCalledTimes(2);
    g.device.reset();
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([0]));
    expect(encode).toHaveBeenCalledTimes(3);
    encode.mockRestore();
  });
});
