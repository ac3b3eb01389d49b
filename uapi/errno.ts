/**
 * Linux errno numbers (asm-generic values, as x86-64 and arm64 use), their names and descriptions.
 *
 * - Values are positive, as in the kernel headers and Node's `os.constants.errno`; `SysError.errno`
 *   carries the negative value, as Node does.
 * - ENOIOCTLCMD (515) is kernel-internal and reaches userspace as ENOTTY; it is deliberately absent.
 *
 * Source: include/uapi/asm-generic/errno-base.h, errno.h; reference/vfio-uapi.md (errno values).
 */

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
} as const;

/** The symbolic name of an errno, `'EINVAL'`. */
export type ErrnoCode = keyof typeof ERRNO;

/** strerror() texts, lower-cased as Node's SystemError messages use them. */
export const ERRNO_DESCRIPTION: Readonly<Record<ErrnoCode, string>> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ESRCH: 'no such process',
  EIO: 'i/o error',
  E2BIG: 'argument list too long',
  EBADF: 'bad file descriptor',
  EAGAIN: 'resource temporarily unavailable',
  ENOMEM: 'cannot allocate memory',
  EACCES: 'permission denied',
  EFAULT: 'bad address',
  EBUSY: 'device or resource busy',
  EEXIST: 'file exists',
  ENODEV: 'no such device',
  EINVAL: 'invalid argument',
  EMFILE: 'too many open files',
  ENOTTY: 'inappropriate ioctl for device',
  ENOSPC: 'no space left on device',
  ERANGE: 'result out of range',
  EDEADLK: 'resource deadlock avoided',
  ENOSYS: 'function not implemented',
  EOVERFLOW: 'value too large for defined data type',
  EBADFD: 'file descriptor in bad state',
  EMSGSIZE: 'message too long',
  EOPNOTSUPP: 'operation not supported',
  EADDRINUSE: 'address already in use',
};

const NAME_BY_NUMBER = new Map<number, ErrnoCode>(
  (Object.keys(ERRNO) as ErrnoCode[]).map((code) => [ERRNO[code], code]),
);

/** The name of a positive errno number, or undefined for a number this table does not know. */
export function errnoName(errno: number): ErrnoCode | undefined {
  return NAME_BY_NUMBER.get(Math.abs(errno));
}
