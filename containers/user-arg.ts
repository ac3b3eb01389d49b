/**
 * Copying ioctl arguments in and out under VFIO's argsz rules (reference/vfio-uapi.md §4.1), written
 * once for every handler:
 *
 * 1. `copyIn(arg, minsz)`: the kernel copies exactly `minsz` bytes; a pointer that does not reach that
 *    far faults (EFAULT). A by-value number where a pointer is expected is a bad address too.
 * 2. `argsz < minsz` is EINVAL, and so are flag bits the handler does not know (checked by callers).
 * 3. Output is written back only as far as the kernel knows the struct, never past argsz, and never
 *    past the caller's buffer (EFAULT).
 *
 * Field access uses uapi's byte-arithmetic readers; u64 fields are split into page numbers so the hot
 * paths need no BigInt.
 */
import { sysError } from '../kernel-sim/errors';
import type { IoctlArg } from '../kernel-sim/fs/file';
import { readU32 } from '../uapi/codec';

/**
 * The caller's struct bytes, checked to hold at least `minsz` bytes (copy_from_user of minsz). Those
 * bytes may then be written back without another check. @throws SysError EFAULT
 */
export function copyIn(arg: IoctlArg, minsz: number): Uint8Array {
  if (!(arg instanceof Uint8Array) || arg.length < minsz) throw sysError('EFAULT', `argument does not hold ${minsz} bytes`);
  return arg;
}

/** Checks that `length` bytes from `offset` can be written (copy_to_user). @throws SysError EFAULT */
export function checkOut(bytes: Uint8Array, offset: number, length: number): void {
  if (offset + length > bytes.length) throw sysError('EFAULT', 'argument buffer is shorter than argsz says');
}

/**
 * A u64 address or size field split for page arithmetic without BigInt: `pfn` is the value >> 12
 * (exact: below 2^52) and `low` its low 12 bits.
 */
export interface U64Pages {
  pfn: number;
  low: number;
}

/** Reads a u64 at `o` as (value >> 12, value & 0xfff). */
export function readU64Pages(b: Uint8Array, o: number, out: U64Pages): void {
  const lo = readU32(b, o);
  const hi = readU32(b, o + 4);
  out.pfn = hi * 0x100000 + (lo >>> 12);
  out.low = lo & 0xfff;
}

/** The page-frame number of the last byte of [value, value + size), or -1 when it passes 2^64 - 1. */
export function lastPfnOf(value: U64Pages, size: U64Pages): number {
  // value + size - 1 <= 2^64 - 1, computed in pages and a 12-bit remainder so it stays exact.
  const low = value.low + size.low - 1;
  const pfn = value.pfn + size.pfn + Math.floor(low / 4096);
  return pfn >= 2 ** 52 ? -1 : pfn;
}

/**
 * A by-value ioctl argument as an unsigned long (0 when absent; negative values wrap as in C).
 * @throws SysError EINVAL for a number that is not an integer (NaN, Infinity, 1.5): no C value has it
 */
export function byValue(arg: IoctlArg): number {
  if (typeof arg === 'number') {
    if (arg >>> 0 === arg) return arg;
    if (!Number.isInteger(arg)) throw sysError('EINVAL', 'by-value argument is not an integer');
    return Number(BigInt.asUintN(64, BigInt(arg)));
  }
  if (typeof arg === 'bigint') return Number(BigInt.asUintN(64, arg));
  return 0;
}
