/**
 * Golden values of the virtio-iommu ABI and its split virtqueue: every VIRTIO_* / VIRTQ_* constant as a
 * literal, every codec's C name, sizeof and field offsets, and the request framing the device relies on
 * (where the readable part ends and the tail starts).
 *
 * Source of the literals: reference/virtio-iommu.md §1.1–§1.4, §2.1–§2.4, §4 and §7; virtio-spec
 * split-ring.tex and content.tex (device status bits).
 */
import * as uapi from '../../uapi';
import { StructCodec } from '../../uapi';
import { codec, expectLayout, type Layout } from '../helpers/expect-layout';

const exported = uapi as unknown as Record<string, unknown>;

const CONSTANTS: Readonly<Record<string, number>> = {
  // §1.1, §1.2 identity and queues
  VIRTIO_ID_IOMMU: 23,
  VIRTIO_PCI_DEVICE_ID_IOMMU: 0x1057,
  VIRTIO_IOMMU_REQUEST_VQ: 0,
  VIRTIO_IOMMU_EVENT_VQ: 1,
  // §1.3 feature bit numbers
  VIRTIO_IOMMU_F_INPUT_RANGE: 0,
  VIRTIO_IOMMU_F_DOMAIN_RANGE: 1,
  VIRTIO_IOMMU_F_MAP_UNMAP: 2,
  VIRTIO_IOMMU_F_BYPASS: 3,
  VIRTIO_IOMMU_F_PROBE: 4,
  VIRTIO_IOMMU_F_MMIO: 5,
  VIRTIO_IOMMU_F_BYPASS_CONFIG: 6,
  VIRTIO_F_INDIRECT_DESC: 28,
  VIRTIO_F_EVENT_IDX: 29,
  VIRTIO_F_VERSION_1: 32,
  VIRTIO_F_ACCESS_PLATFORM: 33,
  // device status
  VIRTIO_CONFIG_S_ACKNOWLEDGE: 1,
  VIRTIO_CONFIG_S_DRIVER: 2,
  VIRTIO_CONFIG_S_DRIVER_OK: 4,
  VIRTIO_CONFIG_S_FEATURES_OK: 8,
  VIRTIO_CONFIG_S_NEEDS_RESET: 64,
  VIRTIO_CONFIG_S_FAILED: 128,
  // §2.1 request types and statuses
  VIRTIO_IOMMU_T_ATTACH: 1,
  VIRTIO_IOMMU_T_DETACH: 2,
  VIRTIO_IOMMU_T_MAP: 3,
  VIRTIO_IOMMU_T_UNMAP: 4,
  VIRTIO_IOMMU_T_PROBE: 5,
  VIRTIO_IOMMU_S_OK: 0,
  VIRTIO_IOMMU_S_IOERR: 1,
  VIRTIO_IOMMU_S_UNSUPP: 2,
  VIRTIO_IOMMU_S_DEVERR: 3,
  VIRTIO_IOMMU_S_INVAL: 4,
  VIRTIO_IOMMU_S_RANGE: 5,
  VIRTIO_IOMMU_S_NOENT: 6,
  VIRTIO_IOMMU_S_FAULT: 7,
  VIRTIO_IOMMU_S_NOMEM: 8,
  // §2.2 flags and framing
  VIRTIO_IOMMU_ATTACH_F_BYPASS: 1,
  VIRTIO_IOMMU_MAP_F_READ: 1,
  VIRTIO_IOMMU_MAP_F_WRITE: 2,
  VIRTIO_IOMMU_MAP_F_MMIO: 4,
  VIRTIO_IOMMU_MAP_F_MASK: 7,
  VIRTIO_IOMMU_REQ_HEAD_SIZE: 4,
  VIRTIO_IOMMU_REQ_TAIL_SIZE: 4,
  // §2.2, §2.4 probe properties
  VIRTIO_IOMMU_PROBE_T_NONE: 0,
  VIRTIO_IOMMU_PROBE_T_RESV_MEM: 1,
  VIRTIO_IOMMU_PROBE_T_PAGE_SIZE_MASK: 2,
  VIRTIO_IOMMU_PROBE_T_MASK: 0xfff,
  VIRTIO_IOMMU_PROBE_PROPERTY_HEADER_SIZE: 4,
  VIRTIO_IOMMU_RESV_MEM_T_RESERVED: 0,
  VIRTIO_IOMMU_RESV_MEM_T_MSI: 1,
  // §4 faults
  VIRTIO_IOMMU_FAULT_R_UNKNOWN: 0,
  VIRTIO_IOMMU_FAULT_R_DOMAIN: 1,
  VIRTIO_IOMMU_FAULT_R_MAPPING: 2,
  VIRTIO_IOMMU_FAULT_F_READ: 1,
  VIRTIO_IOMMU_FAULT_F_WRITE: 2,
  VIRTIO_IOMMU_FAULT_F_EXEC: 4,
  VIRTIO_IOMMU_FAULT_F_ADDRESS: 0x100,
  // §7 split virtqueue
  VIRTQ_DESC_F_NEXT: 1,
  VIRTQ_DESC_F_WRITE: 2,
  VIRTQ_DESC_F_INDIRECT: 4,
  VIRTQ_AVAIL_F_NO_INTERRUPT: 1,
  VIRTQ_USED_F_NO_NOTIFY: 1,
  VIRTQ_MAX_SIZE: 32768,
  VIRTQ_DESC_ALIGN: 16,
  VIRTQ_AVAIL_ALIGN: 2,
  VIRTQ_USED_ALIGN: 4,
};

const LAYOUTS: Readonly<Record<string, Layout>> = {
  VirtioIommuConfig: [
    'virtio_iommu_config',
    40,
    {
      page_size_mask: ['u64', 0],
      input_range_start: ['u64', 8],
      input_range_end: ['u64', 16],
      domain_range_start: ['u32', 24],
      domain_range_end: ['u32', 28],
      probe_size: ['u32', 32],
      bypass: ['u8', 36],
    },
  ],
  VirtioIommuReqHead: ['virtio_iommu_req_head', 4, { type: ['u8', 0] }],
  VirtioIommuReqTail: ['virtio_iommu_req_tail', 4, { status: ['u8', 0] }],
  VirtioIommuReqAttach: [
    'virtio_iommu_req_attach',
    24,
    { type: ['u8', 0], domain: ['u32', 4], endpoint: ['u32', 8], flags: ['u32', 12], reserved: ['u32', 16], status: ['u8', 20] },
  ],
  VirtioIommuReqDetach: [
    'virtio_iommu_req_detach',
    24,
    { type: ['u8', 0], domain: ['u32', 4], endpoint: ['u32', 8], reserved: ['u64', 12], status: ['u8', 20] },
  ],
  VirtioIommuReqMap: [
    'virtio_iommu_req_map',
    40,
    {
      type: ['u8', 0],
      domain: ['u32', 4],
      virt_start: ['u64', 8],
      virt_end: ['u64', 16],
      phys_start: ['u64', 24],
      flags: ['u32', 32],
      status: ['u8', 36],
    },
  ],
  VirtioIommuReqUnmap: [
    'virtio_iommu_req_unmap',
    32,
    { type: ['u8', 0], domain: ['u32', 4], virt_start: ['u64', 8], virt_end: ['u64', 16], reserved: ['u32', 24], status: ['u8', 28] },
  ],
  VirtioIommuReqProbe: ['virtio_iommu_req_probe', 72, { type: ['u8', 0], endpoint: ['u32', 4] }],
  VirtioIommuProbeProperty: ['virtio_iommu_probe_property', 4, { type: ['u16', 0], length: ['u16', 2] }],
  VirtioIommuProbeResvMem: [
    'virtio_iommu_probe_resv_mem',
    24,
    { type: ['u16', 0], length: ['u16', 2], subtype: ['u8', 4], start: ['u64', 8], end: ['u64', 16] },
  ],
  VirtioIommuProbePageSizeMask: [
    'virtio_iommu_probe_page_size_mask',
    12,
    { type: ['u16', 0], length: ['u16', 2], pgsize_bitmap: ['u64', 4] },
  ],
  VirtioIommuFault: [
    'virtio_iommu_fault',
    24,
    { reason: ['u8', 0], flags: ['u32', 4], endpoint: ['u32', 8], reserved1: ['u32', 12], address: ['u64', 16] },
  ],
  VirtqDesc: ['virtq_desc', 16, { addr: ['u64', 0], len: ['u32', 8], flags: ['u16', 12], next: ['u16', 14] }],
  VirtqAvail: ['virtq_avail', 4, { flags: ['u16', 0], idx: ['u16', 2] }],
  VirtqUsed: ['virtq_used', 4, { flags: ['u16', 0], idx: ['u16', 2] }],
  VirtqUsedElem: ['virtq_used_elem', 8, { id: ['u32', 0], len: ['u32', 4] }],
};

describe('virtio-iommu constants', () => {
  test.each(Object.entries(CONSTANTS))('%s === %d', (name, value) => {
    expect(exported[name]).toBe(value);
  });

  test('every exported VIRTIO_* and VIRTQ_* constant is pinned here', () => {
    const names = Object.keys(exported).filter((k) => /^VIRT(IO|Q)_/.test(k));
    expect(names.sort()).toEqual(Object.keys(CONSTANTS).sort());
  });

  test('the modern PCI device ID is 0x1040 + the virtio device ID', () => {
    expect(uapi.VIRTIO_PCI_DEVICE_ID_IOMMU).toBe(0x1040 + uapi.VIRTIO_ID_IOMMU);
  });

  test('MAP_F_MASK is the OR of READ, WRITE and MMIO (no EXEC flag since v0.9)', () => {
    expect(uapi.VIRTIO_IOMMU_MAP_F_MASK).toBe(uapi.VIRTIO_IOMMU_MAP_F_READ | uapi.VIRTIO_IOMMU_MAP_F_WRITE | uapi.VIRTIO_IOMMU_MAP_F_MMIO);
  });

  test('status bits are distinct single bits', () => {
    const bits = [
      uapi.VIRTIO_CONFIG_S_ACKNOWLEDGE,
      uapi.VIRTIO_CONFIG_S_DRIVER,
      uapi.VIRTIO_CONFIG_S_DRIVER_OK,
      uapi.VIRTIO_CONFIG_S_FEATURES_OK,
      uapi.VIRTIO_CONFIG_S_NEEDS_RESET,
      uapi.VIRTIO_CONFIG_S_FAILED,
    ];
    expect(bits.reduce((a, b) => a | b, 0)).toBe(0b1100_1111);
    for (const b of bits) expect(b & (b - 1)).toBe(0);
  });
});

describe('virtio-iommu and virtqueue struct layouts', () => {
  test('every exported virtio_* / virtq_* codec is pinned here', () => {
    const names = Object.entries(exported)
      .filter(([, v]) => v instanceof StructCodec && /^virtq?(io)?_/.test(v.name))
      .map(([k]) => k);
    expect(names.sort()).toEqual(Object.keys(LAYOUTS).sort());
  });

  test.each(Object.entries(LAYOUTS))('%s: C name, sizeof and every field offset', (name, layout) => expectLayout(name, layout));

  test.each([
    // request codec, readable bytes (Linux write_offset = len - 4), reference §2.2 / §7
    ['VirtioIommuReqAttach', 20],
    ['VirtioIommuReqDetach', 20],
    ['VirtioIommuReqMap', 36],
    ['VirtioIommuReqUnmap', 28],
  ] as const)('%s: the tail starts at %d, right after the readable part, and is the last 4 bytes', (name, readable) => {
    const c = codec(name);
    expect(c.offsetof('status')).toBe(readable);
    expect(c.size - readable).toBe(uapi.VIRTIO_IOMMU_REQ_TAIL_SIZE);
    expect(c.offsetof('type')).toBe(0);
  });

  test('PROBE: 72 readable bytes; properties and tail follow; RESV_MEM has length 20 and stride 24', () => {
    expect(uapi.VirtioIommuReqProbe.size).toBe(72);
    expect(uapi.VirtioIommuProbeResvMem.size - uapi.VIRTIO_IOMMU_PROBE_PROPERTY_HEADER_SIZE).toBe(20);
    expect(uapi.VirtioIommuProbePageSizeMask.size - uapi.VIRTIO_IOMMU_PROBE_PROPERTY_HEADER_SIZE).toBe(8);
  });

  test('the config fields sit at the offsets the QEMU qtest reads (8, 16, 24, 28, 36)', () => {
    const c = uapi.VirtioIommuConfig;
    expect([c.offsetof('input_range_start'), c.offsetof('input_range_end'), c.offsetof('domain_range_start'), c.offsetof('domain_range_end'), c.offsetof('bypass')]).toEqual([
      8, 16, 24, 28, 36,
    ]);
  });

  test('a MAP request encodes byte for byte, little-endian, with an inclusive virt_end', () => {
    const bytes = uapi.VirtioIommuReqMap.encode({
      type: uapi.VIRTIO_IOMMU_T_MAP,
      domain: 1,
      virt_start: 0x1000n,
      virt_end: 0x1fffn,
      phys_start: 0xa1000n,
      flags: uapi.VIRTIO_IOMMU_MAP_F_READ | uapi.VIRTIO_IOMMU_MAP_F_WRITE,
    });
    expect(Array.from(bytes)).toEqual([
      3, 0, 0, 0, 1, 0, 0, 0, // head, domain
      0x00, 0x10, 0, 0, 0, 0, 0, 0, // virt_start
      0xff, 0x1f, 0, 0, 0, 0, 0, 0, // virt_end
      0x00, 0x10, 0x0a, 0, 0, 0, 0, 0, // phys_start
      3, 0, 0, 0, // flags
      0, 0, 0, 0, // tail
    ]);
  });

  test('a fault record decodes reason, flags, endpoint and a 64-bit address', () => {
    const b = new Uint8Array(24);
    b.set([2, 0, 0, 0, 0x01, 0x01, 0, 0, 0xbc, 0x01, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(uapi.VirtioIommuFault.decode(b)).toEqual({
      reason: uapi.VIRTIO_IOMMU_FAULT_R_MAPPING,
      flags: uapi.VIRTIO_IOMMU_FAULT_F_READ | uapi.VIRTIO_IOMMU_FAULT_F_ADDRESS,
      endpoint: 0x1bc,
      reserved1: 0,
      address: 0xffff_ffff_ffff_f000n,
    });
  });

  test('a descriptor encodes addr, len, flags and next at 0, 8, 12 and 14', () => {
    const d = uapi.VirtqDesc.encode({ addr: 0x1_2345_6780n, len: 36, flags: uapi.VIRTQ_DESC_F_NEXT | uapi.VIRTQ_DESC_F_WRITE, next: 0x102 });
    expect(Array.from(d)).toEqual([0x80, 0x67, 0x45, 0x23, 0x01, 0, 0, 0, 36, 0, 0, 0, 3, 0, 0x02, 0x01]);
  });
});
