/**
 * Guest RAM as the VMM sees it: a region of the VMM process's memory, where guest-physical address g
 * is the host virtual address hva + g (one flat RAM block at GPA 0, as kvmtool lays guest memory out).
 * Virtqueues and request handling read and write guest memory through this class.
 *
 * - GPAs and lengths are plain numbers: every GPA inside guest RAM is exact. Ranges are
 *   `[gpa, gpa + length)`. Guest RAM is below 16 TiB (2^44 − 4 KiB at most), so page numbers stay
 *   32-bit.
 * - An access outside [0, size) throws RangeError: callers that handle guest-controlled addresses check
 *   `contains` first, so a RangeError is a bug in the caller, never a guest-visible outcome.
 * - Fast path: the live 4 KiB data array of each page (Process.pageBytes) is fetched once, on the first
 *   access to the page, and kept in a two-level table indexed by page number. Guest RAM is never
 *   remapped while the GuestMemory lives, so the views are never invalidated. Aligned accesses that stay
 *   inside one page do no allocation and no BigInt work (except readU64/writeU64, which return bigints).
 * - Pages are fetched with write permission: guest RAM is a read-write mapping. A page of the region
 *   that the VMM did not map (or mapped read-only) throws SysError EFAULT on its first access.
 * - Multi-byte values are little-endian (virtio 1.x).
 */
import type { Process } from '../kernel-sim';
import { LITTLE_ENDIAN } from './host-order';

const PAGE_SHIFT = 12;
const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;
/** Pages per second-level table (2 MiB of guest RAM). */
const LEAF_SHIFT = 9;
const LEAF_PAGES = 1 << LEAF_SHIFT;
const LEAF_MASK = LEAF_PAGES - 1;
/** Marks a page whose view was not fetched yet; keeps the tables monomorphic (always Uint8Array). */
const NO_PAGE = new Uint8Array(0);
/** A leaf whose pages were all never fetched (shared; replaced by a real leaf on the first fetch). */
const NO_LEAF: Uint8Array[] = new Array<Uint8Array>(LEAF_PAGES).fill(NO_PAGE);
const NO_WORDS = new Uint32Array(0);
const NO_WORD_LEAF: Uint32Array[] = new Array<Uint32Array>(LEAF_PAGES).fill(NO_WORDS);
/** Copies up to this many bytes go byte by byte (cheaper than a subarray for small requests). */
const SMALL_COPY = 64;
const TWO_32 = 0x1_0000_0000;
/** The largest guest RAM: with any page offset of hva it spans at most 2^32 host pages (32-bit page numbers). */
const MAX_GUEST_RAM = (1n << 44n) - 4096n;

/** Guest-physical memory backed by the VMM process's memory at `hva`. */
export class GuestMemory {
  /** Bytes of guest RAM: valid GPAs are [0, size). */
  readonly size: number;
  private readonly _process: Process;
  private readonly _hva: bigint;
  /** hva's offset inside its page: GPA g lies in host page ((g + _skew) >> 12) of the region. */
  private readonly _skew: number;
  /** The host page number of the region's first page, as a bigint (for Process.pageBytes). */
  private readonly _firstPage: bigint;
  private readonly _leaves: Uint8Array[][];
  /** The same pages as 1024 u32 words (NO_WORDS where a page cannot be viewed so). */
  private readonly _wordLeaves: Uint32Array[][];
  /** The last source array `write` copied words from, and its word view. */
  private _lastSource: Uint8Array = NO_PAGE;
  private _lastSourceWords: Uint32Array = NO_WORDS;

  /**
   * @param process the VMM process whose memory holds guest RAM
   * @param hva host virtual address of GPA 0
   * @param size bytes of guest RAM
   * @throws RangeError when size is not in [1, 2^44 − 4096] or the region wraps the 64-bit address space
   */
  constructor(process: Process, hva: bigint, size: bigint) {
    if (size <= 0n || size > MAX_GUEST_RAM) throw new RangeError(`guest RAM size ${size} is not in [1, 2^44 - 4096]`);
    if (hva < 0n || hva + size > 1n << 64n) throw new RangeError(`guest RAM at ${hva} + ${size} wraps the address space`);
    this._process = process;
    this._hva = hva;
    this.size = Number(size);
    this._skew = Number(hva & BigInt(PAGE_MASK));
    this._firstPage = hva >> BigInt(PAGE_SHIFT);
    const pages = Math.ceil((this._skew + this.size) / PAGE_SIZE);
    this._leaves = new Array<Uint8Array[]>(Math.ceil(pages / LEAF_PAGES)).fill(NO_LEAF);
    this._wordLeaves = new Array<Uint32Array[]>(Math.ceil(pages / LEAF_PAGES)).fill(NO_WORD_LEAF);
  }

  /** The host virtual address of `gpa` (no range check). */
  hvaOf(gpa: number): bigint {
    return this._hva + BigInt(gpa);
  }

  /** Whether [gpa, gpa + length) lies inside guest RAM (false for negative, fractional or NaN input). */
  contains(gpa: number, length: number): boolean {
    return Number.isSafeInteger(gpa) && Number.isSafeInteger(length) && gpa >= 0 && length >= 0 && gpa + length <= this.size;
  }

  /**
   * The live view of the host page that holds `gpa`, fetched on first use: the byte of `gpa` is at
   * `pageOffset(gpa)` and the view runs to the end of that page (4096 − pageOffset(gpa) bytes of guest
   * RAM from `gpa`, or fewer at the end of guest RAM). For callers that decode several fields at once
   * (descriptors); they must stay inside guest RAM and inside the page.
   * @throws RangeError when `gpa` is outside guest RAM
   */
  pageOf(gpa: number): Uint8Array {
    this._check(gpa, 1);
    return this._page(gpa + this._skew);
  }

  /**
   * The same page as `pageOf(gpa)`, viewed as 1024 little-endian u32 words (word w holds bytes 4w..4w+3),
   * or an empty array when the host cannot view it so (a big-endian host); callers fall back to bytes.
   * For aligned bulk copies and descriptor decoding.
   * @throws RangeError when `gpa` is outside guest RAM
   */
  pageWordsOf(gpa: number): Uint32Array {
    this._check(gpa, 1);
    const a = gpa + this._skew;
    const words = this._pageWords(a);
    if (words.length !== 0) return words;
    this._page(a);
    return this._pageWords(a);
  }

  /** Where `gpa`'s byte sits in `pageOf(gpa)`: (hva + gpa) mod 4096. */
  pageOffset(gpa: number): number {
    return (gpa + this._skew) & PAGE_MASK;
  }

  /** Reads a little-endian u16. @throws RangeError outside guest RAM */
  readU16(gpa: number): number {
    this._check(gpa, 2);
    const a = gpa + this._skew;
    const o = a & PAGE_MASK;
    if (o > PAGE_SIZE - 2) return this._slowRead(a, 2);
    const p = this._page(a);
    return p[o]! | (p[o + 1]! << 8);
  }

  /** Reads a little-endian u32 as a non-negative number. @throws RangeError outside guest RAM */
  readU32(gpa: number): number {
    this._check(gpa, 4);
    const a = gpa + this._skew;
    const o = a & PAGE_MASK;
    if (o > PAGE_SIZE - 4) return this._slowRead(a, 4);
    const p = this._page(a);
    return (p[o]! | (p[o + 1]! << 8) | (p[o + 2]! << 16) | (p[o + 3]! << 24)) >>> 0;
  }

  /** Reads a little-endian u64 as a bigint in [0, 2^64). @throws RangeError outside guest RAM */
  readU64(gpa: number): bigint {
    this._check(gpa, 8);
    const lo = this.readU32(gpa);
    const hi = this.readU32(gpa + 4);
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  /**
   * Reads a little-endian u64 as a number: exact below 2^53; at or above 2^53 the result is rounded
   * but still ≥ 2^53, which is enough to reject it as a guest address. No BigInt on this path.
   * @throws RangeError outside guest RAM
   */
  readU64Number(gpa: number): number {
    this._check(gpa, 8);
    return this.readU32(gpa + 4) * TWO_32 + this.readU32(gpa);
  }

  /** Writes the low 16 bits of `v`, little-endian. @throws RangeError outside guest RAM */
  writeU16(gpa: number, v: number): void {
    this._check(gpa, 2);
    const a = gpa + this._skew;
    const o = a & PAGE_MASK;
    if (o > PAGE_SIZE - 2) {
      this._slowWrite(a, 2, v);
      return;
    }
    const p = this._page(a);
    p[o] = v;
    p[o + 1] = v >>> 8;
  }

  /** Writes `v` modulo 2^32, little-endian. @throws RangeError outside guest RAM */
  writeU32(gpa: number, v: number): void {
    this._check(gpa, 4);
    const a = gpa + this._skew;
    const o = a & PAGE_MASK;
    if (o > PAGE_SIZE - 4) {
      this._slowWrite(a, 4, v);
      return;
    }
    const p = this._page(a);
    p[o] = v;
    p[o + 1] = v >>> 8;
    p[o + 2] = v >>> 16;
    p[o + 3] = v >>> 24;
  }

  /** Writes `v` modulo 2^64, little-endian. @throws RangeError outside guest RAM */
  writeU64(gpa: number, v: bigint): void {
    this._check(gpa, 8);
    const x = BigInt.asUintN(64, v);
    this.writeU32(gpa, Number(x & 0xffff_ffffn));
    this.writeU32(gpa + 4, Number(x >> 32n));
  }

  /**
   * Copies guest RAM [gpa, gpa + length) into `out` at `outOffset`.
   * @param length default: the rest of `out` after `outOffset`
   * @throws RangeError outside guest RAM, or when `out` cannot hold `length` bytes at `outOffset`
   */
  read(gpa: number, out: Uint8Array, outOffset = 0, length = out.length - outOffset): void {
    this._check(gpa, length);
    checkBuffer(out, outOffset, length);
    let a = gpa + this._skew;
    let to = outOffset;
    const end = outOffset + length;
    while (to < end) {
      const o = a & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - o, end - to);
      const p = this._page(a);
      if (n <= SMALL_COPY) {
        for (let i = 0; i < n; i++) out[to + i] = p[o + i]!;
      } else {
        out.set(p.subarray(o, o + n), to);
      }
      to += n;
      a += n;
    }
  }

  /**
   * Copies `length` bytes of `src` from `srcOffset` into guest RAM at `gpa`.
   * @param length default: the rest of `src` after `srcOffset`
   * @throws RangeError outside guest RAM, or when `src` holds fewer than `length` bytes at `srcOffset`
   */
  write(gpa: number, src: Uint8Array, srcOffset = 0, length = src.length - srcOffset): void {
    this._check(gpa, length);
    checkBuffer(src, srcOffset, length);
    let a = gpa + this._skew;
    let from = srcOffset;
    const end = srcOffset + length;
    while (from < end) {
      const o = a & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - o, end - from);
      const p = this._page(a);
      if (n <= SMALL_COPY) {
        let i = 0;
        if (n >= 8 && ((o | (src.byteOffset + from)) & 3) === 0) {
          // Aligned on both sides: whole words first (the source's word view is cached for reuse).
          const sw = this._wordsOfSource(src);
          const dw = this._pageWords(a);
          if (sw.length !== 0 && dw.length !== 0) {
            const to = o >>> 2;
            const fromWord = (src.byteOffset + from - sw.byteOffset) >>> 2;
            const words = n >>> 2;
            for (let j = 0; j < words; j++) dw[to + j] = sw[fromWord + j]!;
            i = words << 2;
          }
        }
        for (; i < n; i++) p[o + i] = src[from + i]!;
      } else {
        p.set(src.subarray(from, from + n), o);
      }
      from += n;
      a += n;
    }
  }

  /** A u32 view of the words of `src`'s buffer that lie inside `src` (one cached; NO_WORDS if unaligned). */
  private _wordsOfSource(src: Uint8Array): Uint32Array {
    if (src === this._lastSource) return this._lastSourceWords;
    const first = (src.byteOffset + 3) & ~3;
    const words = (src.byteOffset + src.length - first) >> 2;
    const view = LITTLE_ENDIAN && words > 0 ? new Uint32Array(src.buffer, first, words) : NO_WORDS;
    this._lastSource = src;
    this._lastSourceWords = view;
    return view;
  }

  /** Sets guest RAM [gpa, gpa + length) to `value` (default 0). @throws RangeError outside guest RAM */
  fill(gpa: number, length: number, value = 0): void {
    this._check(gpa, length);
    let a = gpa + this._skew;
    let done = 0;
    while (done < length) {
      const o = a & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - o, length - done);
      const p = this._page(a);
      if (n <= SMALL_COPY) {
        for (let i = 0; i < n; i++) p[o + i] = value;
      } else {
        p.fill(value, o, o + n);
      }
      done += n;
      a += n;
    }
  }

  private _check(gpa: number, length: number): void {
    // Negated so that NaN fails; fractional GPAs are caught by isInteger.
    if (!(gpa >= 0 && length >= 0 && gpa + length <= this.size && Number.isInteger(gpa) && Number.isInteger(length))) {
      throw outsideGuestRam(gpa, length, this.size);
    }
  }

  /** The word view of the (already fetched) host page holding region offset `a`, or NO_WORDS. */
  private _pageWords(a: number): Uint32Array {
    const page = a < TWO_32 ? a >>> PAGE_SHIFT : (a - (a & PAGE_MASK)) / PAGE_SIZE;
    return this._wordLeaves[page >>> LEAF_SHIFT]![page & LEAF_MASK]!;
  }

  /** The view of the host page holding region offset `a` (= gpa + skew). */
  private _page(a: number): Uint8Array {
    const page = a < TWO_32 ? a >>> PAGE_SHIFT : (a - (a & PAGE_MASK)) / PAGE_SIZE;
    const view = this._leaves[page >>> LEAF_SHIFT]![page & LEAF_MASK]!;
    return view.length !== 0 ? view : this._fetch(page);
  }

  private _fetch(page: number): Uint8Array {
    let leaf = this._leaves[page >>> LEAF_SHIFT]!;
    let wordLeaf = this._wordLeaves[page >>> LEAF_SHIFT]!;
    if (leaf === NO_LEAF) {
      leaf = new Array<Uint8Array>(LEAF_PAGES).fill(NO_PAGE);
      this._leaves[page >>> LEAF_SHIFT] = leaf;
      wordLeaf = new Array<Uint32Array>(LEAF_PAGES).fill(NO_WORDS);
      this._wordLeaves[page >>> LEAF_SHIFT] = wordLeaf;
    }
    const view = this._process.pageBytes((this._firstPage + BigInt(page)) << BigInt(PAGE_SHIFT), true);
    leaf[page & LEAF_MASK] = view;
    if (LITTLE_ENDIAN && view.byteOffset % 4 === 0 && view.length === PAGE_SIZE) {
      wordLeaf[page & LEAF_MASK] = new Uint32Array(view.buffer, view.byteOffset, PAGE_SIZE / 4);
    }
    return view;
  }

  /** Little-endian read of `width` bytes that may straddle two pages. */
  private _slowRead(a: number, width: number): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + this._page(a + i)[(a + i) & PAGE_MASK]!;
    return v;
  }

  /** Little-endian write of the low `width` bytes of `v`, possibly straddling two pages. */
  private _slowWrite(a: number, width: number, v: number): void {
    for (let i = 0; i < width; i++) this._page(a + i)[(a + i) & PAGE_MASK] = v >>> (8 * i);
  }
}

/**
 * The error of an access outside guest RAM. Built in a function, not in a template literal at the
 * check: TurboFan keeps a literal's number-to-string conversions alive for the deoptimisation of the
 * never-taken throw, merges the identical ones of neighbouring inlined checks, and so hoists them into
 * the hot path (one NumberToString per descriptor in the virtqueue walk).
 */
function outsideGuestRam(gpa: number, length: number, size: number): RangeError {
  return new RangeError(`guest access [${gpa}, +${length}) is outside guest RAM of ${size} bytes`);
}

/** checkBuffer's error, built out of line (see outsideGuestRam). */
function doesNotFit(buf: Uint8Array, offset: number, length: number): RangeError {
  return new RangeError(`${length} bytes at offset ${offset} do not fit a ${buf.length}-byte buffer`);
}

function checkBuffer(buf: Uint8Array, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > buf.length) {
    throw doesNotFit(buf, offset, length);
  }
}
