/**
 * Byte layouts of the VFIO structs the simulator reads and writes, as StructCodecs named by the
 * PascalCase of their C name, with fields in C spelling. Next to each codec is the kernel's `minsz`
 * (the `offsetofend` of the last field that must be present) where the reference states it.
 *
 * - x86-64 / arm64 layout, little-endian; `__aligned_u64` fields are 8-byte aligned, which is where the
 *   tail padding of some structs comes from.
 * - Codecs cover the fixed part only. Flexible arrays (`data[]`, `iova_ranges[]`) start at `size`.
 * - Capability structs embed `struct vfio_info_cap_header header;` in C; here the header's fields are
 *   flattened into the cap codec as `id` u16 @0, `version` u16 @2, `next` u32 @4.
 * - `pad` fields are named because recent headers name them (the structs are 24 bytes either way).
 * - sizeof ≠ minsz is normal: e.g. vfio_iommu_type1_info is 24 bytes but the kernel accepts argsz 16
 *   (the pre-capability ABI), and vfio_device_info is 24 bytes with minsz 16.
 *
 * Source: include/uapi/linux/vfio.h (torvalds/linux @02256acf) via reference/vfio-uapi.md §3, whose
 * layouts were checked by compiling against the header.
 */
import { StructCodec, field } from './codec';

// ---------------------------------------------------------------------------------------------------
// Common
// ---------------------------------------------------------------------------------------------------

/** `struct vfio_info_cap_header` (8 bytes). `next` is an offset from the start of the whole INFO buffer; 0 ends the chain. */
export const VfioInfoCapHeader = new StructCodec('vfio_info_cap_header', 8, {
  id: field('u16', 0),
  version: field('u16', 2),
  next: field('u32', 4),
});

// ---------------------------------------------------------------------------------------------------
// Group
// ---------------------------------------------------------------------------------------------------

/** `struct vfio_group_status` (8 bytes), argument of VFIO_GROUP_GET_STATUS. */
export const VfioGroupStatus = new StructCodec('vfio_group_status', 8, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
});
/** minsz of VFIO_GROUP_GET_STATUS = offsetofend(vfio_group_status, flags). */
export const VFIO_GROUP_STATUS_MINSZ = 8;

// ---------------------------------------------------------------------------------------------------
// Type1 IOMMU
// ---------------------------------------------------------------------------------------------------

/** `struct vfio_iommu_type1_info` (24 bytes), argument of VFIO_IOMMU_GET_INFO. */
export const VfioIommuType1Info = new StructCodec('vfio_iommu_type1_info', 24, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  iova_pgsizes: field('u64', 8),
  cap_offset: field('u32', 16),
  pad: field('u32', 20),
});
/** minsz of VFIO_IOMMU_GET_INFO = offsetofend(vfio_iommu_type1_info, iova_pgsizes); argsz 16 is the pre-cap ABI. */
export const VFIO_IOMMU_TYPE1_INFO_MINSZ = 16;

/**
 * `struct vfio_iommu_type1_info_cap_iova_range`, fixed part (16 bytes; header flattened), cap id
 * VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE. `nr_iovas` VfioIovaRange entries follow at offset 16.
 */
export const VfioIommuType1InfoCapIovaRange = new StructCodec('vfio_iommu_type1_info_cap_iova_range', 16, {
  id: field('u16', 0),
  version: field('u16', 2),
  next: field('u32', 4),
  nr_iovas: field('u32', 8),
  reserved: field('u32', 12),
});

/** `struct vfio_iova_range` (16 bytes). `end` is **inclusive** (the last valid IOVA). */
export const VfioIovaRange = new StructCodec('vfio_iova_range', 16, {
  start: field('u64', 0),
  end: field('u64', 8),
});

/**
 * `struct vfio_iommu_type1_info_cap_migration` (32 bytes; header flattened; 4 bytes of implicit padding
 * at 12), cap id VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION.
 */
export const VfioIommuType1InfoCapMigration = new StructCodec('vfio_iommu_type1_info_cap_migration', 32, {
  id: field('u16', 0),
  version: field('u16', 2),
  next: field('u32', 4),
  flags: field('u32', 8),
  pgsize_bitmap: field('u64', 16),
  max_dirty_bitmap_size: field('u64', 24),
});

/**
 * `struct vfio_iommu_type1_info_dma_avail` (sizeof 12; header flattened), cap id
 * VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL. Kernels ≥ ~v6.6 pad each cap in the chain to 8 bytes, so it then
 * occupies 16 bytes of the chain.
 */
export const VfioIommuType1InfoDmaAvail = new StructCodec('vfio_iommu_type1_info_dma_avail', 12, {
  id: field('u16', 0),
  version: field('u16', 2),
  next: field('u32', 4),
  avail: field('u32', 8),
});

/** `struct vfio_iommu_type1_dma_map` (32 bytes), argument of VFIO_IOMMU_MAP_DMA. */
export const VfioIommuType1DmaMap = new StructCodec('vfio_iommu_type1_dma_map', 32, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  vaddr: field('u64', 8),
  iova: field('u64', 16),
  size: field('u64', 24),
});
/** minsz of VFIO_IOMMU_MAP_DMA = offsetofend(vfio_iommu_type1_dma_map, size). */
export const VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ = 32;

/**
 * `struct vfio_iommu_type1_dma_unmap` (24 bytes + data[]), argument of VFIO_IOMMU_UNMAP_DMA. `size` is
 * in: requested length, out: bytes unmapped. With GET_DIRTY_BITMAP a VfioBitmap follows at 24.
 */
export const VfioIommuType1DmaUnmap = new StructCodec('vfio_iommu_type1_dma_unmap', 24, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  iova: field('u64', 8),
  size: field('u64', 16),
});
/** minsz of VFIO_IOMMU_UNMAP_DMA = offsetofend(vfio_iommu_type1_dma_unmap, size). */
export const VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ = 24;

/** `struct vfio_bitmap` (24 bytes). `data` is a user pointer to one bit per `pgsize` page; the caller zeroes it. */
export const VfioBitmap = new StructCodec('vfio_bitmap', 24, {
  pgsize: field('u64', 0),
  size: field('u64', 8),
  data: field('u64', 16),
});

/** `struct vfio_iommu_type1_dirty_bitmap` (8 bytes + data[]), argument of VFIO_IOMMU_DIRTY_PAGES. */
export const VfioIommuType1DirtyBitmap = new StructCodec('vfio_iommu_type1_dirty_bitmap', 8, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
});
/** minsz of VFIO_IOMMU_DIRTY_PAGES = offsetofend(vfio_iommu_type1_dirty_bitmap, flags). */
export const VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ = 8;

/**
 * `struct vfio_iommu_type1_dirty_bitmap_get` (40 bytes), the data[] of a GET_BITMAP call. The nested
 * `struct vfio_bitmap bitmap` @16 is flattened: `bitmap.pgsize` → `bitmap_pgsize` @16, `bitmap.size` →
 * `bitmap_size` @24, `bitmap.data` → `bitmap_data` @32 (equivalently, VfioBitmap at base + 16).
 */
export const VfioIommuType1DirtyBitmapGet = new StructCodec('vfio_iommu_type1_dirty_bitmap_get', 40, {
  iova: field('u64', 0),
  size: field('u64', 8),
  bitmap_pgsize: field('u64', 16),
  bitmap_size: field('u64', 24),
  bitmap_data: field('u64', 32),
});

// ---------------------------------------------------------------------------------------------------
// Device (vfio-pci)
// ---------------------------------------------------------------------------------------------------

/** `struct vfio_device_info` (24 bytes; 20 with pre-~v6.6 headers that lack `pad`), argument of VFIO_DEVICE_GET_INFO. */
export const VfioDeviceInfo = new StructCodec('vfio_device_info', 24, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  num_regions: field('u32', 8),
  num_irqs: field('u32', 12),
  cap_offset: field('u32', 16),
  pad: field('u32', 20),
});
/** minsz of VFIO_DEVICE_GET_INFO = offsetofend(vfio_device_info, num_irqs). */
export const VFIO_DEVICE_INFO_MINSZ = 16;

/** `struct vfio_region_info` (32 bytes), argument of VFIO_DEVICE_GET_REGION_INFO. */
export const VfioRegionInfo = new StructCodec('vfio_region_info', 32, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  index: field('u32', 8),
  cap_offset: field('u32', 12),
  size: field('u64', 16),
  offset: field('u64', 24),
});
/** minsz of VFIO_DEVICE_GET_REGION_INFO = offsetofend(vfio_region_info, offset). */
export const VFIO_REGION_INFO_MINSZ = 32;

/** `struct vfio_irq_info` (16 bytes), argument of VFIO_DEVICE_GET_IRQ_INFO. */
export const VfioIrqInfo = new StructCodec('vfio_irq_info', 16, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  index: field('u32', 8),
  count: field('u32', 12),
});
/** minsz of VFIO_DEVICE_GET_IRQ_INFO = offsetofend(vfio_irq_info, count). */
export const VFIO_IRQ_INFO_MINSZ = 16;

/**
 * `struct vfio_irq_set` (20 bytes + data[]), argument of VFIO_DEVICE_SET_IRQS. data[] at 20 holds
 * `count` u8 (DATA_BOOL) or s32 eventfds (DATA_EVENTFD), or nothing (DATA_NONE).
 */
export const VfioIrqSet = new StructCodec('vfio_irq_set', 20, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  index: field('u32', 8),
  start: field('u32', 12),
  count: field('u32', 16),
});
/** minsz of VFIO_DEVICE_SET_IRQS = offsetofend(vfio_irq_set, count). */
export const VFIO_IRQ_SET_MINSZ = 20;
