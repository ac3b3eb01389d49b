/**
 * Physical memory of the simulated machine: frames, their reference counts, and their bytes.
 *
 * Model:
 * - Two zones. The anonymous zone holds 4 KiB frames handed out in a seeded, scattered order, as a
 *   fragmented host's page allocator does: memory is used block by block (16 MiB blocks, in address
 *   order), and inside a block the frames come in a seeded pseudo-random order (a bijective mix of the
 *   index), so consecutive faults almost never land on adjacent frames. Bounding the scatter to a block
 *   keeps the per-frame bookkeeping of a mapping within a few cache-sized arrays. The huge zone holds hugetlb folios of any power-of-two size, each naturally aligned
 *   and physically contiguous, carved in slabs whose folios are handed out in a seeded shuffled order
 *   (so 512 consecutive 2 MiB pages do not form a 1 GiB run), and recycled through per-order free lists.
 * - A frame (or folio) lives while its reference count is non-zero. References are taken by process
 *   mappings (one per mapped frame or folio) and by pins (one per pinned 4 KiB page, as
 *   pin_user_pages with FOLL_LONGTERM takes a pin per page). A pinned frame outlives munmap and exit.
 * - Memory is sparse: per-frame counts live in chunks allocated on first use, and page bytes only for
 *   pages something wrote. Untouched memory reads as zeros and costs nothing.
 *
 * Frame numbers are plain numbers (below 2^32 in this layout). Nothing here knows about processes.
 */
import { SimBugError, sysError } from '../errors';
import { PAGE_SHIFT, PAGE_SIZE } from '../iommu/iommu-domain';

/** Frame number where the anonymous zone starts (4 GiB, above the 32-bit MMIO hole). */
export const ANON_BASE_PFN = 0x100000;
/** Frame number where the huge zone starts (1 TiB, so folios up to 512 GiB stay naturally aligned). */
export const HUGE_BASE_PFN = 2 ** (40 - PAGE_SHIFT);

/** Frames per scatter block and per refcount chunk: 4096 frames, 16 MiB. */
const CHUNK_SHIFT = 12;
const CHUNK_FRAMES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_FRAMES - 1;
/** The anonymous zone's reference chunks (anonRefChunks): frames per chunk as a shift, and the index mask. */
export const ANON_CHUNK_SHIFT = CHUNK_SHIFT;
export const ANON_CHUNK_MASK = CHUNK_MASK;
const EMPTY_CHUNK = new Uint32Array(0);
/** Hugetlb folios carved at once and shuffled. */
const HUGE_SLAB = 64;

export interface PhysMemoryOptions {
  /** Size of the anonymous zone; a power of two. Default 256 GiB. */
  anonBytes?: bigint;
  /** Size of the huge zone. Default 512 GiB. */
  hugeBytes?: bigint;
  /** Seed of the anonymous scatter. Default 1. */
  seed?: number;
}

/** A snapshot of what physical memory holds, for reports and invariant checks. */
export interface PhysMemoryStats {
  anonFramesInUse: number;
  hugeFoliosInUse: number;
  hugePagesInUse: number;
  /** Pages pinned now. */
  pinnedPages: number;
  /** Pages ever pinned / unpinned (cumulative, for cost models and reports). */
  pinnedTotal: number;
  unpinnedTotal: number;
  pagesWithData: number;
}

/** Physical frames of the machine. */
export class PhysMemory {
  readonly anonFrames: number;
  readonly hugeFrames: number;

  // Anonymous zone: refcount per frame in lazily allocated chunks; a seeded bijective scatter of the
  // allocation index, and a LIFO stack of freed frames (reused first, as a hot page allocator would).
  // Indexed by (pfn - ANON_BASE_PFN) >>> CHUNK_SHIFT; a dense array whose untouched slots all hold
  // the shared empty sentinel, so element access stays monomorphic and fast.
  private readonly _anonRef: Uint32Array[];
  /** log2 of the scatter block: 4096 frames, or the whole zone when it is smaller. */
  private readonly _blockBits: number;
  private readonly _mixA: number;
  private readonly _mixB: number;
  private _anonNext = 0;
  private _anonFree = new Uint32Array(1024);
  private _anonFreeTop = 0;
  private _anonInUse = 0;

  // Huge zone: folios in carving order (ascending head pfn, so binary search finds the folio of any
  // frame), their order, references, and free lists per order holding folio indexes.
  private readonly _folioHead: number[] = [];
  private readonly _folioOrder: number[] = [];
  private readonly _folioRef: number[] = [];
  private readonly _foliosFree = new Map<number, number[]>();
  private _hugeNext = HUGE_BASE_PFN;
  private _hugeInUsePages = 0;
  private _hugeFoliosInUse = 0;

  private _pinned = 0;
  private _pinnedTotal = 0;
  private _unpinnedTotal = 0;
  private readonly _data = new Map<number, Uint8Array>();

  constructor(options: PhysMemoryOptions = {}) {
    const anonBytes = options.anonBytes ?? 1n << 38n;
    const hugeBytes = options.hugeBytes ?? 1n << 39n;
    const anonFrames = Number(anonBytes >> BigInt(PAGE_SHIFT));
    if (anonFrames < 1 || (anonFrames & (anonFrames - 1)) !== 0 || anonFrames > 2 ** 30) {
      throw new RangeError('anonBytes must be a power of two between 4 KiB and 4 TiB');
    }
    this.anonFrames = anonFrames;
    this._blockBits = Math.min(CHUNK_SHIFT, Math.log2(anonFrames));
    this._anonRef = new Array<Uint32Array>(Math.ceil(anonFrames / CHUNK_FRAMES)).fill(EMPTY_CHUNK);
    this.hugeFrames = Number(hugeBytes >> BigInt(PAGE_SHIFT));
    // Odd multipliers make each multiply step a bijection modulo 2^bits.
    const seed = (options.seed ?? 1) >>> 0;
    this._mixA = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) | 1) >>> 0;
    this._mixB = (Math.imul(seed ^ 0x7f4a7c15, 0xc2b2ae35) | 1) >>> 0;
  }

  // ---- anonymous zone -------------------------------------------------------------------------

  /**
   * Allocates one 4 KiB frame for an anonymous page fault, with one reference (the mapping).
   * @throws SysError ENOMEM when the zone is exhausted.
   */
  allocAnon(): number {
    let pfn: number;
    if (this._anonFreeTop > 0) {
      pfn = this._anonFree[--this._anonFreeTop]!;
    } else if (this._anonNext < this.anonFrames) {
      pfn = ANON_BASE_PFN + this._scatter(this._anonNext++);
    } else {
      throw sysError('ENOMEM', 'anonymous memory exhausted');
    }
    let chunk = this._anonRef[(pfn - ANON_BASE_PFN) >>> CHUNK_SHIFT]!;
    if (chunk.length === 0) chunk = this._anonChunk(pfn);
    chunk[pfn & CHUNK_MASK] = 1;
    this._anonInUse++;
    return pfn;
  }

  /**
   * The frame offset of allocation `index`: blocks in order, and inside each block a bijection on
   * [0, 4096) (multiply by odd constants and xor-shift modulo 2^12, salted per block).
   */
  private _scatter(index: number): number {
    const bits = this._blockBits;
    const block = index >>> bits;
    const mask = (1 << bits) - 1;
    if (bits === 0) return index;
    let x = (index ^ Math.imul(block, 0x9e37)) & mask;
    x = Math.imul(x, this._mixA) & mask;
    x ^= x >>> ((bits >>> 1) + 1);
    x = Math.imul(x, this._mixB) & mask;
    x ^= x >>> ((bits >>> 2) + 1);
    return block * (mask + 1) + x;
  }

  private _anonChunk(pfn: number): Uint32Array {
    const chunk = new Uint32Array(CHUNK_FRAMES);
    this._anonRef[(pfn - ANON_BASE_PFN) >>> CHUNK_SHIFT] = chunk;
    return chunk;
  }

  // ---- huge zone --------------------------------------------------------------------------------

  /**
   * Allocates a naturally aligned, physically contiguous folio of 2^order frames, with one reference.
   * @throws SysError ENOMEM when the huge zone cannot hold it.
   */
  allocHuge(order: number): number {
    let free = this._foliosFree.get(order);
    if (free === undefined || free.length === 0) {
      this._carveSlab(order);
      free = this._foliosFree.get(order)!;
    }
    const index = free.pop()!;
    this._folioRef[index] = 1;
    this._hugeFoliosInUse++;
    this._hugeInUsePages += 2 ** order;
    return this._folioHead[index]!;
  }

  /**
   * Carves up to HUGE_SLAB folios of 2^order frames from the zone and puts them on the free list in a
   * seeded shuffled order, as a hugetlb pool whose pages were freed and reused over time hands them out:
   * consecutive hugepages are rarely physically adjacent. @throws SysError ENOMEM when none fits
   */
  private _carveSlab(order: number): void {
    const pages = 2 ** order;
    const head = Math.ceil(this._hugeNext / pages) * pages;
    const limit = HUGE_BASE_PFN + this.hugeFrames;
    const count = Math.min(HUGE_SLAB, Math.floor((limit - head) / pages));
    if (count <= 0) throw sysError('ENOMEM', 'hugetlb pool exhausted');
    // Alignment gaps below `head` are carved into smaller free folios so no memory is lost.
    this._carveGap(this._hugeNext, head);
    const indexes: number[] = [];
    for (let i = 0; i < count; i++) {
      indexes.push(this._folioHead.length);
      this._folioHead.push(head + i * pages);
      this._folioOrder.push(order);
      this._folioRef.push(0);
    }
    this._hugeNext = head + count * pages;
    // Fisher–Yates with a xorshift32 stream seeded per slab; allocation pops from the end.
    let x = (this._mixA ^ Math.imul(head, 0x27d4eb2d)) >>> 0 || 1;
    for (let i = indexes.length - 1; i > 0; i--) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const j = (x >>> 0) % (i + 1);
      [indexes[i], indexes[j]] = [indexes[j]!, indexes[i]!];
    }
    this._freeList(order).push(...indexes);
  }

  /** Whether a folio of 2^order frames could be allocated now (hugetlb reservation at mmap). */
  canAllocHuge(order: number, count: number): boolean {
    const pages = 2 ** order;
    const free = this._foliosFree.get(order)?.length ?? 0;
    if (free >= count) return true;
    const head = Math.ceil(this._hugeNext / pages) * pages;
    return head + (count - free) * pages <= HUGE_BASE_PFN + this.hugeFrames;
  }

  private _carveGap(from: number, to: number): void {
    let at = from;
    while (at < to) {
      // The largest naturally aligned power-of-two block that starts at `at` and fits before `to`.
      let order = 0;
      while (at % 2 ** (order + 1) === 0 && at + 2 ** (order + 1) <= to) order++;
      const index = this._folioHead.length;
      this._folioHead.push(at);
      this._folioOrder.push(order);
      this._folioRef.push(0);
      this._freeList(order).push(index);
      at += 2 ** order;
    }
  }

  private _freeList(order: number): number[] {
    let list = this._foliosFree.get(order);
    if (list === undefined) {
      list = [];
      this._foliosFree.set(order, list);
    }
    return list;
  }

  /** The index of the folio holding `pfn`, or -1. */
  private _folioOf(pfn: number): number {
    const heads = this._folioHead;
    let lo = 0;
    let hi = heads.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const head = heads[mid]!;
      if (pfn < head) hi = mid - 1;
      else if (pfn >= head + 2 ** this._folioOrder[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  // ---- references and pins ---------------------------------------------------------------------

  /** Whether `pfn` is in the huge zone. */
  isHuge(pfn: number): boolean {
    return pfn >= HUGE_BASE_PFN;
  }

  /** Takes `count` references on the frames [pfn, pfn + count) (pin_user_pages on a run). */
  pin(pfn: number, count: number): void {
    this._adjust(pfn, count, 1);
    this._pinned += count;
    this._pinnedTotal += count;
  }

  /**
   * The pinning fast path of AddressSpace: the anonymous zone's reference chunks, indexed by
   * (pfn - ANON_BASE_PFN) >>> ANON_CHUNK_SHIFT, entry pfn & ANON_CHUNK_MASK. The pin scan takes one
   * reference per page right where it reads the page's frame, then reports the batch with notePinned.
   */
  anonRefChunks(): readonly Uint32Array[] {
    return this._anonRef;
  }

  /** Takes `count` references on the frames [pfn, pfn + count) without counting them as pinned yet. */
  refRun(pfn: number, count: number): void {
    this._adjust(pfn, count, 1);
  }

  /** Counts `pages` references taken with refRun or anonRefChunks as pinned pages. */
  notePinned(pages: number): void {
    this._pinned += pages;
    this._pinnedTotal += pages;
  }

  /** Drops references taken but never counted as pinned (a scan that failed before handing its batch over). */
  unrefRuns(pfn: Uint32Array, count: Uint32Array, length: number): void {
    for (let r = 0; r < length; r++) this._adjust(pfn[r]!, count[r]!, -1);
  }

  /** Drops pinned references (a batch the visitor refused, or unpinning after unmap). */
  unpinRuns(pfn: Uint32Array, count: Uint32Array, length: number): void {
    for (let r = 0; r < length; r++) this.unpin(pfn[r]!, count[r]!);
  }

  /** Drops the references `pin` took; frames whose last reference goes are freed. */
  unpin(pfn: number, count: number): void {
    if (count > this._pinned) throw new SimBugError(`unpin of ${count} pages with ${this._pinned} pinned`);
    this._adjust(pfn, count, -1);
    this._pinned -= count;
    this._unpinnedTotal += count;
  }

  /** Drops the mapping reference of an anonymous frame or a whole folio (munmap, exit). */
  release(pfn: number): void {
    if (pfn >= HUGE_BASE_PFN) {
      const index = this._folioOf(pfn);
      if (index < 0 || this._folioHead[index] !== pfn) throw new SimBugError(`release of ${pfn} which is no folio head`);
      this._putFolio(index, 1);
    } else {
      this._putAnon(pfn, 1);
    }
  }

  private _adjust(pfn: number, count: number, sign: 1 | -1): void {
    if (pfn >= HUGE_BASE_PFN) {
      // A run may span several adjacent folios; each takes one reference per page of the run in it.
      let at = pfn;
      const end = pfn + count;
      while (at < end) {
        const index = this._folioOf(at);
        if (index < 0 || this._folioRef[index] === 0) throw new SimBugError(`pin of free huge frame ${at}`);
        const folioEnd = this._folioHead[index]! + 2 ** this._folioOrder[index]!;
        const n = Math.min(end, folioEnd) - at;
        if (sign > 0) this._folioRef[index]! += n;
        else this._putFolio(index, n);
        at += n;
      }
      return;
    }
    if (sign < 0) {
      for (let at = pfn, end = pfn + count; at < end; at++) this._putAnon(at, 1);
      return;
    }
    const refs = this._anonRef;
    for (let at = pfn, end = pfn + count; at < end; at++) {
      const chunk = refs[(at - ANON_BASE_PFN) >>> CHUNK_SHIFT]!;
      const i = at & CHUNK_MASK;
      const ref = chunk.length === 0 ? 0 : chunk[i]!;
      if (ref === 0) throw new SimBugError(`pin of free frame ${at}`);
      chunk[i] = ref + 1;
    }
  }

  private _putAnon(pfn: number, n: number): void {
    const chunk = this._anonRef[(pfn - ANON_BASE_PFN) >>> CHUNK_SHIFT];
    const ref = chunk === undefined || chunk.length === 0 ? 0 : chunk[pfn & CHUNK_MASK]!;
    if (ref < n) throw new SimBugError(`refcount underflow on frame ${pfn}`);
    chunk![pfn & CHUNK_MASK] = ref - n;
    if (ref !== n) return;
    if (this._anonFreeTop === this._anonFree.length) {
      const grown = new Uint32Array(this._anonFree.length * 2);
      grown.set(this._anonFree);
      this._anonFree = grown;
    }
    this._anonFree[this._anonFreeTop++] = pfn;
    this._anonInUse--;
    if (this._data.size !== 0) this._data.delete(pfn);
  }

  private _putFolio(index: number, n: number): void {
    const ref = this._folioRef[index]!;
    if (ref < n) throw new SimBugError(`refcount underflow on folio ${this._folioHead[index]}`);
    this._folioRef[index] = ref - n;
    if (ref !== n) return;
    const head = this._folioHead[index]!;
    const pages = 2 ** this._folioOrder[index]!;
    this._freeList(this._folioOrder[index]!).push(index);
    this._hugeFoliosInUse--;
    this._hugeInUsePages -= pages;
    if (this._data.size !== 0) {
      for (const pfn of [...this._data.keys()]) if (pfn >= head && pfn < head + pages) this._data.delete(pfn);
    }
  }

  /** The reference count of a frame (its folio's, in the huge zone). For tests and invariant checks. */
  refCount(pfn: number): number {
    if (pfn >= HUGE_BASE_PFN) {
      const index = this._folioOf(pfn);
      return index < 0 ? 0 : this._folioRef[index]!;
    }
    if (pfn < ANON_BASE_PFN) return 0;
    const chunk = this._anonRef[(pfn - ANON_BASE_PFN) >>> CHUNK_SHIFT];
    return chunk === undefined || chunk.length === 0 ? 0 : chunk[pfn & CHUNK_MASK]!;
  }

  // ---- bytes -------------------------------------------------------------------------------------

  /** Copies `length` bytes of frame `pfn` from `offset` into `out` at `outOffset`. */
  read(pfn: number, offset: number, out: Uint8Array, outOffset: number, length: number): void {
    const page = this._data.get(pfn);
    if (page === undefined) out.fill(0, outOffset, outOffset + length);
    else out.set(page.subarray(offset, offset + length), outOffset);
  }

  /** Writes `length` bytes of `src` from `srcOffset` into frame `pfn` at `offset`. */
  write(pfn: number, offset: number, src: Uint8Array, srcOffset: number, length: number): void {
    let page = this._data.get(pfn);
    if (page === undefined) {
      page = new Uint8Array(PAGE_SIZE);
      this._data.set(pfn, page);
    }
    page.set(src.subarray(srcOffset, srcOffset + length), offset);
  }

  /**
   * The live 4 KiB byte array of frame `pfn`, created (zeroed) on first use; reads and writes through
   * `read`/`write` (process memory, device DMA) see the same bytes. For callers that keep a view of a
   * page instead of copying (the VMM's guest RAM). The array belongs to the frame until the frame is
   * freed: a caller that keeps it must hold a reference (a mapping or a pin) for as long.
   */
  pageData(pfn: number): Uint8Array {
    let page = this._data.get(pfn);
    if (page === undefined) {
      page = new Uint8Array(PAGE_SIZE);
      this._data.set(pfn, page);
    }
    return page;
  }

  stats(): PhysMemoryStats {
    return {
      anonFramesInUse: this._anonInUse,
      hugeFoliosInUse: this._hugeFoliosInUse,
      hugePagesInUse: this._hugeInUsePages,
      pinnedPages: this._pinned,
      pinnedTotal: this._pinnedTotal,
      unpinnedTotal: this._unpinnedTotal,
      pagesWithData: this._data.size,
    };
  }
}
