/**
 * Arguments no C caller could pass (non-integer numbers, negative lengths, absurd sizes) get an errno at
 * the syscall surface, never a RangeError or TypeError from inside the simulator.
 */
import { Kernel, uapi } from '../../index';

function world(): { proc: ReturnType<Kernel['spawn']>; container: number } {
  const kernel = new Kernel({ devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
  const proc = kernel.spawn();
  return { proc, container: proc.open('/dev/vfio/vfio') };
}

test.each([NaN, Infinity, -Infinity, 1.5])('a by-value ioctl argument of %p is EINVAL', (value) => {
  const { proc, container } = world();
  expect(proc.ioctlRaw(container, uapi.VFIO_CHECK_EXTENSION, value)).toBe(-uapi.ERRNO.EINVAL);
  expect(proc.ioctlRaw(container, uapi.VFIO_SET_IOMMU, value)).toBe(-uapi.ERRNO.EINVAL);
});

test('a negative by-value argument wraps as an unsigned long, as in C', () => {
  const { proc, container } = world();
  expect(proc.ioctlRaw(container, uapi.VFIO_CHECK_EXTENSION, -1)).toBe(0);
});

test.each([
  [NaN, 'EINVAL'],
  [1.5, 'EINVAL'],
  [-5, 'EINVAL'],
  [0, 'EINVAL'],
  [2 ** 60, 'EINVAL'],
  [1n << 60n, 'ENOMEM'],
] as const)('mmap(%p) fails with %s', (length, code) => {
  const { proc } = world();
  expect(() => proc.mmap(length)).toThrow(expect.objectContaining({ code, syscall: 'mmap' }));
});

test.each([-1, 1.5, NaN, 2 ** 40])('readMemory of %p bytes is EINVAL', (length) => {
  const { proc } = world();
  expect(() => proc.readMemory(0n, length)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
});

test('a negative address is EFAULT for reads and writes', () => {
  const { proc } = world();
  expect(() => proc.readMemory(-4096n, 4)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
  expect(() => proc.writeMemory(-4096n, new Uint8Array(4))).toThrow(expect.objectContaining({ code: 'EFAULT' }));
});
