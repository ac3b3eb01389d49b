/**
 * VFIO_IOMMU_GET_INFO on type1 (vfio_iommu_type1_get_info): the common answer (../common/iommu-info) with
 * the container's page-size bitmap and type1's capabilities in the kernel's order: MIGRATION (32 bytes),
 * DMA_AVAIL (12, padded to 16), IOVA_RANGE (16 + 16 per range; left out when there is no range).
 */
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { writeU32, writeU64 } from '../../../uapi/codec';
import { DIRTY_BITMAP_SIZE_MAX, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL } from '../../../uapi/vfio';
import { addIovaRangeCap, answerIommuInfo } from '../common/iommu-info';
import type { Type1Iommu } from './type1-iommu';

/** @throws SysError EFAULT, EINVAL */
export function type1IoctlGetInfo(iommu: Type1Iommu, arg: IoctlArg): number {
  return answerIommuInfo(arg, iommu.pgsizeBitmap, (caps) => {
    // vfio_iommu_migration_build_caps: flags 0, the smallest page size, DIRTY_BITMAP_SIZE_MAX.
    const migration = new Uint8Array(24);
    writeU64(migration, 8, BigInt(iommu.minPages * 4096));
    writeU64(migration, 16, BigInt(DIRTY_BITMAP_SIZE_MAX));
    caps.add(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, migration);
    const avail = new Uint8Array(4);
    writeU32(avail, 0, iommu.dmaAvail);
    caps.add(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, avail);
    addIovaRangeCap(caps, iommu.iovaRanges);
  });
}
