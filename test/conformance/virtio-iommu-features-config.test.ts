/**
 * Feature negotiation, the device status sequence, the 40-byte config space and the bypass rules of the
 * virtio-iommu device (reference/virtio-iommu.md §1.3, §1.4, §3.7, §8.3; spec §Feature bits, §Device
 * configuration layout, §Device initialization, §Device operations).
 */
import { uapi } from '../../index';
import { Guest, S, U64_MAX, bit, attachReq, type GuestOptions } from '../helpers/virtio-iommu-guest';
import { VirtioIommuDevice } from '../../virtio-iommu/virtio-iommu-device';
import { Kernel } from '../../index';

const ACK = uapi.VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRIVER = uapi.VIRTIO_CONFIG_S_DRIVER;
const FEATURES_OK = uapi.VIRTIO_CONFIG_S_FEATURES_OK;
const DRIVER_OK = uapi.VIRTIO_CONFIG_S_DRIVER_OK;
const NEEDS_RESET = uapi.VIRTIO_CONFIG_S_NEEDS_RESET;
const FAILED = uapi.VIRTIO_CONFIG_S_FAILED;
const BYPASS_CONFIG = bit(uapi.VIRTIO_IOMMU_F_BYPASS_CONFIG);

function emulatedGuest(more: Partial<GuestOptions> = {}): Guest {
  return new Guest({ endpoints: [{ id: 8, kind: 'emulated' }], ...more });
}

describe('features', () => {
  test('the device offers QEMU\'s set: VERSION_1, INDIRECT_DESC, EVENT_IDX, INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, MMIO, BYPASS_CONFIG', () => {
    const g = emulatedGuest({ noStart: true });
    const expected = [32, 28, 29, 0, 1, 2, 4, 5, 6].reduce((m, b) => m | bit(b), 0n);
    expect(g.device.deviceFeatures()).toBe(expected);
    expect(g.device.deviceFeatures() & bit(uapi.VIRTIO_IOMMU_F_BYPASS)).toBe(0n);
  });

  test('features can be withheld; legacy F_BYPASS only instead of BYPASS_CONFIG', () => {
    const g = emulatedGuest({ noStart: true, options: { features: { bypassConfig: false, legacyBypass: true, probe: false, eventIdx: false } } });
    const f = g.device.deviceFeatures();
    expect([f & bit(3), f & BYPASS_CONFIG, f & bit(4), f & bit(29)]).toEqual([bit(3), 0n, 0n, 0n]);
  });

  test('offering both F_BYPASS and BYPASS_CONFIG is refused at construction ("Devices SHOULD NOT offer both")', () => {
    const kernel = new Kernel();
    const vmm = kernel.spawn();
    const hva = vmm.mmap(1 << 20);
    expect(
      () => new VirtioIommuDevice(vmm, { guestRam: { hva, size: 1n << 20n }, endpoints: [], options: { features: { legacyBypass: true } } }),
    ).toThrow(RangeError);
  });

  test.each([
    ['every offered feature', (o: bigint) => o, true],
    ['without VERSION_1 (the device is modern-only)', (o: bigint) => o & ~bit(32), false],
    ['with a feature that was not offered (F_BYPASS)', (o: bigint) => o | bit(3), false],
    ['with a feature from nowhere (bit 40)', (o: bigint) => o | bit(40), false],
    ['only VERSION_1', () => bit(32), true],
    ['without INPUT_RANGE (accepted by default)', (o: bigint) => o & ~bit(0), true],
  ])('FEATURES_OK %s: kept = %s', (_name, accept, kept) => {
    const g = emulatedGuest({ noStart: true });
    expect(g.negotiate(accept)).toBe(kept);
    expect(g.device.getStatus()).toBe(ACK | DRIVER | (kept ? FEATURES_OK : 0));
  });

  test('with requireInputRange, FEATURES_OK is refused when INPUT_RANGE is offered but not accepted', () => {
    const g = emulatedGuest({ noStart: true, options: { requireInputRange: true } });
    expect(g.negotiate((o) => o & ~bit(0))).toBe(false);
    expect(g.negotiate((o) => o)).toBe(true);
  });

  test('with requireInputRange but INPUT_RANGE not offered, its absence is fine', () => {
    const g = emulatedGuest({ noStart: true, options: { requireInputRange: true, features: { inputRange: false } } });
    expect(g.negotiate((o) => o)).toBe(true);
  });

  test('driver features written after FEATURES_OK are ignored', () => {
    const g = emulatedGuest({ accept: (o) => o & ~BYPASS_CONFIG });
    g.device.setDriverFeatures(g.device.deviceFeatures());
    expect(g.device.driverFeatures() & BYPASS_CONFIG).toBe(0n);
    expect(g.attach(1, 8, uapi.VIRTIO_IOMMU_ATTACH_F_BYPASS)).toBe(S.INVAL);
  });
});

describe('device status', () => {
  test('the driver sets ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in turn and reads them back', () => {
    const g = emulatedGuest();
    expect(g.device.getStatus()).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
  });

  test('the driver cannot set NEEDS_RESET', () => {
    const g = emulatedGuest();
    g.device.setStatus(ACK | DRIVER | FEATURES_OK | DRIVER_OK | NEEDS_RESET);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(0);
    expect(g.attach(1, 8)).toBe(S.OK);
  });

  test('FAILED is kept as the driver wrote it', () => {
    const g = emulatedGuest({ noStart: true });
    g.device.setStatus(ACK | DRIVER | FAILED);
    expect(g.device.getStatus()).toBe(ACK | DRIVER | FAILED);
  });

  test('DRIVER_OK without FEATURES_OK → NEEDS_RESET, and requests are not processed', () => {
    const g = emulatedGuest({ noStart: true, accept: (o) => o & ~bit(32) });
    g.start();
    expect(g.device.getStatus() & NEEDS_RESET).toBe(NEEDS_RESET);
    g.requestq.add([
      { bytes: attachReq(1, 8).readable, writable: false },
      { length: 4, writable: true },
    ]);
    g.device.notify(0);
    expect(g.requestq.reap()).toEqual([]);
  });

  test('a queue that is not a valid ring at DRIVER_OK → NEEDS_RESET (guest input never throws)', () => {
    const g = emulatedGuest({ noStart: true });
    g.device.setupQueue(0, { size: 3, desc: 0x1000, avail: 0x2000, used: 0x3000 });
    g.device.setStatus(g.device.getStatus() | DRIVER_OK);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(NEEDS_RESET);
  });

  test('a queue outside guest RAM at DRIVER_OK → NEEDS_RESET', () => {
    const g = emulatedGuest({ noStart: true });
    g.device.setupQueue(0, { size: 256, desc: 0x1_0000_0000, avail: 0x2000, used: 0x3000 });
    g.device.setStatus(g.device.getStatus() | DRIVER_OK);
    expect(g.device.getStatus() & NEEDS_RESET).toBe(NEEDS_RESET);
  });

  test('queue indices other than 0 and 1 are ignored', () => {
    const g = emulatedGuest();
    g.device.setupQueue(2, { size: 3, desc: 1, avail: 1, used: 1 });
    expect(g.device.getStatus() & NEEDS_RESET).toBe(0);
  });

  test('notify before DRIVER_OK processes nothing; the request is answered after DRIVER_OK', () => {
    const g = emulatedGuest({ noStart: true });
    g.start();
    g.device.setStatus(ACK | DRIVER | FEATURES_OK); // clear DRIVER_OK: a driver that is not ready
    expect(g.device.getStatus() & DRIVER_OK).toBe(0);
    g.requestq.add([
      { bytes: attachReq(1, 8).readable, writable: false },
      { length: 4, writable: true },
    ]);
    g.device.notify(0);
    expect(g.requestq.reap()).toEqual([]);
    g.device.setStatus(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    g.device.notify(0);
    expect(g.requestq.reap().map((u) => [u.len, u.writable[0]])).toEqual([[4, S.OK]]);
  });

  test('writing status 0 resets the device: no endpoint attached, no domain, status and features 0', () => {
    const g = emulatedGuest();
    g.attach(1, 8);
    g.map(1, 0x1000n, 0x1fffn, 0x10000n);
    g.device.setStatus(0);
    expect(g.device.getStatus()).toBe(0);
    expect(g.device.driverFeatures()).toBe(0n);
    expect(g.device.debugState().domains).toEqual([]);
    expect(g.device.debugState().endpoints).toEqual([{ id: 8, kind: 'emulated', domain: undefined, translation: 'bypass' }]);
    // The driver starts over and finds a clean device.
    expect(g.negotiate()).toBe(true);
    g.start();
    expect(g.map(1, 0x1000n, 0x1fffn, 0x10000n)).toBe(S.NOENT);
    expect(g.attach(1, 8)).toBe(S.OK);
  });
});

describe('config space', () => {
  test('the exact 40-byte layout', () => {
    const g = new Guest({
      endpoints: [{ id: 8, kind: 'emulated', pageSizeMask: 0x20_1000n, inputRange: { start: 0x1000n, last: 0xff_ffff_ffffn } }],
      options: { domainRange: { start: 3, last: 1000 }, probeSize: 256, bootBypass: false },
      noStart: true,
    });
    const bytes = g.device.readConfig(0, 40);
    expect(bytes).toHaveLength(40);
    expect(uapi.VirtioIommuConfig.decode(bytes)).toEqual({
      page_size_mask: 0x20_1000n,
      input_range_start: 0x1000n,
      input_range_end: 0xff_ffff_ffffn,
      domain_range_start: 3,
      domain_range_end: 1000,
      probe_size: 256,
      bypass: 0,
    });
    expect([...bytes.subarray(37, 40)]).toEqual([0, 0, 0]);
  });

  test('partial and out-of-range reads: bytes past offset 40 read as 0', () => {
    const g = emulatedGuest({ noStart: true });
    expect([...g.device.readConfig(36, 8)]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect([...g.device.readConfig(100, 2)]).toEqual([0, 0]);
    expect([...g.device.readConfig(-2, 3)]).toEqual([0, 0, 0x00]);
    expect([...g.device.readConfig(1, 2)]).toEqual([0xf0, 0xff]);
  });

  test('page_size_mask is the AND of every endpoint\'s mask; input_range their intersection', () => {
    const g = new Guest({
      endpoints: [
        { id: 1, kind: 'emulated', pageSizeMask: 0x3fff_f000n, inputRange: { start: 0n, last: 0xffff_ffff_ffffn } },
        { id: 2, kind: 'emulated', pageSizeMask: 0x4020_1000n, inputRange: { start: 0x1000n, last: U64_MAX } },
      ],
      noStart: true,
    });
    expect(g.configU64(0)).toBe(0x201000n);
    expect(g.configU64(8)).toBe(0x1000n);
    expect(g.configU64(16)).toBe(0xffff_ffff_ffffn);
  });

  test('endpoints with no page size in common are refused at construction, unless per-endpoint masks are probed', () => {
    const kernel = new Kernel();
    const vmm = kernel.spawn();
    const hva = vmm.mmap(1 << 20);
    const endpoints = [
      { id: 1, kind: 'emulated' as const, pageSizeMask: 0x1000n },
      { id: 2, kind: 'emulated' as const, pageSizeMask: 0x10000n },
    ];
    expect(() => new VirtioIommuDevice(vmm, { guestRam: { hva, size: 1n << 20n }, endpoints })).toThrow(RangeError);
    const d = new VirtioIommuDevice(vmm, { guestRam: { hva, size: 1n << 20n }, endpoints, options: { probePageSizeMask: true } });
    expect(uapi.readU64(d.readConfig(0, 8), 0)).toBe(0x10000n);
  });

  test.each([
    ['page_size_mask', 0, new Uint8Array(8)],
    ['input_range', 8, new Uint8Array(16).fill(0xff)],
    ['domain_range', 24, new Uint8Array(8)],
    ['probe_size', 32, new Uint8Array(4)],
    ['reserved', 37, new Uint8Array(3).fill(1)],
  ])('writes to %s are ignored', (_name, offset, bytes) => {
    const g = emulatedGuest();
    const before = g.device.readConfig(0, 40);
    g.device.writeConfig(offset, bytes);
    expect(g.device.readConfig(0, 40)).toEqual(before);
  });

  test('a write at a fractional offset is ignored', () => {
    const g = emulatedGuest();
    g.device.writeConfig(35.5, new Uint8Array([0, 0]));
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([1]));
  });

  test('bypass is writable once BYPASS_CONFIG is negotiated; only bit 0 is kept', () => {
    const g = emulatedGuest();
    g.device.writeConfig(36, new Uint8Array([0]));
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([0]));
    g.device.writeConfig(36, new Uint8Array([3]));
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([1]));
    g.device.writeConfig(36, new Uint8Array([0xfe]));
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([0]));
    // A 4-byte write over bypass + reserved sets bypass from its first byte.
    g.device.writeConfig(36, new Uint8Array([1, 7, 7, 7]));
    expect([...g.device.readConfig(36, 4)]).toEqual([1, 0, 0, 0]);
  });

  test('writes to bypass are ignored without BYPASS_CONFIG negotiated, and before FEATURES_OK', () => {
    const g = emulatedGuest({ accept: (o) => o & ~BYPASS_CONFIG });
    g.device.writeConfig(36, new Uint8Array([0]));
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([1]));
    const h = emulatedGuest({ noStart: true });
    h.device.setStatus(ACK | DRIVER);
    h.device.setDriverFeatures(h.device.deviceFeatures());
    h.device.writeConfig(36, new Uint8Array([0]));
    expect(h.device.readConfig(36, 1)).toEqual(new Uint8Array([1]));
  });

  test('bypass survives device reset (sticky), and a new device starts from bootBypass', () => {
    const g = emulatedGuest();
    g.device.writeConfig(36, new Uint8Array([0]));
    g.device.reset();
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([0]));
    expect(g.device.debugState().endpoints[0]!.translation).toBe('blocked');
    g.device.setStatus(0);
    expect(g.device.readConfig(36, 1)).toEqual(new Uint8Array([0]));
  });
});

describe('bypass', () => {
  const data = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);

  test('bootBypass (default 1): an unattached endpoint reaches guest RAM by identity', () => {
    const g = emulatedGuest();
    g.mem.write(0x5000, data);
    expect(g.device.endpointDma(8).dmaRead(0x5000n, 4)).toEqual(data);
  });

  test('bypass = 1 applies even when the driver did not accept BYPASS_CONFIG', () => {
    const g = emulatedGuest({ accept: (o) => o & ~BYPASS_CONFIG });
    g.mem.write(0x5000, data);
    expect(g.device.endpointDma(8).dmaRead(0x5000n, 4)).toEqual(data);
  });

  test('bypass = 0: an unattached endpoint has no access (DOMAIN fault)', () => {
    const g = emulatedGuest();
    g.device.writeConfig(36, new Uint8Array([0]));
    expect(() => g.device.endpointDma(8).dmaRead(0x5000n, 4)).toThrow(expect.objectContaining({ reason: 'no-domain' }));
    g.device.writeConfig(36, new Uint8Array([1]));
    g.mem.write(0x5000, data);
    expect(g.device.endpointDma(8).dmaRead(0x5000n, 4)).toEqual(data);
  });

  test('attached to a paging domain, the endpoint no longer bypasses', () => {
    const g = emulatedGuest();
    g.attach(1, 8);
    expect(() => g.device.endpointDma(8).dmaRead(0x5000n, 4)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
  });

  test('a bypass domain (ATTACH_F_BYPASS) gives identity access while global bypass is off', () => {
    const g = emulatedGuest({ options: { bootBypass: false } });
    expect(g.attach(9, 8, uapi.VIRTIO_IOMMU_ATTACH_F_BYPASS)).toBe(S.OK);
    g.mem.write(0x7000, data);
    expect(g.device.endpointDma(8).dmaRead(0x7000n, 4)).toEqual(data);
    expect(g.detach(9, 8)).toBe(S.OK);
    expect(() => g.device.endpointDma(8).dmaRead(0x7000n, 4)).toThrow(expect.objectContaining({ reason: 'no-domain' }));
  });

  test('without BYPASS_CONFIG offered and without F_BYPASS, unattached endpoints are blocked whatever bootBypass says', () => {
    const g = emulatedGuest({ options: { features: { bypassConfig: false } } });
    expect(() => g.device.endpointDma(8).dmaRead(0x5000n, 4)).toThrow(expect.objectContaining({ reason: 'no-domain' }));
  });

  test('legacy F_BYPASS bypasses unattached endpoints only once negotiated', () => {
    const offered = { options: { features: { bypassConfig: false, legacyBypass: true } } };
    const refused = emulatedGuest({ ...offered, accept: (o) => o & ~bit(uapi.VIRTIO_IOMMU_F_BYPASS) });
    expect(() => refused.device.endpointDma(8).dmaRead(0x5000n, 4)).toThrow(expect.objectContaining({ reason: 'no-domain' }));
    const accepted = emulatedGuest(offered);
    accepted.mem.write(0x5000, data);
    expect(accepted.device.endpointDma(8).dmaRead(0x5000n, 4)).toEqual(data);
    accepted.device.reset();
    expect(() => accepted.device.endpointDma(8).dmaRead(0x5000n, 4)).toThrow(expect.objectContaining({ reason: 'no-domain' }));
  });
});
