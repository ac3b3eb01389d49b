/**
 * Every device rule of reference/virtio-iommu.md §3 (ATTACH, DETACH, MAP, UNMAP, PROBE) and the extra
 * cases of §6.2, sent as bytes through the requestq, with the strict decision order of §3.8: where a
 * request breaks two rules, the status of the earlier check wins. Every reply's tail is checked (used
 * length, zero reserved bytes) by Guest.status.
 */
import { uapi } from '../../index';
import {
  Guest,
  MMIO,
  READ,
  S,
  U64_MAX,
  WRITE,
  attachReq,
  bit,
  detachReq,
  mapReq,
  probeReq,
  unmapReq,
  type GuestOptions,
} from '../helpers/virtio-iommu-guest';
import type { EndpointSpec, VirtioIommuOptions } from '../../virtio-iommu/virtio-iommu-device';

const BYPASS = uapi.VIRTIO_IOMMU_ATTACH_F_BYPASS;
const TWO_EMULATED: EndpointSpec[] = [
  { id: 8, kind: 'emulated' },
  { id: 16, kind: 'emulated' },
];

function guest(options: VirtioIommuOptions = {}, more: Partial<GuestOptions> = {}): Guest {
  return new Guest({ endpoints: TWO_EMULATED, options, ...more });
}

function mappingsOf(g: Guest, domain: number): Array<[bigint, bigint]> {
  return (g.device.debugState().domains.find((d) => d.id === domain)?.mappings ?? []).map((m) => [m.start, m.end]);
}

describe('ATTACH', () => {
  test('creates the domain and attaches the endpoint', () => {
    const g = guest();
    expect(g.attach(5, 8)).toBe(S.OK);
    expect(g.device.debugState().domains).toEqual([{ id: 5, bypass: false, endpoints: [8], mappings: [] }]);
  });

  test.each([
    ['reserved != 0 → INVAL (MUST)', attachReq(1, 8, 0, 1), S.INVAL],
    ['reserved != 0 in its last byte → INVAL', attachReq(1, 8, 0, 0x01000000), S.INVAL],
    ['flags = 2 (unknown bit) → INVAL (MUST)', attachReq(1, 8, 2), S.INVAL],
    ['flags = 0x80000000 → INVAL', attachReq(1, 8, 0x80000000), S.INVAL],
    ['an endpoint that does not exist → NOENT (MUST)', attachReq(1, 444), S.NOENT],
    ['reserved != 0 is checked before the endpoint', attachReq(1, 444, 0, 7), S.INVAL],
    ['unknown flags are checked before the endpoint', attachReq(1, 444, 4), S.INVAL],
  ])('%s', (_name, req, expected) => {
    const g = guest();
    expect(g.status(req)).toBe(expected);
    expect(g.device.debugState().domains).toEqual([]);
  });

  test('ATTACH_F_BYPASS is an unknown flag until BYPASS_CONFIG is negotiated → INVAL', () => {
    const g = guest({}, { accept: (o) => o & ~bit(uapi.VIRTIO_IOMMU_F_BYPASS_CONFIG) });
    expect(g.attach(1, 8, BYPASS)).toBe(S.INVAL);
  });

  test('a domain outside domain_range → RANGE, checked before the endpoint', () => {
    const g = guest({ domainRange: { start: 1, last: 15 } });
    expect(g.configU32(24)).toBe(1);
    expect(g.configU32(28)).toBe(15);
    expect(g.attach(0, 8)).toBe(S.RANGE);
    expect(g.attach(16, 8)).toBe(S.RANGE);
    expect(g.attach(16, 444)).toBe(S.RANGE);
    expect(g.attach(15, 8)).toBe(S.OK);
  });

  test('without DOMAIN_RANGE offered, any 32-bit domain ID is valid', () => {
    const g = guest({ domainRange: { start: 1, last: 15 }, features: { domainRange: false } });
    expect(g.attach(0xffff_ffff, 8)).toBe(S.OK);
  });

  test('ATTACH_F_BYPASS to an existing paging domain → INVAL, and the reverse too', () => {
    const g = guest();
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(g.attach(1, 16, BYPASS)).toBe(S.INVAL);
    expect(g.attach(2, 16, BYPASS)).toBe(S.OK);
    expect(g.attach(2, 8)).toBe(S.INVAL);
    expect(g.device.debugState().domains.map((d) => [d.id, d.bypass, d.endpoints])).toEqual([
      [1, false, [8]],
      [2, true, [16]],
    ]);
  });

  test('a refused ATTACH leaves the endpoint in its domain (checks run before the implicit detach, unlike QEMU)', () => {
    const g = guest();
    g.attach(1, 8);
    g.map(1, 0x1000n, 0x1fffn, 0x10000n);
    g.attach(2, 16, BYPASS);
    expect(g.attach(2, 8)).toBe(S.INVAL);
    expect(g.device.debugState().domains.find((d) => d.id === 1)).toEqual({
      id: 1,
      bypass: false,
      endpoints: [8],
      mappings: [{ start: 0x1000n, end: 0x2000n, phys: 0x10000n, flags: READ | WRITE }],
    });
  });

  test('several endpoints share a domain; a MAP reaches all of them', () => {
    const g = guest();
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(g.attach(1, 16)).toBe(S.OK);
    g.mem.write(0x10000, new Uint8Array([9, 8, 7]));
    expect(g.map(1, 0x4000n, 0x4fffn, 0x10000n, READ)).toBe(S.OK);
    expect([...g.device.endpointDma(8).dmaRead(0x4000n, 3)]).toEqual([9, 8, 7]);
    expect([...g.device.endpointDma(16).dmaRead(0x4000n, 3)]).toEqual([9, 8, 7]);
  });

  test('attaching an endpoint to another domain detaches it first: the old domain goes when empty, the new one is replayed', () => {
    const g = guest();
    g.attach(1, 8);
    g.map(1, 0x1000n, 0x1fffn, 0x10000n);
    g.attach(2, 16);
    g.map(2, 0x8000n, 0x8fffn, 0x20000n, READ);
    expect(g.attach(2, 8)).toBe(S.OK);
    expect(g.device.debugState().domains.map((d) => [d.id, d.endpoints])).toEqual([[2, [16, 8]]]);
    const dma = g.device.endpointDma(8);
    expect(() => dma.dmaRead(0x1000n, 1)).toThrow(expect.objectContaining({ name: 'DmaFault', reason: 'unmapped' }));
    g.mem.write(0x20000, new Uint8Array([42]));
    expect([...dma.dmaRead(0x8000n, 1)]).toEqual([42]);
  });

  test('re-attaching to the same domain is OK and keeps the domain and its mappings', () => {
    const g = guest();
    g.attach(1, 8);
    g.map(1, 0x1000n, 0x1fffn, 0x10000n);
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(mappingsOf(g, 1)).toEqual([[0x1000n, 0x2000n]]);
  });

  test('a new domain beyond maxDomains → NOMEM; joining an existing one still works', () => {
    const g = guest({ maxDomains: 1 });
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(g.attach(2, 16)).toBe(S.NOMEM);
    expect(g.attach(1, 16)).toBe(S.OK);
  });

  test('an endpoint that cannot hold the domain\'s mappings → UNSUPP (incompatible properties)', () => {
    const g = new Guest({
      endpoints: [
        { id: 8, kind: 'emulated', reservedRegions: [] },
        { id: 16, kind: 'emulated', reservedRegions: [{ start: 0x10000n, last: 0x1ffffn, subtype: 'reserved' }] },
      ],
    });
    g.attach(1, 8);
    expect(g.map(1, 0x10000n, 0x10fffn, 0n)).toBe(S.OK);
    expect(g.attach(1, 16)).toBe(S.UNSUPP);
    expect(g.unmap(1, 0x10000n, 0x10fffn)).toBe(S.OK);
    expect(g.attach(1, 16)).toBe(S.OK);
    // Now the domain includes 16's reserved region: a MAP over it is INVAL.
    expect(g.map(1, 0x10000n, 0x10fffn, 0n)).toBe(S.INVAL);
  });
});

describe('DETACH', () => {
  test('reserved is ignored (MUST)', () => {
    const g = guest();
    g.attach(1, 8);
    expect(g.status(detachReq(1, 8, 0xffff_ffff_ffff_ffffn))).toBe(S.OK);
  });

  test.each([
    ['an endpoint that does not exist → NOENT (MUST)', 1, 444, S.NOENT],
    ['a domain that does not exist → INVAL (MAY)', 7, 8, S.INVAL],
    ['an endpoint attached to another domain → INVAL (MAY)', 2, 8, S.INVAL],
  ])('%s', (_name, domain, endpoint, expected) => {
    const g = guest();
    g.attach(1, 8);
    g.attach(2, 16);
    expect(g.detach(domain, endpoint)).toBe(expected);
    expect(g.device.debugState().domains.map((d) => [d.id, d.endpoints])).toEqual([
      [1, [8]],
      [2, [16]],
    ]);
  });

  test('an endpoint attached to no domain → INVAL (MAY)', () => {
    const g = guest();
    g.attach(1, 8);
    g.attach(2, 16);
    expect(g.detach(2, 16)).toBe(S.OK);
    expect(g.detach(2, 16)).toBe(S.INVAL);
    expect(g.detach(1, 16)).toBe(S.INVAL);
  });

  test('with compat qemu, an endpoint never attached is unknown → NOENT', () => {
    const g = guest({ compat: 'qemu' });
    g.attach(1, 8);
    expect(g.detach(1, 16)).toBe(S.NOENT);
    expect(g.detach(7, 8)).toBe(S.INVAL);
  });

  test('the last detach destroys the domain and its mappings; a new domain with the same ID starts empty', () => {
    const g = guest();
    g.attach(1, 8);
    g.attach(1, 16);
    g.map(1, 0x1000n, 0x1fffn, 0x10000n);
    expect(g.detach(1, 8)).toBe(S.OK);
    expect(mappingsOf(g, 1)).toEqual([[0x1000n, 0x2000n]]);
    expect(g.detach(1, 16)).toBe(S.OK);
    expect(g.device.debugState().domains).toEqual([]);
    expect(g.map(1, 0x1000n, 0x1fffn, 0x10000n)).toBe(S.NOENT);
    expect(g.attach(1, 8)).toBe(S.OK);
    expect(mappingsOf(g, 1)).toEqual([]);
  });

  test('after DETACH the endpoint cannot reach the domain\'s mappings (bypass off: it faults)', () => {
    const g = guest({ bootBypass: false });
    g.attach(1, 8);
    g.map(1, 0x1000n, 0x1fffn, 0x10000n);
    g.device.endpointDma(8).dmaRead(0x1000n, 4);
    g.detach(1, 8);
    expect(() => g.device.endpointDma(8).dmaRead(0x1000n, 4)).toThrow(expect.objectContaining({ reason: 'no-domain' }));
  });
});

describe('MAP', () => {
  function attached(options: VirtioIommuOptions = {}, more: Partial<GuestOptions> = {}): Guest {
    const g = guest(options, more);
    expect(g.attach(1, 8)).toBe(S.OK);
    return g;
  }

  test.each([
    ['flags = 8 (unknown) → INVAL (MUST)', mapReq(1, 0x1000n, 0x1fffn, 0x10000n, 8), S.INVAL],
    ['flags = READ | 0x100 → INVAL', mapReq(1, 0x1000n, 0x1fffn, 0x10000n, READ | 0x100), S.INVAL],
    ['virt_end beyond input_range.end → RANGE', mapReq(1, 0xffff_f000n, 0x1_0000_0fffn, 0x10000n), S.RANGE],
    ['virt_start below input_range.start → RANGE', mapReq(1, 0n, 0xfffn, 0x10000n), S.RANGE],
    ['no such domain → NOENT', mapReq(2, 0x1000n, 0x1fffn, 0x10000n), S.NOENT],
    ['virt_end < virt_start → RANGE', mapReq(1, 0x2000n, 0x1fffn, 0x10000n), S.RANGE],
    ['virt_end == virt_start with a 4 KiB granule → RANGE (misaligned)', mapReq(1, 0x2000n, 0x2000n, 0x10000n), S.RANGE],
    ['phys range wraps 2^64 → RANGE', mapReq(1, 0x1000n, 0x2fffn, U64_MAX - 0xfffn), S.RANGE],
    ['virt_start misaligned → RANGE', mapReq(1, 0x1800n, 0x27ffn, 0x10000n), S.RANGE],
    ['phys_start misaligned → RANGE', mapReq(1, 0x1000n, 0x1fffn, 0x10010n), S.RANGE],
    ['virt_end + 1 misaligned → RANGE', mapReq(1, 0x1000n, 0x1ffen, 0x10000n), S.RANGE],
    ['overlaps a RESV_MEM region (the MSI window) → INVAL', mapReq(1, 0xfee0_0000n, 0xfee0_0fffn, 0x10000n), S.INVAL],
    ['touches the last byte before the MSI window → OK', mapReq(1, 0xfedf_f000n, 0xfedf_ffffn, 0x10000n), S.OK],
    // Decision order (reference §3.8): the earlier check wins.
    ['unknown flags before input range', mapReq(1, 0n, 0xfffn, 0x10000n, 8), S.INVAL],
    ['input range before domain', mapReq(2, 0n, 0xfffn, 0x10000n), S.RANGE],
    ['domain before alignment', mapReq(2, 0x1800n, 0x1fffn, 0x10001n), S.NOENT],
    ['alignment before overlap', mapReq(1, 0x4000n, 0x47ffn, 0x10000n), S.RANGE],
  ])('%s', (_name, req, expected) => {
    const g = attached({ inputRange: { start: 0x1000n, last: 0xffff_ffffn } });
    expect(g.map(1, 0x4000n, 0x4fffn, 0x20000n)).toBe(S.OK);
    expect(g.status(req)).toBe(expected);
  });

  test('an existing mapping in the range → INVAL (SHOULD), whatever part overlaps', () => {
    const g = attached();
    expect(g.map(1, 0x4000n, 0x5fffn, 0x20000n)).toBe(S.OK);
    expect(g.map(1, 0x3000n, 0x4fffn, 0x30000n)).toBe(S.INVAL);
    expect(g.map(1, 0x5000n, 0x6fffn, 0x30000n)).toBe(S.INVAL);
    expect(g.map(1, 0x0n, 0xffffn, 0x30000n)).toBe(S.INVAL);
    expect(g.map(1, 0x6000n, 0x6fffn, 0x30000n)).toBe(S.OK);
    expect(mappingsOf(g, 1)).toEqual([
      [0x4000n, 0x6000n],
      [0x6000n, 0x7000n],
    ]);
  });

  test('a bypass domain → INVAL (SHOULD), even for a request that is otherwise wrong', () => {
    const g = guest();
    g.attach(3, 8, BYPASS);
    expect(g.map(3, 0x1000n, 0x1fffn, 0x10000n)).toBe(S.INVAL);
    expect(g.map(3, 0x1800n, 0x1fffn, 0x10000n)).toBe(S.INVAL);
  });

  test('MMIO is an unknown flag unless F_MMIO is negotiated', () => {
    const without = attached({}, { accept: (o) => o & ~bit(uapi.VIRTIO_IOMMU_F_MMIO) });
    expect(without.map(1, 0x1000n, 0x1fffn, 0x10000n, READ | WRITE | MMIO)).toBe(S.INVAL);
    const notOffered = attached({ features: { mmio: false } });
    expect(notOffered.map(1, 0x1000n, 0x1fffn, 0x10000n, MMIO)).toBe(S.INVAL);
    const withMmio = attached();
    expect(withMmio.map(1, 0x1000n, 0x1fffn, 0x10000n, READ | WRITE | MMIO)).toBe(S.OK);
  });

  test('flags 0 (no access) is a valid mapping that every access faults on', () => {
    const g = attached();
    expect(g.map(1, 0x1000n, 0x1fffn, 0x10000n, 0)).toBe(S.OK);
    expect(() => g.device.endpointDma(8).dmaRead(0x1000n, 1)).toThrow(expect.objectContaining({ reason: 'permission' }));
  });

  test('input_range is enforced when offered even if the driver did not accept INPUT_RANGE', () => {
    const g = attached({ inputRange: { start: 0n, last: 0xffff_ffffn } }, { accept: (o) => o & ~bit(uapi.VIRTIO_IOMMU_F_INPUT_RANGE) });
    expect(g.map(1, 0x1_0000_0000n, 0x1_0000_0fffn, 0x10000n)).toBe(S.RANGE);
  });

  test('without INPUT_RANGE offered the whole 64-bit space is mappable', () => {
    const g = attached({ inputRange: { start: 0n, last: 0xffff_ffffn }, features: { inputRange: false } });
    expect(g.map(1, 0x1_0000_0000n, 0x1_0000_0fffn, 0x10000n)).toBe(S.OK);
  });

  test('the mapping cap of a domain → NOMEM', () => {
    const g = attached({ maxMappingsPerDomain: 2 });
    expect(g.map(1, 0x1000n, 0x1fffn, 0n)).toBe(S.OK);
    expect(g.map(1, 0x2000n, 0x2fffn, 0n)).toBe(S.OK);
    expect(g.map(1, 0x3000n, 0x3fffn, 0n)).toBe(S.NOMEM);
    expect(g.unmap(1, 0x1000n, 0x1fffn)).toBe(S.OK);
    expect(g.map(1, 0x3000n, 0x3fffn, 0n)).toBe(S.OK);
  });

  test('MAP and UNMAP without F_MAP_UNMAP negotiated → UNSUPP', () => {
    const g = attached({}, { accept: (o) => o & ~bit(uapi.VIRTIO_IOMMU_F_MAP_UNMAP) });
    expect(g.map(1, 0x1000n, 0x1fffn, 0n)).toBe(S.UNSUPP);
    expect(g.unmap(1, 0n, U64_MAX)).toBe(S.UNSUPP);
  });

  test('a one-byte mapping (virt_end == virt_start) is legal with a one-byte granule', () => {
    const g = new Guest({ endpoints: [{ id: 8, kind: 'emulated', pageSizeMask: 0xfffn }] });
    expect(g.configU64(0)).toBe(0xfffn);
    g.attach(1, 8);
    expect(g.map(1, 7n, 7n, 0x10003n, READ)).toBe(S.OK);
    expect(g.map(1, 7n, 7n, 0x10003n, READ)).toBe(S.INVAL);
    expect(mappingsOf(g, 1)).toEqual([[7n, 8n]]);
  });

  test('page_size_mask bits above the granule are hints: any granule-aligned size maps', () => {
    const g = attached();
    expect(g.map(1, 0x3000n, 0x7fffn, 0x10000n)).toBe(S.OK); // 5 pages
  });
});

describe('UNMAP', () => {
  function mapped(options: VirtioIommuOptions = {}): Guest {
    const g = guest(options);
    g.attach(1, 8);
    expect(g.map(1, 0x1000n, 0x1fffn, 0x10000n)).toBe(S.OK);
    expect(g.map(1, 0x2000n, 0x3fffn, 0x20000n)).toBe(S.OK);
    expect(g.map(1, 0x8000n, 0x8fffn, 0x30000n)).toBe(S.OK);
    return g;
  }

  test.each([
    ['reserved != 0 → INVAL, nothing removed', unmapReq(1, 0n, U64_MAX, 1), S.INVAL, 3],
    ['no such domain → NOENT', unmapReq(2, 0n, U64_MAX), S.NOENT, 3],
    ['virt_end < virt_start → RANGE', unmapReq(1, 0x2000n, 0x1000n), S.RANGE, 3],
    ['splitting the start of a mapping → RANGE, nothing removed', unmapReq(1, 0x1000n, 0x2fffn), S.RANGE, 3],
    ['covering one and splitting the next → RANGE, the covered one stays too', unmapReq(1, 0x0n, 0x2fffn), S.RANGE, 3],
    ['splitting the end of a mapping → RANGE', unmapReq(1, 0x3000n, 0x8fffn), S.RANGE, 3],
    ['a range over nothing → OK', unmapReq(1, 0x4000n, 0x7fffn), S.OK, 3],
    ['a range with holes → OK, the covered mappings go', unmapReq(1, 0x1000n, 0x8fffn), S.OK, 0],
    ['a range spilling over unmapped space → OK', unmapReq(1, 0x0n, 0x4fffn), S.OK, 1],
    ['a range beyond input_range → OK (no input_range check on UNMAP)', unmapReq(1, 0x8000n, U64_MAX), S.OK, 2],
    ['reserved before domain', unmapReq(2, 0n, U64_MAX, 1), S.INVAL, 3],
    ['domain before the range check', unmapReq(2, 0x2000n, 0x1000n), S.NOENT, 3],
  ])('%s', (_name, req, expected, left) => {
    const g = mapped({ inputRange: { start: 0n, last: 0xffff_ffffn } });
    expect(g.status(req)).toBe(expected);
    expect(mappingsOf(g, 1)).toHaveLength(left);
  });

  test('UNMAP removes exactly the mappings from the endpoint\'s translation', () => {
    const g = mapped({ bootBypass: false });
    expect(g.unmap(1, 0x0n, 0x4fffn)).toBe(S.OK);
    const dma = g.device.endpointDma(8);
    expect(() => dma.dmaRead(0x1000n, 1)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
    expect(() => dma.dmaRead(0x2000n, 1)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
    expect(dma.dmaRead(0x8000n, 1)).toHaveLength(1);
  });

  test('a bypass domain → INVAL', () => {
    const g = guest();
    g.attach(3, 8, BYPASS);
    expect(g.unmap(3, 0n, U64_MAX)).toBe(S.INVAL);
  });

  test('with compat qemu, reserved != 0 is not checked', () => {
    const g = mapped({ compat: 'qemu' });
    expect(g.status(unmapReq(1, 0n, U64_MAX, 1))).toBe(S.OK);
    expect(mappingsOf(g, 1)).toEqual([]);
  });
});

describe('PROBE', () => {
  const probeSize = 512;

  test('an existing endpoint → OK: one RESV_MEM (MSI window, subtype MSI) then zeroes up to probe_size', () => {
    const g = guest();
    const r = g.send(probeReq(8, probeSize));
    expect(r.len).toBe(probeSize + 4);
    expect(r.status).toBe(S.OK);
    expect(r.tailReserved).toEqual([0, 0, 0]);
    expect(uapi.VirtioIommuProbeResvMem.decode(r.writable)).toEqual({
      type: uapi.VIRTIO_IOMMU_PROBE_T_RESV_MEM,
      length: 20,
      subtype: uapi.VIRTIO_IOMMU_RESV_MEM_T_MSI,
      start: 0xfee0_0000n,
      end: 0xfeef_ffffn,
    });
    expect([...r.writable.subarray(5, 8)]).toEqual([0, 0, 0]);
    expect(r.writable.subarray(24, probeSize).every((b) => b === 0)).toBe(true);
  });

  test('several regions come in 24-byte strides, in address order', () => {
    const regions = [
      { start: 0x8000000n, last: 0x80fffffn, subtype: 'msi' as const },
      { start: 0x1000n, last: 0x1fffn, subtype: 'reserved' as const },
    ];
    const g = new Guest({ endpoints: [{ id: 3, kind: 'emulated', reservedRegions: regions }] });
    const r = g.send(probeReq(3, probeSize));
    expect(r.status).toBe(S.OK);
    const at = (off: number) => uapi.VirtioIommuProbeResvMem.decode(r.writable, off);
    expect(at(0)).toEqual({ type: 1, length: 20, subtype: 0, start: 0x1000n, end: 0x1fffn });
    expect(at(24)).toEqual({ type: 1, length: 20, subtype: 1, start: 0x8000000n, end: 0x80fffffn });
    expect(r.writable.subarray(48, probeSize).every((b) => b === 0)).toBe(true);
  });

  test('an endpoint that does not exist → NOENT, properties all zero', () => {
    const g = guest();
    const r = g.send(probeReq(444, probeSize));
    expect([r.len, r.status]).toEqual([probeSize + 4, S.NOENT]);
    expect(r.writable.subarray(0, probeSize).every((b) => b === 0)).toBe(true);
  });

  test('a writable part shorter than probe_size + 4 → INVAL, no property written, the tail in the last 4 bytes', () => {
    const g = guest();
    const used = g.sendSegments([
      { bytes: probeReq(8, probeSize).readable, writable: false },
      { bytes: new Uint8Array(100).fill(0xaa), writable: true },
    ]);
    expect(used.len).toBe(100);
    expect([...used.writable.subarray(96)]).toEqual([S.INVAL, 0, 0, 0]);
    expect(used.writable.subarray(0, 96).every((b) => b === 0)).toBe(true);
  });

  test('reserved[64] is ignored (MUST)', () => {
    const g = guest();
    const req = probeReq(8, probeSize);
    req.readable.fill(0xff, 8, 72);
    expect(g.send(req).status).toBe(S.OK);
  });

  test('without F_PROBE offered, PROBE is not answered: used length 0, buffer untouched', () => {
    const g = guest({ features: { probe: false } });
    const used = g.sendSegments([
      { bytes: probeReq(8, probeSize).readable, writable: false },
      { bytes: new Uint8Array(probeSize + 4).fill(0xaa), writable: true },
    ]);
    expect(used.len).toBe(0);
    expect(used.writable.every((b) => b === 0xaa)).toBe(true);
  });

  test('properties that do not fit in probe_size → INVAL, area zeroed', () => {
    const g = guest({ probeSize: 16 });
    expect(g.configU32(32)).toBe(16);
    const r = g.send(probeReq(8, 16));
    expect([r.len, r.status]).toEqual([20, S.INVAL]);
    expect(r.writable.subarray(0, 16).every((b) => b === 0)).toBe(true);
  });

  test('the per-endpoint PAGE_SIZE_MASK property (type 2) follows the RESV_MEM properties when enabled', () => {
    const g = new Guest({
      endpoints: [
        { id: 8, kind: 'emulated', pageSizeMask: 0xffff_ffff_ffff_0000n },
        { id: 16, kind: 'emulated', pageSizeMask: 0x1000n },
      ],
      options: { probePageSizeMask: true },
    });
    const r = g.send(probeReq(8, probeSize));
    expect(r.status).toBe(S.OK);
    expect(uapi.VirtioIommuProbePageSizeMask.decode(r.writable, 24)).toEqual({ type: 2, length: 8, pgsize_bitmap: 0xffff_ffff_ffff_0000n });
    expect(r.writable.subarray(36, probeSize).every((b) => b === 0)).toBe(true);
  });
});

describe('request framing and unknown requests', () => {
  test.each([
    ['type 6 (unknown)', 6],
    ['type 0', 0],
    ['type 255', 255],
  ])('%s → used length 0 and the buffer is not written', (_name, type) => {
    const g = guest();
    const readable = new Uint8Array(36);
    readable[0] = type;
    const used = g.sendSegments([
      { bytes: readable, writable: false },
      { bytes: new Uint8Array(8).fill(0xaa), writable: true },
    ]);
    expect(used.len).toBe(0);
    expect(used.writable.every((b) => b === 0xaa)).toBe(true);
  });

  test('head.reserved is ignored (MUST)', () => {
    const g = guest();
    const req = attachReq(1, 8);
    req.readable.set([0xff, 0xff, 0xff], 1);
    expect(g.status(req)).toBe(S.OK);
  });

  test.each([
    ['ATTACH', attachReq(1, 8)],
    ['DETACH', detachReq(1, 8)],
    ['MAP', mapReq(1, 0n, 0xfffn, 0n)],
    ['UNMAP', unmapReq(1, 0n, 0xfffn)],
    ['PROBE', probeReq(8, 512)],
  ])('%s with a readable part one byte short → INVAL', (_name, req) => {
    const g = guest();
    const r = g.send({ readable: req.readable.subarray(0, req.readable.length - 1), writableLength: req.writableLength });
    expect([r.len, r.status, r.tailReserved]).toEqual([req.writableLength, S.INVAL, [0, 0, 0]]);
    expect(g.device.debugState().domains).toEqual([]);
  });

  test('a readable part shorter than the head → used length 0', () => {
    const g = guest();
    const used = g.sendSegments([
      { bytes: new Uint8Array([1, 0, 0]), writable: false },
      { bytes: new Uint8Array(4).fill(0xaa), writable: true },
    ]);
    expect([used.len, [...used.writable]]).toEqual([0, [0xaa, 0xaa, 0xaa, 0xaa]]);
  });

  test('a writable part shorter than the tail → used length 0, nothing done', () => {
    const g = guest();
    const used = g.sendSegments([
      { bytes: attachReq(1, 8).readable, writable: false },
      { bytes: new Uint8Array(3).fill(0xaa), writable: true },
    ]);
    expect([used.len, [...used.writable]]).toEqual([0, [0xaa, 0xaa, 0xaa]]);
    expect(g.device.debugState().domains).toEqual([]);
  });

  test('no writable part at all → used length 0', () => {
    const g = guest();
    const used = g.sendSegments([{ bytes: attachReq(1, 8).readable, writable: false }]);
    expect(used.len).toBe(0);
  });

  test('extra readable bytes are ignored; extra writable bytes are left alone (tail at writable offset 0)', () => {
    const g = guest();
    const readable = new Uint8Array(40);
    readable.set(attachReq(1, 8).readable);
    readable.fill(0xee, 20);
    const used = g.sendSegments([
      { bytes: readable, writable: false },
      { bytes: new Uint8Array(12).fill(0xaa), writable: true },
    ]);
    expect(used.len).toBe(4);
    expect([...used.writable]).toEqual([S.OK, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
  });

  test('the tail\'s reserved bytes are written as zero over whatever the driver left there', () => {
    const g = guest();
    const used = g.sendSegments([
      { bytes: attachReq(1, 444).readable, writable: false },
      { bytes: new Uint8Array([0x55, 0x66, 0x77, 0x88]), writable: true },
    ]);
    expect([used.len, [...used.writable]]).toEqual([4, [S.NOENT, 0, 0, 0]]);
  });
});
