/**
 * Open files (struct file) and the operations behind them (struct file_operations).
 *
 * - A file is reference counted like the kernel's: each fd that names it holds one reference, and so
 *   may kernel objects (a VFIO device fd keeps its group's file alive, vfio_df_group_open). When the
 *   last reference goes, `release` runs once.
 * - Every operation is optional; an absent `ioctl` answers ENOTTY, as vfs_ioctl does for a file
 *   without unlocked_ioctl.
 */
import { SimBugError, sysError } from '../errors';
import type { Process } from '../process';

/** What an ioctl receives: a by-value number, or the bytes of the struct a pointer points to. */
export type IoctlArg = number | bigint | Uint8Array | string | undefined;

/** The operations of a kind of file. */
export interface FileOps<T = unknown> {
  /** A short name of the kind of file, for errors and tracing ('vfio-container'). */
  readonly kind: string;
  /**
   * Handles a request; returns the ioctl's non-negative result.
   * @throws SysError with the kernel's errno
   */
  ioctl?(file: SimFile<T>, request: number, arg: IoctlArg, caller: Process): number;
  /** The name of a request on this kind of file, for errors ('VFIO_IOMMU_MAP_DMA'). */
  requestName?(request: number): string | undefined;
  /** Runs when the last reference goes. Must not fail. */
  release?(file: SimFile<T>): void;
}

/** An open file. */
export class SimFile<T = unknown> {
  private _refs = 1;

  constructor(
    readonly ops: FileOps<T>,
    readonly path: string,
    /** The object the file stands for (private_data). */
    readonly data: T,
  ) {}

  get refCount(): number {
    return this._refs;
  }

  get isReleased(): boolean {
    return this._refs === 0;
  }

  /** get_file(). */
  get(): this {
    if (this._refs === 0) throw new SimBugError(`get of released file ${this.path}`);
    this._refs++;
    return this;
  }

  /** fput(): drops a reference and releases the file on the last one. */
  put(): void {
    if (this._refs === 0) throw new SimBugError(`refcount underflow on file ${this.path}`);
    if (--this._refs === 0) this.ops.release?.(this);
  }

  /** Dispatches an ioctl to the file's operations. @throws SysError */
  ioctl(request: number, arg: IoctlArg, caller: Process): number {
    const ioctl = this.ops.ioctl;
    if (ioctl === undefined) throw sysError('ENOTTY', `${this.ops.kind} has no ioctls`);
    return ioctl.call(this.ops, this, request, arg, caller);
  }
}
