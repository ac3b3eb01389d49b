/**
 * ioctl request-number encoding, transcribed from include/uapi/asm-generic/ioctl.h (the encoding used by
 * x86, arm, arm64 and riscv). Every VFIO request is `_IO(VFIO_TYPE, VFIO_BASE + n)`: direction and size
 * are deliberately 0 because the struct size travels in the in-struct `argsz` (reference/vfio-uapi.md §1).
 *
 * - Layout: `dir << 30 | size << 16 | type << 8 | nr`, with 2 direction bits, 14 size bits, 8 type bits
 *   and 8 number bits. Results are unsigned 32-bit numbers (`_IOR` sets bit 31).
 * - powerpc, mips, sparc and alpha use a different layout (`_IOC_NONE` = 1, dirshift 29, so `_IO` adds
 *   0x20000000); it is not modelled, since the simulator presents the x86-64/arm64 ABI. [unverified for
 *   every arch, per the reference]
 * - The C macros take a type and apply `sizeof`; here the `_IOR`/`_IOW`/`_IOWR` encoders take the size in
 *   bytes. Arguments out of range throw RangeError instead of silently spilling into another field.
 *
 * Source: include/uapi/asm-generic/ioctl.h via reference/vfio-uapi.md §1.
 */

/** Number of bits of the `nr` field. */
export const _IOC_NRBITS = 8;
/** Number of bits of the `type` field. */
export const _IOC_TYPEBITS = 8;
/** Number of bits of the `size` field (asm-generic). */
export const _IOC_SIZEBITS = 14;
/** Number of bits of the `dir` field (asm-generic). */
export const _IOC_DIRBITS = 2;

/** Shift of the `nr` field. */
export const _IOC_NRSHIFT = 0;
/** Shift of the `type` field. */
export const _IOC_TYPESHIFT = 8;
/** Shift of the `size` field. */
export const _IOC_SIZESHIFT = 16;
/** Shift of the `dir` field. */
export const _IOC_DIRSHIFT = 30;

/** Direction: no data transfer (what every VFIO ioctl uses). */
export const _IOC_NONE = 0;
/** Direction: userspace writes, the kernel reads. */
export const _IOC_WRITE = 1;
/** Direction: the kernel writes, userspace reads. */
export const _IOC_READ = 2;

const NR_MAX = (1 << _IOC_NRBITS) - 1;
const TYPE_MAX = (1 << _IOC_TYPEBITS) - 1;
const SIZE_MAX = (1 << _IOC_SIZEBITS) - 1;
const DIR_MAX = (1 << _IOC_DIRBITS) - 1;

function checkField(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`ioctl ${what} ${value} is outside 0..${max}`);
  }
}

/**
 * `_IOC(dir, type, nr, size)`: the raw encoder, as an unsigned 32-bit number.
 * @throws RangeError when a field does not fit its bit width.
 */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  checkField('dir', dir, DIR_MAX);
  checkField('type', type, TYPE_MAX);
  checkField('nr', nr, NR_MAX);
  checkField('size', size, SIZE_MAX);
  return ((dir << _IOC_DIRSHIFT) | (size << _IOC_SIZESHIFT) | (type << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)) >>> 0;
}

/** `_IO(type, nr)`: a request with no size and no direction (every VFIO ioctl). */
export function _IO(type: number, nr: number): number {
  return _IOC(_IOC_NONE, type, nr, 0);
}

/** `_IOR(type, nr, sizeof(T))`: the kernel writes `size` bytes to userspace. */
export function _IOR(type: number, nr: number, size: number): number {
  return _IOC(_IOC_READ, type, nr, size);
}

/** `_IOW(type, nr, sizeof(T))`: the kernel reads `size` bytes from userspace. */
export function _IOW(type: number, nr: number, size: number): number {
  return _IOC(_IOC_WRITE, type, nr, size);
}

/** `_IOWR(type, nr, sizeof(T))`: data flows both ways. */
export function _IOWR(type: number, nr: number, size: number): number {
  return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
}

/** `_IOC_DIR(request)`: the direction bits of a request. */
export function _IOC_DIR(request: number): number {
  return (request >>> _IOC_DIRSHIFT) & DIR_MAX;
}

/** `_IOC_TYPE(request)`: the type byte of a request (0x3B for VFIO). */
export function _IOC_TYPE(request: number): number {
  return (request >>> _IOC_TYPESHIFT) & TYPE_MAX;
}

/** `_IOC_NR(request)`: the number byte of a request (VFIO_BASE + n for VFIO). */
export function _IOC_NR(request: number): number {
  return (request >>> _IOC_NRSHIFT) & NR_MAX;
}

/** `_IOC_SIZE(request)`: the size field of a request (0 for every VFIO ioctl). */
export function _IOC_SIZE(request: number): number {
  return (request >>> _IOC_SIZESHIFT) & SIZE_MAX;
}
