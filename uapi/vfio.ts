/**
 * Constants of the VFIO userspace API: API version, extension ids, ioctl request numbers, flag bits,
 * capability ids and the vfio-pci region/IRQ indexes, with the exact `linux/vfio.h` spelling so that
 * every name can be grepped in the kernel. Transcribed by hand; values only, no behaviour.
 *
 * - Every VFIO ioctl is `_IO(VFIO_TYPE, VFIO_BASE + n)` = `0x3B64 + n` on x86-64/arm64 (size and
 *   direction are 0; the struct size travels in `argsz`). The values are written as literals here and
 *   pinned again, as literals, by test/golden/ioctl-numbers.test.ts.
 * - **Request numbers are only unique per fd kind.** 0x3B70 is VFIO_IOMMU_GET_INFO on a container and
 *   VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a device; type1, sPAPR and the vendor PAMU backend
 *   (vfio-pamu.ts) reuse the container numbers 0x3B70–0x3B79 for different things. Dispatch and tracing
 *   must key on (fd kind, number); the `*_IOCTL_NAMES` maps at the end of this file do that for names.
 * - sPAPR, EEH, gfx, hot-reset, ioeventfd, iommufd-cdev and migration numbers are defined because they
 *   share values with ioctls the simulator implements; the simulator does not implement them.
 * - Values marked [unverified] are kept as the reference gives them; the reference flags them as
 *   recalled rather than read from source.
 *
 * Source: include/uapi/linux/vfio.h (torvalds/linux @02256acf, the header with
 * `__VFIO_RESERVED_TYPE1_NESTING_IOMMU` and the `pad` fields) as summarised in reference/vfio-uapi.md
 * §1 (numbering), §2 (extensions), §3 (flags, cap ids), §10 (vfio-pci indexes) and §13 (limits).
 */

// ---------------------------------------------------------------------------------------------------
// §1 API version and ioctl base
// ---------------------------------------------------------------------------------------------------

/** The value VFIO_GET_API_VERSION returns. */
export const VFIO_API_VERSION = 0;
/** The ioctl type byte of every VFIO request: the character `';'`. */
export const VFIO_TYPE = 0x3b;
/** The first ioctl number of VFIO; request n is `_IO(VFIO_TYPE, VFIO_BASE + n)`. */
export const VFIO_BASE = 100;

// ---------------------------------------------------------------------------------------------------
// §2 Extension ids (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU argument, passed by value)
// ---------------------------------------------------------------------------------------------------

/** Type1 IOMMU, v1 unmap semantics (may unmap more than asked, never splits). */
export const VFIO_TYPE1_IOMMU = 1;
/** POWER sPAPR TCE IOMMU. */
export const VFIO_SPAPR_TCE_IOMMU = 2;
/** Type1 IOMMU, v2 semantics (an unmap must not cut through a mapping). */
export const VFIO_TYPE1v2_IOMMU = 3;
/** The IOMMU enforces DMA cache coherency (no-snoop blocking); can change as groups come and go. */
export const VFIO_DMA_CC_IOMMU = 4;
/** POWER EEH support. */
export const VFIO_EEH = 5;
/** The obsolete two-stage type1 id; current type1 answers 0 to CHECK_EXTENSION, so SET_IOMMU(6) fails. */
export const __VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6;
/**
 * Pre-rename spelling of {@link __VFIO_RESERVED_TYPE1_NESTING_IOMMU}, as older headers define it.
 * @deprecated renamed upstream (~v6.2 [unverified exact version]); kept so old transcriptions compile.
 */
export const VFIO_TYPE1_NESTING_IOMMU = 6;
/** POWER sPAPR TCE IOMMU v2. */
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
/** No-IOMMU mode: only CHECK_EXTENSION works on such a container; needs CAP_SYS_RAWIO. */
export const VFIO_NOIOMMU_IOMMU = 8;
/** VFIO_DMA_UNMAP_FLAG_ALL is supported. */
export const VFIO_UNMAP_ALL = 9;
/** VFIO_DMA_MAP_FLAG_VADDR / VFIO_DMA_UNMAP_FLAG_VADDR are supported (not while mdev groups are present). */
export const VFIO_UPDATE_VADDR = 10;

// ---------------------------------------------------------------------------------------------------
// §1 ioctls on the container fd (/dev/vfio/vfio), handled by the VFIO core
// ---------------------------------------------------------------------------------------------------

/** `_IO(VFIO_TYPE, VFIO_BASE + 0)`: returns VFIO_API_VERSION. Container fd. */
export const VFIO_GET_API_VERSION = 0x3b64;
/** `_IO(VFIO_TYPE, VFIO_BASE + 1)`: arg = extension id by value; returns 0 or >0. Container fd. */
export const VFIO_CHECK_EXTENSION = 0x3b65;
/** `_IO(VFIO_TYPE, VFIO_BASE + 2)`: arg = IOMMU type by value. Container fd. */
export const VFIO_SET_IOMMU = 0x3b66;

// ---------------------------------------------------------------------------------------------------
// §1 ioctls on a group fd (/dev/vfio/$GROUP)
// ---------------------------------------------------------------------------------------------------

/** `_IO(VFIO_TYPE, VFIO_BASE + 3)`: arg = struct vfio_group_status. Group fd. */
export const VFIO_GROUP_GET_STATUS = 0x3b67;
/** `_IO(VFIO_TYPE, VFIO_BASE + 4)`: arg = pointer to the container's `__s32` fd. Group fd. */
export const VFIO_GROUP_SET_CONTAINER = 0x3b68;
/** `_IO(VFIO_TYPE, VFIO_BASE + 5)`: no argument. Group fd. */
export const VFIO_GROUP_UNSET_CONTAINER = 0x3b69;
/** `_IO(VFIO_TYPE, VFIO_BASE + 6)`: arg = NUL-terminated device name; returns a new device fd. Group fd. */
export const VFIO_GROUP_GET_DEVICE_FD = 0x3b6a;

// ---------------------------------------------------------------------------------------------------
// §1 ioctls on a device fd
// ---------------------------------------------------------------------------------------------------

/** `_IO(VFIO_TYPE, VFIO_BASE + 7)`: arg = struct vfio_device_info. Device fd. */
export const VFIO_DEVICE_GET_INFO = 0x3b6b;
/** `_IO(VFIO_TYPE, VFIO_BASE + 8)`: arg = struct vfio_region_info. Device fd. */
export const VFIO_DEVICE_GET_REGION_INFO = 0x3b6c;
/** `_IO(VFIO_TYPE, VFIO_BASE + 9)`: arg = struct vfio_irq_info. Device fd. */
export const VFIO_DEVICE_GET_IRQ_INFO = 0x3b6d;
/** `_IO(VFIO_TYPE, VFIO_BASE + 10)`: arg = struct vfio_irq_set + data[]. Device fd. */
export const VFIO_DEVICE_SET_IRQS = 0x3b6e;
/** `_IO(VFIO_TYPE, VFIO_BASE + 11)`: no argument. Device fd. */
export const VFIO_DEVICE_RESET = 0x3b6f;
/** `_IO(VFIO_TYPE, VFIO_BASE + 12)`: same number as VFIO_IOMMU_GET_INFO. Device fd (vfio-pci). */
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = 0x3b70;
/** `_IO(VFIO_TYPE, VFIO_BASE + 13)`: same number as VFIO_IOMMU_MAP_DMA. Device fd (vfio-pci). */
export const VFIO_DEVICE_PCI_HOT_RESET = 0x3b71;
/** `_IO(VFIO_TYPE, VFIO_BASE + 14)`: same number as VFIO_IOMMU_UNMAP_DMA. Device fd (mdev gfx). */
export const VFIO_DEVICE_QUERY_GFX_PLANE = 0x3b72;
/** `_IO(VFIO_TYPE, VFIO_BASE + 15)`: same number as VFIO_IOMMU_ENABLE. Device fd (mdev gfx). */
export const VFIO_DEVICE_GET_GFX_DMABUF = 0x3b73;
/** `_IO(VFIO_TYPE, VFIO_BASE + 16)`: same number as VFIO_IOMMU_DISABLE. Device fd. */
export const VFIO_DEVICE_IOEVENTFD = 0x3b74;
/** `_IO(VFIO_TYPE, VFIO_BASE + 17)`: handled by the VFIO core, not the bus driver. Device fd. */
export const VFIO_DEVICE_FEATURE = 0x3b75;
/** `_IO(VFIO_TYPE, VFIO_BASE + 18)`: device cdev only (iommufd path). */
export const VFIO_DEVICE_BIND_IOMMUFD = 0x3b76;
/** `_IO(VFIO_TYPE, VFIO_BASE + 19)`: device cdev only (iommufd path). */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = 0x3b77;
/** `_IO(VFIO_TYPE, VFIO_BASE + 20)`: device cdev only (iommufd path). */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = 0x3b78;
/** `_IO(VFIO_TYPE, VFIO_BASE + 21)`: on the migration data fd, not on the device fd. */
export const VFIO_MIG_GET_PRECOPY_INFO = 0x3b79;

// ---------------------------------------------------------------------------------------------------
// §1 ioctls on a container fd after VFIO_SET_IOMMU: type1
// ---------------------------------------------------------------------------------------------------

/** `_IO(VFIO_TYPE, VFIO_BASE + 12)`: arg = struct vfio_iommu_type1_info. Container fd (type1). */
export const VFIO_IOMMU_GET_INFO = 0x3b70;
/** `_IO(VFIO_TYPE, VFIO_BASE + 13)`: arg = struct vfio_iommu_type1_dma_map. Container fd. */
export const VFIO_IOMMU_MAP_DMA = 0x3b71;
/** `_IO(VFIO_TYPE, VFIO_BASE + 14)`: arg = struct vfio_iommu_type1_dma_unmap. Container fd. */
export const VFIO_IOMMU_UNMAP_DMA = 0x3b72;
/** `_IO(VFIO_TYPE, VFIO_BASE + 17)`: arg = struct vfio_iommu_type1_dirty_bitmap. Container fd (type1 v2). */
export const VFIO_IOMMU_DIRTY_PAGES = 0x3b75;

// ---------------------------------------------------------------------------------------------------
// §1 ioctls on a container fd after VFIO_SET_IOMMU: sPAPR (numbers only; type1 answers ENOTTY)
// ---------------------------------------------------------------------------------------------------

/** `_IO(VFIO_TYPE, VFIO_BASE + 12)`: sPAPR spelling of 0x3B70 (VFIO_IOMMU_GET_INFO on type1). */
export const VFIO_IOMMU_SPAPR_TCE_GET_INFO = 0x3b70;
/** `_IO(VFIO_TYPE, VFIO_BASE + 15)`: sPAPR only; type1 → ENOTTY. */
export const VFIO_IOMMU_ENABLE = 0x3b73;
/** `_IO(VFIO_TYPE, VFIO_BASE + 16)`: sPAPR only; type1 → ENOTTY. */
export const VFIO_IOMMU_DISABLE = 0x3b74;
/** `_IO(VFIO_TYPE, VFIO_BASE + 17)`: sPAPR spelling of 0x3B75 (VFIO_IOMMU_DIRTY_PAGES on type1). */
export const VFIO_IOMMU_SPAPR_REGISTER_MEMORY = 0x3b75;
/** `_IO(VFIO_TYPE, VFIO_BASE + 18)`: sPAPR only. */
export const VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = 0x3b76;
/** `_IO(VFIO_TYPE, VFIO_BASE + 19)`: sPAPR only. */
export const VFIO_IOMMU_SPAPR_TCE_CREATE = 0x3b77;
/** `_IO(VFIO_TYPE, VFIO_BASE + 20)`: sPAPR only. */
export const VFIO_IOMMU_SPAPR_TCE_REMOVE = 0x3b78;
/** `_IO(VFIO_TYPE, VFIO_BASE + 21)`: sPAPR EEH only. */
export const VFIO_EEH_PE_OP = 0x3b79;

// ---------------------------------------------------------------------------------------------------
// §3 Flags
// ---------------------------------------------------------------------------------------------------

/** vfio_group_status.flags: no one else claims DMA ownership of the IOMMU group. */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
/** vfio_group_status.flags: the group is attached to a container (or iommufd). */
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

/** vfio_iommu_type1_info.flags: iova_pgsizes is valid. */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** vfio_iommu_type1_info.flags: the info supports a capability chain (cap_offset). */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

/** vfio_iommu_type1_dma_map.flags: the device may read the memory. */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** vfio_iommu_type1_dma_map.flags: the device may write the memory. */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** vfio_iommu_type1_dma_map.flags: update the vaddr of an invalidated mapping (VFIO_UPDATE_VADDR). */
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

/** vfio_iommu_type1_dma_unmap.flags: data[] holds a struct vfio_bitmap to receive the dirty bits. */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
/** vfio_iommu_type1_dma_unmap.flags: unmap everything; iova and size must be 0 (VFIO_UNMAP_ALL). */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
/** vfio_iommu_type1_dma_unmap.flags: only invalidate the vaddr of each mapping (VFIO_UPDATE_VADDR). */
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** vfio_iommu_type1_dirty_bitmap.flags: start dirty page tracking. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
/** vfio_iommu_type1_dirty_bitmap.flags: stop dirty page tracking. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
/** vfio_iommu_type1_dirty_bitmap.flags: data[] holds a struct vfio_iommu_type1_dirty_bitmap_get. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

/** vfio_device_info.flags: the device supports VFIO_DEVICE_RESET. */
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
/** vfio_device_info.flags: vfio-pci device. */
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
/** vfio_device_info.flags: vfio-platform device. */
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
/** vfio_device_info.flags: vfio-amba device. */
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
/** vfio_device_info.flags: vfio-ccw device. */
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
/** vfio_device_info.flags: vfio-ap device. */
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
/** vfio_device_info.flags: vfio-fsl-mc device. */
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
/** vfio_device_info.flags: the info supports a capability chain (cap_offset). */
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
/** vfio_device_info.flags: vfio-cdx device. */
export const VFIO_DEVICE_FLAGS_CDX = 1 << 8;

/** vfio_region_info.flags: the region supports read(). */
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
/** vfio_region_info.flags: the region supports write(). */
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
/** vfio_region_info.flags: the region supports mmap(). */
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
/** vfio_region_info.flags: the info supports a capability chain (cap_offset). */
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

/** vfio_irq_info.flags: the index supports eventfd signalling. */
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
/** vfio_irq_info.flags: the index supports the MASK and UNMASK actions. */
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
/** vfio_irq_info.flags: the line is masked after each signal (level-triggered, INTx). */
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
/** vfio_irq_info.flags: vectors are set up as a set; adding one needs the index disabled first. */
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

/** vfio_irq_set.flags: no data; act on [start, start + count). */
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
/** vfio_irq_set.flags: data[] is `count` u8 booleans. */
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
/** vfio_irq_set.flags: data[] is `count` s32 eventfds (-1 = de-assign / skip). */
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
/** vfio_irq_set.flags: mask the interrupts. */
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
/** vfio_irq_set.flags: unmask the interrupts. */
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
/** vfio_irq_set.flags: trigger (or bind the trigger eventfd of) the interrupts. */
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
/**
 * `DATA_NONE | DATA_BOOL | DATA_EVENTFD`: exactly one of these must be set. Defined in linux/vfio.h
 * (@02256acf); the reference describes the rule but does not list the macro.
 */
export const VFIO_IRQ_SET_DATA_TYPE_MASK = 0x7;
/**
 * `ACTION_MASK | ACTION_UNMASK | ACTION_TRIGGER`. Defined in linux/vfio.h (@02256acf); the reference does
 * not list the macro.
 */
export const VFIO_IRQ_SET_ACTION_TYPE_MASK = 0x38;

// ---------------------------------------------------------------------------------------------------
// §3 Capability ids (the id space is per INFO ioctl)
// ---------------------------------------------------------------------------------------------------

/** VFIO_IOMMU_GET_INFO cap: struct vfio_iommu_type1_info_cap_iova_range (version 1). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
/** VFIO_IOMMU_GET_INFO cap: struct vfio_iommu_type1_info_cap_migration (version 1). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
/** VFIO_IOMMU_GET_INFO cap: struct vfio_iommu_type1_info_dma_avail (version 1). No `_CAP_` in the C name. */
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** VFIO_DEVICE_GET_REGION_INFO cap: struct vfio_region_info_cap_type (device-specific regions ≥ 9). */
export const VFIO_REGION_INFO_CAP_TYPE = 2;
/** VFIO_DEVICE_GET_REGION_INFO cap: the MSI-X BAR may be mmapped (vfio-pci). */
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;

/**
 * VFIO_DEVICE_GET_INFO cap: PCIe AtomicOp completer support. The reference gives only the id (5, §10);
 * the name is linux/vfio.h's (@02256acf).
 */
export const VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;

// ---------------------------------------------------------------------------------------------------
// §10 vfio-pci fixed region and IRQ indexes
// ---------------------------------------------------------------------------------------------------

/** vfio-pci region index of BAR0. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
/** vfio-pci region index of BAR1. */
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
/** vfio-pci region index of BAR2. */
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
/** vfio-pci region index of BAR3. */
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
/** vfio-pci region index of BAR4. */
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
/** vfio-pci region index of BAR5. */
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
/** vfio-pci region index of the expansion ROM (read-only). */
export const VFIO_PCI_ROM_REGION_INDEX = 6;
/** vfio-pci region index of config space. */
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
/** vfio-pci region index of the legacy VGA ranges (EINVAL on a non-VGA device). */
export const VFIO_PCI_VGA_REGION_INDEX = 8;
/** Number of fixed vfio-pci regions; device-specific regions start here (fixed user ABI). */
export const VFIO_PCI_NUM_REGIONS = 9;

/** vfio-pci IRQ index of INTx. */
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
/** vfio-pci IRQ index of MSI. */
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
/** vfio-pci IRQ index of MSI-X. */
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
/** vfio-pci IRQ index of the AER error notification (PCIe only). */
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
/** vfio-pci IRQ index of the device-release request notification. */
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
/** Number of vfio-pci IRQ indexes. */
export const VFIO_PCI_NUM_IRQS = 5;

/**
 * A vfio-pci region lives at `index << VFIO_PCI_OFFSET_SHIFT` in the device fd (CONFIG at 0x70000000000).
 * Kernel-internal (include/linux/vfio_pci_core.h), but userspace sees it in vfio_region_info.offset.
 * [unverified: the reference gives the value from memory]
 */
export const VFIO_PCI_OFFSET_SHIFT = 40;

// ---------------------------------------------------------------------------------------------------
// §3, §13 Limits and other numbers
// ---------------------------------------------------------------------------------------------------

/**
 * Largest dirty bitmap in bytes = ALIGN(INT_MAX bits, 64) / 8 = 256 MiB; reported as the MIGRATION cap's
 * max_dirty_bitmap_size. Kernel-internal name (vfio_iommu_type1.c).
 */
export const DIRTY_BITMAP_SIZE_MAX = 0x10000000;
/** Largest dirty bitmap in pages = INT_MAX. Kernel-internal name (vfio_iommu_type1.c). */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fffffff;
/** Most pages one mdev `vfio_pin_pages` call may pin = PAGE_SIZE (4096) / sizeof(long); more → E2BIG. */
export const VFIO_PIN_PAGES_MAX_ENTRIES = 512;
/** Misc-device minor of /dev/vfio/vfio. [unverified: the reference gives the value from memory] */
export const VFIO_MINOR = 196;

// ---------------------------------------------------------------------------------------------------
// Name tables for dispatch and tracing: request number → name, one table per fd kind
// ---------------------------------------------------------------------------------------------------

/**
 * ioctl names on a container fd. Where type1 and sPAPR share a number the type1 name is used
 * (0x3B70 VFIO_IOMMU_GET_INFO, 0x3B75 VFIO_IOMMU_DIRTY_PAGES); numbers only sPAPR defines keep their
 * sPAPR name, so a trace of an ENOTTY reads "VFIO_IOMMU_ENABLE". A windowed (PAMU) container should
 * look its numbers up in VFIO_PAMU_IOCTL_NAMES (vfio-pamu.ts) first.
 */
export const VFIO_CONTAINER_IOCTL_NAMES: ReadonlyMap<number, string> = new Map([
  [VFIO_GET_API_VERSION, 'VFIO_GET_API_VERSION'],
  [VFIO_CHECK_EXTENSION, 'VFIO_CHECK_EXTENSION'],
  [VFIO_SET_IOMMU, 'VFIO_SET_IOMMU'],
  [VFIO_IOMMU_GET_INFO, 'VFIO_IOMMU_GET_INFO'],
  [VFIO_IOMMU_MAP_DMA, 'VFIO_IOMMU_MAP_DMA'],
  [VFIO_IOMMU_UNMAP_DMA, 'VFIO_IOMMU_UNMAP_DMA'],
  [VFIO_IOMMU_ENABLE, 'VFIO_IOMMU_ENABLE'],
  [VFIO_IOMMU_DISABLE, 'VFIO_IOMMU_DISABLE'],
  [VFIO_IOMMU_DIRTY_PAGES, 'VFIO_IOMMU_DIRTY_PAGES'],
  [VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY'],
  [VFIO_IOMMU_SPAPR_TCE_CREATE, 'VFIO_IOMMU_SPAPR_TCE_CREATE'],
  [VFIO_IOMMU_SPAPR_TCE_REMOVE, 'VFIO_IOMMU_SPAPR_TCE_REMOVE'],
  [VFIO_EEH_PE_OP, 'VFIO_EEH_PE_OP'],
]);

/** ioctl names on a group fd (/dev/vfio/$GROUP). Any other number → ENOTTY. */
export const VFIO_GROUP_IOCTL_NAMES: ReadonlyMap<number, string> = new Map([
  [VFIO_GROUP_GET_STATUS, 'VFIO_GROUP_GET_STATUS'],
  [VFIO_GROUP_SET_CONTAINER, 'VFIO_GROUP_SET_CONTAINER'],
  [VFIO_GROUP_UNSET_CONTAINER, 'VFIO_GROUP_UNSET_CONTAINER'],
  [VFIO_GROUP_GET_DEVICE_FD, 'VFIO_GROUP_GET_DEVICE_FD'],
]);

/**
 * ioctl names on a device fd. 0x3B79 (VFIO_MIG_GET_PRECOPY_INFO) is absent: it belongs to the migration
 * data fd. The three IOMMUFD numbers are meaningful only on a device cdev.
 */
export const VFIO_DEVICE_IOCTL_NAMES: ReadonlyMap<number, string> = new Map([
  [VFIO_DEVICE_GET_INFO, 'VFIO_DEVICE_GET_INFO'],
  [VFIO_DEVICE_GET_REGION_INFO, 'VFIO_DEVICE_GET_REGION_INFO'],
  [VFIO_DEVICE_GET_IRQ_INFO, 'VFIO_DEVICE_GET_IRQ_INFO'],
  [VFIO_DEVICE_SET_IRQS, 'VFIO_DEVICE_SET_IRQS'],
  [VFIO_DEVICE_RESET, 'VFIO_DEVICE_RESET'],
  [VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'],
  [VFIO_DEVICE_PCI_HOT_RESET, 'VFIO_DEVICE_PCI_HOT_RESET'],
  [VFIO_DEVICE_QUERY_GFX_PLANE, 'VFIO_DEVICE_QUERY_GFX_PLANE'],
  [VFIO_DEVICE_GET_GFX_DMABUF, 'VFIO_DEVICE_GET_GFX_DMABUF'],
  [VFIO_DEVICE_IOEVENTFD, 'VFIO_DEVICE_IOEVENTFD'],
  [VFIO_DEVICE_FEATURE, 'VFIO_DEVICE_FEATURE'],
  [VFIO_DEVICE_BIND_IOMMUFD, 'VFIO_DEVICE_BIND_IOMMUFD'],
  [VFIO_DEVICE_ATTACH_IOMMUFD_PT, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
  [VFIO_DEVICE_DETACH_IOMMUFD_PT, 'VFIO_DEVICE_DETACH_IOMMUFD_PT'],
]);
