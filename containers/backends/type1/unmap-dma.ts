/**
 * VFIO_IOMMU_UNMAP_DMA on type1 (vfio_iommu_type1_unmap_dma, vfio_dma_do_unmap; reference/vfio-uapi.md §6):
 *
 * - argsz < 24 or unknown flags → EINVAL; GET_DIRTY_BITMAP with ALL or VADDR → EINVAL; a bitmap that is
 *   short, outside user space or the wrong size → EINVAL.
 * - iova misaligned → EINVAL; ALL with a non-zero iova or size → EINVAL; otherwise size 0 or misaligned →
 *   EINVAL and a range wrapping past 2^64 → EOVERFLOW. GET_DIRTY_BITMAP while not tracking, or with a
 *   pgsize other than the smallest page → EINVAL.
 * - v2 (not ALL): the range may not cut a mapping at either end → EINVAL.
 * - The walk removes whole mappings in ascending order. v1 stops at the first mapping that starts below
 *   the requested iova, so a request that starts inside a mapping removes nothing.
 * - VADDR marks the vaddrs invalid instead of unmapping; meeting one already invalid undoes this call's
 *   marks and fails with EINVAL.
 * - On success `size` is overwritten with the bytes unmapped (or marked); on failure nothing is written.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import type { Process } from '../../../kernel-sim/process';
import {
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
} from '../../../uapi/vfio';
import { VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ } from '../../../uapi/vfio-structs';
import { copyIn, readU64Pages, type U64Pages } from '../../user-arg';
import { assertNoSplit, unmapRange, writeUnmappedSize } from '../common/dma-unmap-range';
import { readU32, readU64 } from '../../../uapi/codec';
import { smallestPageShift } from '../common/iova-ranges';
import { bitmapAccessOk, bitmapSizeOk, setUserBitRuns, type UserBitmap } from './dirty-bitmap';
import type { Type1Dma, Type1Iommu } from './type1-iommu';

const KNOWN_FLAGS = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR;
/** sizeof(struct vfio_iommu_type1_dma_unmap) + sizeof(struct vfio_bitmap). */
const UNMAP_WITH_BITMAP_SIZE = VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ + 24;

const iova: U64Pages = { pfn: 0, low: 0 };
const size: U64Pages = { pfn: 0, low: 0 };

/** @throws SysError EFAULT, EINVAL, EOVERFLOW */
export function type1IoctlUnmapDma(iommu: Type1Iommu, arg: IoctlArg, caller: Process): number {
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ);
  const argsz = readU32(buf, 0);
  const flags = readU32(buf, 4);
  if (argsz < VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ || (flags & ~KNOWN_FLAGS) !== 0) throw sysError('EINVAL', 'bad argsz or unknown unmap flags');
  const wantsBitmap = (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) !== 0;
  if (wantsBitmap && (flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) !== 0) {
    throw sysError('EINVAL', 'GET_DIRTY_BITMAP cannot be combined with ALL or VADDR');
  }
  let bitmap: UserBitmap | undefined;
  if (wantsBitmap) {
    if (argsz < UNMAP_WITH_BITMAP_SIZE) throw sysError('EINVAL', 'argsz leaves no room for the bitmap');
    copyIn(arg, UNMAP_WITH_BITMAP_SIZE);
    bitmap = { pgsize: readU64(buf, 24), size: readU64(buf, 32), data: readU64(buf, 40) };
    if (!bitmapAccessOk(bitmap)) throw sysError('EINVAL', 'bitmap is outside user memory');
    if (bitmap.pgsize === 0n) throw sysError('EINVAL', 'bitmap pgsize is zero');
    const pgshift = smallestPageShift(bitmap.pgsize);
    if (!bitmapSizeOk(readU64(buf, 16) >> BigInt(pgshift), bitmap.size)) throw sysError('EINVAL', 'bitmap size does not fit the range');
  }
  readU64Pages(buf, 8, iova);
  readU64Pages(buf, 16, size);
  const unmapped = doUnmap(iommu, flags, bitmap, caller);
  writeUnmappedSize(buf, unmapped);
  return 0;
}

/** The walk of vfio_dma_do_unmap; returns the pages unmapped (or marked). */
function doUnmap(iommu: Type1Iommu, flags: number, bitmap: UserBitmap | undefined, caller: Process): number {
  const min = iommu.minPages;
  const { start, end } = unmapRange(iova, size, (flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0, min);
  if (bitmap !== undefined && (!iommu.dirtyTracking || bitmap.pgsize !== BigInt(min * 4096))) {
    throw sysError('EINVAL', 'dirty tracking is off or the bitmap page size is not the smallest page');
  }
  // Type1v2 never splits a mapping: both ends of the request must fall on mapping boundaries.
  if (iommu.v2 && (flags & VFIO_DMA_UNMAP_FLAG_ALL) === 0) assertNoSplit(iommu.dmas, start, end);
  const marked: Type1Dma[] = [];
  const victims: Type1Dma[] = [];
  let unmapped = 0;
  for (const dma of iommu.dmas.overlapping(start, end - start)) {
    // Type1 v1 stops at a mapping that begins below the request, and leaves everything after it.
    if (!iommu.v2 && start > dma.iovaPfn) break;
    if ((flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0) {
      if (dma.vaddrInvalid) {
        for (const undo of marked) undo.vaddrInvalid = false;
        iommu.vaddrInvalidCount -= marked.length;
        throw sysError('EINVAL', 'a vaddr in the range is already invalid');
      }
      dma.vaddrInvalid = true;
      iommu.vaddrInvalidCount++;
      marked.push(dma);
    } else {
      victims.push(dma);
    }
    unmapped += dma.pageCount;
  }
  // vfio_dma_do_unmap writes each mapping's bits just before removing it and breaks out on a fault,
  // with the earlier mappings already gone. Writing all bits first makes an EFAULT change nothing.
  if (bitmap !== undefined) setUserBitRuns(caller, bitmap, victims.map((dma) => [(dma.iovaPfn - start) / min, dma.pageCount / min] as const));
  for (const dma of victims) iommu.removeDma(dma);
  return unmapped;
}
