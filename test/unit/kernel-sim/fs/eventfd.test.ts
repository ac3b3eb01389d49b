/**
 * eventfd (fs/eventfd.c) as the simulator models it: the 64-bit counter, non-blocking read and write,
 * EFD_SEMAPHORE, kernel signals, waiters, file references held by kernel code, and leak detection.
 */
import { Kernel } from '../../../../index';
import { EVENTFD_ULLONG_MAX, eventfdFileGet, type EventFd } from '../../../../kernel-sim/fs/eventfd';
import { codeOf } from '../../../helpers/expect-sys-error';

function world(): { kernel: Kernel; proc: ReturnType<Kernel['spawn']> } {
  const kernel = new Kernel({ machine: 'x86-vtd' });
  return { kernel, proc: kernel.spawn() };
}

function eventfdOf(proc: ReturnType<Kernel['spawn']>, fd: number): EventFd {
  return proc.fileOf(fd)!.data as EventFd;
}

describe('read and write', () => {
  test('a new eventfd reads EAGAIN; a write of 5 reads back 5n, then EAGAIN again', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    expect(codeOf(() => proc.eventfdRead(efd))).toBe('EAGAIN');
    proc.eventfdWrite(efd, 5n);
    expect(proc.eventfdRead(efd)).toBe(5n);
    expect(codeOf(() => proc.eventfdRead(efd))).toBe('EAGAIN');
  });

  test('initval is the first count', () => {
    const { proc } = world();
    expect(proc.eventfdRead(proc.eventfd({ initval: 7 }))).toBe(7n);
  });

  test('an initval that is not an unsigned int is EINVAL', () => {
    const { proc } = world();
    expect(codeOf(() => proc.eventfd({ initval: -1 }))).toBe('EINVAL');
    expect(codeOf(() => proc.eventfd({ initval: 2 ** 32 }))).toBe('EINVAL');
  });

  test('EFD_SEMAPHORE: each read returns 1n and decrements', () => {
    const { proc } = world();
    const efd = proc.eventfd({ semaphore: true, initval: 2 });
    expect([proc.eventfdRead(efd), proc.eventfdRead(efd)]).toEqual([1n, 1n]);
    expect(codeOf(() => proc.eventfdRead(efd))).toBe('EAGAIN');
  });

  test('the counter holds up to ULLONG_MAX − 1; a write past it would block (EAGAIN), ULLONG_MAX is EINVAL', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    proc.eventfdWrite(efd, EVENTFD_ULLONG_MAX - 2n);
    proc.eventfdWrite(efd, 1n);
    expect(codeOf(() => proc.eventfdWrite(efd, 1n))).toBe('EAGAIN');
    expect(codeOf(() => proc.eventfdWrite(efd, EVENTFD_ULLONG_MAX))).toBe('EINVAL');
    expect(proc.eventfdRead(efd)).toBe(EVENTFD_ULLONG_MAX - 1n);
  });

  test('counts above 2^53 stay exact', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    proc.eventfdWrite(efd, (1n << 53n) - 1n);
    eventfdOf(proc, efd).signal();
    eventfdOf(proc, efd).signal();
    expect(proc.eventfdRead(efd)).toBe((1n << 53n) + 1n);
  });

  test('a kernel signal saturates at ULLONG_MAX', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    proc.eventfdWrite(efd, EVENTFD_ULLONG_MAX - 1n);
    eventfdOf(proc, efd).signal();
    eventfdOf(proc, efd).signal();
    expect(proc.eventfdRead(efd)).toBe(EVENTFD_ULLONG_MAX);
  });

  test('reading a closed fd is EBADF; reading a file that is not an eventfd is EINVAL', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    proc.close(efd);
    expect(codeOf(() => proc.eventfdRead(efd))).toBe('EBADF');
    const container = proc.open('/dev/vfio/vfio');
    expect(codeOf(() => proc.eventfdRead(container))).toBe('EINVAL');
    expect(codeOf(() => proc.eventfdWrite(container, 1n))).toBe('EINVAL');
  });

  test('errors carry the syscall and the fd', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    let err: unknown;
    try {
      proc.eventfdRead(efd);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'EAGAIN', syscall: 'read', info: { fd: efd } });
  });

  test('an eventfd has no ioctls (ENOTTY)', () => {
    const { proc } = world();
    expect(codeOf(() => proc.ioctl(proc.eventfd(), 0x3b64))).toBe('ENOTTY');
  });
});

describe('kernel references and lifetime', () => {
  test('eventfdFileGet takes a file reference: closing the fd keeps the eventfd until the reference is put', () => {
    const { kernel, proc } = world();
    const efd = proc.eventfd();
    const file = eventfdFileGet(proc, efd);
    expect(file.refCount).toBe(2);
    proc.close(efd);
    file.data.signal();
    expect(file.data.count).toBe(1n);
    expect(kernel.eventfds.size).toBe(1);
    file.put();
    expect(file.data.isReleased).toBe(true);
    expect(kernel.eventfds.size).toBe(0);
  });

  test('eventfdFileGet: EBADF for a closed fd, EINVAL for another kind of file', () => {
    const { proc } = world();
    expect(codeOf(() => eventfdFileGet(proc, 42))).toBe('EBADF');
    expect(codeOf(() => eventfdFileGet(proc, proc.open('/dev/vfio/vfio')))).toBe('EINVAL');
  });

  test('a reference kernel code forgets is a leak at shutdown', () => {
    const { kernel, proc } = world();
    const file = eventfdFileGet(proc, proc.eventfd());
    expect(() => kernel.shutdown()).toThrow(/1 eventfds still referenced/);
    file.put();
    expect(kernel.eventfds.size).toBe(0);
  });
});

describe('waiters (the wait queue virqfd uses)', () => {
  test('a waiter runs after each signal and write with the count updated, and may consume it', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    const seen: bigint[] = [];
    const waiter = (e: EventFd): void => {
      seen.push(e.consume());
    };
    eventfdOf(proc, efd).addWaiter(waiter);
    eventfdOf(proc, efd).signal();
    proc.eventfdWrite(efd, 3n);
    expect(seen).toEqual([1n, 3n]);
    expect(codeOf(() => proc.eventfdRead(efd))).toBe('EAGAIN');
    eventfdOf(proc, efd).removeWaiter(waiter);
  });

  test('closing the file gives waiters a hangup, and they must leave', () => {
    const { proc } = world();
    const efd = proc.eventfd();
    const eventfd = eventfdOf(proc, efd);
    const hangups: boolean[] = [];
    const waiter = (e: EventFd, hangup: boolean): void => {
      hangups.push(hangup);
      if (hangup) e.removeWaiter(waiter);
    };
    eventfd.addWaiter(waiter);
    proc.close(efd);
    expect(hangups).toEqual([true]);
    expect(eventfd.waiterCount).toBe(0);
  });
});
