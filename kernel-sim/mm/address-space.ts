/**
 * A process's user address space (mm_struct): VMAs of anonymous or hugetlb memory, demand paging,
 * long-term pinning (pin_user_pages with FOLL_LONGTERM) and the `locked_vm` counter that RLIMIT_MEMLOCK
 * bounds.
 *
 * Model:
 * - Addresses are 4 KiB virtual page numbers (`vpfn`, plain numbers); the public face converts bigints.
 * - Each VMA records one folio slot per page of its page size: 0 while not faulted, else frame + 1.
 *   Anonymous VMAs use 4 KiB pages from the scattered zone; hugetlb VMAs use naturally aligned folios of
 *   their page size. A VMA costs 4 bytes per page of its page size and nothing per untouched byte.
 * - Pinning faults pages in, takes one reference per pinned 4 KiB page, and hands the caller each
 *   maximal physically contiguous run (what vfio_pin_pages_remote() returns, batches aside).
 * - Ranges: `end` is exclusive, `last` inclusive.
 */
import { SimBugError, sysError } from '../errors';
import { FaultInjector } from '../fault-injector';
import { PAGE_SHIFT } from '../iommu/iommu-domain';
import { ANON_BASE_PFN, ANON_CHUNK_MASK, ANON_CHUNK_SHIFT, PhysMemory } from './phys-mem';

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;

/** Where mmap places mappings (the x86-64 mmap base area). */
const MMAP_BASE_VPFN = 0x7e0000000000 / 4096;
/** New mappings start 2 MiB-aligned, as thp_get_unmapped_area places large anonymous mappings. */
const MIN_MMAP_ALIGN_ORDER = 9;

export type VmaKind = 'anon' | 'hugetlb';

/** One virtual memory area. */
export interface Vma {
  startVpfn: number;
  /** 4 KiB pages. */
  pageCount: number;
  /** log2 of the page size in 4 KiB pages: 0 for 4 KiB, 9 for 2 MiB, 18 for 1 GiB. */
  order: number;
  prot: number;
  kind: VmaKind;
  /** Per page of the VMA's page size: 0 = not faulted, else frame number + 1. */
  folios: Uint32Array;
}

/**
 * A batch of pinned, physically contiguous runs: `pfn[i]`, `count[i]` for i < `length`, `pages` in all.
 * Frame numbers fit 32 bits in this machine's layout (PhysMemory: below 2^29), so the batch is integer
 * typed arrays and the hot loops stay in integer arithmetic.
 * The arrays are scratch space reused by the next batch; read them, do not keep them.
 */
export interface PinnedRuns {
  readonly pfn: Uint32Array;
  readonly count: Uint32Array;
  length: number;
  pages: number;
}

/** Receives each batch of pinned runs; may throw to stop the pinning (the batch is unpinned). */
export type PinnedRunsVisitor = (runs: PinnedRuns) => void;

/** Runs per batch: VFIO_BATCH_MAX_CAPACITY (PAGE_SIZE / sizeof(struct page *)). */
export const PIN_BATCH_RUNS = 512;

/** The state of a batch being filled: runs [0, n], `pages` pages, `runEnd` one past the last frame. */
interface RunScan {
  n: number;
  pages: number;
  runEnd: number;
}

/**
 * Scans 4 KiB folio slots [i, iEnd) into runs, merging physically adjacent frames, and takes one reference
 * on each page's frame as it goes (every frame of an anonymous VMA is in the anonymous zone). Returns the
 * slot index where it stopped: iEnd, a slot not faulted in yet, or the first slot that needs a run the full
 * batch has no room for. Kept small and free of calls so it compiles to a tight loop.
 */
function scanSmallPages(
  folios: Uint32Array,
  i: number,
  iEnd: number,
  pfns: Uint32Array,
  counts: Uint32Array,
  scan: RunScan,
  refs: readonly Uint32Array[],
): number {
  let n = scan.n;
  let runEnd = scan.runEnd;
  let pages = scan.pages;
  for (; i < iEnd; i++) {
    const slot = folios[i]!;
    if (slot === 0) break;
    const pfn = slot - 1;
    if (pfn === runEnd) {
      counts[n] = counts[n]! + 1;
    } else {
      if (n + 1 === PIN_BATCH_RUNS) break;
      pfns[++n] = pfn;
      counts[n] = 1;
    }
    const chunk = refs[(pfn - ANON_BASE_PFN) >>> ANON_CHUNK_SHIFT]!;
    const j = pfn & ANON_CHUNK_MASK;
    const ref = chunk[j]!;
    // A mapped frame holds the mapping's reference: 0 (or a chunk never allocated) is a simulator bug.
    if (!(ref > 0)) throw new SimBugError(`pin of free frame ${pfn}`);
    chunk[j] = ref + 1;
    runEnd = pfn + 1;
    pages++;
  }
  scan.n = n;
  scan.runEnd = runEnd;
  scan.pages = pages;
  return i;
}

/** The address space of one process. */
export class AddressSpace {
  private readonly _vmas: Vma[] = [];
  private _nextVpfn = MMAP_BASE_VPFN;
  private _lockedVm = 0;
  private _dead = false;
  private readonly _scan: RunScan = { n: -1, pages: 0, runEnd: -1 };
  private readonly _runs: PinnedRuns = {
    pfn: new Uint32Array(PIN_BATCH_RUNS),
    count: new Uint32Array(PIN_BATCH_RUNS),
    length: 0,
    pages: 0,
  };

  constructor(
    private readonly _phys: PhysMemory,
    private readonly _faults: FaultInjector,
  ) {}

  /** Pages charged against RLIMIT_MEMLOCK (mm->locked_vm). */
  get lockedVm(): number {
    return this._lockedVm;
  }

  /** True once the process exited and its memory was torn down. */
  get isDead(): boolean {
    return this._dead;
  }

  /**
   * Creates a mapping of `pageCount` 4 KiB pages (rounded up to the page size) and returns its vpfn.
   * @throws SysError EINVAL (zero length, bad page size), ENOMEM (hugetlb pool cannot back it)
   */
  mmap(pageCount: number, order: number, prot: number, kind: VmaKind): number {
    if (this._dead) throw new SimBugError('mmap on a dead address space');
    if (!Number.isSafeInteger(pageCount) || pageCount <= 0) throw sysError('EINVAL', 'mmap length is zero');
    const perFolio = 2 ** order;
    const folioCount = Math.ceil(pageCount / perFolio);
    // hugetlb reserves its pages at mmap time (hugetlb_reserve_pages), so an empty pool fails here.
    if (kind === 'hugetlb' && !this._phys.canAllocHuge(order, folioCount)) {
      throw sysError('ENOMEM', 'not enough free hugetlb pages');
    }
    const align = 2 ** Math.max(order, MIN_MMAP_ALIGN_ORDER);
    const start = Math.ceil(this._nextVpfn / align) * align;
    const vma: Vma = { startVpfn: start, pageCount: folioCount * perFolio, order, prot, kind, folios: new Uint32Array(folioCount) };
    this._nextVpfn = start + vma.pageCount;
    this._vmas.push(vma); // addresses only grow, so the list stays sorted
    return start;
  }

  /**
   * Removes the mappings in [vpfn, vpfn + pageCount). Pinned frames stay allocated until unpinned.
   * @throws SysError EINVAL (not aligned to the page size of a VMA it cuts)
   */
  munmap(vpfn: number, pageCount: number): void {
    const end = vpfn + pageCount;
    // Validate every cut first so that a failing munmap changes nothing.
    for (const vma of this._vmas) {
      const perFolio = 2 ** vma.order;
      const vEnd = vma.startVpfn + vma.pageCount;
      if (vEnd <= vpfn || vma.startVpfn >= end) continue;
      if ((vpfn > vma.startVpfn && (vpfn - vma.startVpfn) % perFolio !== 0) || (end < vEnd && (end - vma.startVpfn) % perFolio !== 0)) {
        throw sysError('EINVAL', 'munmap range is not aligned to the hugetlb page size');
      }
    }
    const kept: Vma[] = [];
    for (const vma of this._vmas) {
      const vEnd = vma.startVpfn + vma.pageCount;
      if (vEnd <= vpfn || vma.startVpfn >= end) {
        kept.push(vma);
        continue;
      }
      const perFolio = 2 ** vma.order;
      const cutFrom = Math.max(vpfn, vma.startVpfn);
      const cutTo = Math.min(end, vEnd);
      const firstFolio = (cutFrom - vma.startVpfn) / perFolio;
      const lastFolio = (cutTo - vma.startVpfn) / perFolio;
      this._releaseFolios(vma, firstFolio, lastFolio);
      if (cutFrom > vma.startVpfn) {
        kept.push({ ...vma, pageCount: cutFrom - vma.startVpfn, folios: vma.folios.slice(0, firstFolio) });
      }
      if (cutTo < vEnd) {
        kept.push({ ...vma, startVpfn: cutTo, pageCount: vEnd - cutTo, folios: vma.folios.slice(lastFolio) });
      }
    }
    this._vmas.length = 0;
    this._vmas.push(...kept);
  }

  private _releaseFolios(vma: Vma, from: number, to: number): void {
    const folios = vma.folios;
    for (let i = from; i < to; i++) {
      const slot = folios[i]!;
      if (slot !== 0) {
        this._phys.release(slot - 1);
        folios[i] = 0;
      }
    }
  }

  /** The VMA containing `vpfn`, or undefined. */
  findVma(vpfn: number): Vma | undefined {
    const vmas = this._vmas;
    let lo = 0;
    let hi = vmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const vma = vmas[mid]!;
      if (vpfn < vma.startVpfn) hi = mid - 1;
      else if (vpfn >= vma.startVpfn + vma.pageCount) lo = mid + 1;
      else return vma;
    }
    return undefined;
  }

  /** The frame behind `vpfn`, faulting it in. @throws SysError EFAULT (not mapped, or no permission) */
  resolve(vpfn: number, write: boolean): number {
    const vma = this.findVma(vpfn);
    if (vma === undefined) throw sysError('EFAULT', 'address is not mapped');
    if ((vma.prot & (write ? PROT_WRITE : PROT_READ)) === 0) throw sysError('EFAULT', 'mapping does not allow this access');
    const offset = vpfn - vma.startVpfn;
    const index = offset >>> vma.order;
    const slot = vma.folios[index]!;
    const head = slot !== 0 ? slot - 1 : this._fault(vma, index);
    return head + (offset & (2 ** vma.order - 1));
  }

  private _fault(vma: Vma, index: number): number {
    const head = vma.kind === 'hugetlb' ? this._phys.allocHuge(vma.order) : this._phys.allocAnon();
    vma.folios[index] = head + 1;
    return head;
  }

  /**
   * Pins the pages of [vpfn, vpfn + pageCount) for long-term DMA (pin_user_pages_remote with
   * FOLL_LONGTERM, plus FOLL_WRITE when `write`), faulting them in, and hands them to `visit` as batches
   * of maximal physically contiguous runs, in address order (vfio_pin_pages_remote with its vfio_batch).
   * If `visit` throws, the batch it was given is unpinned and the error propagates; batches visited
   * before stay pinned and belong to the caller. A page that cannot be pinned (not mapped, no permission,
   * injected failure) ends the pinning with EFAULT the same way, after the pages before it were visited.
   * @throws SysError EFAULT, ENOMEM (no frame to fault in), or whatever `visit` throws
   */
  pin(vpfn: number, pageCount: number, write: boolean, visit: PinnedRunsVisitor): void {
    const need = write ? PROT_WRITE : PROT_READ;
    const allowed = this._faults.pinBudget(pageCount);
    const runs = this._runs;
    const pfns = runs.pfn;
    const counts = runs.count;
    runs.length = 0;
    runs.pages = 0;
    // The batch being filled: runs [0, n] with `pages` pages; `runEnd` is one past the last frame. Its
    // references are taken as pages are scanned; a failure before it is handed over gives them back.
    const scan = this._scan;
    scan.n = -1;
    scan.pages = 0;
    scan.runEnd = -1;
    const refs = this._phys.anonRefChunks();
    let at = vpfn;
    const end = vpfn + allowed;
    try {
      while (at < end) {
        const vma = this.findVma(at);
        if (vma === undefined || (vma.prot & need) === 0) break;
        const vmaEnd = Math.min(end, vma.startVpfn + vma.pageCount);
        const folios = vma.folios;
        const start = vma.startVpfn;
        if (vma.order === 0) {
          // 4 KiB pages: the tight loop lives in scanSmallPages; faults and full batches come back here.
          while (at < vmaEnd) {
            at = start + scanSmallPages(folios, at - start, vmaEnd - start, pfns, counts, scan, refs);
            if (at === vmaEnd) break;
            if (folios[at - start] === 0) this._fault(vma, at - start);
            else this._flush(scan, visit);
          }
          continue;
        }
        const perFolio = 2 ** vma.order;
        while (at < vmaEnd) {
          const index = Math.floor((at - start) / perFolio);
          const slot = folios[index]!;
          const head = slot !== 0 ? slot - 1 : this._fault(vma, index);
          const within = at - start - index * perFolio;
          const len = Math.min(perFolio - within, vmaEnd - at);
          const pfn = head + within;
          if (pfn === scan.runEnd) {
            counts[scan.n] = counts[scan.n]! + len;
          } else {
            if (scan.n + 1 === PIN_BATCH_RUNS) this._flush(scan, visit);
            pfns[++scan.n] = pfn;
            counts[scan.n] = len;
          }
          this._phys.refRun(pfn, len);
          scan.runEnd = pfn + len;
          scan.pages += len;
          at += len;
        }
      }
    } catch (err) {
      // A fault-in failed (ENOMEM) with a batch scanned but not handed over: its references go back.
      if (scan.n >= 0) this._phys.unrefRuns(pfns, counts, scan.n + 1);
      scan.n = -1;
      scan.pages = 0;
      throw err;
    }
    if (scan.n >= 0) this._flush(scan, visit);
    if (at < vpfn + pageCount) {
      if (allowed < pageCount && at === end) throw FaultInjector.pinFailure();
      throw sysError('EFAULT', this.findVma(at) === undefined ? 'address is not mapped' : 'mapping does not allow this access');
    }
  }

  /** Hands the batch in `scan` to the visitor and starts an empty one. */
  private _flush(scan: RunScan, visit: PinnedRunsVisitor): void {
    const length = scan.n + 1;
    const pages = scan.pages;
    scan.n = -1;
    scan.pages = 0;
    scan.runEnd = -1;
    const runs = this._runs;
    runs.length = length;
    runs.pages = pages;
    this._phys.notePinned(pages);
    try {
      visit(runs);
    } catch (err) {
      this._phys.unpinRuns(runs.pfn, runs.count, runs.length);
      throw err;
    } finally {
      runs.length = 0;
      runs.pages = 0;
    }
  }

  /**
   * Charges `pages` to locked_vm (__account_locked_vm). `limitPages` undefined means the caller had
   * CAP_IPC_LOCK, which bypasses the limit but still counts.
   * @throws SysError ENOMEM when the limit would be exceeded
   */
  accountLocked(pages: number, limitPages: number | undefined): void {
    if (this._dead) throw sysError('ENODEV', 'address space is gone');
    // mm/util.c __account_locked_vm: locked_vm + pages > limit fails unless capable(CAP_IPC_LOCK).
    if (limitPages !== undefined && this._lockedVm + pages > limitPages) {
      throw sysError('ENOMEM', 'RLIMIT_MEMLOCK would be exceeded');
    }
    this._lockedVm += pages;
  }

  /** Returns pages to locked_vm; nothing happens once the process is gone (mmget_not_zero fails). */
  unaccountLocked(pages: number): void {
    if (this._dead) return;
    if (pages > this._lockedVm) throw new SimBugError(`locked_vm underflow: ${pages} > ${this._lockedVm}`);
    this._lockedVm -= pages;
  }

  /** Copies process memory out, faulting pages in. @throws SysError EFAULT */
  read(vpfn: number, offset: number, out: Uint8Array): void {
    this._copy(vpfn, offset, out, false);
  }

  /** Copies into process memory, faulting pages in. @throws SysError EFAULT */
  write(vpfn: number, offset: number, src: Uint8Array): void {
    this._copy(vpfn, offset, src, true);
  }

  private _copy(vpfn: number, offset: number, buf: Uint8Array, write: boolean): void {
    const pageSize = 1 << PAGE_SHIFT;
    // Check the whole range before touching anything, as copy_{to,from}_user fails short otherwise.
    const pages = Math.ceil((offset + buf.length) / pageSize);
    for (let i = 0; i < pages; i++) {
      const vma = this.findVma(vpfn + i);
      if (vma === undefined || (vma.prot & (write ? PROT_WRITE : PROT_READ)) === 0) throw sysError('EFAULT', 'bad user address');
    }
    let done = 0;
    let page = vpfn;
    let inPage = offset;
    while (done < buf.length) {
      const n = Math.min(pageSize - inPage, buf.length - done);
      const pfn = this.resolve(page, write);
      if (write) this._phys.write(pfn, inPage, buf, done, n);
      else this._phys.read(pfn, inPage, buf, done, n);
      done += n;
      page++;
      inPage = 0;
    }
  }

  /**
   * The live byte array of the 4 KiB page `vpfn` (PhysMemory.pageData of its frame), faulting it in.
   * Valid while the page stays mapped. @throws SysError EFAULT (not mapped, or no permission)
   */
  pageBytes(vpfn: number, write: boolean): Uint8Array {
    return this._phys.pageData(this.resolve(vpfn, write));
  }

  /** Frames this address space maps (faulted folios, in 4 KiB pages). For invariant checks. */
  residentPages(): number {
    let pages = 0;
    for (const vma of this._vmas) {
      const perFolio = 2 ** vma.order;
      for (let i = 0; i < vma.folios.length; i++) if (vma.folios[i] !== 0) pages += perFolio;
    }
    return pages;
  }

  /** Tears the address space down at exit: every mapping goes; pinned frames stay with their pins. */
  destroy(): void {
    for (const vma of this._vmas) this._releaseFolios(vma, 0, vma.folios.length);
    this._vmas.length = 0;
    this._dead = true;
  }
}
