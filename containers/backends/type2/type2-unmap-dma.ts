/**
 * VFIO_IOMMU_UNMAP_DMA on the windowed backend: whole mappings only, with the bytes unmapped reported
 * (the SDK trimmed and split mappings and reported nothing). fewer than 24 bytes → EFAULT; argsz < 24 or a
 * flag other than ALL → EINVAL; then the shared range rules (../common/dma-unmap-range): alignment, ALL
 * with iova = size = 0, size 0, EOVERFLOW, and a range that would split a mapping → EINVAL. Holes are fine;
 * an empty range unmaps 0 bytes. MSI bank windows are not touched (UNMAP_MSI_BANK removes them).
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { readU32 } from '../../../uapi/codec';
import { VFIO_DMA_UNMAP_FLAG_ALL } from '../../../uapi/vfio';
import { VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ } from '../../../uapi/vfio-structs';
import { copyIn, readU64Pages, type U64Pages } from '../../user-arg';
import { assertNoSplit, unmapRange, writeUnmappedSize } from '../common/dma-unmap-range';
import type { Type2Iommu } from './type2-iommu';

const iova: U64Pages = { pfn: 0, low: 0 };
const size: U64Pages = { pfn: 0, low: 0 };

/** @throws SysError EFAULT, EINVAL, EOVERFLOW */
export function type2IoctlUnmapDma(iommu: Type2Iommu, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ);
  const flags = readU32(buf, 4);
  if (readU32(buf, 0) < VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ || (flags & ~VFIO_DMA_UNMAP_FLAG_ALL) !== 0) {
    throw sysError('EINVAL', 'bad argsz or flags (only ALL is supported)');
  }
  readU64Pages(buf, 8, iova);
  readU64Pages(buf, 16, size);
  const all = (flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  const { start, end } = unmapRange(iova, size, all, 1);
  if (!all) assertNoSplit(iommu.dmas, start, end);
  let unmapped = 0;
  for (const dma of iommu.dmas.overlapping(start, end - start)) {
    unmapped += dma.pageCount;
    iommu.removeDma(dma);
  }
  writeUnmappedSize(buf, unmapped);
  return 0;
}
