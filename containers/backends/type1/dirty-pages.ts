/**
 * VFIO_IOMMU_DIRTY_PAGES on type1 (vfio_iommu_type1_dirty_pages; reference/vfio-uapi.md §13):
 *
 * - v1 container → EACCES; fewer than 8 bytes → EFAULT; argsz < 8 or unknown flags → EINVAL; not exactly
 *   one flag → EINVAL.
 * - START / STOP turn tracking on and off (repeatable).
 * - GET_BITMAP: argsz − 8 < 40 → EINVAL; size 0 → EINVAL; a wrapping range → EOVERFLOW; bitmap outside
 *   user memory, of the wrong size, or with a pgsize other than the smallest page → EINVAL; iova or size
 *   misaligned → EINVAL; tracking off → EINVAL; a range that cuts a mapping → EINVAL. Then a bit is set
 *   for each dirty page (see ./dirty-bitmap for what counts as dirty).
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import type { Process } from '../../../kernel-sim/process';
import {
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
} from '../../../uapi/vfio';
import { VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ } from '../../../uapi/vfio-structs';
import { copyIn } from '../../user-arg';
import { readU32, readU64 } from '../../../uapi/codec';
import { assertNoSplit } from '../common/dma-unmap-range';
import { smallestPageShift } from '../common/iova-ranges';
import { bitmapAccessOk, bitmapSizeOk, setUserBits, type UserBitmap } from './dirty-bitmap';
import type { Type1Iommu } from './type1-iommu';

const KNOWN_FLAGS = VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
/** sizeof(struct vfio_iommu_type1_dirty_bitmap_get). */
const RANGE_SIZE = 40;
const U64_MAX = (1n << 64n) - 1n;

/** @throws SysError EACCES, EFAULT, EINVAL, EOVERFLOW */
export function type1IoctlDirtyPages(iommu: Type1Iommu, arg: IoctlArg, caller: Process): number {
  if (!iommu.v2) throw sysError('EACCES', 'dirty page tracking needs a TYPE1v2 container');
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ);
  const argsz = readU32(buf, 0);
  const flags = readU32(buf, 4);
  if (argsz < VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ || (flags & ~KNOWN_FLAGS) !== 0) throw sysError('EINVAL', 'bad argsz or unknown flags');
  if (flags === 0 || (flags & (flags - 1)) !== 0) throw sysError('EINVAL', 'exactly one flag must be set');
  switch (flags) {
    case VFIO_IOMMU_DIRTY_PAGES_FLAG_START: iommu.dirtyTracking = true; return 0;
    case VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: iommu.dirtyTracking = false; return 0;
    default: return getBitmap(iommu, arg, argsz, caller);
  }
}

function getBitmap(iommu: Type1Iommu, arg: IoctlArg, argsz: number, caller: Process): number {
  if (argsz - VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ < RANGE_SIZE) throw sysError('EINVAL', 'argsz leaves no room for the range');
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_DIRTY_BITMAP_MINSZ + RANGE_SIZE);
  const iova = readU64(buf, 8);
  const size = readU64(buf, 16);
  const bitmap: UserBitmap = { pgsize: readU64(buf, 24), size: readU64(buf, 32), data: readU64(buf, 40) };
  if (size === 0n) throw sysError('EINVAL', 'size is zero');
  if (iova + size - 1n > U64_MAX) throw sysError('EOVERFLOW', 'range wraps past 2^64');
  if (!bitmapAccessOk(bitmap)) throw sysError('EINVAL', 'bitmap is outside user memory');
  if (bitmap.pgsize === 0n) throw sysError('EINVAL', 'bitmap pgsize is zero');
  if (!bitmapSizeOk(size >> BigInt(smallestPageShift(bitmap.pgsize)), bitmap.size)) throw sysError('EINVAL', 'bitmap size does not fit the range');
  const pageBytes = BigInt(iommu.minPages * 4096);
  if (bitmap.pgsize !== pageBytes) throw sysError('EINVAL', 'bitmap pgsize must be the smallest page size');
  if (iova % pageBytes !== 0n || size % pageBytes !== 0n) throw sysError('EINVAL', 'iova or size is not aligned');
  if (!iommu.dirtyTracking) throw sysError('EINVAL', 'dirty tracking is not started');
  const start = Number(iova >> 12n);
  const end = start + Number(size >> 12n);
  assertNoSplit(iommu.dmas, start, end);
  const min = iommu.minPages;
  for (const dma of iommu.dmas.overlapping(start, end - start)) {
    setUserBits(caller, bitmap, (dma.iovaPfn - start) / min, dma.pageCount / min);
  }
  return 0;
}
