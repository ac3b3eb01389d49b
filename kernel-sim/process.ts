/**
 * A user process: its file descriptors, its address space, its limits and capabilities, and the
 * syscall surface (open/close/ioctl/mmap/munmap and memory access) that userspace code calls.
 *
 * Errors leave as SysError enriched at this boundary with the syscall, the path of the file and the
 * request name, as Node's uvException does; deep code only says which errno and why.
 */
import { SimBugError, SysError, sysError } from './errors';
import { createEventFdFile, isEventFdFile, type EventFd, type EventFdOptions } from './fs/eventfd';
import { FdTable } from './fs/fd-table';
import type { IoctlArg, SimFile } from './fs/file';
import { PAGE_SHIFT } from './iommu/iommu-domain';
import { AddressSpace, PROT_NONE, PROT_READ, PROT_WRITE } from './mm/address-space';
import type { Kernel } from './kernel';

/** Capabilities the simulator consults. */
export type Capability = 'CAP_IPC_LOCK' | 'CAP_SYS_RAWIO' | 'CAP_SYS_ADMIN';

/** How a process is started. */
export interface SpawnOptions {
  /** RLIMIT_MEMLOCK in bytes. Default 8 MiB, the kernel default since 5.16. */
  memlockLimit?: bigint;
  capabilities?: readonly Capability[];
  name?: string;
}

/** Page sizes mmap accepts: a name, or a power-of-two number of bytes (hugetlb when above 4 KiB). */
export type PageSize = '4K' | '2M' | '1G' | number | bigint;

/** mmap's options. */
export interface MmapOptions {
  /** Default '4K' (anonymous memory); anything larger is hugetlb (MAP_HUGETLB). */
  pageSize?: PageSize;
  /** Default 'rw'. */
  prot?: 'none' | 'r' | 'rw';
  /** Fault every page in now (MAP_POPULATE). */
  populate?: boolean;
}

export const DEFAULT_MEMLOCK_LIMIT = 8n << 20n;

const PAGE_MASK = (1n << BigInt(PAGE_SHIFT)) - 1n;

/** A process of the simulated machine. */
export class Process {
  readonly mm: AddressSpace;
  private readonly _fds = new FdTable();
  private readonly _caps: Set<Capability>;
  private readonly _hasIpcLock: boolean;
  /** RLIMIT_MEMLOCK in pages; read on every MAP_DMA, so kept as a number. */
  private _memlockPages: number;
  private _exited = false;

  constructor(
    readonly kernel: Kernel,
    readonly pid: number,
    options: SpawnOptions = {},
  ) {
    this.mm = new AddressSpace(kernel.phys, kernel.faultInjector);
    this._caps = new Set(options.capabilities ?? []);
    this._hasIpcLock = this._caps.has('CAP_IPC_LOCK');
    this._memlockPages = toPages(options.memlockLimit ?? DEFAULT_MEMLOCK_LIMIT);
  }

  get hasExited(): boolean {
    return this._exited;
  }

  hasCapability(cap: Capability): boolean {
    return this._caps.has(cap);
  }

  /** setrlimit(RLIMIT_MEMLOCK). */
  setMemlockLimit(bytes: bigint): void {
    this._memlockPages = toPages(bytes);
  }

  /** RLIMIT_MEMLOCK in pages, or undefined when CAP_IPC_LOCK lifts the limit. */
  memlockLimitPages(): number | undefined {
    return this._hasIpcLock ? undefined : this._memlockPages;
  }

  // ---- files -------------------------------------------------------------------------------------

  /** open(path, O_RDWR). @throws SysError ENOENT, or the node's own errno */
  open(path: string): number {
    this._alive();
    let file: SimFile;
    try {
      file = this.kernel.devfs.open(this, path);
    } catch (err) {
      throw enrich(err, 'open', path);
    }
    return this.installFile(file);
  }

  /** Installs a file made by a driver (an ioctl that returns a new fd); takes over its reference. */
  installFile(file: SimFile): number {
    try {
      return this._fds.install(file);
    } catch (err) {
      file.put();
      throw err;
    }
  }

  /** close(fd). @throws SysError EBADF */
  close(fd: number): void {
    try {
      this._fds.close(fd);
    } catch (err) {
      throw enrich(err, 'close', undefined, fd);
    }
  }

  /** The file behind a descriptor of this process, or undefined (fdget). */
  fileOf(fd: number): SimFile | undefined {
    return this._fds.lookup(fd);
  }

  /** Open descriptor numbers. */
  openFds(): number[] {
    return this._fds.openFds();
  }

  /**
   * ioctl(fd, request, arg): the non-negative result, or a SysError with the kernel's errno.
   * A by-value argument is a number or bigint; a pointer argument is the struct's bytes, read and written
   * in place.
   * @throws SysError
   */
  ioctl(fd: number, request: number, arg?: IoctlArg): number {
    const file = this._fds.lookup(fd);
    if (file === undefined) throw enrich(sysError('EBADF', `fd ${fd} is not open`), 'ioctl', undefined, fd, request);
    try {
      return file.ioctl(request, arg, this);
    } catch (err) {
      throw enrich(err, 'ioctl', file.path, fd, request, file);
    }
  }

  /** ioctl in the C style: the result, or -errno. Bugs still throw. */
  ioctlRaw(fd: number, request: number, arg?: IoctlArg): number {
    try {
      return this.ioctl(fd, request, arg);
    } catch (err) {
      if (err instanceof SysError) return err.errno;
      throw err;
    }
  }

  // ---- eventfd -----------------------------------------------------------------------------------

  /**
   * eventfd2(initval, EFD_NONBLOCK [| EFD_SEMAPHORE]): a new eventfd, for VFIO_DEVICE_SET_IRQS.
   * @throws SysError EINVAL (initval not an unsigned int), EMFILE
   */
  eventfd(options: EventFdOptions = {}): number {
    this._alive();
    try {
      return this.installFile(createEventFdFile(options, this.kernel.eventfds));
    } catch (err) {
      throw enrich(err, 'eventfd2');
    }
  }

  /**
   * read(fd, &u64, 8) on a non-blocking eventfd: the count (then cleared; 1 and a decrement with
   * EFD_SEMAPHORE).
   * @throws SysError EAGAIN (nothing arrived), EBADF (fd not open), EINVAL (not an eventfd)
   */
  eventfdRead(fd: number): bigint {
    try {
      return this._eventfd(fd).read();
    } catch (err) {
      throw enrich(err, 'read', undefined, fd);
    }
  }

  /**
   * write(fd, &u64, 8) on a non-blocking eventfd: adds `value`.
   * @throws SysError EAGAIN (the counter would overflow), EINVAL (ULLONG_MAX, or not an eventfd), EBADF
   */
  eventfdWrite(fd: number, value: bigint | number = 1n): void {
    try {
      this._eventfd(fd).write(BigInt(value));
    } catch (err) {
      throw enrich(err, 'write', undefined, fd);
    }
  }

  private _eventfd(fd: number): EventFd {
    const file = this._fds.lookup(fd);
    if (file === undefined) throw sysError('EBADF', `fd ${fd} is not open`);
    if (!isEventFdFile(file)) throw sysError('EINVAL', `fd ${fd} is not an eventfd`);
    return file.data;
  }

  // ---- memory ------------------------------------------------------------------------------------

  /**
   * mmap(NULL, length, prot, MAP_PRIVATE|MAP_ANONYMOUS[|MAP_HUGETLB]): the new mapping's address.
   * Memory is accounted strictly (vm.overcommit_memory = 2): a mapping larger than the machine's
   * anonymous memory is refused at once.
   * @throws SysError EINVAL (zero or non-integer length, bad page size), ENOMEM (no memory or hugetlb pages)
   */
  mmap(length: number | bigint, options: MmapOptions = {}): bigint {
    this._alive();
    try {
      const order = pageOrder(options.pageSize ?? '4K');
      const bytes = toByteCount(length);
      if (bytes <= 0n) throw sysError('EINVAL', 'mmap length is zero');
      if (bytes >> BigInt(PAGE_SHIFT) > BigInt(this.kernel.phys.anonFrames)) throw sysError('ENOMEM', 'mapping is larger than the machine');
      const pages = Number((bytes + PAGE_MASK) >> BigInt(PAGE_SHIFT));
      const prot = options.prot === 'none' ? PROT_NONE : options.prot === 'r' ? PROT_READ : PROT_READ | PROT_WRITE;
      const vpfn = this.mm.mmap(pages, order, prot, order === 0 ? 'anon' : 'hugetlb');
      if (options.populate === true && prot !== PROT_NONE) {
        for (let p = 0; p < pages; p += 2 ** order) this.mm.resolve(vpfn + p, false);
      }
      return BigInt(vpfn) << BigInt(PAGE_SHIFT);
    } catch (err) {
      throw enrich(err, 'mmap');
    }
  }

  /** munmap(addr, length). @throws SysError EINVAL (unaligned) */
  munmap(vaddr: bigint, length: number | bigint): void {
    try {
      if ((vaddr & PAGE_MASK) !== 0n) throw sysError('EINVAL', 'munmap address is not page aligned');
      const bytes = toByteCount(length);
      if (bytes <= 0n) throw sysError('EINVAL', 'munmap length is zero');
      this.mm.munmap(Number(vaddr >> BigInt(PAGE_SHIFT)), Number((bytes + PAGE_MASK) >> BigInt(PAGE_SHIFT)));
    } catch (err) {
      throw enrich(err, 'munmap');
    }
  }

  /** Reads this process's memory (process_vm_readv on itself). @throws SysError EFAULT, EINVAL (bad length) */
  readMemory(vaddr: bigint, length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_RW_BYTES) {
      throw enrich(sysError('EINVAL', 'length must be a byte count of at most 2 GiB'), 'process_vm_readv');
    }
    if (vaddr < 0n) throw enrich(sysError('EFAULT', 'bad user address'), 'process_vm_readv');
    const out = new Uint8Array(length);
    try {
      this.mm.read(Number(vaddr >> BigInt(PAGE_SHIFT)), Number(vaddr & PAGE_MASK), out);
    } catch (err) {
      throw enrich(err, 'process_vm_readv');
    }
    return out;
  }

  /** Writes this process's memory. @throws SysError EFAULT */
  writeMemory(vaddr: bigint, bytes: Uint8Array): void {
    if (vaddr < 0n) throw enrich(sysError('EFAULT', 'bad user address'), 'process_vm_writev');
    try {
      this.mm.write(Number(vaddr >> BigInt(PAGE_SHIFT)), Number(vaddr & PAGE_MASK), bytes);
    } catch (err) {
      throw enrich(err, 'process_vm_writev');
    }
  }

  /**
   * The live 4 KiB data array of the page holding `vaddr` (not a copy: writes through it are the page's
   * bytes, and DMA or writeMemory into the page shows in it), faulting the page in; `write` asks for
   * write permission. The array stays the page's bytes while the page is mapped; after munmap or exit it
   * must not be used. For VMM components that keep views of guest RAM.
   * @throws SysError EFAULT (not mapped, or the mapping does not allow the access)
   */
  pageBytes(vaddr: bigint, write: boolean): Uint8Array {
    try {
      return this.mm.pageBytes(Number(vaddr >> BigInt(PAGE_SHIFT)), write);
    } catch (err) {
      throw enrich(err, write ? 'process_vm_writev' : 'process_vm_readv');
    }
  }

  // ---- lifetime ----------------------------------------------------------------------------------

  /** exit(): every fd is closed (lowest first), then the address space goes. */
  exit(): void {
    if (this._exited) return;
    for (const fd of this._fds.openFds()) this._fds.close(fd);
    this.mm.destroy();
    this._exited = true;
    this.kernel.reap(this);
  }

  private _alive(): void {
    if (this._exited) throw new SimBugError(`process ${this.pid} used after exit`);
  }
}

/** process_vm_readv transfers at most MAX_RW_COUNT (INT_MAX rounded down to a page) per call. */
const MAX_RW_BYTES = 0x7ffff000;

/** A length argument as bytes. @throws SysError EINVAL for a number that is not a whole count */
function toByteCount(length: number | bigint): bigint {
  if (typeof length === 'bigint') return length;
  if (!Number.isSafeInteger(length)) throw sysError('EINVAL', 'length is not a whole number of bytes');
  return BigInt(length);
}

/** A byte limit in whole 4 KiB pages (rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT). */
function toPages(bytes: bigint): number {
  return Number(bytes >> BigInt(PAGE_SHIFT));
}

/** Turns a page size option into log2 of 4 KiB pages. */
function pageOrder(size: PageSize): number {
  if (size === '4K') return 0;
  if (size === '2M') return 9;
  if (size === '1G') return 18;
  const bytes = BigInt(size);
  if (bytes < 4096n || (bytes & (bytes - 1n)) !== 0n) throw sysError('EINVAL', 'page size must be a power of two of at least 4 KiB');
  return bytes.toString(2).length - 1 - PAGE_SHIFT;
}

function enrich(err: unknown, syscall: string, path?: string, fd?: number, request?: number, file?: SimFile): unknown {
  if (err instanceof SysError) {
    const name = request === undefined ? undefined : (file?.ops.requestName?.(request) ?? `0x${request.toString(16)}`);
    err.enrich(syscall, path, fd, name);
  }
  return err;
}
