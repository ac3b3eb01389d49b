/**
 * The two error channels of the simulator (reference/aesthetics.md §9.4):
 *
 * - `SysError`: a failure the caller can cause. It carries the kernel's errno, shaped like Node's
 *   SystemError (`code`, negative `errno`, `syscall`, `path`, `info`). Deep code throws it bare with
 *   `sysError('EINVAL', reason)`; the syscall boundary (Process) fills in `syscall`, `path`, `fd` and the
 *   request name on the way out. The message is stable; the human reason lives in `info.reason`.
 * - `SimBugError`: a state the simulator must never reach (refcount underflow, pins left after release,
 *   a translation that disagrees with the mapping records). No API code catches it; tests fail on it.
 */
import { ERRNO, ERRNO_DESCRIPTION, type ErrnoCode } from '../uapi/errno';

/** The extra facts a SysError carries; only `reason` is filled by deep code. */
export interface SysErrorInfo {
  /** The ioctl request name (`'VFIO_IOMMU_MAP_DMA'`) or hex number when no name is known. */
  request?: string;
  fd?: number;
  /** Why, in words: which rule refused the call. Not part of the stable message. */
  reason?: string;
}

/** A failed system call: the kernel's errno, in Node's SystemError shape. */
export class SysError extends Error {
  readonly code: ErrnoCode;
  /** Negative, as Node reports it (`-22` for EINVAL). */
  readonly errno: number;
  syscall: string | undefined;
  path: string | undefined;
  readonly info: SysErrorInfo;

  constructor(code: ErrnoCode, info: SysErrorInfo = {}, syscall?: string, path?: string) {
    super(SysError.format(code, syscall, info.request, path));
    this.name = 'SysError';
    this.code = code;
    this.errno = -ERRNO[code];
    this.syscall = syscall;
    this.path = path;
    this.info = info;
  }

  /** Fills in the syscall boundary's facts once; later calls (nested syscalls) keep the first. */
  enrich(syscall: string, path: string | undefined, fd: number | undefined, request?: string): this {
    if (this.syscall !== undefined) return this;
    this.syscall = syscall;
    this.path = path;
    if (fd !== undefined) this.info.fd = fd;
    if (request !== undefined) this.info.request = request;
    this.message = SysError.format(this.code, syscall, request, path);
    return this;
  }

  private static format(code: ErrnoCode, syscall?: string, request?: string, path?: string): string {
    let msg = `${code}: ${ERRNO_DESCRIPTION[code]}`;
    if (syscall !== undefined) msg += `, ${syscall}`;
    if (request !== undefined) msg += ` ${request}`;
    if (path !== undefined) msg += ` '${path}'`;
    return msg;
  }
}

/** Makes a bare SysError for deep code to throw: `throw sysError('EEXIST', 'iova range overlaps a mapping')`. */
export function sysError(code: ErrnoCode, reason?: string): SysError {
  return new SysError(code, reason === undefined ? {} : { reason });
}

/** A state the simulator must never reach. Never caught by API code. */
export class SimBugError extends Error {
  constructor(message: string) {
    super(`vfio-sim bug: ${message}`);
    this.name = 'SimBugError';
  }
}

/** Throws SimBugError when `cond` is false: the simulator's WARN_ON. */
export function assertInvariant(cond: boolean, message: string): asserts cond {
  if (!cond) throw new SimBugError(message);
}
