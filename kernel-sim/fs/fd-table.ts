/**
 * A process's file descriptor table: the lowest free number is handed out first (POSIX), and each
 * slot holds one reference to its file.
 */
import { sysError } from '../errors';
import type { SimFile } from './file';

/** RLIMIT_NOFILE's usual soft limit. */
export const DEFAULT_FD_LIMIT = 1024;

/** Descriptor numbers → open files. */
export class FdTable {
  private readonly _files: (SimFile | undefined)[] = [];
  private _open = 0;

  constructor(private readonly _limit = DEFAULT_FD_LIMIT) {}

  /** Installs `file` (taking over the caller's reference) at the lowest free number. @throws SysError EMFILE */
  install(file: SimFile): number {
    let fd = this._files.indexOf(undefined);
    if (fd < 0) fd = this._files.length;
    if (fd >= this._limit) throw sysError('EMFILE', 'file descriptor limit reached');
    this._files[fd] = file;
    this._open++;
    return fd;
  }

  /** The file behind `fd`. @throws SysError EBADF */
  get(fd: number): SimFile {
    const file = this._files[fd];
    if (file === undefined) throw sysError('EBADF', `fd ${fd} is not open`);
    return file;
  }

  /** The file behind `fd`, or undefined (fdget for code that reports its own errno). */
  lookup(fd: number): SimFile | undefined {
    return Number.isInteger(fd) && fd >= 0 ? this._files[fd] : undefined;
  }

  /** Empties the slot and drops its reference. @throws SysError EBADF */
  close(fd: number): void {
    const file = this.get(fd);
    this._files[fd] = undefined;
    this._open--;
    file.put();
  }

  /** Open descriptor numbers, ascending. */
  openFds(): number[] {
    const fds: number[] = [];
    this._files.forEach((file, fd) => {
      if (file !== undefined) fds.push(fd);
    });
    return fds;
  }

  get openCount(): number {
    return this._open;
  }
}
