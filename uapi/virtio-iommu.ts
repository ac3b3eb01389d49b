/**
 * Constants and byte layouts of the virtio-iommu device (virtio device 23) and of the split virtqueue it
 * is driven through, with the exact `linux/virtio_iommu.h` / `linux/virtio_config.h` /
 * `linux/virtio_ring.h` spelling (the virtqueue names follow the spec's `virtio-queue.h`: VIRTQ_*).
 * Values and layouts only; no behaviour.
 *
 * - All multi-byte fields are little-endian (virtio 1.x; the device is modern-only).
 * - Request codecs describe the whole request as the driver lays it out in guest memory, head to tail,
 *   with the embedded head and tail flattened: `type` is head.type at 0, `status` is tail.status at the
 *   tail offset (`VfioIommuType1InfoCapIovaRange` flattens its cap header the same way). The device-
 *   readable part ends where the tail starts; only the tail (and PROBE's properties) is device-writable.
 * - Reserved arrays of 4 or 8 bytes are fields (`reserved` u32/u64) because devices check them as one
 *   word (ATTACH reserved ≠ 0 → INVAL). Reserved arrays of 3 and 64 bytes (head, tail, RESV_MEM, fault
 *   record, PROBE) are not fields: the device ignores them on input and writes them from a zeroed buffer.
 * - Ranges in requests, RESV_MEM and the config space are **inclusive** (`virt_end`, `end`).
 * - Feature values are bit numbers (as in the C headers), not masks: test with `1n << BigInt(bit)`.
 *
 * Sources: reference/virtio-iommu.md §1.3 (features), §1.4 (config), §2.1–2.4 (requests, statuses,
 * probe properties), §4 (fault records), §7 (split virtqueue); Linux include/uapi/linux/virtio_iommu.h
 * "v0.12"; virtio-spec split-ring.tex and content.tex (device status). The PAGE_SIZE_MASK probe
 * property is the unmerged proposal of reference §2.4 (QEMU "[PATCH v9 8/9]", 2020-03-23).
 */
import { StructCodec, field } from './codec';

// ---------------------------------------------------------------------------------------------------
// Identity and virtqueues (reference §1.1, §1.2)
// ---------------------------------------------------------------------------------------------------

/** The virtio device ID of the IOMMU (virtio_ids.h VIRTIO_ID_IOMMU). */
export const VIRTIO_ID_IOMMU = 23;
/** The modern virtio-pci device ID: 0x1040 + VIRTIO_ID_IOMMU. */
export const VIRTIO_PCI_DEVICE_ID_IOMMU = 0x1057;
/** Index of the request queue (driver → device requests). */
export const VIRTIO_IOMMU_REQUEST_VQ = 0;
/** Index of the event queue (device-writable buffers for fault records). */
export const VIRTIO_IOMMU_EVENT_VQ = 1;

// ---------------------------------------------------------------------------------------------------
// Feature bits (bit numbers; reference §1.3)
// ---------------------------------------------------------------------------------------------------

/** `input_range` in the config space is valid. */
export const VIRTIO_IOMMU_F_INPUT_RANGE = 0;
/** `domain_range` in the config space is valid. */
export const VIRTIO_IOMMU_F_DOMAIN_RANGE = 1;
/** MAP and UNMAP requests are available. */
export const VIRTIO_IOMMU_F_MAP_UNMAP = 2;
/** Legacy: unattached endpoints bypass the IOMMU. New devices SHOULD NOT offer it. */
export const VIRTIO_IOMMU_F_BYPASS = 3;
/** PROBE is available and `probe_size` is valid. */
export const VIRTIO_IOMMU_F_PROBE = 4;
/** VIRTIO_IOMMU_MAP_F_MMIO is available. */
export const VIRTIO_IOMMU_F_MMIO = 5;
/** The `bypass` config byte and VIRTIO_IOMMU_ATTACH_F_BYPASS are available. Supersedes F_BYPASS. */
export const VIRTIO_IOMMU_F_BYPASS_CONFIG = 6;

/** Descriptors may refer to indirect descriptor tables (VIRTIO_RING_F_INDIRECT_DESC in Linux). */
export const VIRTIO_F_INDIRECT_DESC = 28;
/** `used_event` / `avail_event` notification suppression (VIRTIO_RING_F_EVENT_IDX in Linux). */
export const VIRTIO_F_EVENT_IDX = 29;
/** The device is virtio 1.x (modern). virtio-iommu requires it. */
export const VIRTIO_F_VERSION_1 = 32;
/** The device is behind a platform IOMMU / uses platform DMA translation. */
export const VIRTIO_F_ACCESS_PLATFORM = 33;

// ---------------------------------------------------------------------------------------------------
// Device status bits (virtio_config.h VIRTIO_CONFIG_S_*; virtio spec §2.1)
// ---------------------------------------------------------------------------------------------------

/** The guest OS has found the device. */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
/** The guest OS knows how to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER = 2;
/** The driver is set up and ready to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
/** The driver has acknowledged the features it understands; feature negotiation is complete. */
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
/** The device hit an error it cannot recover from without a reset. */
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
/** The driver gave up on the device. */
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// ---------------------------------------------------------------------------------------------------
// Requests (reference §2.1, §2.2)
// ---------------------------------------------------------------------------------------------------

export const VIRTIO_IOMMU_T_ATTACH = 1;
export const VIRTIO_IOMMU_T_DETACH = 2;
export const VIRTIO_IOMMU_T_MAP = 3;
export const VIRTIO_IOMMU_T_UNMAP = 4;
export const VIRTIO_IOMMU_T_PROBE = 5;

/** Success. */
export const VIRTIO_IOMMU_S_OK = 0;
/** Virtio communication error. */
export const VIRTIO_IOMMU_S_IOERR = 1;
/** Unsupported request. */
export const VIRTIO_IOMMU_S_UNSUPP = 2;
/** Internal device error. */
export const VIRTIO_IOMMU_S_DEVERR = 3;
/** Invalid parameters. */
export const VIRTIO_IOMMU_S_INVAL = 4;
/** Out-of-range parameters. */
export const VIRTIO_IOMMU_S_RANGE = 5;
/** Entry not found. */
export const VIRTIO_IOMMU_S_NOENT = 6;
/** Bad address. */
export const VIRTIO_IOMMU_S_FAULT = 7;
/** Insufficient resources. Absent from the v0.9 header. */
export const VIRTIO_IOMMU_S_NOMEM = 8;

/** ATTACH flag: create (or join) a bypass domain. Needs F_BYPASS_CONFIG. */
export const VIRTIO_IOMMU_ATTACH_F_BYPASS = 1 << 0;

/** MAP flag: the endpoint may read. */
export const VIRTIO_IOMMU_MAP_F_READ = 1 << 0;
/** MAP flag: the endpoint may write. */
export const VIRTIO_IOMMU_MAP_F_WRITE = 1 << 1;
/** MAP flag: device memory (a memory type, not a permission). Needs F_MMIO. v0.9 had EXEC here. */
export const VIRTIO_IOMMU_MAP_F_MMIO = 1 << 2;
/** Every MAP flag the spec defines. */
export const VIRTIO_IOMMU_MAP_F_MASK = VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE | VIRTIO_IOMMU_MAP_F_MMIO;

/** Size of a request head (`u8 type; u8 reserved[3]`). */
export const VIRTIO_IOMMU_REQ_HEAD_SIZE = 4;
/** Size of a request tail (`u8 status; u8 reserved[3]`). */
export const VIRTIO_IOMMU_REQ_TAIL_SIZE = 4;

// ---------------------------------------------------------------------------------------------------
// PROBE properties (reference §2.2, §2.4)
// ---------------------------------------------------------------------------------------------------

/** Terminates the property list. */
export const VIRTIO_IOMMU_PROBE_T_NONE = 0;
/** A reserved memory region (VirtioIommuProbeResvMem). */
export const VIRTIO_IOMMU_PROBE_T_RESV_MEM = 1;
/** Per-endpoint page size mask: the unmerged proposal of reference §2.4 (not in the spec). */
export const VIRTIO_IOMMU_PROBE_T_PAGE_SIZE_MASK = 2;
/** Bits of the property header's first le16 that hold the type; bits 12..15 are reserved. */
export const VIRTIO_IOMMU_PROBE_T_MASK = 0xfff;
/** Size of a property header (`le16 type; le16 length`); `length` excludes it. */
export const VIRTIO_IOMMU_PROBE_PROPERTY_HEADER_SIZE = 4;

/** RESV_MEM subtype: the driver must not map these addresses. */
export const VIRTIO_IOMMU_RESV_MEM_T_RESERVED = 0;
/** RESV_MEM subtype: an MSI doorbell window the device translates itself. */
export const VIRTIO_IOMMU_RESV_MEM_T_MSI = 1;

// ---------------------------------------------------------------------------------------------------
// Fault records (reference §4)
// ---------------------------------------------------------------------------------------------------

/** Internal error, or anything the other reasons do not cover. */
export const VIRTIO_IOMMU_FAULT_R_UNKNOWN = 0;
/** Access from an endpoint not attached to a domain. */
export const VIRTIO_IOMMU_FAULT_R_DOMAIN = 1;
/** No mapping for the address, or the wrong permission. */
export const VIRTIO_IOMMU_FAULT_R_MAPPING = 2;

/** The faulting access was a read. */
export const VIRTIO_IOMMU_FAULT_F_READ = 1 << 0;
/** The faulting access was a write. */
export const VIRTIO_IOMMU_FAULT_F_WRITE = 1 << 1;
/** The faulting access was an instruction fetch. Linux UAPI only; the spec does not define it. */
export const VIRTIO_IOMMU_FAULT_F_EXEC = 1 << 2;
/** `address` is valid. */
export const VIRTIO_IOMMU_FAULT_F_ADDRESS = 1 << 8;

// ---------------------------------------------------------------------------------------------------
// Split virtqueue (reference §7; virtio-spec split-ring.tex)
// ---------------------------------------------------------------------------------------------------

/** Descriptor flag: the buffer continues via `next`. */
export const VIRTQ_DESC_F_NEXT = 1;
/** Descriptor flag: the buffer is device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** Descriptor flag: the buffer is an indirect descriptor table. */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** avail.flags: the driver does not want used-buffer notifications (without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags: the device does not want available-buffer notifications (without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** The largest queue size (the largest power of two that fits in 16 bits). */
export const VIRTQ_MAX_SIZE = 32768;
/** Alignment of the descriptor table, in bytes. */
export const VIRTQ_DESC_ALIGN = 16;
/** Alignment of the available ring, in bytes. */
export const VIRTQ_AVAIL_ALIGN = 2;
/** Alignment of the used ring, in bytes. */
export const VIRTQ_USED_ALIGN = 4;

// ---------------------------------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------------------------------

/**
 * `struct virtio_iommu_config` (40 bytes), the device config space. `input_range` (virtio_iommu_range_64)
 * and `domain_range` (virtio_iommu_range_32) are flattened; both are inclusive. `reserved[3]` at 37.
 */
export const VirtioIommuConfig = new StructCodec('virtio_iommu_config', 40, {
  page_size_mask: field('u64', 0),
  input_range_start: field('u64', 8),
  input_range_end: field('u64', 16),
  domain_range_start: field('u32', 24),
  domain_range_end: field('u32', 28),
  probe_size: field('u32', 32),
  bypass: field('u8', 36),
});

/** `struct virtio_iommu_req_head` (4 bytes): `type` and `reserved[3]` (ignored by the device). */
export const VirtioIommuReqHead = new StructCodec('virtio_iommu_req_head', 4, {
  type: field('u8', 0),
});

/** `struct virtio_iommu_req_tail` (4 bytes): `status` and `reserved[3]` (written as 0). */
export const VirtioIommuReqTail = new StructCodec('virtio_iommu_req_tail', 4, {
  status: field('u8', 0),
});

/** `struct virtio_iommu_req_attach` (24 bytes: readable 0..19, tail at 20). `flags` bit 0 = ATTACH_F_BYPASS. */
export const VirtioIommuReqAttach = new StructCodec('virtio_iommu_req_attach', 24, {
  type: field('u8', 0),
  domain: field('u32', 4),
  endpoint: field('u32', 8),
  flags: field('u32', 12),
  reserved: field('u32', 16),
  status: field('u8', 20),
});

/** `struct virtio_iommu_req_detach` (24 bytes: readable 0..19, tail at 20). The device ignores `reserved`. */
export const VirtioIommuReqDetach = new StructCodec('virtio_iommu_req_detach', 24, {
  type: field('u8', 0),
  domain: field('u32', 4),
  endpoint: field('u32', 8),
  reserved: field('u64', 12),
  status: field('u8', 20),
});

/** `struct virtio_iommu_req_map` (40 bytes: readable 0..35, tail at 36). [virt_start; virt_end] is inclusive. */
export const VirtioIommuReqMap = new StructCodec('virtio_iommu_req_map', 40, {
  type: field('u8', 0),
  domain: field('u32', 4),
  virt_start: field('u64', 8),
  virt_end: field('u64', 16),
  phys_start: field('u64', 24),
  flags: field('u32', 32),
  status: field('u8', 36),
});

/** `struct virtio_iommu_req_unmap` (32 bytes: readable 0..27, tail at 28). [virt_start; virt_end] is inclusive. */
export const VirtioIommuReqUnmap = new StructCodec('virtio_iommu_req_unmap', 32, {
  type: field('u8', 0),
  domain: field('u32', 4),
  virt_start: field('u64', 8),
  virt_end: field('u64', 16),
  reserved: field('u32', 24),
  status: field('u8', 28),
});

/**
 * `struct virtio_iommu_req_probe`, device-readable part (72 bytes: head, `endpoint`, `reserved[64]`).
 * The device-writable `properties[probe_size]` start at 72 and the tail at 72 + probe_size.
 */
export const VirtioIommuReqProbe = new StructCodec('virtio_iommu_req_probe', 72, {
  type: field('u8', 0),
  endpoint: field('u32', 4),
});

/**
 * `struct virtio_iommu_probe_property` (4 bytes): `type` (bits 0..11; see VIRTIO_IOMMU_PROBE_T_MASK) and
 * `length`, the size of the value after this header. The next property starts `length + 4` bytes later.
 */
export const VirtioIommuProbeProperty = new StructCodec('virtio_iommu_probe_property', 4, {
  type: field('u16', 0),
  length: field('u16', 2),
});

/** `struct virtio_iommu_probe_resv_mem` (24 bytes, `length` = 20; header flattened; `reserved[3]` at 5). [start; end] is inclusive. */
export const VirtioIommuProbeResvMem = new StructCodec('virtio_iommu_probe_resv_mem', 24, {
  type: field('u16', 0),
  length: field('u16', 2),
  subtype: field('u8', 4),
  start: field('u64', 8),
  end: field('u64', 16),
});

/**
 * The PAGE_SIZE_MASK property of the unmerged QEMU/Linux proposal (reference §2.4): header then
 * `le64 pgsize_bitmap`, no reserved field, so 12 bytes with `length` = 8.
 */
export const VirtioIommuProbePageSizeMask = new StructCodec('virtio_iommu_probe_page_size_mask', 12, {
  type: field('u16', 0),
  length: field('u16', 2),
  pgsize_bitmap: field('u64', 4),
});

/** `struct virtio_iommu_fault` (24 bytes), one eventq record. `reserved[3]` at 1; `address` valid only with FAULT_F_ADDRESS. */
export const VirtioIommuFault = new StructCodec('virtio_iommu_fault', 24, {
  reason: field('u8', 0),
  flags: field('u32', 4),
  endpoint: field('u32', 8),
  reserved1: field('u32', 12),
  address: field('u64', 16),
});

/** `struct virtq_desc` (16 bytes), one descriptor of a descriptor table or an indirect table. */
export const VirtqDesc = new StructCodec('virtq_desc', 16, {
  addr: field('u64', 0),
  len: field('u32', 8),
  flags: field('u16', 12),
  next: field('u16', 14),
});

/**
 * `struct virtq_avail`, fixed part (4 bytes). `le16 ring[size]` follows at 4 and, with EVENT_IDX,
 * `le16 used_event` at 4 + 2·size; the ring occupies 6 + 2·size bytes in all.
 */
export const VirtqAvail = new StructCodec('virtq_avail', 4, {
  flags: field('u16', 0),
  idx: field('u16', 2),
});

/**
 * `struct virtq_used`, fixed part (4 bytes). `virtq_used_elem ring[size]` follows at 4 and, with
 * EVENT_IDX, `le16 avail_event` at 4 + 8·size; the ring occupies 6 + 8·size bytes in all.
 */
export const VirtqUsed = new StructCodec('virtq_used', 4, {
  flags: field('u16', 0),
  idx: field('u16', 2),
});

/** `struct virtq_used_elem` (8 bytes): the head of a used chain and the bytes written into it. */
export const VirtqUsedElem = new StructCodec('virtq_used_elem', 8, {
  id: field('u32', 0),
  len: field('u32', 4),
});
