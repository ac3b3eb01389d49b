/**
 * The user dirty bitmap of VFIO_IOMMU_DIRTY_PAGES and UNMAP_DMA with GET_DIRTY_BITMAP: one bit per page
 * of `pgsize`, in the caller's memory at a user pointer (struct vfio_bitmap).
 *
 * What is dirty: while any IOMMU-backed group is attached (num_non_pinned_groups > 0) type1 cannot know
 * what a device wrote, so it reports every page of every mapping in the range, at every read
 * (vfio_dma_populate_bitmap / update_user_bitmap). Groups in a type1 container are always IOMMU-backed
 * here (no mdev), so that is the whole model.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { Process } from '../../../kernel-sim/process';
import { DIRTY_BITMAP_SIZE_MAX } from '../../../uapi/vfio';

/** x86-64 TASK_SIZE_MAX: the top of user addresses (access_ok). */
const TASK_SIZE_MAX = (1n << 47n) - 4096n;

/** A struct vfio_bitmap as read from the caller. */
export interface UserBitmap {
  readonly pgsize: bigint;
  readonly size: bigint;
  readonly data: bigint;
}

/** access_ok(data, size): the whole buffer is in user space and does not wrap. */
export function bitmapAccessOk(bitmap: UserBitmap): boolean {
  return bitmap.data + bitmap.size <= TASK_SIZE_MAX;
}

/** verify_bitmap_size: a non-empty bitmap no larger than the maximum and large enough for `pages`. */
export function bitmapSizeOk(pages: bigint, bitmapBytes: bigint): boolean {
  if (pages === 0n || bitmapBytes === 0n || bitmapBytes > BigInt(DIRTY_BITMAP_SIZE_MAX)) return false;
  // DIRTY_BITMAP_BYTES: rounded up to whole u64 words.
  return bitmapBytes >= ((pages + 63n) / 64n) * 8n;
}

/**
 * Sets `count` bits starting at bit `first` in the caller's bitmap, leaving other bits as they are.
 * @throws SysError EFAULT when the bitmap memory is not writable
 */
export function setUserBits(caller: Process, bitmap: UserBitmap, first: number, count: number): void {
  setUserBitRuns(caller, bitmap, [[first, count]]);
}

/**
 * Sets every run `[first, count]` of bits (ascending, disjoint) in the caller's bitmap with one read and
 * one write of the bytes they span, after checking that all of those bytes are in the bitmap and
 * writable: on EFAULT no bit has been written, so a caller can fail before it changes anything.
 * @throws SysError EFAULT when the bitmap is too small or its memory is not writable
 */
export function setUserBitRuns(caller: Process, bitmap: UserBitmap, runs: readonly (readonly [first: number, count: number])[]): void {
  const used = runs.filter(([, count]) => count > 0);
  if (used.length === 0) return;
  const [first] = used[0]!;
  const [lastFirst, lastCount] = used[used.length - 1]!;
  const firstByte = Math.floor(first / 8);
  const lastByte = Math.floor((lastFirst + lastCount - 1) / 8);
  if (BigInt(lastByte) >= bitmap.size) throw sysError('EFAULT', 'dirty bitmap is too small');
  const at = bitmap.data + BigInt(firstByte);
  // Fault in and check every page of the span for write access before the write, which would otherwise
  // stop at the first bad page with the bytes before it already written.
  for (let page = at & ~0xfffn; page <= at + BigInt(lastByte - firstByte); page += 0x1000n) caller.pageBytes(page, true);
  const bytes = caller.readMemory(at, lastByte - firstByte + 1);
  for (const [runFirst, count] of used) {
    for (let bit = runFirst; bit < runFirst + count; bit++) bytes[Math.floor(bit / 8) - firstByte]! |= 1 << (bit % 8);
  }
  caller.writeMemory(at, bytes);
}
