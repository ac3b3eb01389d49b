/**
 * Golden errno numbers (Linux asm-generic, as x86-64 and arm64 use) and the name/description tables.
 *
 * Source of the literals: reference/vfio-uapi.md (errno values), include/uapi/asm-generic/errno*.h.
 */
import { ERRNO, ERRNO_DESCRIPTION, errnoName, type ErrnoCode } from '../../uapi';

/** Every errno the reference lists, with its number. */
const REFERENCE: Readonly<Record<string, number>> = {
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
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  EDEADLK: 35,
  EOVERFLOW: 75,
  EBADFD: 77,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
};

/** Entries the table carries beyond the reference list (asm-generic values). */
const EXTRA: Readonly<Record<string, number>> = {
  EMFILE: 24,
  ENOSYS: 38,
};

describe('errno table', () => {
  test.each(Object.entries(REFERENCE))('%s === %d', (name, value) => {
    expect(ERRNO[name as ErrnoCode]).toBe(value);
  });

  test.each(Object.entries(EXTRA))('%s === %d (not in the reference list)', (name, value) => {
    expect(ERRNO[name as ErrnoCode]).toBe(value);
  });

  test('the table holds exactly the pinned entries', () => {
    expect(Object.keys(ERRNO).sort()).toEqual([...Object.keys(REFERENCE), ...Object.keys(EXTRA)].sort());
  });

  test('numbers are unique, so errnoName inverts the table', () => {
    const numbers = Object.values(ERRNO);
    expect(new Set(numbers).size).toBe(numbers.length);
    for (const [name, value] of Object.entries(ERRNO)) {
      expect(errnoName(value)).toBe(name);
      expect(errnoName(-value)).toBe(name); // SysError.errno is negative, as in Node
    }
  });

  test('EDEADLOCK is the same number as EDEADLK and is reported as EDEADLK', () => {
    expect(errnoName(35)).toBe('EDEADLK');
  });

  test('ENOIOCTLCMD (515) is kernel-internal and absent; it reaches userspace as ENOTTY (25)', () => {
    expect(errnoName(515)).toBeUndefined();
    expect(ERRNO.ENOTTY).toBe(25);
  });

  test('EBADFD (77) and EBADF (9) are different errnos', () => {
    expect(ERRNO.EBADFD).not.toBe(ERRNO.EBADF);
  });

  test('every errno has a lower-case description', () => {
    for (const code of Object.keys(ERRNO) as ErrnoCode[]) {
      expect(ERRNO_DESCRIPTION[code]).toMatch(/^[a-z0-9/ ]+$/);
    }
    expect(ERRNO_DESCRIPTION.ENOTTY).toBe('inappropriate ioctl for device');
  });
});
