/**
 * virtio-iommu over a windowed (VFIO_TYPE2_IOMMU, PAMU-like) host on fsl-p4080: the VFIO endpoint
 * mapper lays the aperture out as the vendor SDK's QEMU does (guest RAM windows, then one window per MSI
 * bank), and everything else comes from GET_INFO: the window size is the device's granule, the aperture
 * its input range, the bank windows PROBE's MSI region; a MAP that does not cover whole windows is RANGE.
 * Guest RAM is 64 MiB in 16 MiB hugepages, windows are 16 MiB: 4 RAM windows + 3 banks → 8 windows,
 * aperture [0; 128 MiB − 1], banks at 64, 80 and 96 MiB.
 */
import { DmaFault, uapi } from '../../index';
import { Guest, READ, S, U64_MAX, WRITE, probeReq } from '../helpers/virtio-iommu-guest';
import type { VfioEndpointMapper } from '../../virtio-iommu/vfio-endpoint-mapper';
import { VirtioIommuDevice, type VirtioIommuOptions } from '../../virtio-iommu/virtio-iommu-device';

const BDF = '0000:01:00.0';
const EP = 0x0100;
const MiB = 1n << 20n;
const W = 16n * MiB;

function windowedGuest(options: VirtioIommuOptions = { bootBypass: false }): Guest {
  return new Guest({
    machine: 'fsl-p4080',
    devices: [{ bdf: BDF, group: 1 }],
    endpoints: [{ id: EP, kind: 'vfio', bdf: BDF, windows: { windowSize: W } }],
    ramSize: 64 << 20,
    ramPageSize: Number(W),
    options,
  });
}

describe('a VFIO endpoint behind a windowed (type2) host', () => {
  test('the window size is the granule, the aperture the input range', () => {
    const g = windowedGuest();
    expect((g.device.endpointMapper(EP) as VfioEndpointMapper).iommuType).toBe(uapi.VFIO_TYPE2_IOMMU);
    expect(g.configU64(0)).toBe(W);
    expect(g.configU64(8)).toBe(0n);
    expect(g.configU64(16)).toBe(8n * W - 1n);
  });

  test('PROBE reports the MSI bank windows as one MSI region and everything past the aperture as RESERVED', () => {
    const g = windowedGuest();
    const r = g.send(probeReq(EP, 512));
    expect(r.status).toBe(S.OK);
    expect(uapi.VirtioIommuProbeResvMem.decode(r.writable, 0)).toEqual({ type: 1, length: 20, subtype: 1, start: 4n * W, end: 7n * W - 1n });
    expect(uapi.VirtioIommuProbeResvMem.decode(r.writable, 24)).toEqual({ type: 1, length: 20, subtype: 0, start: 8n * W, end: U64_MAX });
    expect(r.writable.subarray(48, 512).every((b) => b === 0)).toBe(true);
  });

  test('window-sized maps: the device DMAs into guest RAM; after UNMAP it faults and the fault reaches the eventq', () => {
    const g = windowedGuest();
    const dev = g.kernel.device(BDF);
    expect(g.attach(1, EP)).toBe(S.OK);
    expect(g.map(1, 0n, W - 1n, 2n * W, READ | WRITE)).toBe(S.OK);
    expect(g.map(1, W, 3n * W - 1n, 0n, READ)).toBe(S.OK); // two whole windows in one MAP
    dev.dmaWrite(0x12_3456n, new Uint8Array([1, 2, 3]));
    const back = new Uint8Array(3);
    g.mem.read(Number(2n * W) + 0x12_3456, back);
    expect([...back]).toEqual([1, 2, 3]);
    g.mem.write(Number(W) + 0x10, new Uint8Array([9]));
    expect([...dev.dmaRead(2n * W + 0x10n, 1)]).toEqual([9]);
    expect(g.unmap(1, 0n, W - 1n)).toBe(S.OK);
    expect(() => dev.dmaWrite(0x12_3456n, new Uint8Array(1))).toThrow(DmaFault);
    g.postEventBuffers(1);
    expect(g.reapFaults().map((f) => [f.reason, f.endpoint, f.address, f.flags])).toEqual([
      [uapi.VIRTIO_IOMMU_FAULT_R_MAPPING, EP, 0x12_3456n, uapi.VIRTIO_IOMMU_FAULT_F_WRITE | uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS],
    ]);
  });

  test.each([
    ['a 4 KiB map (smaller than a window) → RANGE', 0n, 0xfffn, 0n, S.RANGE],
    ['one window and a half → RANGE', 0n, W + W / 2n - 1n, 0n, S.RANGE],
    ['a window at a GPA that is not window-aligned → RANGE', 0n, W - 1n, 0x1000n, S.RANGE],
    ['over the MSI bank windows → INVAL', 4n * W, 5n * W - 1n, 0n, S.INVAL],
    ['past the aperture → RANGE', 8n * W, 9n * W - 1n, 0n, S.RANGE],
    ['a GPA window past guest RAM → FAULT', 0n, W - 1n, 4n * W, S.FAULT],
  ])('%s, nothing reaches the container', (_name, start, last, phys, expected) => {
    const g = windowedGuest();
    g.attach(1, EP);
    expect(g.map(1, start, last, phys)).toBe(expected);
    expect((g.device.endpointMapper(EP) as VfioEndpointMapper).forwardedMappings()).toEqual([]);
  });

  test('in bypass the container maps guest RAM by identity over its RAM windows', () => {
    const g = windowedGuest({});
    g.kernel.device(BDF).dmaWrite(3n * W + 8n, new Uint8Array([0x77]));
    expect(g.mem.readU16(Number(3n * W) + 8) & 0xff).toBe(0x77);
    expect(g.attach(1, EP)).toBe(S.OK);
    expect(() => g.kernel.device(BDF).dmaWrite(3n * W + 8n, new Uint8Array(1))).toThrow(DmaFault);
    g.device.setStatus(0);
    g.kernel.checkInvariants();
  });

  test('a layout needing more windows than the hardware has is refused at construction, and no fd stays open', () => {
    const g = windowedGuest();
    const vmm = g.kernel.spawn({ memlockLimit: 1n << 34n });
    const hva = vmm.mmap(64 << 20, { pageSize: Number(W) });
    g.device.release(); // frees group 1
    const endpoints = [{ id: EP, kind: 'vfio' as const, bdf: BDF, windows: { windowSize: 64n * 1024n } }];
    expect(() => new VirtioIommuDevice(vmm, { guestRam: { hva, size: 64n * MiB }, endpoints })).toThrow(/2048 windows of 65536 bytes are needed; the hardware has 256/);
    expect(vmm.openFds()).toEqual([]);
  });
});
