/**
 * Golden struct layouts and flag values: sizeof, every field's kind and offset, the kernel's minsz for
 * each ioctl, every flag bit, cap id, vfio-pci index and limit, plus StructCodec encode/decode behaviour
 * (little-endian, u64 ≥ 2^63, views at a non-zero byteOffset, unions, range errors).
 *
 * Source of the literals: reference/vfio-uapi.md §3, §10, §13 and reference/pamu-windowed.md §3.2.
 */
import * as uapi from '../../uapi';
import {
  StructCodec,
  VfioIommuType1DmaMap,
  VfioIommuType1Info,
  VfioPamuAttr,
  VfioIovaRange,
  field,
  readU16,
  readU32,
  readU64,
  writeU16,
  writeU32,
  writeU64,
  type DecodedOf,
} from '../../uapi';
import { codec, expectLayout, type Layout } from '../helpers/expect-layout';

const exported = uapi as unknown as Record<string, unknown>;

/** codec export name → [C name, sizeof, { field: [kind, offset] }] */
const LAYOUTS: Readonly<Record<string, Layout>> = {
  VfioInfoCapHeader: ['vfio_info_cap_header', 8, { id: ['u16', 0], version: ['u16', 2], next: ['u32', 4] }],
  VfioGroupStatus: ['vfio_group_status', 8, { argsz: ['u32', 0], flags: ['u32', 4] }],
  VfioIommuType1Info: [
    'vfio_iommu_type1_info',
    24,
    { argsz: ['u32', 0], flags: ['u32', 4], iova_pgsizes: ['u64', 8], cap_offset: ['u32', 16], pad: ['u32', 20] },
  ],
  VfioIommuType1InfoCapIovaRange: [
    'vfio_iommu_type1_info_cap_iova_range',
    16,
    { id: ['u16', 0], version: ['u16', 2], next: ['u32', 4], nr_iovas: ['u32', 8], reserved: ['u32', 12] },
  ],
  VfioIovaRange: ['vfio_iova_range', 16, { start: ['u64', 0], end: ['u64', 8] }],
  VfioIommuType1InfoCapMigration: [
    'vfio_iommu_type1_info_cap_migration',
    32,
    {
      id: ['u16', 0],
      version: ['u16', 2],
      next: ['u32', 4],
      flags: ['u32', 8],
      pgsize_bitmap: ['u64', 16],
      max_dirty_bitmap_size: ['u64', 24],
    },
  ],
  VfioIommuType1InfoDmaAvail: [
    'vfio_iommu_type1_info_dma_avail',
    12,
    { id: ['u16', 0], version: ['u16', 2], next: ['u32', 4], avail: ['u32', 8] },
  ],
  VfioIommuType1DmaMap: [
    'vfio_iommu_type1_dma_map',
    32,
    { argsz: ['u32', 0], flags: ['u32', 4], vaddr: ['u64', 8], iova: ['u64', 16], size: ['u64', 24] },
  ],
  VfioIommuType1DmaUnmap: [
    'vfio_iommu_type1_dma_unmap',
    24,
    { argsz: ['u32', 0], flags: ['u32', 4], iova: ['u64', 8], size: ['u64', 16] },
  ],
  VfioBitmap: ['vfio_bitmap', 24, { pgsize: ['u64', 0], size: ['u64', 8], data: ['u64', 16] }],
  VfioIommuType1DirtyBitmap: ['vfio_iommu_type1_dirty_bitmap', 8, { argsz: ['u32', 0], flags: ['u32', 4] }],
  VfioIommuType1DirtyBitmapGet: [
    'vfio_iommu_type1_dirty_bitmap_get',
    40,
    { iova: ['u64', 0], size: ['u64', 8], bitmap_pgsize: ['u64', 16], bitmap_size: ['u64', 24], bitmap_data: ['u64', 32] },
  ],
  VfioDeviceInfo: [
    'vfio_device_info',
    24,
    {
      argsz: ['u32', 0],
      flags: ['u32', 4],
      num_regions: ['u32', 8],
      num_irqs: ['u32', 12],
      cap_offset: ['u32', 16],
      pad: ['u32', 20],
    },
  ],
  VfioRegionInfo: [
    'vfio_region_info',
    32,
    {
      argsz: ['u32', 0],
      flags: ['u32', 4],
      index: ['u32', 8],
      cap_offset: ['u32', 12],
      size: ['u64', 16],
      offset: ['u64', 24],
    },
  ],
  VfioIrqInfo: ['vfio_irq_info', 16, { argsz: ['u32', 0], flags: ['u32', 4], index: ['u32', 8], count: ['u32', 12] }],
  VfioIrqSet: [
    'vfio_irq_set',
    20,
    { argsz: ['u32', 0], flags: ['u32', 4], index: ['u32', 8], start: ['u32', 12], count: ['u32', 16] },
  ],
  VfioPamuAttr: [
    'vfio_pamu_attr',
    32,
    {
      argsz: ['u32', 0],
      flags: ['u32', 4],
      attribute: ['u32', 8],
      aperture_start: ['u64', 16],
      aperture_end: ['u64', 24],
      windows: ['u32', 16],
      stash_cpu: ['u32', 16],
      stash_cache: ['u32', 20],
    },
  ],
  VfioPamuMsiBankMap: [
    'vfio_pamu_msi_bank_map',
    24,
    { argsz: ['u32', 0], flags: ['u32', 4], msi_bank_index: ['u32', 8], iova: ['u64', 16] },
  ],
  VfioPamuMsiBankUnmap: ['vfio_pamu_msi_bank_unmap', 16, { argsz: ['u32', 0], flags: ['u32', 4], iova: ['u64', 8] }],
};

/** minsz constant → [literal, codec export name, field whose offsetofend it is] */
const MINSZ: Readonly<Record<string, readonly [number, string, string]>> = {
  VFIO_GROUP_STATUS_MINSZ: [8, 'VfioGroupStatus', 'flags'],
  VFIO_IOMMU_TYPE1_INFO_MINSZ: [16, 'VfioIommuType1Info', 'iova_pgsizes'],
  VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ: [32, 'VfioIommuType1DmaMap', 'size'],
  VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ: [24, 'VfioIommuType1DmaUnmap', 'size'],
  VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ: [8, 'VfioIommuType1DirtyBitmap', 'flags'],
  VFIO_DEVICE_INFO_MINSZ: [16, 'VfioDeviceInfo', 'num_irqs'],
  VFIO_REGION_INFO_MINSZ: [32, 'VfioRegionInfo', 'offset'],
  VFIO_IRQ_INFO_MINSZ: [16, 'VfioIrqInfo', 'count'],
  VFIO_IRQ_SET_MINSZ: [20, 'VfioIrqSet', 'count'],
  VFIO_PAMU_ATTR_MINSZ: [32, 'VfioPamuAttr', 'aperture_end'],
  VFIO_PAMU_MSI_BANK_MAP_MINSZ: [24, 'VfioPamuMsiBankMap', 'iova'],
  VFIO_PAMU_MSI_BANK_UNMAP_MINSZ: [16, 'VfioPamuMsiBankUnmap', 'iova'],
};

describe('struct layouts (x86-64/arm64)', () => {
  test('every exported StructCodec is pinned here', () => {
    // virtio_* / virtq_* codecs are pinned in virtio-iommu.test.ts.
    const codecs = Object.entries(exported)
      .filter(([, v]) => v instanceof StructCodec && !/^virtq?(io)?_/.test(v.name))
      .map(([k]) => k)
      .sort();
    expect(codecs).toEqual(Object.keys(LAYOUTS).sort());
  });

  test.each(Object.entries(LAYOUTS))('%s: C name, sizeof and every field offset', (name, layout) => expectLayout(name, layout));

  test.each(Object.entries(MINSZ))('%s === offsetofend of its last required field', (name, [value, codecName, last]) => {
    expect(exported[name]).toBe(value);
    expect(codec(codecName).offsetofend(last)).toBe(value);
  });

  test('sizeof differs from minsz where the kernel accepts a shorter argsz', () => {
    expect(uapi.VfioIommuType1Info.size).toBe(24);
    expect(uapi.VFIO_IOMMU_TYPE1_INFO_MINSZ).toBe(16);
    expect(uapi.VfioDeviceInfo.size).toBe(24);
    expect(uapi.VFIO_DEVICE_INFO_MINSZ).toBe(16);
  });

  test('nested and trailing structs sit where the kernel reads them', () => {
    // UNMAP_DMA with GET_DIRTY_BITMAP: argsz >= 24 + 24.
    expect(uapi.VfioIommuType1DmaUnmap.size + uapi.VfioBitmap.size).toBe(48);
    // DIRTY_PAGES GET_BITMAP: argsz - 8 >= 40.
    expect(uapi.VfioIommuType1DirtyBitmap.size + uapi.VfioIommuType1DirtyBitmapGet.size).toBe(48);
    // the flattened vfio_bitmap inside dirty_bitmap_get is a VfioBitmap at +16
    expect(uapi.VfioIommuType1DirtyBitmapGet.offsetof('bitmap_pgsize')).toBe(16 + uapi.VfioBitmap.offsetof('pgsize'));
    expect(uapi.VfioIommuType1DirtyBitmapGet.offsetof('bitmap_size')).toBe(16 + uapi.VfioBitmap.offsetof('size'));
    expect(uapi.VfioIommuType1DirtyBitmapGet.offsetof('bitmap_data')).toBe(16 + uapi.VfioBitmap.offsetof('data'));
    // the cap header occupies the first 8 bytes of every cap
    for (const cap of [uapi.VfioIommuType1InfoCapIovaRange, uapi.VfioIommuType1InfoCapMigration, uapi.VfioIommuType1InfoDmaAvail]) {
      expect([cap.offsetof('id'), cap.offsetof('version'), cap.offsetof('next')]).toEqual([0, 2, 4]);
    }
  });

  test('type1 GET_INFO worked example (kernel >= v6.6, n IOVA ranges) adds up to 88 + 16n', () => {
    const align8 = (x: number): number => (x + 7) & ~7;
    const n = 2;
    const total =
      uapi.VfioIommuType1Info.size +
      align8(uapi.VfioIommuType1InfoCapMigration.size) +
      align8(uapi.VfioIommuType1InfoDmaAvail.size) +
      align8(uapi.VfioIommuType1InfoCapIovaRange.size + n * uapi.VfioIovaRange.size);
    expect(total).toBe(120);
  });
});

describe('flag bits, cap ids, vfio-pci indexes and limits', () => {
  const CONSTANTS: Readonly<Record<string, number>> = {
    VFIO_GROUP_FLAGS_VIABLE: 0x1,
    VFIO_GROUP_FLAGS_CONTAINER_SET: 0x2,
    VFIO_IOMMU_INFO_PGSIZES: 0x1,
    VFIO_IOMMU_INFO_CAPS: 0x2,
    VFIO_DMA_MAP_FLAG_READ: 0x1,
    VFIO_DMA_MAP_FLAG_WRITE: 0x2,
    VFIO_DMA_MAP_FLAG_VADDR: 0x4,
    VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: 0x1,
    VFIO_DMA_UNMAP_FLAG_ALL: 0x2,
    VFIO_DMA_UNMAP_FLAG_VADDR: 0x4,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_START: 0x1,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: 0x2,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: 0x4,
    VFIO_DEVICE_FLAGS_RESET: 0x1,
    VFIO_DEVICE_FLAGS_PCI: 0x2,
    VFIO_DEVICE_FLAGS_PLATFORM: 0x4,
    VFIO_DEVICE_FLAGS_AMBA: 0x8,
    VFIO_DEVICE_FLAGS_CCW: 0x10,
    VFIO_DEVICE_FLAGS_AP: 0x20,
    VFIO_DEVICE_FLAGS_FSL_MC: 0x40,
    VFIO_DEVICE_FLAGS_CAPS: 0x80,
    VFIO_DEVICE_FLAGS_CDX: 0x100,
    VFIO_REGION_INFO_FLAG_READ: 0x1,
    VFIO_REGION_INFO_FLAG_WRITE: 0x2,
    VFIO_REGION_INFO_FLAG_MMAP: 0x4,
    VFIO_REGION_INFO_FLAG_CAPS: 0x8,
    VFIO_IRQ_INFO_EVENTFD: 0x1,
    VFIO_IRQ_INFO_MASKABLE: 0x2,
    VFIO_IRQ_INFO_AUTOMASKED: 0x4,
    VFIO_IRQ_INFO_NORESIZE: 0x8,
    VFIO_IRQ_SET_DATA_NONE: 0x1,
    VFIO_IRQ_SET_DATA_BOOL: 0x2,
    VFIO_IRQ_SET_DATA_EVENTFD: 0x4,
    VFIO_IRQ_SET_ACTION_MASK: 0x8,
    VFIO_IRQ_SET_ACTION_UNMASK: 0x10,
    VFIO_IRQ_SET_ACTION_TRIGGER: 0x20,
    VFIO_IRQ_SET_DATA_TYPE_MASK: 0x7,
    VFIO_IRQ_SET_ACTION_TYPE_MASK: 0x38,
    VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: 1,
    VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: 2,
    VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: 3,
    VFIO_REGION_INFO_CAP_TYPE: 2,
    VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: 3,
    VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP: 5,
    VFIO_PCI_BAR0_REGION_INDEX: 0,
    VFIO_PCI_BAR1_REGION_INDEX: 1,
    VFIO_PCI_BAR2_REGION_INDEX: 2,
    VFIO_PCI_BAR3_REGION_INDEX: 3,
    VFIO_PCI_BAR4_REGION_INDEX: 4,
    VFIO_PCI_BAR5_REGION_INDEX: 5,
    VFIO_PCI_ROM_REGION_INDEX: 6,
    VFIO_PCI_CONFIG_REGION_INDEX: 7,
    VFIO_PCI_VGA_REGION_INDEX: 8,
    VFIO_PCI_NUM_REGIONS: 9,
    VFIO_PCI_INTX_IRQ_INDEX: 0,
    VFIO_PCI_MSI_IRQ_INDEX: 1,
    VFIO_PCI_MSIX_IRQ_INDEX: 2,
    VFIO_PCI_ERR_IRQ_INDEX: 3,
    VFIO_PCI_REQ_IRQ_INDEX: 4,
    VFIO_PCI_NUM_IRQS: 5,
    VFIO_PCI_OFFSET_SHIFT: 40,
    DIRTY_BITMAP_SIZE_MAX: 0x10000000,
    DIRTY_BITMAP_PAGES_MAX: 0x7fffffff,
    VFIO_PIN_PAGES_MAX_ENTRIES: 512,
    VFIO_MINOR: 196,
    VFIO_ATTR_GEOMETRY: 0,
    VFIO_ATTR_WINDOWS: 1,
    VFIO_ATTR_PAMU_STASH: 2,
  };

  test.each(Object.entries(CONSTANTS))('%s === %d', (name, value) => {
    expect(exported[name]).toBe(value);
  });

  test('the IRQ_SET masks are the OR of their members', () => {
    expect(uapi.VFIO_IRQ_SET_DATA_TYPE_MASK).toBe(
      uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_DATA_BOOL | uapi.VFIO_IRQ_SET_DATA_EVENTFD,
    );
    expect(uapi.VFIO_IRQ_SET_ACTION_TYPE_MASK).toBe(
      uapi.VFIO_IRQ_SET_ACTION_MASK | uapi.VFIO_IRQ_SET_ACTION_UNMASK | uapi.VFIO_IRQ_SET_ACTION_TRIGGER,
    );
  });

  test('derived limits agree with their definitions', () => {
    expect(uapi.VFIO_PIN_PAGES_MAX_ENTRIES).toBe(4096 / 8); // PAGE_SIZE / sizeof(long)
    expect(uapi.DIRTY_BITMAP_SIZE_MAX).toBe(Math.ceil(uapi.DIRTY_BITMAP_PAGES_MAX / 64) * 8); // ALIGN(INT_MAX, 64) / 8
    expect(2 ** uapi.VFIO_PCI_OFFSET_SHIFT * uapi.VFIO_PCI_CONFIG_REGION_INDEX).toBe(0x70000000000);
  });
});

describe('StructCodec', () => {
  test('decode reads little-endian fields, u64 as bigint', () => {
    const b = new Uint8Array(32);
    b.set([0x20, 0, 0, 0, 0x03, 0, 0, 0]);
    b.set([0x00, 0x10, 0, 0, 0, 0, 0, 0], 8); // vaddr 0x1000
    b.set([0x00, 0x00, 0x20, 0, 0, 0, 0, 0x80], 16); // iova 0x8000000000200000
    b.set([0x00, 0x00, 0x10, 0, 0, 0, 0, 0], 24); // size 0x100000
    expect(VfioIommuType1DmaMap.decode(b)).toEqual({
      argsz: 32,
      flags: 3,
      vaddr: 0x1000n,
      iova: 0x8000000000200000n,
      size: 0x100000n,
    });
  });

  test('encode then decode round-trips, including u64 >= 2^63 and u32 >= 2^31', () => {
    const value: DecodedOf<typeof VfioIommuType1DmaMap> = {
      argsz: 32,
      flags: 0x80000003,
      vaddr: 0xffff_ffff_ffff_f000n,
      iova: 1n << 63n,
      size: 0x7fff_ffff_ffff_ffffn,
    };
    const bytes = VfioIommuType1DmaMap.encode(value);
    expect(bytes.length).toBe(32);
    expect(Array.from(bytes.subarray(16, 24))).toEqual([0, 0, 0, 0, 0, 0, 0, 0x80]);
    expect(VfioIommuType1DmaMap.decode(bytes)).toEqual(value);
  });

  test('works on a Uint8Array view with a non-zero byteOffset, and with a base inside the view', () => {
    const backing = new Uint8Array(64).fill(0xee);
    const view = backing.subarray(3, 3 + 40);
    const value = { start: 0xfee0_0000n, end: 0xffff_ffff_ffff_ffffn };
    VfioIovaRange.encode(value, view, 5);
    expect(VfioIovaRange.decode(view, 5)).toEqual(value);
    expect(VfioIovaRange.decode(backing, 8)).toEqual(value);
    expect(backing[7]).toBe(0xee); // before the struct
    expect(backing[8 + 16]).toBe(0xee); // after the struct
    expect(VfioIovaRange.read(view, 'end', 5)).toBe(0xffff_ffff_ffff_ffffn);
  });

  test('encode into a buffer writes missing fields as 0 and leaves padding and outside bytes alone', () => {
    const b = new Uint8Array(40).fill(0xaa);
    VfioIommuType1Info.encode({ argsz: 24, flags: 1 }, b, 8);
    expect(VfioIommuType1Info.decode(b, 8)).toEqual({ argsz: 24, flags: 1, iova_pgsizes: 0n, cap_offset: 0, pad: 0 });
    expect(b[7]).toBe(0xaa);
    expect(b[32]).toBe(0xaa);
    // implicit padding of the MIGRATION cap (bytes 12..15) belongs to no field
    const m = new Uint8Array(32).fill(0xaa);
    uapi.VfioIommuType1InfoCapMigration.encode({ id: 2, version: 1 }, m);
    expect(Array.from(m.subarray(12, 16))).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
    expect(Array.from(m.subarray(8, 12))).toEqual([0, 0, 0, 0]);
  });

  test('a union member survives the zeroing of the absent members that overlap it', () => {
    const b = new Uint8Array(32).fill(0xff);
    VfioPamuAttr.encode({ argsz: 32, attribute: uapi.VFIO_ATTR_WINDOWS, windows: 8 }, b);
    const d = VfioPamuAttr.decode(b);
    expect(d.windows).toBe(8);
    expect(d.stash_cpu).toBe(8);
    expect(d.aperture_start).toBe(8n);
    expect(d.aperture_end).toBe(0n);
    const s = VfioPamuAttr.encode({ attribute: uapi.VFIO_ATTR_PAMU_STASH, stash_cpu: 1, stash_cache: 3 });
    expect(VfioPamuAttr.decode(s).aperture_start).toBe((3n << 32n) | 1n);
  });

  test('writes convert modulo the field width, as a C assignment does', () => {
    const b = new Uint8Array(32);
    VfioIommuType1DmaMap.write(b, 'flags', 1 << 31);
    expect(VfioIommuType1DmaMap.read(b, 'flags')).toBe(0x80000000);
    VfioIommuType1DmaMap.write(b, 'argsz', -1);
    expect(VfioIommuType1DmaMap.read(b, 'argsz')).toBe(0xffffffff);
    VfioIommuType1DmaMap.write(b, 'iova', -1n);
    expect(VfioIommuType1DmaMap.read(b, 'iova')).toBe(0xffff_ffff_ffff_ffffn);
    VfioIommuType1DmaMap.write(b, 'size', 1n << 64n);
    expect(VfioIommuType1DmaMap.read(b, 'size')).toBe(0n);
  });

  test('u8, u16 and s32 fields', () => {
    const c = new StructCodec('test_mixed', 8, { a: field('u8', 0), b: field('u16', 2), c: field('s32', 4) });
    const bytes = c.encode({ a: 0x1ff, b: 0x12345, c: -2 });
    expect(Array.from(bytes)).toEqual([0xff, 0, 0x45, 0x23, 0xfe, 0xff, 0xff, 0xff]);
    expect(c.decode(bytes)).toEqual({ a: 0xff, b: 0x2345, c: -2 });
    c.write(bytes, 'c', 0xffffffff);
    expect(c.read(bytes, 'c')).toBe(-1);
  });

  test('a buffer too short for the struct or field throws RangeError', () => {
    expect(() => VfioIommuType1Info.decode(new Uint8Array(16))).toThrow(RangeError);
    expect(() => VfioIommuType1Info.decode(new Uint8Array(24), 1)).toThrow(RangeError);
    expect(() => VfioIommuType1Info.encode({}, new Uint8Array(23))).toThrow(RangeError);
    expect(() => VfioIommuType1Info.read(new Uint8Array(12), 'iova_pgsizes')).toThrow(RangeError);
    expect(() => VfioIommuType1Info.write(new Uint8Array(8), 'flags', 1, 8)).toThrow(RangeError);
    expect(() => VfioIommuType1Info.decode(new Uint8Array(24), -1)).toThrow(RangeError);
    // a 16-byte pre-cap buffer still allows field access within its length
    expect(VfioIommuType1Info.read(new Uint8Array(16), 'iova_pgsizes')).toBe(0n);
  });

  test('a field that does not fit the declared size is rejected at construction', () => {
    expect(() => new StructCodec('bad', 8, { x: field('u64', 4) })).toThrow(RangeError);
  });

  test('decoded values carry the TypeScript types of their kinds', () => {
    const d = VfioIommuType1DmaMap.decode(new Uint8Array(32));
    const iova: bigint = d.iova;
    const argsz: number = d.argsz;
    expect([typeof iova, typeof argsz]).toEqual(['bigint', 'number']);
  });
});

describe('byte helpers', () => {
  test('readU16/U32/U64 and writeU16/U32/U64 are little-endian and respect byteOffset', () => {
    const backing = new Uint8Array(32);
    const view = backing.subarray(1, 25);
    writeU16(view, 0, 0xbeef);
    writeU32(view, 2, 0xdeadbeef);
    writeU64(view, 6, 0x8000_0000_0000_0001n);
    expect(Array.from(backing.subarray(1, 7))).toEqual([0xef, 0xbe, 0xef, 0xbe, 0xad, 0xde]);
    expect(readU16(view, 0)).toBe(0xbeef);
    expect(readU32(view, 2)).toBe(0xdeadbeef);
    expect(readU64(view, 6)).toBe(0x8000_0000_0000_0001n);
    expect(readU64(backing, 7)).toBe(0x8000_0000_0000_0001n);
  });

  test('u64 writes are exact on both sides of 2^53', () => {
    const b = new Uint8Array(8);
    for (const v of [0n, 0xffff_ffffn, 0x1_0000_0000n, 0x7f12_3456_7000n, 0x1f_ffff_ffff_ffffn, 0x20_0000_0000_0000n, 0xffff_ffff_ffff_ffffn]) {
      writeU64(b, 0, v);
      expect(readU64(b, 0)).toBe(v);
    }
    writeU64(b, 0, 0x7f12_3456_7000n);
    expect(Array.from(b)).toEqual([0x00, 0x70, 0x56, 0x34, 0x12, 0x7f, 0, 0]);
  });

  test('out-of-range offsets throw RangeError', () => {
    const b = new Uint8Array(8);
    expect(() => readU32(b, 5)).toThrow(RangeError);
    expect(() => readU64(b, 1)).toThrow(RangeError);
    expect(() => writeU64(b, -1, 0n)).toThrow(RangeError);
    expect(() => writeU16(b, 7, 0)).toThrow(RangeError);
    expect(() => readU16(b, 0.5)).toThrow(RangeError);
  });
});
