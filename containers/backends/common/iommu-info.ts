/**
 * VFIO_IOMMU_GET_INFO as every backend answers it (vfio_iommu_type1_get_info; reference/vfio-uapi.md §4.2):
 *
 * - 16 bytes are read (argsz, flags, iova_pgsizes); argsz < 16 → EINVAL.
 * - flags = PGSIZES, plus CAPS when the backend has capabilities; iova_pgsizes = the backend's bitmap.
 * - If argsz leaves room for the chain it follows the 24-byte struct and cap_offset = 24; otherwise argsz
 *   is rewritten to the size needed, cap_offset = 0, and the call still succeeds.
 * - min(argsz, 24) bytes of the struct are written back; nothing past argsz is ever touched.
 *
 * Backends differ only in the bitmap and the capabilities they add.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { readU32, writeU32, writeU64 } from '../../../uapi/codec';
import { VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE } from '../../../uapi/vfio';
import { VFIO_IOMMU_TYPE1_INFO_MINSZ } from '../../../uapi/vfio-structs';
import { CapabilityChain, placeCaps } from '../../capability-chain';
import { checkOut, copyIn } from '../../user-arg';
import { rangeBytes, type IovaRange } from './iova-ranges';

/** sizeof(struct vfio_iommu_type1_info). */
const INFO_SIZE = 24;

/**
 * Answers VFIO_IOMMU_GET_INFO with `pgsizes` and the capabilities `caps` builds (called only once the
 * argument passed the minsz checks, as the kernel builds caps after copying in).
 * @throws SysError EFAULT, EINVAL
 */
export function answerIommuInfo(arg: IoctlArg, pgsizes: bigint, buildCaps: (caps: CapabilityChain) => void): number {
  const buf = copyIn(arg, VFIO_IOMMU_TYPE1_INFO_MINSZ);
  const argsz = readU32(buf, 0);
  if (argsz < VFIO_IOMMU_TYPE1_INFO_MINSZ) throw sysError('EINVAL', 'argsz is below 16');
  const caps = new CapabilityChain();
  buildCaps(caps);
  const placed = placeCaps(buf, argsz, INFO_SIZE, caps);
  const info = new Uint8Array(INFO_SIZE);
  writeU32(info, 0, placed.argsz);
  writeU32(info, 4, VFIO_IOMMU_INFO_PGSIZES | (placed.hasCaps ? VFIO_IOMMU_INFO_CAPS : 0));
  writeU64(info, 8, pgsizes);
  writeU32(info, 16, placed.capOffset);
  const n = Math.min(argsz, INFO_SIZE);
  checkOut(buf, 0, n);
  buf.set(info.subarray(0, n));
  return 0;
}

/** Adds the IOVA_RANGE capability (struct vfio_iommu_type1_info_cap_iova_range) unless there is no range. */
export function addIovaRangeCap(caps: CapabilityChain, ranges: readonly IovaRange[]): void {
  if (ranges.length === 0) return;
  const body = new Uint8Array(8 + 16 * ranges.length);
  writeU32(body, 0, ranges.length);
  ranges.forEach((range, i) => {
    const { start, end } = rangeBytes(range);
    writeU64(body, 8 + 16 * i, start);
    writeU64(body, 16 + 16 * i, end);
  });
  caps.add(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, body);
}
