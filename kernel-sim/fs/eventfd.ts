/**
 * eventfd (fs/eventfd.c): a file holding a 64-bit counter. Userspace reads it (the count, then 0) and
 * writes it (adds); the kernel signals it (adds 1) from interrupt handlers, which is how VFIO tells
 * userspace that a device interrupt arrived.
 *
 * Model and constraints:
 * - The counter is unsigned 64-bit. `signal` saturates at ULLONG_MAX as eventfd_signal does; a write that
 *   would pass ULLONG_MAX − 1 would block, so it fails with EAGAIN (every simulated fd is non-blocking);
 *   writing ULLONG_MAX itself is EINVAL.
 * - A read of a zero counter would block: EAGAIN. With EFD_SEMAPHORE a read returns 1 and decrements.
 * - The count is a plain number while it is exact (≤ 2^53 − 1) and moves to a bigint beyond, so the
 *   interrupt path (`signal`) does no BigInt arithmetic and allocates nothing.
 * - Kernel code that keeps an eventfd (VFIO's interrupt triggers, eventfd_ctx_fdget) holds a reference
 *   on the FILE (`eventfdFileGet` … `SimFile.put`), so closing the fd does not break a registered trigger;
 *   the file is released when the last holder lets go.
 * - Waiters (the wait queue virqfd and irqfd hook into) run after every signal or write, with the count
 *   already updated (EPOLLIN); they may consume it (eventfd_ctx_do_read). When the file is released they
 *   run once more with `hangup` (EPOLLHUP) and must remove themselves, as virqfd does.
 * - Every live eventfd is listed in its kernel's registry, so a leaked reference shows up at shutdown.
 */
import { SimBugError, sysError } from '../errors';
import type { Process } from '../process';
import { SimFile, type FileOps } from './file';

/** ULLONG_MAX: `signal` saturates here; a write may bring the counter to one below it at most. */
export const EVENTFD_ULLONG_MAX = 0xffffffffffffffffn;

const MAX_EXACT = Number.MAX_SAFE_INTEGER;

/** eventfd2's flags the simulator models. */
export interface EventFdOptions {
  /** Initial count (eventfd's `initval`, an unsigned int). Default 0. */
  initval?: number;
  /** EFD_SEMAPHORE: each read returns 1 and decrements. */
  semaphore?: boolean;
}

/** Called after the count changed (may call `consume`), or with `hangup` when the file goes. */
export type EventFdWaiter = (efd: EventFd, hangup: boolean) => void;

/** The eventfd context (struct eventfd_ctx). */
export class EventFd {
  /** The count while it is ≤ 2^53 − 1; MAX_EXACT + 1 marks that `_big` holds it. */
  private _count: number;
  private _big = 0n;
  private _waiters: EventFdWaiter[] | undefined;
  private _released = false;
  /** EFD_SEMAPHORE. */
  readonly semaphore: boolean;
  /** eventfd_signal calls (delivered interrupts, loopback triggers). */
  signalCount = 0;

  constructor(
    options: EventFdOptions = {},
    private readonly _registry?: Set<EventFd>,
  ) {
    const initval = options.initval ?? 0;
    if (!Number.isInteger(initval) || initval < 0 || initval > 0xffffffff) throw sysError('EINVAL', 'initval is not an unsigned int');
    this._count = initval;
    this.semaphore = options.semaphore ?? false;
    _registry?.add(this);
  }

  get isReleased(): boolean {
    return this._released;
  }

  /** The count now, without consuming it. */
  get count(): bigint {
    return this._count > MAX_EXACT ? this._big : BigInt(this._count);
  }

  /** eventfd_signal: adds 1, saturating at ULLONG_MAX; wakes waiters. The interrupt path: no allocation. */
  signal(): void {
    if (this._released) throw new SimBugError('eventfd signalled after its file was released');
    if (this._count < MAX_EXACT) this._count++;
    else this._addBig(1n, true);
    this.signalCount++;
    if (this._waiters !== undefined) this._wake();
  }

  /**
   * A userspace write of `value` (eventfd_write, non-blocking).
   * @throws SysError EINVAL (value is ULLONG_MAX), EAGAIN (the count would pass ULLONG_MAX − 1)
   */
  write(value: bigint): void {
    if (value < 0n || value > EVENTFD_ULLONG_MAX) throw sysError('EINVAL', 'eventfd write value is not a u64');
    if (value === EVENTFD_ULLONG_MAX) throw sysError('EINVAL', 'eventfd write of ULLONG_MAX');
    if (EVENTFD_ULLONG_MAX - this.count <= value) throw sysError('EAGAIN', 'eventfd counter would overflow');
    this._addBig(value, false);
    if (this._waiters !== undefined) this._wake();
  }

  /**
   * A userspace read (eventfd_read, non-blocking): the count (or 1 with EFD_SEMAPHORE), which is cleared
   * (or decremented).
   * @throws SysError EAGAIN (the count is 0)
   */
  read(): bigint {
    if (this._count === 0) throw sysError('EAGAIN', 'eventfd count is 0');
    if (this.semaphore) {
      this._set(this.count - 1n);
      return 1n;
    }
    return this.consume();
  }

  /** eventfd_ctx_do_read for kernel waiters: the count, cleared (0n when it was 0). */
  consume(): bigint {
    const value = this.count;
    this._count = 0;
    this._big = 0n;
    return value;
  }

  /** Hooks a waiter into the wait queue (add_wait_queue). */
  addWaiter(waiter: EventFdWaiter): void {
    (this._waiters ??= []).push(waiter);
  }

  /** remove_wait_queue. */
  removeWaiter(waiter: EventFdWaiter): void {
    const waiters = this._waiters;
    const at = waiters?.indexOf(waiter) ?? -1;
    if (at < 0) throw new SimBugError('removing an eventfd waiter that is not queued');
    waiters!.splice(at, 1);
    if (waiters!.length === 0) this._waiters = undefined;
  }

  get waiterCount(): number {
    return this._waiters?.length ?? 0;
  }

  /** The file's last reference went: waiters see EPOLLHUP and must leave the queue. */
  released(): void {
    if (this._released) throw new SimBugError('eventfd released twice');
    if (this._waiters !== undefined) {
      for (const waiter of [...this._waiters]) waiter(this, true);
      if (this._waiters !== undefined) throw new SimBugError('an eventfd waiter stayed queued after EPOLLHUP');
    }
    this._released = true;
    this._registry?.delete(this);
  }

  private _addBig(value: bigint, saturate: boolean): void {
    let next = this.count + value;
    if (next > EVENTFD_ULLONG_MAX) {
      if (!saturate) throw new SimBugError('eventfd count overflow');
      next = EVENTFD_ULLONG_MAX;
    }
    this._set(next);
  }

  private _set(value: bigint): void {
    if (value <= BigInt(MAX_EXACT)) {
      this._count = Number(value);
      this._big = 0n;
    } else {
      this._count = MAX_EXACT + 1;
      this._big = value;
    }
  }

  private _wake(): void {
    // A waiter may remove itself (virqfd shutdown); walk a snapshot.
    for (const waiter of [...this._waiters!]) waiter(this, false);
  }
}

/** file_operations of an eventfd (anon_inode:[eventfd]); it has no ioctls (ENOTTY). */
export const EVENTFD_FILE_OPS: FileOps<EventFd> = {
  kind: 'eventfd',
  release(file: SimFile<EventFd>): void {
    file.data.released();
  },
};

/** The path /proc/self/fd shows for an eventfd. */
export const EVENTFD_PATH = 'anon_inode:[eventfd]';

/** Makes an eventfd file (the caller installs it in an fd table). @throws SysError EINVAL (bad initval) */
export function createEventFdFile(options: EventFdOptions, registry?: Set<EventFd>): SimFile<EventFd> {
  return new SimFile(EVENTFD_FILE_OPS, EVENTFD_PATH, new EventFd(options, registry));
}

/** Whether a file is an eventfd. */
export function isEventFdFile(file: SimFile): file is SimFile<EventFd> {
  return file.ops === (EVENTFD_FILE_OPS as FileOps<unknown>);
}

/**
 * eventfd_ctx_fdget: the eventfd behind `fd` in `process`, with a new reference the caller must `put`.
 * @throws SysError EBADF (fd not open), EINVAL (not an eventfd)
 */
export function eventfdFileGet(process: Process, fd: number): SimFile<EventFd> {
  const file = process.fileOf(fd);
  if (file === undefined) throw sysError('EBADF', `fd ${fd} is not open`);
  if (!isEventFdFile(file)) throw sysError('EINVAL', `fd ${fd} is not an eventfd`);
  return file.get();
}

/**
 * The eventfd behind `fd` without taking a file reference (fdget + eventfd_ctx_fileget, for a waiter
 * that follows the file's lifetime through EPOLLHUP).
 * @throws SysError EBADF (fd not open), EINVAL (not an eventfd)
 */
export function eventfdOf(process: Process, fd: number): EventFd {
  const file = process.fileOf(fd);
  if (file === undefined) throw sysError('EBADF', `fd ${fd} is not open`);
  if (!isEventFdFile(file)) throw sysError('EINVAL', `fd ${fd} is not an eventfd`);
  return file.data;
}
