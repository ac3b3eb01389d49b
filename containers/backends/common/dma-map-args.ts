/**
 * Decoding struct vfio_iommu_type1_dma_map with the checks every backend makes first, in the order of
 * vfio_iommu_type1_map_dma / vfio_dma_do_map (reference/vfio-uapi.md §5, the ≥ 6.18 order):
 *
 *  1. fewer than 32 bytes readable → EFAULT
 *  2. argsz < 32, flag bits outside `knownFlags` → EINVAL
 *  4. size 0 → EINVAL; iova or vaddr range wraps past 2^64 → EOVERFLOW (the check uses the inclusive
 *     last byte, so a mapping may end exactly at 2^64 − 1)
 *
 * The fields land in a reused scratch object as page numbers plus low bits: the MAP path allocates
 * nothing and uses no BigInt.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { readU32 } from '../../../uapi/codec';
import { VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ } from '../../../uapi/vfio-structs';
import { copyIn, lastPfnOf, readU64Pages, type U64Pages } from '../../user-arg';

/** A decoded DMA_MAP request. Valid until the next decode. */
export interface DmaMapArgs {
  flags: number;
  readonly vaddr: U64Pages;
  readonly iova: U64Pages;
  readonly size: U64Pages;
}

const scratch: DmaMapArgs = { flags: 0, vaddr: { pfn: 0, low: 0 }, iova: { pfn: 0, low: 0 }, size: { pfn: 0, low: 0 } };

/** @throws SysError EFAULT, EINVAL, EOVERFLOW */
export function decodeDmaMap(arg: IoctlArg, knownFlags: number): DmaMapArgs {
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ);
  const flags = readU32(buf, 4);
  if (readU32(buf, 0) < VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ) throw sysError('EINVAL', 'argsz is below 32');
  if ((flags & ~knownFlags) !== 0) throw sysError('EINVAL', 'unknown map flags');
  readU64Pages(buf, 8, scratch.vaddr);
  readU64Pages(buf, 16, scratch.iova);
  readU64Pages(buf, 24, scratch.size);
  if (scratch.size.pfn === 0 && scratch.size.low === 0) throw sysError('EINVAL', 'size is zero');
  if (lastPfnOf(scratch.iova, scratch.size) < 0 || lastPfnOf(scratch.vaddr, scratch.size) < 0) {
    throw sysError('EOVERFLOW', 'range wraps past 2^64');
  }
  scratch.flags = flags;
  return scratch;
}
