/**
 * The range rules of VFIO_IOMMU_UNMAP_DMA that every backend shares (vfio_dma_do_unmap;
 * reference/vfio-uapi.md §6), and the bytes-unmapped write-back:
 *
 * - iova not aligned to the smallest page → EINVAL;
 * - FLAG_ALL: iova and size must both be 0 (EINVAL), and the range is the whole IOVA space;
 * - otherwise size 0 or misaligned → EINVAL, and a range wrapping past 2^64 → EOVERFLOW (≥ 6.18);
 * - a backend that never splits a mapping (type1 v2, the windowed backend) refuses a range whose first or
 *   last page falls inside a mapping that the range does not cover whole → EINVAL.
 *
 * Ranges are in 4 KiB pages, [start, end) with `end` exclusive.
 */
import { sysError } from '../../../kernel-sim/errors';
import { writeU32 } from '../../../uapi/codec';
import { lastPfnOf, type U64Pages } from '../../user-arg';
import type { DmaRange, DmaTree } from './dma-tree';

/** One past the last page of a 64-bit IOVA space. */
export const IOVA_SPACE_PAGES = 2 ** 52;

/** The page range an UNMAP names. @throws SysError EINVAL, EOVERFLOW */
export function unmapRange(iova: U64Pages, size: U64Pages, all: boolean, minPages: number): { start: number; end: number } {
  if (iova.low !== 0 || iova.pfn % minPages !== 0) throw sysError('EINVAL', 'iova is not aligned to the smallest page size');
  if (all) {
    if (iova.pfn !== 0 || size.pfn !== 0 || size.low !== 0) throw sysError('EINVAL', 'UNMAP_ALL needs iova 0 and size 0');
    return { start: 0, end: IOVA_SPACE_PAGES };
  }
  if ((size.pfn === 0 && size.low === 0) || size.low !== 0 || size.pfn % minPages !== 0) throw sysError('EINVAL', 'size is zero or not aligned');
  if (lastPfnOf(iova, size) < 0) throw sysError('EOVERFLOW', 'range wraps past 2^64');
  return { start: iova.pfn, end: iova.pfn + size.pfn };
}

/** Refuses a range that would cut a mapping at either end (vfio_dma_do_unmap, v2). @throws SysError EINVAL */
export function assertNoSplit(tree: DmaTree<DmaRange>, start: number, end: number): void {
  const head = tree.find(start);
  if (head !== undefined && head.iovaPfn !== start) throw sysError('EINVAL', 'range starts inside a mapping');
  const tail = tree.find(end - 1);
  if (tail !== undefined && tail.iovaPfn + tail.pageCount !== end) throw sysError('EINVAL', 'range ends inside a mapping');
}

/** Writes `pages` << 12 into the u64 `size` field at offset 16, exactly, as two u32 halves. */
export function writeUnmappedSize(buf: Uint8Array, pages: number): void {
  writeU32(buf, 16, (pages % 0x100000) * 4096);
  writeU32(buf, 20, Math.floor(pages / 0x100000));
}
