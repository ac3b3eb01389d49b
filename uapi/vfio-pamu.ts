/**
 * The vendor ("type2") windowed-IOMMU additions to the VFIO container API: the Freescale/NXP SDK's PAMU
 * ioctls and structs, kept byte- and number-compatible so that a transcription of the SDK's QEMU flow runs
 * unchanged, plus the simulator's own extension id for the backend. Never merged upstream.
 *
 * - All five ioctls are `_IO(VFIO_TYPE, VFIO_BASE + 15..19)` on a **container** fd and collide with
 *   upstream numbers: +15/+16 = VFIO_IOMMU_ENABLE/DISABLE (sPAPR), +17 = VFIO_IOMMU_DIRTY_PAGES (type1)
 *   and VFIO_IOMMU_SPAPR_REGISTER_MEMORY, +18 = SPAPR_UNREGISTER_MEMORY, +19 = SPAPR_TCE_CREATE. They
 *   only mean PAMU on a container whose IOMMU is VFIO_TYPE2_IOMMU.
 * - The backend also reuses VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA with the type1 structs.
 * - The extension id is ours (DESIGN.md §4): the SDK used 2, 7 (both clash with upstream) and 1000.
 * - `struct vfio_pamu_attr` holds a union at 16; the codec flattens it into overlapping fields (below).
 * - VFIO_PAMU_MSI_BANK_MAP/UNMAP minsz values come from the SDK driver (`offsetofend(..., iova)`), which
 *   the reference does not state; the attr minsz (32) is stated.
 *
 * Source: the SDK uapi header (`include/uapi/linux/vfio.h` of the SDK kernels, "APIs for VFIO_PAMU type
 * only") and `drivers/vfio/vfio_iommu_fsl_pamu.c`, via reference/pamu-windowed.md §3.1–3.2 and §6.
 * Offsets assume natural 8-byte u64 alignment (ppc32/ppc64/x86-64).
 */
import { StructCodec, field } from './codec';

// ---------------------------------------------------------------------------------------------------
// Extension ids
// ---------------------------------------------------------------------------------------------------

/**
 * The simulator's extension id for the windowed (PAMU-like) backend, for VFIO_CHECK_EXTENSION and
 * VFIO_SET_IOMMU. Deliberately outside upstream's 1–10 (with headroom) and the SDK's 1000/1001
 * (DESIGN.md §4; reference/pamu-windowed.md §6).
 */
export const VFIO_TYPE2_IOMMU = 0x100;

/**
 * The SDK's `VFIO_FSL_PAMU_IOMMU` as its QEMU headers defined it from 2014-04 to 2015-03 (with
 * `VFIO_IOMMU_DUMMY` 1001). Earlier SDKs used 2 and later ones 7, both clashing with upstream. For
 * reference only: the simulator does not accept it as an IOMMU type.
 */
export const VFIO_FSL_PAMU_IOMMU_SDK = 1000;

// ---------------------------------------------------------------------------------------------------
// ioctls (container fd, after VFIO_SET_IOMMU(VFIO_TYPE2_IOMMU))
// ---------------------------------------------------------------------------------------------------

/** `_IO(VFIO_TYPE, VFIO_BASE + 15)`: arg = struct vfio_pamu_attr (in: argsz, attribute; out: attr_info). */
export const VFIO_IOMMU_PAMU_GET_ATTR = 0x3b73;
/** `_IO(VFIO_TYPE, VFIO_BASE + 16)`: arg = struct vfio_pamu_attr. */
export const VFIO_IOMMU_PAMU_SET_ATTR = 0x3b74;
/** `_IO(VFIO_TYPE, VFIO_BASE + 17)`: no argument; returns the MSI bank count as the ioctl's value. */
export const VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT = 0x3b75;
/** `_IO(VFIO_TYPE, VFIO_BASE + 18)`: arg = struct vfio_pamu_msi_bank_map. */
export const VFIO_IOMMU_PAMU_MAP_MSI_BANK = 0x3b76;
/** `_IO(VFIO_TYPE, VFIO_BASE + 19)`: arg = struct vfio_pamu_msi_bank_unmap. */
export const VFIO_IOMMU_PAMU_UNMAP_MSI_BANK = 0x3b77;

// ---------------------------------------------------------------------------------------------------
// vfio_pamu_attr.attribute values (SDK names)
// ---------------------------------------------------------------------------------------------------

/** Attribute 0: the aperture `[aperture_start, aperture_end]` (end inclusive). Set it before WINDOWS. */
export const VFIO_ATTR_GEOMETRY = 0;
/** Attribute 1: the number of windows; GET before any SET returns the hardware maximum. */
export const VFIO_ATTR_WINDOWS = 1;
/** Attribute 2: the stash target `{cpu, cache}`; needs windows set first. */
export const VFIO_ATTR_PAMU_STASH = 2;

// ---------------------------------------------------------------------------------------------------
// Structs
// ---------------------------------------------------------------------------------------------------

/**
 * `struct vfio_pamu_attr` (32 bytes): argsz @0, flags @4 (none defined), attribute @8, implicit padding
 * @12, then `union attr_info` @16 (16 bytes). The union is flattened into overlapping fields:
 * - VFIO_ATTR_GEOMETRY: `attr_info.attr.aperture_start` → `aperture_start` u64 @16,
 *   `attr_info.attr.aperture_end` → `aperture_end` u64 @24;
 * - VFIO_ATTR_WINDOWS: `attr_info.windows` → `windows` u32 @16;
 * - VFIO_ATTR_PAMU_STASH: `attr_info.stash.cpu` → `stash_cpu` u32 @16, `attr_info.stash.cache` →
 *   `stash_cache` u32 @20.
 * Encode with the member for the chosen attribute only; `decode` returns every view of the union.
 */
export const VfioPamuAttr = new StructCodec('vfio_pamu_attr', 32, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  attribute: field('u32', 8),
  aperture_start: field('u64', 16),
  aperture_end: field('u64', 24),
  windows: field('u32', 16),
  stash_cpu: field('u32', 16),
  stash_cache: field('u32', 20),
});
/** minsz of VFIO_IOMMU_PAMU_GET_ATTR / _SET_ATTR = offsetofend(vfio_pamu_attr, attr_info). */
export const VFIO_PAMU_ATTR_MINSZ = 32;

/**
 * `struct vfio_pamu_msi_bank_map` (24 bytes): argsz @0, flags @4, msi_bank_index @8, implicit padding
 * @12, iova @16. The header says "no flags", but the SDK driver reads VFIO_DMA_MAP_FLAG_READ/WRITE from
 * `flags` as the window's permissions and fails with EINVAL when neither is set (SDK QEMU passes
 * READ|WRITE).
 */
export const VfioPamuMsiBankMap = new StructCodec('vfio_pamu_msi_bank_map', 24, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  msi_bank_index: field('u32', 8),
  iova: field('u64', 16),
});
/** minsz of VFIO_IOMMU_PAMU_MAP_MSI_BANK = offsetofend(vfio_pamu_msi_bank_map, iova) (SDK driver). */
export const VFIO_PAMU_MSI_BANK_MAP_MINSZ = 24;

/** `struct vfio_pamu_msi_bank_unmap` (16 bytes): argsz @0, flags @4 (none), iova @8 (must match a mapped bank). */
export const VfioPamuMsiBankUnmap = new StructCodec('vfio_pamu_msi_bank_unmap', 16, {
  argsz: field('u32', 0),
  flags: field('u32', 4),
  iova: field('u64', 8),
});
/** minsz of VFIO_IOMMU_PAMU_UNMAP_MSI_BANK = offsetofend(vfio_pamu_msi_bank_unmap, iova) (SDK driver). */
export const VFIO_PAMU_MSI_BANK_UNMAP_MINSZ = 16;

// ---------------------------------------------------------------------------------------------------
// Name table
// ---------------------------------------------------------------------------------------------------

/**
 * Names of the PAMU-only container ioctls. On a VFIO_TYPE2_IOMMU container, look a number up here first
 * and fall back to VFIO_CONTAINER_IOCTL_NAMES (for GET_API_VERSION, CHECK_EXTENSION, SET_IOMMU,
 * GET_INFO, MAP_DMA, UNMAP_DMA).
 */
export const VFIO_PAMU_IOCTL_NAMES: ReadonlyMap<number, string> = new Map([
  [VFIO_IOMMU_PAMU_GET_ATTR, 'VFIO_IOMMU_PAMU_GET_ATTR'],
  [VFIO_IOMMU_PAMU_SET_ATTR, 'VFIO_IOMMU_PAMU_SET_ATTR'],
  [VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT, 'VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT'],
  [VFIO_IOMMU_PAMU_MAP_MSI_BANK, 'VFIO_IOMMU_PAMU_MAP_MSI_BANK'],
  [VFIO_IOMMU_PAMU_UNMAP_MSI_BANK, 'VFIO_IOMMU_PAMU_UNMAP_MSI_BANK'],
]);
