/**
 * The driver side of one split virtqueue, as a guest driver runs it (Linux virtio_ring.c, split ring):
 * it lays the rings and a buffer area out in guest RAM, adds chains built from segments (direct or
 * through an indirect table, split into descriptors as finely as asked, down to 1 byte), publishes them,
 * decides whether a kick is needed (used.flags NO_NOTIFY or avail_event with EVENT_IDX), and reaps used
 * entries, reading back the device-writable bytes and freeing descriptors and buffers. Tests, benchmarks
 * and the guest driver model build on it; it also crafts malformed chains for the device's tests.
 *
 * Layout from the caller's GPA `base` (all inside guest RAM, zeroed at construction):
 * - descriptor table at align16(base), 16·N bytes;
 * - available ring right after it, 6 + 2·N bytes (2-aligned);
 * - used ring at the next 4-aligned GPA, 6 + 8·N bytes;
 * - a buffer area at the next 16-aligned GPA, `dataBytes` bytes, holding each chain's buffers (readable
 *   bytes, then writable bytes) and its indirect table, first-fit, 16-byte granules;
 * - with `slotBytes`, N request slots of that size right after it (starting where the page offset is a
 *   multiple of the slot size, so no slot crosses a page): `addRequest` puts a small request in the
 *   slot of its head descriptor.
 * `end` is the first GPA after the buffer area (after the slots when there are slots).
 *
 * Hot path: when each ring part lies in one page, the rings are read and written through typed-array
 * views of those pages taken at construction (split-virtqueue.ts RingView); `addRequest` + `reapInto`
 * move a MAP/UNMAP with no allocation and no buffer-area search.
 *
 * Driver conventions (Linux): add() publishes avail.idx at once (the chain becomes visible to the
 * device before the kick); kick() says whether the device wants a notification for the chains added
 * since the last kick; after each reaped entry, with EVENT_IDX and interrupts enabled, used_event is set
 * to the driver's last used index (interrupt me on the next one). The driver's bookkeeping (free list,
 * chain records) lives in the driver, never in the device-readable descriptor table.
 *
 * Misuse by the caller (queue full, buffer area full, bad segments) throws RangeError; a used entry that
 * names no chain in flight is a device bug and throws SimBugError.
 */
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
} from '../uapi';
import { SimBugError } from '../kernel-sim';
import type { GuestMemory } from './guest-memory';
import { IntervalFreeList } from './interval-free-list';
import { high32 } from './host-order';
import { isValidQueueSize, ringView, virtqLayout, vringNeedEvent, type QueueConfig, type VirtqueueFeatures } from './split-virtqueue';

// Module-level copies: a CommonJS re-export through the uapi barrel is a getter call on every use.
const NO_INTERRUPT = VIRTQ_AVAIL_F_NO_INTERRUPT;
const F_INDIRECT = VIRTQ_DESC_F_INDIRECT;
const F_NEXT = VIRTQ_DESC_F_NEXT;
const F_WRITE = VIRTQ_DESC_F_WRITE;
const NO_NOTIFY = VIRTQ_USED_F_NO_NOTIFY;

/** One element of a buffer: bytes the device reads, or a device-writable area (optionally pre-filled). */
export interface Segment {
  /** The segment's bytes: what the device reads, or the initial content of a writable area. */
  bytes?: Uint8Array;
  /** The segment's length when `bytes` is absent (the area is zero-filled). */
  length?: number;
  writable: boolean;
}

/** How add() lays a chain out. */
export interface AddOptions {
  /** Put the chain in an indirect table referenced by one ring descriptor. */
  indirect?: boolean;
  /** Split each segment into descriptors of at most this many bytes (e.g. 1). Default: one per segment. */
  splitEvery?: number;
  /** Leave this many bytes between consecutive descriptors' buffers, so gathering must follow addresses. */
  gap?: number;
}

/** A used entry the driver reaped. */
export interface UsedEntry {
  /** The chain's head descriptor index (as the device wrote it in used.ring[].id). */
  readonly head: number;
  /** Bytes the device says it wrote (used.ring[].len). */
  readonly len: number;
  /** A copy of the chain's whole device-writable part, gathered in chain order. */
  readonly writable: Uint8Array;
}

/** Layout options of the driver. */
export interface VirtqueueDriverOptions {
  /** Bytes of the buffer area. Default 64 KiB. */
  dataBytes?: number;
  /**
   * Bytes of a request slot per descriptor (0, the default: none). With slots, a region of N slots
   * follows the buffer area (`end` moves past it) and `addRequest` lays a small request (indirect table,
   * readable bytes, writable bytes) out in the slot of its head descriptor, with no allocation: what
   * Linux does with the request struct it kmallocs per request. A power of two in [64, 4096].
   */
  slotBytes?: number;
  /**
   * Start the free-running indices at this u16 instead of 0, as if `startIdx` chains had gone through:
   * avail.idx and used.idx in memory (with EVENT_IDX, used_event and avail_event too) and the driver's
   * own indices all start there. The device must be resumed at the same value
   * (SplitVirtqueueOptions.resume). For reaching the 65536 wrap quickly.
   */
  startIdx?: number;
}

/** Malformed chains the driver can craft for device tests (see addMalformed). */
export const MALFORMED_KINDS = [
  'loop',
  'out-of-range',
  'readable-after-writable',
  'oversized',
  'nested-indirect',
  'indirect-with-next',
  'indirect-bad-length',
  'indirect-out-of-range',
  'head-out-of-range',
  'next-out-of-range',
  'writable-over-descriptors',
] as const;
export type MalformedKind = (typeof MALFORMED_KINDS)[number];

/** A descriptor of a chain given to addRaw: `next` indexes the chain's list, `nextRaw` is written verbatim. */
export interface ChainDescriptor {
  addr: number;
  len: number;
  flags: number;
  next?: number;
  nextRaw?: number;
}

/** A raw descriptor, as written into a descriptor table. */
export interface RawDescriptor {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

const NONE = -1;
/** `_dataAt` of a chain laid out in its head's slot (nothing to free). */
const SLOT = -2;
const TWO_32 = 2 ** 32;
const NO_WORDS = new Uint32Array(0);
const NO_HALVES = new Uint16Array(0);

/** The driver side of one split virtqueue. */
export class VirtqueueDriver {
  /** Where the rings are, to hand to the device (SplitVirtqueue). */
  readonly config: QueueConfig;
  /** First GPA after the driver's region. */
  readonly end: number;
  /** Start of the buffer area. */
  readonly dataStart: number;
  private readonly _mem: GuestMemory;
  private readonly _size: number;
  private readonly _mask: number;
  private readonly _eventIdx: boolean;
  private readonly _usedEvent: number;
  private readonly _availEvent: number;

  // Descriptor free list (driver memory), and each chain's record, indexed by head.
  private readonly _nextFree: Int32Array;
  private _freeHead = 0;
  private _numFree: number;
  private readonly _chainDescs: Int32Array;
  private readonly _dataAt: Float64Array;
  private readonly _dataLen: Float64Array;
  private readonly _wAt: Float64Array;
  private readonly _wLen: Float64Array;
  private readonly _wPieces: (number[] | undefined)[];
  private readonly _inFlight: Uint8Array;
  /** Head values ≥ N published on purpose (addMalformed 'head-out-of-range'): value → count. */
  private readonly _bogusHeads = new Map<number, number>();
  private _inFlightCount = 0;

  private _availIdx = 0;
  private _kickedIdx = 0;
  private _lastUsed = 0;
  private _interrupts = true;
  private _kicks = 0;

  /** Scratch: the lengths of the segments add() is laying out. */
  private _segLengths = new Float64Array(8);
  /** Free buffer-area intervals [start, end) in GPA bytes. */
  private readonly _free = new IntervalFreeList();

  // Direct ring views (split-virtqueue.ts RingView) when all three parts have one (`_direct`).
  private readonly _direct: boolean;
  private readonly _descW: Uint32Array = NO_WORDS;
  private readonly _descW0: number = 0;
  private readonly _availH: Uint16Array = NO_HALVES;
  private readonly _availH0: number = 0;
  private readonly _usedH: Uint16Array = NO_HALVES;
  private readonly _usedH0: number = 0;
  private readonly _usedW: Uint32Array = NO_WORDS;
  private readonly _usedW0: number = 0;
  // Request slots (options.slotBytes): GPA of slot 0, bytes per slot, and each slot's page as words
  // with the slot's first word index (NO_WORDS when the slot cannot be viewed so).
  private readonly _slotBase: number = 0;
  private readonly _slotBytes: number = 0;
  private readonly _slotWords: Uint32Array[] = [];
  private readonly _slotW0: Int32Array = new Int32Array(0);
  /** The head of the entry the last `reapInto` returned. */
  private _reapedHead = -1;

  /**
   * @param base GPA where the region starts (rounded up to 16)
   * @param size queue size N: a power of two in [1, 32768]
   * @throws RangeError on a bad size or a region outside guest RAM
   */
  constructor(mem: GuestMemory, base: number, size: number, features: VirtqueueFeatures, options: VirtqueueDriverOptions = {}) {
    if (!isValidQueueSize(size)) throw new RangeError(`queue size ${size} is not a power of two in [1, 32768]`);
    const layout = virtqLayout(size);
    const desc = align(base, 16);
    const avail = desc + layout.descBytes;
    const used = align(avail + layout.availBytes, 4);
    const data = align(used + layout.usedBytes, 16);
    const dataBytes = align(options.dataBytes ?? 65536, 16);
    const slotBytes = options.slotBytes ?? 0;
    if (slotBytes !== 0 && !(Number.isInteger(slotBytes) && slotBytes >= 64 && slotBytes <= 4096 && (slotBytes & (slotBytes - 1)) === 0)) {
      throw new RangeError(`slotBytes ${slotBytes} is not a power of two in [64, 4096]`);
    }
    // Slots start where their host page offset is a multiple of slotBytes, so none crosses a page.
    const slotBase = slotBytes === 0 ? data + dataBytes : data + dataBytes + ((slotBytes - (mem.pageOffset(Math.min(data + dataBytes, mem.size - 1)) % slotBytes)) % slotBytes);
    this.end = slotBytes === 0 ? data + dataBytes : slotBase + size * slotBytes;
    if (!mem.contains(desc, this.end - desc)) throw new RangeError(`virtqueue region [${desc}, ${this.end}) is outside guest RAM`);
    this._mem = mem;
    this._size = size;
    this._mask = size - 1;
    this._eventIdx = features.eventIdx;
    this.config = { size, desc, avail, used };
    this.dataStart = data;
    this._usedEvent = avail + layout.usedEventOffset;
    this._availEvent = used + layout.availEventOffset;
    // "The driver MUST initialize flags in the used ring to 0 when allocating the used ring."
    mem.fill(desc, data - desc);
    const start = (options.startIdx ?? 0) & 0xffff;
    this._availIdx = start;
    this._kickedIdx = start;
    this._lastUsed = start;
    mem.writeU16(avail + 2, start);
    mem.writeU16(used + 2, start);
    if (features.eventIdx) {
      mem.writeU16(this._usedEvent, start);
      mem.writeU16(this._availEvent, start);
    }
    this._nextFree = new Int32Array(size);
    for (let i = 0; i < size; i++) this._nextFree[i] = i + 1 < size ? i + 1 : NONE;
    this._numFree = size;
    this._chainDescs = new Int32Array(size);
    this._dataAt = new Float64Array(size);
    this._dataLen = new Float64Array(size);
    this._wAt = new Float64Array(size);
    this._wLen = new Float64Array(size);
    this._wPieces = new Array<number[] | undefined>(size).fill(undefined);
    this._inFlight = new Uint8Array(size);
    if (dataBytes > 0) this._free.free(data, data + dataBytes);
    const dv = ringView(mem, desc, layout.descBytes);
    const av = ringView(mem, avail, layout.availBytes);
    const uv = ringView(mem, used, layout.usedBytes);
    this._direct = dv !== undefined && av !== undefined && uv !== undefined;
    if (dv !== undefined && av !== undefined && uv !== undefined) {
      this._descW = dv.u32;
      this._descW0 = dv.offset >>> 2;
      this._availH = av.u16;
      this._availH0 = av.offset >>> 1;
      this._usedH = uv.u16;
      this._usedH0 = uv.offset >>> 1;
      this._usedW = uv.u32;
      this._usedW0 = uv.offset >>> 2;
    }
    if (slotBytes !== 0) {
      this._slotBase = slotBase;
      this._slotBytes = slotBytes;
      this._slotW0 = new Int32Array(size);
      for (let h = 0; h < size; h++) {
        const v = ringView(mem, slotBase + h * slotBytes, slotBytes);
        this._slotWords.push(v === undefined ? NO_WORDS : v.u32);
        this._slotW0[h] = v === undefined ? 0 : v.offset >>> 2;
      }
    }
  }

  /** Queue size N. */
  get size(): number {
    return this._size;
  }

  /** Free descriptors in the descriptor table. */
  get freeDescriptors(): number {
    return this._numFree;
  }

  /** Chains added and not reaped yet. */
  get inFlight(): number {
    return this._inFlightCount;
  }

  /** Kicks that kick() said were needed. */
  get kicks(): number {
    return this._kicks;
  }

  /** The driver's available index (u16): what avail.idx holds. */
  get availIdx(): number {
    return this._availIdx;
  }

  /** The driver's last used index (u16): entries before it were reaped. */
  get lastUsedIdx(): number {
    return this._lastUsed;
  }

  /**
   * Lays a chain out from `segments` (in order; a valid chain has its readable segments first) and makes
   * it available. Returns the head descriptor index.
   * @throws RangeError when there are not enough free descriptors or buffer space, or a segment is bad
   */
  add(segments: readonly Segment[], options?: AddOptions): number {
    const split = options?.splitEvery ?? Infinity;
    const gap = options?.gap ?? 0;
    const indirect = options?.indirect === true;
    if (!(split >= 1)) throw new RangeError(`splitEvery ${split} must be at least 1`);
    if (!Number.isSafeInteger(gap) || gap < 0) throw new RangeError(`gap ${gap} must be a non-negative integer`);
    // Count descriptors and bytes.
    let pieces = 0;
    let bytes = 0;
    const lengths = this._segLengths.length >= segments.length ? this._segLengths : (this._segLengths = new Float64Array(2 * segments.length));
    for (let i = 0; i < segments.length; i++) {
      const len = segmentLength(segments[i]!);
      lengths[i] = len;
      pieces += len <= split ? 1 : Math.ceil(len / split);
      bytes += len;
    }
    if (pieces === 0) throw new RangeError('a chain needs at least one segment');
    const ringDescs = indirect ? 1 : pieces;
    if (ringDescs > this._numFree) throw tooFewDescriptors(ringDescs, this._numFree);
    const tableBytes = indirect ? 16 * pieces : 0;
    const areaBytes = tableBytes + bytes + gap * pieces;
    const area = this._alloc(areaBytes);
    const mem = this._mem;
    const descTable = this.config.desc;
    const nextFree = this._nextFree;
    const head = this._takeDescs(ringDescs);
    // Piece k of the chain goes at `at`, then `gap` bytes, then piece k + 1. The writable bytes are one
    // run [wAt, wEnd) unless gaps or a readable segment between writable ones split them into pieces.
    let at = area + tableBytes;
    let k = 0;
    let ringDesc = head;
    let wAt = -1;
    let wEnd = -1;
    let wPieces: number[] | undefined;
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      const len = lengths[i]!;
      const src = s.bytes;
      const writable = s.writable;
      let off = 0;
      do {
        const n = Math.min(split, len - off);
        if (src !== undefined) mem.write(at, src, off, n);
        else mem.fill(at, n);
        const last = k === pieces - 1;
        const flags = (last ? 0 : F_NEXT) | (writable ? F_WRITE : 0);
        if (indirect) {
          writeDesc(mem, area + 16 * k, at, n, flags, last ? 0 : k + 1);
        } else {
          const next = last ? 0 : nextFree[ringDesc]!;
          writeDesc(mem, descTable + 16 * ringDesc, at, n, flags, next);
          ringDesc = next;
        }
        if (writable) {
          if (wPieces !== undefined) {
            wPieces.push(at, n);
          } else if (wAt < 0) {
            wAt = at;
            wEnd = at + n;
          } else if (at === wEnd) {
            wEnd += n;
          } else {
            wPieces = [wAt, wEnd - wAt, at, n];
          }
        }
        at += n + gap;
        off += n;
        k++;
      } while (off < len);
    }
    if (indirect) writeDesc(mem, descTable + 16 * head, area, tableBytes, F_INDIRECT, 0);
    this._chainDescs[head] = ringDescs;
    this._dataAt[head] = area;
    this._dataLen[head] = areaBytes;
    this._wAt[head] = wAt < 0 ? 0 : wAt;
    this._wLen[head] = wAt < 0 ? 0 : wEnd - wAt;
    this._wPieces[head] = wPieces;
    this._publish(head);
    return head;
  }

  /**
   * Adds a request of `readLength` readable bytes (the first bytes of `src`, given as its u32 words)
   * followed by a zero-filled writable part of `writableLength` bytes, and makes it available: the
   * same chain as `add([{ bytes, writable: false }, { length, writable: true }], { indirect })` with
   * `indirect` the queue's INDIRECT_DESC feature as passed here, laid out in the head descriptor's slot
   * when the queue has slots and the request fits (no allocation, no buffer-area search); otherwise it
   * is exactly that add(). Returns the head.
   * @throws RangeError as add() does
   */
  addRequest(src: Uint32Array, readLength: number, writableLength: number, indirect: boolean): number {
    const slotBytes = this._slotBytes;
    const rAligned = (readLength + 3) & ~3;
    const tableBytes = indirect ? 32 : 0;
    const need = indirect ? 1 : 2;
    if (
      slotBytes === 0 ||
      !this._direct ||
      (readLength & 3) !== 0 ||
      readLength === 0 ||
      writableLength === 0 ||
      tableBytes + rAligned + writableLength > slotBytes ||
      readLength > 4 * src.length ||
      this._numFree < need
    ) {
      return this.add(
        [
          { bytes: new Uint8Array(src.buffer, src.byteOffset, readLength), writable: false },
          { length: writableLength, writable: true },
        ],
        { indirect },
      );
    }
    const head = this._takeDescs(need);
    const slotW = this._slotWords[head]!;
    if (slotW.length === 0) {
      this._giveBack(head, need);
      return this.add(
        [
          { bytes: new Uint8Array(src.buffer, src.byteOffset, readLength), writable: false },
          { length: writableLength, writable: true },
        ],
        { indirect },
      );
    }
    const slot = this._slotBase + head * slotBytes;
    const readAt = slot + tableBytes;
    const writeAt = readAt + rAligned;
    let w = this._slotW0[head]!;
    const dw = this._descW;
    const d = this._descW0 + 4 * head;
    if (indirect) {
      // Indirect table: [readable, NEXT → 1], [writable, WRITE].
      slotW[w] = readAt;
      slotW[w + 1] = 0;
      slotW[w + 2] = readLength;
      slotW[w + 3] = F_NEXT | (1 << 16);
      slotW[w + 4] = writeAt;
      slotW[w + 5] = 0;
      slotW[w + 6] = writableLength;
      slotW[w + 7] = F_WRITE;
      w += 8;
      dw[d] = slot;
      dw[d + 1] = 0;
      dw[d + 2] = 32;
      dw[d + 3] = F_INDIRECT;
    } else {
      const second = this._nextFree[head]!;
      const d2 = this._descW0 + 4 * second;
      dw[d] = readAt;
      dw[d + 1] = 0;
      dw[d + 2] = readLength;
      dw[d + 3] = F_NEXT | (second << 16);
      dw[d2] = writeAt;
      dw[d2 + 1] = 0;
      dw[d2 + 2] = writableLength;
      dw[d2 + 3] = F_WRITE;
    }
    const words = readLength >>> 2;
    for (let i = 0; i < words; i++) slotW[w + i] = src[i]!;
    w += words;
    const wWords = (writableLength + 3) >>> 2;
    for (let i = 0; i < wWords; i++) slotW[w + i] = 0;
    this._chainDescs[head] = need;
    this._dataAt[head] = SLOT;
    this._dataLen[head] = 0;
    this._wAt[head] = writeAt;
    this._wLen[head] = writableLength;
    this._wPieces[head] = undefined;
    this._publish(head);
    return head;
  }

  /**
   * Whether the device must be notified of the chains added since the last kick ("After the driver
   * writes a descriptor index into the available ring": without EVENT_IDX unless used.flags has
   * NO_NOTIFY; with EVENT_IDX iff avail_event is among the indices just published). False when nothing
   * was added. Counts the positive answers in `kicks`.
   */
  kick(): boolean {
    const newIdx = this._availIdx;
    const oldIdx = this._kickedIdx;
    if (newIdx === oldIdx) return false;
    this._kickedIdx = newIdx;
    let need: boolean;
    if (this._direct) {
      const usedH = this._usedH;
      need = this._eventIdx ? vringNeedEvent(usedH[this._usedH0 + 2 + 4 * this._size]!, newIdx, oldIdx) : (usedH[this._usedH0]! & NO_NOTIFY) === 0;
    } else {
      need = this._eventIdx ? vringNeedEvent(this._mem.readU16(this._availEvent), newIdx, oldIdx) : (this._mem.readU16(this.config.used) & NO_NOTIFY) === 0;
    }
    if (need) this._kicks++;
    return need;
  }

  /**
   * Takes the next used entry, copies the chain's writable part, and frees its descriptors and buffers.
   * Returns undefined when the device has not used anything new.
   * @param out where to copy the writable part (its first out.length bytes; the entry's `writable` is
   *   then `out` itself, no allocation); default: a new array of the writable part's length
   * @throws SimBugError when the entry's id names no chain in flight (a device bug)
   */
  reapOne(out?: Uint8Array): UsedEntry | undefined {
    const mem = this._mem;
    const used = this.config.used;
    if (mem.readU16(used + 2) === this._lastUsed) return undefined;
    const e = used + 4 + 8 * (this._lastUsed & this._mask);
    const head = mem.readU32(e);
    const len = mem.readU32(e + 4);
    this._lastUsed = (this._lastUsed + 1) & 0xffff;
    if (this._eventIdx && this._interrupts) mem.writeU16(this._usedEvent, this._lastUsed);
    if (head >= this._size || this._inFlight[head] === 0) {
      const bogus = this._bogusHeads.get(head);
      if (bogus === undefined) throw new SimBugError(`used entry names head ${head}, which is not in flight`);
      if (bogus === 1) this._bogusHeads.delete(head);
      else this._bogusHeads.set(head, bogus - 1);
      this._inFlightCount--;
      return { head, len, writable: out ?? new Uint8Array(0) };
    }
    const writable = this._readWritable(head, out);
    this._release(head);
    return { head, len, writable };
  }

  /**
   * reapOne without the entry object: takes the next used entry, copies the first `out.length` bytes
   * of the chain's writable part into `out`, frees the chain, and returns the used length (−1 when the
   * device has not used anything new). The entry's head is then `reapedHead`.
   * @throws SimBugError as reapOne
   */
  reapInto(out: Uint8Array): number {
    if (!this._direct) {
      const e = this.reapOne(out);
      if (e === undefined) return -1;
      this._reapedHead = e.head;
      return e.len;
    }
    const last = this._lastUsed;
    if (this._usedH[this._usedH0 + 1] === last) return -1;
    const e = this._usedW0 + 1 + 2 * (last & this._mask);
    const head = this._usedW[e]!;
    const len = this._usedW[e + 1]!;
    this._lastUsed = (last + 1) & 0xffff;
    if (this._eventIdx && this._interrupts) this._availH[this._availH0 + 2 + this._size] = this._lastUsed;
    this._reapedHead = head;
    if (head >= this._size || this._inFlight[head] === 0) {
      const bogus = this._bogusHeads.get(head);
      if (bogus === undefined) throw new SimBugError(`used entry names head ${head}, which is not in flight`);
      if (bogus === 1) this._bogusHeads.delete(head);
      else this._bogusHeads.set(head, bogus - 1);
      this._inFlightCount--;
      return len;
    }
    if (this._dataAt[head] === SLOT && out.length <= this._wLen[head]! && (out.length & 3) === 0) {
      // The writable part is word-aligned in the slot's page.
      const slotW = this._slotWords[head]!;
      const at = this._slotW0[head]! + ((this._wAt[head]! - this._slotBase - head * this._slotBytes) >>> 2);
      const words = out.length >>> 2;
      for (let i = 0; i < words; i++) {
        const v = slotW[at + i]!;
        out[4 * i] = v;
        out[4 * i + 1] = v >>> 8;
        out[4 * i + 2] = v >>> 16;
        out[4 * i + 3] = v >>> 24;
      }
    } else if (out.length !== 0) {
      this._readWritable(head, out);
    }
    this._release(head);
    return len;
  }

  /** The head of the entry the last successful `reapInto` returned (−1 before any). */
  get reapedHead(): number {
    return this._reapedHead;
  }

  /** Reaps every used entry available now. */
  reap(): UsedEntry[] {
    const out: UsedEntry[] = [];
    for (let e = this.reapOne(); e !== undefined; e = this.reapOne()) out.push(e);
    return out;
  }

  /**
   * Whether the driver wants used-buffer interrupts. Without EVENT_IDX: avail.flags = 0 or
   * NO_INTERRUPT. With EVENT_IDX (avail.flags stays 0): enabling sets used_event = last used index and
   * keeps it there after each reap; disabling stops updating it.
   */
  setInterrupts(enabled: boolean): void {
    this._interrupts = enabled;
    if (this._eventIdx) {
      if (enabled) this._mem.writeU16(this._usedEvent, this._lastUsed);
    } else {
      this._mem.writeU16(this.config.avail, enabled ? 0 : NO_INTERRUPT);
    }
  }

  // ---- raw access, for crafting what a correct driver never writes ------------------------------

  /** Writes used_event (the field exists in memory with or without EVENT_IDX). */
  setUsedEvent(idx: number): void {
    this._mem.writeU16(this._usedEvent, idx);
  }

  /** Writes avail.flags. */
  setAvailFlags(flags: number): void {
    this._mem.writeU16(this.config.avail, flags);
  }

  /** Reads avail_event (what the device last published). */
  availEvent(): number {
    return this._mem.readU16(this._availEvent);
  }

  /** Writes one descriptor of the queue's descriptor table. */
  writeDescriptor(index: number, d: RawDescriptor): void {
    if (!Number.isInteger(index) || index < 0 || index >= this._size) throw new RangeError(`descriptor ${index} is not in [0, ${this._size})`);
    writeDesc(this._mem, this.config.desc + 16 * index, d.addr, d.len, d.flags, d.next);
  }

  /**
   * Moves avail.idx by `delta` without adding chains (a driver that corrupts its ring). The device sees
   * the jump at its next pop.
   */
  jumpAvailIdx(delta: number): void {
    this._availIdx = (this._availIdx + delta) & 0xffff;
    this._mem.writeU16(this.config.avail + 2, this._availIdx);
  }

  /**
   * Adds a chain that breaks one rule of the split ring, and returns its head (for 'head-out-of-range',
   * the out-of-range value published). The chain ends in a 4-byte writable tail where the malformation
   * allows, so a device that wrongly accepted it would have somewhere to write. Reaping it frees what it
   * took. Kinds:
   * - 'loop': a readable descriptor, then a writable one whose `next` is itself;
   * - 'out-of-range': a readable descriptor that runs past the end of guest RAM;
   * - 'readable-after-writable': a writable descriptor followed by a readable one;
   * - 'oversized': an indirect table of N + 1 chained descriptors (longer than the queue; needs the
   *   device's INDIRECT_DESC to be seen as such);
   * - 'nested-indirect': an indirect table whose first entry is INDIRECT;
   * - 'indirect-with-next': a ring descriptor with INDIRECT and NEXT;
   * - 'indirect-bad-length': an indirect table of 24 bytes;
   * - 'indirect-out-of-range': an indirect table that runs past the end of guest RAM;
   * - 'head-out-of-range': the head value N published in the available ring;
   * - 'next-out-of-range': a NEXT descriptor whose `next` is N;
   * - 'writable-over-descriptors': a writable descriptor over the queue's descriptor table.
   * @throws RangeError when the queue or the buffer area has no room
   */
  addMalformed(kind: MalformedKind): number {
    const mem = this._mem;
    const N = this._size;
    const W = F_WRITE;
    const X = F_NEXT;
    const I = F_INDIRECT;
    if (kind === 'head-out-of-range') {
      this._bogusHeads.set(N, (this._bogusHeads.get(N) ?? 0) + 1);
      this._inFlightCount++;
      this._publishRaw(N);
      return N;
    }
    // Each crafted chain owns a small buffer: 16 readable bytes, a 4-byte tail, then room for a table.
    const tableEntries = kind === 'oversized' ? N + 1 : 2;
    const areaBytes = 32 + 16 * tableEntries;
    const area = this._alloc(areaBytes);
    mem.fill(area, areaBytes);
    const buf = area;
    const tail = area + 16;
    const table = area + 32;
    let ring: ChainDescriptor[];
    switch (kind) {
      case 'loop':
        ring = [
          { addr: buf, len: 16, flags: X, next: 1 },
          { addr: tail, len: 4, flags: W | X, next: 1 },
        ];
        break;
      case 'out-of-range':
        ring = [
          { addr: mem.size - 8, len: 16, flags: X, next: 1 },
          { addr: tail, len: 4, flags: W },
        ];
        break;
      case 'readable-after-writable':
        ring = [
          { addr: tail, len: 4, flags: W | X, next: 1 },
          { addr: buf, len: 16, flags: 0 },
        ];
        break;
      case 'oversized':
        for (let i = 0; i < tableEntries; i++) {
          const last = i === tableEntries - 1;
          writeDesc(mem, table + 16 * i, last ? tail : buf, last ? 4 : 1, last ? W : X, last ? 0 : i + 1);
        }
        ring = [{ addr: table, len: 16 * tableEntries, flags: I }];
        break;
      case 'nested-indirect':
        writeDesc(mem, table, table + 16, 16, I, 0);
        writeDesc(mem, table + 16, tail, 4, W, 0);
        ring = [{ addr: table, len: 32, flags: I }];
        break;
      case 'indirect-with-next':
        writeDesc(mem, table, tail, 4, W, 0);
        ring = [
          { addr: table, len: 16, flags: I | X, next: 1 },
          { addr: tail, len: 4, flags: W },
        ];
        break;
      case 'indirect-bad-length':
        writeDesc(mem, table, tail, 4, W, 0);
        ring = [{ addr: table, len: 24, flags: I }];
        break;
      case 'indirect-out-of-range':
        ring = [{ addr: mem.size - 16, len: 32, flags: I }];
        break;
      case 'next-out-of-range':
        ring = [{ addr: buf, len: 16, flags: X, nextRaw: N }];
        break;
      case 'writable-over-descriptors':
        ring = [
          { addr: buf, len: 16, flags: X, next: 1 },
          { addr: this.config.desc, len: 16, flags: W },
        ];
        break;
    }
    try {
      return this._addRaw(ring, area, areaBytes, tail, 4);
    } catch (err) {
      this._freeArea(area, areaBytes);
      throw err;
    }
  }

  /**
   * Adds a chain of ring descriptors exactly as given (addresses, lengths and flags verbatim), makes it
   * available, and returns its head. In each descriptor, `next` is an index into `descriptors` (turned
   * into the ring index that descriptor got) and `nextRaw` a value written as is; with neither, next
   * is 0. Reaping the chain frees its descriptors; its writable part reads back empty.
   * @throws RangeError when there are not enough free descriptors
   */
  addRaw(descriptors: readonly ChainDescriptor[]): number {
    if (descriptors.length === 0) throw new RangeError('a chain needs at least one descriptor');
    return this._addRaw(descriptors, NONE, 0, 0, 0);
  }

  private _addRaw(descriptors: readonly ChainDescriptor[], area: number, areaBytes: number, wAt: number, wLen: number): number {
    const head = this._takeDescs(descriptors.length);
    const ids: number[] = [];
    for (let i = 0, d = head; i < descriptors.length; i++, d = this._nextFree[d]!) ids.push(d);
    descriptors.forEach((r, i) => {
      const next = r.nextRaw ?? (r.next === undefined ? 0 : ids[r.next]);
      if (next === undefined) throw new RangeError(`descriptor ${i} links to ${r.next}, outside the list`);
      writeDesc(this._mem, this.config.desc + 16 * ids[i]!, r.addr, r.len, r.flags, next);
    });
    this._chainDescs[head] = descriptors.length;
    this._dataAt[head] = area;
    this._dataLen[head] = areaBytes;
    this._wAt[head] = wAt;
    this._wLen[head] = wLen;
    this._wPieces[head] = undefined;
    this._publish(head);
    return head;
  }

  // ---- internals ----------------------------------------------------------------------------------

  private _publish(head: number): void {
    this._inFlight[head] = 1;
    this._inFlightCount++;
    this._publishRaw(head);
  }

  /** avail.ring[idx mod N] = head, then avail.idx += 1 (the chain becomes visible). */
  private _publishRaw(head: number): void {
    if (this._direct) {
      const availH = this._availH;
      availH[this._availH0 + 2 + (this._availIdx & this._mask)] = head;
      this._availIdx = (this._availIdx + 1) & 0xffff;
      availH[this._availH0 + 1] = this._availIdx;
      return;
    }
    const avail = this.config.avail;
    this._mem.writeU16(avail + 4 + 2 * (this._availIdx & this._mask), head);
    this._availIdx = (this._availIdx + 1) & 0xffff;
    this._mem.writeU16(avail + 2, this._availIdx);
  }

  /** Takes `count` descriptors off the free list; returns the first. They stay linked in `_nextFree`. */
  private _takeDescs(count: number): number {
    if (count > this._numFree) throw tooFewDescriptors(count, this._numFree);
    const first = this._freeHead;
    let last = first;
    for (let i = 1; i < count; i++) last = this._nextFree[last]!;
    this._freeHead = this._nextFree[last]!;
    this._numFree -= count;
    return first;
  }

  /** Undoes `_takeDescs(count)` that returned `first` (they are still linked in `_nextFree`). */
  private _giveBack(first: number, count: number): void {
    this._freeHead = first;
    this._numFree += count;
  }

  private _release(head: number): void {
    // Give the chain's descriptors back: they are linked from head in _nextFree, count of them.
    const count = this._chainDescs[head]!;
    let last = head;
    for (let i = 1; i < count; i++) last = this._nextFree[last]!;
    this._nextFree[last] = this._freeHead;
    this._freeHead = head;
    this._numFree += count;
    this._inFlight[head] = 0;
    this._inFlightCount--;
    const at = this._dataAt[head]!;
    if (at >= 0) this._freeArea(at, this._dataLen[head]!);
    this._wPieces[head] = undefined;
  }

  private _readWritable(head: number, into: Uint8Array | undefined): Uint8Array {
    const pieces = this._wPieces[head];
    if (pieces === undefined) {
      const len = this._wLen[head]!;
      const out = into ?? new Uint8Array(len);
      this._mem.read(this._wAt[head]!, out, 0, Math.min(len, out.length));
      return out;
    }
    let total = 0;
    for (let i = 1; i < pieces.length; i += 2) total += pieces[i]!;
    const out = into ?? new Uint8Array(total);
    let off = 0;
    for (let i = 0; i < pieces.length && off < out.length; i += 2) {
      const n = Math.min(pieces[i + 1]!, out.length - off);
      this._mem.read(pieces[i]!, out, off, n);
      off += n;
    }
    return out;
  }

  /** First-fit allocation of `bytes` (rounded up to 16) from the buffer area. */
  private _alloc(bytes: number): number {
    const need = Math.max(16, align(bytes, 16));
    const at = this._free.allocLowest(need);
    if (at < 0) throw new RangeError(`the virtqueue buffer area has no ${need} free bytes`);
    return at;
  }

  private _freeArea(start: number, bytes: number): void {
    this._free.free(start, start + Math.max(16, align(bytes, 16)));
  }
}

function align(x: number, a: number): number {
  if (x < 0x4000_0000) return (x + a - 1) & -a; // a is a power of two
  const r = x % a;
  return r === 0 ? x : x + a - r;
}

/**
 * The error of a chain that needs more descriptors than are free, built out of line: a template literal
 * at the check would keep its number-to-string conversions alive in the hot path (see guest-memory.ts
 * `outsideGuestRam`).
 */
function tooFewDescriptors(needed: number, free: number): RangeError {
  return new RangeError(`${needed} descriptors needed, ${free} free`);
}

function segmentLength(s: Segment): number {
  const len = s.bytes !== undefined ? s.bytes.length : (s.length ?? 0);
  if (!Number.isSafeInteger(len) || len < 0 || len > 0xffff_ffff) throw new RangeError(`segment length ${len} is not in [0, 2^32)`);
  return len;
}

function writeDesc(mem: GuestMemory, at: number, addr: number, len: number, flags: number, next: number): void {
  const hi = high32(addr);
  const lo = addr - hi * TWO_32;
  const o = mem.pageOffset(at);
  if ((o & 3) === 0 && o <= 4096 - 16) {
    const w = mem.pageWordsOf(at);
    if (w.length !== 0) {
      const wi = o >>> 2;
      w[wi] = lo;
      w[wi + 1] = hi;
      w[wi + 2] = len;
      w[wi + 3] = (flags & 0xffff) | (next << 16);
      return;
    }
  }
  if (o > 4096 - 16) {
    mem.writeU32(at, lo);
    mem.writeU32(at + 4, hi);
    mem.writeU32(at + 8, len);
    mem.writeU16(at + 12, flags);
    mem.writeU16(at + 14, next);
    return;
  }
  const p = mem.pageOf(at);
  p[o] = lo;
  p[o + 1] = lo >>> 8;
  p[o + 2] = lo >>> 16;
  p[o + 3] = lo >>> 24;
  p[o + 4] = hi;
  p[o + 5] = hi >>> 8;
  p[o + 6] = hi >>> 16;
  p[o + 7] = hi >>> 24;
  p[o + 8] = len;
  p[o + 9] = len >>> 8;
  p[o + 10] = len >>> 16;
  p[o + 11] = len >>> 24;
  p[o + 12] = flags;
  p[o + 13] = flags >>> 8;
  p[o + 14] = next;
  p[o + 15] = next >>> 8;
}
