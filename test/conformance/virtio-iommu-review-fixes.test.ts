/**
 * Fixes from the review of the virtio-iommu device: a quarantined endpoint stays empty, bypass teardown
 * keeps its bookkeeping on a partial failure, UNMAP_DMA errors other than a split, host faults
 * forwarded by sequence number.
 */
import { SysError, type PciDeviceSpec } from '../../index';
import { uapi } from '../../index';
import { Guest, READ, S, WRITE, type GuestOptions } from '../helpers/virtio-iommu-guest';
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
