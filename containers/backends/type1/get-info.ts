/**
 * VFIO_IOMMU_GET_INFO on type1 (vfio_iommu_type1_get_info; reference/vfio-uapi.md §4.2):
 *
 * - 16 bytes are read (argsz, flags, iova_pgsizes); argsz < 16 → EINVAL.
 * - flags = PGSIZES | CAPS, iova_pgsizes = the container's page-size bitmap.
 * - Capabilities in this order: MIGRATION (32 bytes), DMA_AVAIL (12, padded to 16), IOVA_RANGE (16 + 16 per
 *   range; left out when there is no range).
 * - If argsz leaves room for the chain it follows the 24-byte struct and cap_offset = 24; otherwise argsz
 *   is rewritten to the size needed, cap_offset = 0, and the call still succeeds.
 * - min(argsz, 24) bytes of the struct are written back; nothing past argsz is ever touched.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import {
  DIRTY_BITMAP_SIZE_MAX,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
} from '../../../uapi/vfio';
import { VFIO_IOMMU_TYPE1_INFO_MINSZ } from '../../../uapi/vfio-structs';
import { CapabilityChain, placeCaps } from '../../capability-chain';
import { checkOut, copyIn } from '../../user-arg';
import { readU32, writeU32, writeU64 } from '../../../uapi/codec';
import { rangeBytes } from '../common/iova-ranges';
import type { Type1Iommu } from './type1-iommu';

/** sizeof(struct vfio_iommu_type1_info). */
const INFO_SIZE = 24;

/** @throws SysError EFAULT, EINVAL */
export function type1IoctlGetInfo(iommu: Type1Iommu, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_INFO_MINSZ);
  const argsz = readU32(buf, 0);
  if (argsz < VFIO_IOMMU_TYPE1_INFO_MINSZ) throw sysError('EINVAL', 'argsz is below 16');
  const caps = buildCaps(iommu);
  const placed = placeCaps(buf, argsz, INFO_SIZE, caps);
  const info = new Uint8Array(INFO_SIZE);
  writeU32(info, 0, placed.argsz);
  writeU32(info, 4, VFIO_IOMMU_INFO_PGSIZES | (placed.hasCaps ? VFIO_IOMMU_INFO_CAPS : 0));
  writeU64(info, 8, iommu.pgsizeBitmap);
  writeU32(info, 16, placed.capOffset);
  const n = Math.min(argsz, INFO_SIZE);
  checkOut(buf, 0, n);
  buf.set(info.subarray(0, n));
  return 0;
}

function buildCaps(iommu: Type1Iommu): CapabilityChain {
  const caps = new CapabilityChain();
  // vfio_iommu_migration_build_caps: flags 0, the smallest page size, DIRTY_BITMAP_SIZE_MAX.
  const migration = new Uint8Array(24);
  writeU64(migration, 8, BigInt(iommu.minPages * 4096));
  writeU64(migration, 16, BigInt(DIRTY_BITMAP_SIZE_MAX));
  caps.add(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, migration);
  const avail = new Uint8Array(4);
  writeU32(avail, 0, iommu.dmaAvail);
  caps.add(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, avail);
  if (iommu.iovaRanges.length > 0) {
    const ranges = new Uint8Array(8 + 16 * iommu.iovaRanges.length);
    writeU32(ranges, 0, iommu.iovaRanges.length);
    iommu.iovaRanges.forEach((range, i) => {
      const { start, end } = rangeBytes(range);
      writeU64(ranges, 8 + 16 * i, start);
      writeU64(ranges, 16 + 16 * i, end);
    });
    caps.add(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, ranges);
  }
  return caps;
}
