/**
 * The device side of one split virtqueue (virtio 1.x, modern layout) over guest memory: it takes the
 * chains the driver makes available, walks them (NEXT, WRITE, INDIRECT), gathers their device-readable
 * bytes, scatters replies into their device-writable part, returns them on the used ring, and decides
 * when the driver wants an interrupt (avail.flags NO_INTERRUPT, or used_event with EVENT_IDX) and how
 * the device wants kicks (used.flags NO_NOTIFY, or avail_event with EVENT_IDX).
 *
 * Layout (reference §7; virtio-spec split-ring.tex), queue size N a power of two ≤ 32768:
 * - descriptor table at `desc`, 16-aligned, 16·N bytes: {le64 addr, le32 len, le16 flags, le16 next};
 * - available ring at `avail`, 2-aligned, 6 + 2·N bytes: {flags, idx, ring[N], used_event};
 * - used ring at `used`, 4-aligned, 6 + 8·N bytes: {flags, idx, {le32 id, le32 len}[N], avail_event}.
 * Indices are free-running u16 that wrap at 65536; ring slot = idx mod N.
 *
 * Guest input never makes this class throw. What the device gets instead:
 * - a chain it refuses: `{ malformed: reason, head }`. The chain was consumed from the available ring;
 *   the device completes it with used length 0 (its documented choice) by calling `push(head, 0)`.
 *   Reasons: see {@link MalformedReason}.
 * - an available index that ran more than N entries ahead of the device (the driver cannot have made
 *   that many chains available): `{ malformed: 'ring', head: -1 }`, nothing consumed, and every later
 *   `pop` answers the same (`isBroken`). The device sets DEVICE_NEEDS_RESET; a reset makes a new queue.
 * - a queue configuration that is not a valid ring (size, alignment, outside guest RAM, the used ring
 *   overlapping the descriptor table or the available ring): `checkQueueConfig` names the problem; the
 *   constructor throws RangeError with it, so the device checks first and refuses to enable the queue.
 *
 * What the device never does here: write a device-readable buffer, a descriptor table (the queue's or an
 * indirect one) or the available ring. The used ring is checked at setup not to overlap the descriptor
 * table or the available ring; a writable buffer that overlaps the descriptor table, the available ring
 * or the indirect table it sits in, and an indirect table that overlaps the used ring, make the chain
 * malformed ('overlaps-ring'). Readable bytes are copied out at `pop`, so a writable buffer aliasing a
 * readable one cannot change what the device read. The device does not read writable buffers.
 *
 * A chain's `readable` is a scratch view valid until the next pop; its `write` stays valid after later
 * pops (the chain keeps its own writable segments), so a device may hold eventq buffers.
 *
 * Limits (spec: "The device MAY have a reasonable limit of descriptors it will allow in a chain"):
 * - a chain in the descriptor table visits at most N descriptors; more means a loop ('loop');
 * - an indirect table holds at most N descriptors ("A driver MUST NOT create a descriptor chain longer
 *   than the Queue Size of the device") and its chain visits each at most once;
 * - the readable part is at most `maxReadableBytes` (default 64 KiB; a virtio-iommu request is ≤ 72);
 * - the whole chain is at most 2^32 bytes ("Drivers MUST NOT add a descriptor chain longer than 2^32
 *   bytes in total").
 * A zero-length descriptor is accepted and touches no memory, wherever its address points.
 *
 * Hot path: one pop of a two-descriptor (or one indirect) chain reads the ring and descriptors through
 * cached page views, copies the readable bytes into a reused scratch buffer and allocates one small
 * chain object; push writes 10 bytes. No BigInt.
 */
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
} from '../uapi';
import { SimBugError } from '../kernel-sim';
import type { GuestMemory } from './guest-memory';
import { LITTLE_ENDIAN } from './host-order';

// Module-level copies: a CommonJS re-export through the uapi barrel is a getter call on every use.
const NO_INTERRUPT = VIRTQ_AVAIL_F_NO_INTERRUPT;
const F_INDIRECT = VIRTQ_DESC_F_INDIRECT;
const F_NEXT = VIRTQ_DESC_F_NEXT;
const F_WRITE = VIRTQ_DESC_F_WRITE;
const NO_NOTIFY = VIRTQ_USED_F_NO_NOTIFY;

/** Where the three parts of a queue live in guest memory (GPAs) and how many entries it has. */
export interface QueueConfig {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

/** The ring features negotiated for the queue. */
export interface VirtqueueFeatures {
  /** VIRTIO_F_INDIRECT_DESC. */
  indirect: boolean;
  /** VIRTIO_F_EVENT_IDX. */
  eventIdx: boolean;
}

/** Device-side limits and starting state. */
export interface SplitVirtqueueOptions {
  /** The largest readable part a chain may have, in bytes. Default 65536. */
  maxReadableBytes?: number;
  /**
   * Resume a queue that already ran (migration; vhost VHOST_SET_VRING_BASE): the next available index
   * to pop and the used index, both u16. Default: a fresh queue, both 0 (what reset gives).
   */
  resume?: { lastAvailIdx: number; usedIdx: number };
  /**
   * pop() returns the same chain object each time, describing the new chain: a chain is then valid only
   * until the next pop, like its `readable` (a device that answers each chain before the next pop, as
   * the requestq does). Default false: each chain is its own object, which a device may keep.
   */
  reuseChain?: boolean;
}

/** One chain the device took from the available ring. */
export interface DescriptorChain {
  /** The head descriptor index, what `push` returns to the driver. */
  readonly head: number;
  /** Readable bytes gathered in order (a scratch view valid until the next pop: copy if you keep it). */
  readonly readable: Uint8Array;
  /**
   * On a little-endian host, the same scratch as u32 words (word i holds readable bytes 4i..4i+3, the
   * last word possibly partly past the readable part), for decoders that read aligned fields; else
   * undefined. Valid as long as `readable`.
   */
  readonly readableWords: Uint32Array | undefined;
  /** Total bytes of the device-writable part. */
  readonly writableLength: number;
  /** Scatters `bytes` into the writable part starting at writable offset `offset`; returns bytes written. */
  write(offset: number, bytes: Uint8Array): number;
}

/**
 * Why a chain was refused:
 * - 'head-out-of-range': the available ring names a head index ≥ N;
 * - 'next-out-of-range': a NEXT descriptor's `next` is ≥ the size of its table;
 * - 'loop': the chain visits more descriptors than its table holds (it loops, or is longer than the queue);
 * - 'outside-guest-memory': a buffer or an indirect table is not inside guest RAM;
 * - 'readable-after-writable': a device-readable descriptor follows a device-writable one;
 * - 'indirect-without-feature': INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated;
 * - 'indirect-with-next': INDIRECT and NEXT in one descriptor;
 * - 'nested-indirect': INDIRECT inside an indirect table;
 * - 'indirect-bad-length': an indirect table length that is 0 or not a multiple of 16;
 * - 'indirect-too-long': an indirect table of more than N descriptors;
 * - 'readable-too-large': the readable part exceeds `maxReadableBytes`;
 * - 'chain-too-large': the chain holds more than 2^32 bytes;
 * - 'overlaps-ring': a writable buffer overlaps the descriptor table, the available ring or the indirect
 *   table it is in (parts only the driver writes), or an indirect table overlaps the used ring (which the
 *   device writes);
 * - 'ring': the available index is more than N ahead of the device (not a chain; head -1, nothing
 *   consumed, the queue stays broken).
 */
export type MalformedReason =
  | 'head-out-of-range'
  | 'next-out-of-range'
  | 'loop'
  | 'outside-guest-memory'
  | 'readable-after-writable'
  | 'indirect-without-feature'
  | 'indirect-with-next'
  | 'nested-indirect'
  | 'indirect-bad-length'
  | 'indirect-too-long'
  | 'readable-too-large'
  | 'chain-too-large'
  | 'overlaps-ring'
  | 'ring';

/** A refused chain (or a broken ring, head -1). */
export interface MalformedChain {
  readonly malformed: MalformedReason;
  readonly head: number;
}

/** What `pop` returns: the next chain, 'empty' when the driver made nothing new available, or a refusal. */
export type PopResult = DescriptorChain | 'empty' | MalformedChain;

/** Byte sizes and field offsets of a queue of `size` entries (virtio-spec split-ring.tex). */
export interface VirtqLayout {
  /** 16·N. */
  readonly descBytes: number;
  /** 6 + 2·N (including used_event). */
  readonly availBytes: number;
  /** 6 + 8·N (including avail_event). */
  readonly usedBytes: number;
  /** Offset of used_event from the start of the available ring: 4 + 2·N. */
  readonly usedEventOffset: number;
  /** Offset of avail_event from the start of the used ring: 4 + 8·N. */
  readonly availEventOffset: number;
}

/** The layout of a queue of `size` entries (no validation of `size`). */
export function virtqLayout(size: number): VirtqLayout {
  return {
    descBytes: 16 * size,
    availBytes: 6 + 2 * size,
    usedBytes: 6 + 8 * size,
    usedEventOffset: 4 + 2 * size,
    availEventOffset: 4 + 8 * size,
  };
}

/**
 * `vring_need_event(event_idx, new_idx, old)` of virtio-queue.h: whether moving an index from `oldIdx`
 * to `newIdx` (u16, wrapping) crossed `eventIdx`, i.e. whether the entry at index `eventIdx` was among
 * those just published. Used both ways: used_event for interrupts, avail_event for kicks.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/** Whether `size` is a valid queue size: a power of two in [1, 32768]. */
export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) === 0;
}

/**
 * Why `config` is not a usable queue in `mem`, or undefined when it is: the size, each part's alignment
 * ("The driver MUST ensure that the physical address of the first byte of each virtqueue part is a
 * multiple of the specified alignment value"), each part inside guest RAM, and the used ring (the only
 * part the device writes) overlapping neither the descriptor table nor the available ring.
 */
export function checkQueueConfig(mem: GuestMemory, config: QueueConfig): string | undefined {
  const { size, desc, avail, used } = config;
  if (!isValidQueueSize(size)) return `queue size ${size} is not a power of two in [1, ${VIRTQ_MAX_SIZE}]`;
  const layout = virtqLayout(size);
  if (!Number.isSafeInteger(desc) || desc % 16 !== 0) return `descriptor table address ${desc} is not 16-byte aligned`;
  if (!Number.isSafeInteger(avail) || avail % 2 !== 0) return `available ring address ${avail} is not 2-byte aligned`;
  if (!Number.isSafeInteger(used) || used % 4 !== 0) return `used ring address ${used} is not 4-byte aligned`;
  if (!mem.contains(desc, layout.descBytes)) return 'the descriptor table is outside guest memory';
  if (!mem.contains(avail, layout.availBytes)) return 'the available ring is outside guest memory';
  if (!mem.contains(used, layout.usedBytes)) return 'the used ring is outside guest memory';
  if (overlaps(used, layout.usedBytes, desc, layout.descBytes)) return 'the used ring overlaps the descriptor table';
  if (overlaps(used, layout.usedBytes, avail, layout.availBytes)) return 'the used ring overlaps the available ring';
  return undefined;
}

function overlaps(a: number, aLen: number, b: number, bLen: number): boolean {
  return aLen !== 0 && bLen !== 0 && a < b + bLen && b < a + aLen;
}

/**
 * Direct views of one ring part (descriptor table, available or used ring) that lies inside one host
 * page of guest RAM: the page as u16 and u32 arrays, and where the part starts in it. Guest RAM is never
 * remapped, so the views stay valid for the queue's life; ring accesses through them skip the checked
 * GuestMemory path (about a dozen accesses per chain). Undefined when the part crosses a page boundary,
 * is not 4-aligned in its page, or the host is big-endian: callers then use the checked path.
 */
export interface RingView {
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  /** Byte offset of the part's first byte in the page (a multiple of 4). */
  readonly offset: number;
}


/** A RingView of `[gpa, gpa + bytes)`, or undefined (see RingView). */
export function ringView(mem: GuestMemory, gpa: number, bytes: number): RingView | undefined {
  if (!LITTLE_ENDIAN || !mem.contains(gpa, bytes) || bytes === 0) return undefined;
  const o = mem.pageOffset(gpa);
  if ((o & 3) !== 0 || o + bytes > PAGE_SIZE) return undefined;
  const p = mem.pageOf(gpa);
  if (p.length !== PAGE_SIZE || (p.byteOffset & 3) !== 0) return undefined;
  return { u16: new Uint16Array(p.buffer, p.byteOffset, PAGE_SIZE >>> 1), u32: new Uint32Array(p.buffer, p.byteOffset, PAGE_SIZE >>> 2), offset: o };
}

const RING_BROKEN: MalformedChain = Object.freeze({ malformed: 'ring', head: -1 });
/** Readable lengths up to this get a cached scratch view (no subarray allocation per pop). */
const CACHED_VIEWS = 512;
const MAX_CHAIN_BYTES = 2 ** 32;
const TWO_32 = 2 ** 32;
const PAGE_SIZE = 4096;
/** Readable descriptors up to this size inside one page are gathered straight from the page view. */
const SMALL_GATHER = 64;
const NO_WORDS = new Uint32Array(0);
const NO_HALVES = new Uint16Array(0);
const NO_BYTES = new Uint8Array(0);

/** A chain handed to the device: its writable segments are its own, its readable view is scratch. */
class Chain implements DescriptorChain {
  constructor(
    public head: number,
    public readable: Uint8Array,
    public readableWords: Uint32Array | undefined,
    public writableLength: number,
    private readonly _mem: GuestMemory,
    /** The first writable segment (most chains have one). */
    private _addr0: number,
    private _len0: number,
    /** Further writable segments as [gpa, length] pairs, or undefined. */
    private _more: Float64Array | undefined,
  ) {}

  /** Makes this object describe another chain (SplitVirtqueueOptions.reuseChain). */
  reset(head: number, readable: Uint8Array, readableWords: Uint32Array | undefined, writableLength: number, addr0: number, len0: number, more: Float64Array | undefined): this {
    this.head = head;
    this.readable = readable;
    this.readableWords = readableWords;
    this.writableLength = writableLength;
    this._addr0 = addr0;
    this._len0 = len0;
    this._more = more;
    return this;
  }

  write(offset: number, bytes: Uint8Array): number {
    if (!Number.isSafeInteger(offset) || offset < 0) throw badOffset(offset);
    if (offset >= this.writableLength) return 0;
    const total = Math.min(bytes.length, this.writableLength - offset);
    if (total > 0 && offset + total <= this._len0 && total <= SMALL_GATHER) {
      // Inside the first segment: one page view (the common tail write).
      const gpa = this._addr0 + offset;
      const o = this._mem.pageOffset(gpa);
      const w = total === 4 && (o & 3) === 0 ? this._mem.pageWordsOf(gpa) : NO_WORDS;
      if (w.length !== 0) {
        // One aligned word (a request's 4-byte tail); word views exist on little-endian hosts only.
        w[o >>> 2] = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24);
        return 4;
      }
      if (o + total <= PAGE_SIZE) {
        const p = this._mem.pageOf(gpa);
        for (let k = 0; k < total; k++) p[o + k] = bytes[k]!;
        return total;
      }
    }
    let done = 0;
    let skip = offset;
    let addr = this._addr0;
    let len = this._len0;
    const more = this._more;
    let next = 0;
    for (;;) {
      if (skip >= len) {
        skip -= len;
      } else {
        const n = Math.min(len - skip, total - done);
        this._mem.write(addr + skip, bytes, done, n);
        done += n;
        skip = 0;
        if (done === total) return done;
      }
      if (more === undefined || next >= more.length) return done;
      addr = more[next]!;
      len = more[next + 1]!;
      next += 2;
    }
  }
}

/** Chain.write's error, built out of line (see guest-memory.ts `outsideGuestRam`). */
function badOffset(offset: number): RangeError {
  return new RangeError(`writable offset ${offset} is not a non-negative integer`);
}

/** The device side of one split virtqueue. */
export class SplitVirtqueue {
  /** Queue size N. */
  readonly size: number;
  private readonly _mem: GuestMemory;
  private readonly _mask: number;
  private readonly _desc: number;
  private readonly _avail: number;
  private readonly _availBytes: number;
  private readonly _used: number;
  private readonly _usedEvent: number;
  private readonly _availEvent: number;
  private readonly _indirect: boolean;
  private readonly _eventIdx: boolean;
  private readonly _maxReadable: number;

  private _lastAvail = 0;
  private _usedIdx = 0;
  /** used.idx when needsInterrupt last looked. */
  private _signalled = 0;
  private _inFlight = 0;
  private _notifications = 0;
  private _broken = false;
  private _kicksWanted = true;

  // Scratch: gathered readable bytes, cached views of it by length, writable segments of the chain walked.
  private _scratch = new Uint8Array(256);
  private _scratchWords = new Uint32Array(this._scratch.buffer);
  /** Scratch views by length (NO_BYTES: none yet); filled, so reads never hit a hole or run off the end. */
  private _views: Uint8Array[] = new Array<Uint8Array>(CACHED_VIEWS).fill(NO_BYTES);
  private _wSegs = new Float64Array(16);

  // Direct ring views (RingView), used when all three parts have one (`_direct`); indices are in
  // elements of the array named: desc table word 0, avail.flags halfword, used.flags halfword/word.
  private readonly _direct: boolean;
  private readonly _descW: Uint32Array = NO_WORDS;
  private readonly _descW0: number = 0;
  private readonly _availH: Uint16Array = NO_HALVES;
  private readonly _availH0: number = 0;
  private readonly _usedH: Uint16Array = NO_HALVES;
  private readonly _usedH0: number = 0;
  private readonly _usedW: Uint32Array = NO_WORDS;
  private readonly _usedW0: number = 0;
  /** The chain object every pop reuses (options.reuseChain), or undefined. */
  private readonly _chain: Chain | undefined;

  /**
   * @throws RangeError when `config` is not a usable queue (see checkQueueConfig), or a bad option
   */
  constructor(mem: GuestMemory, config: QueueConfig, features: VirtqueueFeatures, options: SplitVirtqueueOptions = {}) {
    const problem = checkQueueConfig(mem, config);
    if (problem !== undefined) throw new RangeError(problem);
    const layout = virtqLayout(config.size);
    this._mem = mem;
    this.size = config.size;
    this._mask = config.size - 1;
    this._desc = config.desc;
    this._avail = config.avail;
    this._availBytes = layout.availBytes;
    this._used = config.used;
    this._usedEvent = config.avail + layout.usedEventOffset;
    this._availEvent = config.used + layout.availEventOffset;
    this._indirect = features.indirect;
    this._eventIdx = features.eventIdx;
    this._maxReadable = options.maxReadableBytes ?? 65536;
    if (!Number.isSafeInteger(this._maxReadable) || this._maxReadable < 0) {
      throw new RangeError(`maxReadableBytes ${this._maxReadable} is not a non-negative integer`);
    }
    this._chain = options.reuseChain === true ? new Chain(0, NO_BYTES, undefined, 0, mem, 0, 0, undefined) : undefined;
    const dv = ringView(mem, config.desc, layout.descBytes);
    const av = ringView(mem, config.avail, layout.availBytes);
    const uv = ringView(mem, config.used, layout.usedBytes);
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
    if (options.resume !== undefined) {
      this._lastAvail = options.resume.lastAvailIdx & 0xffff;
      this._usedIdx = options.resume.usedIdx & 0xffff;
      this._signalled = this._usedIdx;
      // As after a pop: ask for a kick on the next chain.
      if (this._eventIdx) mem.writeU16(this._availEvent, this._lastAvail);
    }
  }

  /** Interrupts that would have been raised: the times needsInterrupt answered true. */
  get notifications(): number {
    return this._notifications;
  }

  /** The device's next available index (u16): chains before it were popped. */
  get lastAvailIdx(): number {
    return this._lastAvail;
  }

  /** The device's used index (u16), as last written to used.idx. */
  get usedIdx(): number {
    return this._usedIdx;
  }

  /** Chains popped (including refused ones) and not pushed yet. */
  get inFlight(): number {
    return this._inFlight;
  }

  /** True once the available index ran more than N ahead: the queue needs a device reset. */
  get isBroken(): boolean {
    return this._broken;
  }

  /**
   * Takes the next available chain. With EVENT_IDX and kicks wanted (the default), publishes
   * avail_event = the new last available index, as QEMU's virtqueue_pop does: the driver kicks again as
   * soon as it makes one more chain available.
   */
  pop(): PopResult {
    if (this._broken) return RING_BROKEN;
    if (this._direct) return this._popDirect();
    const mem = this._mem;
    const availIdx = mem.readU16(this._avail + 2);
    const last = this._lastAvail;
    if (availIdx === last) return 'empty';
    // "the 16-bit idx value can always distinguish between a full and empty buffer": more than N
    // outstanding entries cannot come from a driver that follows the spec.
    if (((availIdx - last) & 0xffff) > this.size) {
      this._broken = true;
      return RING_BROKEN;
    }
    const head = mem.readU16(this._avail + 4 + 2 * (last & this._mask));
    this._lastAvail = (last + 1) & 0xffff;
    this._inFlight++;
    if (this._eventIdx && this._kicksWanted) mem.writeU16(this._availEvent, this._lastAvail);
    return this._walk(head);
  }

  /** pop() through the direct ring views. */
  private _popDirect(): PopResult {
    const availH = this._availH;
    const a0 = this._availH0;
    const availIdx = availH[a0 + 1]!;
    const last = this._lastAvail;
    if (availIdx === last) return 'empty';
    if (((availIdx - last) & 0xffff) > this.size) {
      this._broken = true;
      return RING_BROKEN;
    }
    const head = availH[a0 + 2 + (last & this._mask)]!;
    this._lastAvail = (last + 1) & 0xffff;
    this._inFlight++;
    // avail_event: the u16 after the used ring's N entries.
    if (this._eventIdx && this._kicksWanted) this._usedH[this._usedH0 + 2 + 4 * this.size] = this._lastAvail;
    return this._walk(head);
  }

  private _walk(head: number): PopResult {
    if (head >= this.size) return { malformed: 'head-out-of-range', head };
    if (this._direct && this._indirect) {
      const chain = this._walkIndirectPair(head);
      if (chain !== undefined) return chain;
    }
    const mem = this._mem;
    const ramSize = mem.size;
    const queueDesc = this._desc;
    const queueDescBytes = 16 * this.size;
    let table = queueDesc;
    let tableLen = this.size;
    let inIndirect = false;
    /** The indirect table's page as words when the whole table lies in it (else NO_WORDS), and its first word. */
    let tableW: Uint32Array = NO_WORDS;
    let tableW0 = 0;
    let i = head;
    let visited = 0;
    let readLen = 0;
    let writeLen = 0;
    let wCount = 0;
    let seenWritable = false;
    for (;;) {
      if (++visited > tableLen) return { malformed: 'loop', head };
      const d = table + 16 * i;
      let addr: number;
      let len: number;
      let flagsNext: number;
      if (!inIndirect && this._direct) {
        // The queue's own table, through its direct view.
        const wi = this._descW0 + 4 * i;
        const dw = this._descW;
        addr = dw[wi + 1]! * TWO_32 + dw[wi]!;
        len = dw[wi + 2]!;
        flagsNext = dw[wi + 3]!;
      } else if (tableW.length !== 0) {
        const wi = tableW0 + 4 * i;
        addr = tableW[wi + 1]! * TWO_32 + tableW[wi]!;
        len = tableW[wi + 2]!;
        flagsNext = tableW[wi + 3]!;
      } else {
        const o = mem.pageOffset(d);
        const w = (o & 3) === 0 ? mem.pageWordsOf(d) : NO_WORDS;
        if (w.length !== 0 && o <= PAGE_SIZE - 16) {
          // The common case: an aligned descriptor, read as four u32 words of its page.
          const wi = o >>> 2;
          addr = w[wi + 1]! * TWO_32 + w[wi]!;
          len = w[wi + 2]!;
          flagsNext = w[wi + 3]!;
        } else if (o <= PAGE_SIZE - 16) {
          // The whole descriptor is in one page: decode it from the page view.
          const p = mem.pageOf(d);
          addr = ((p[o + 4]! | (p[o + 5]! << 8) | (p[o + 6]! << 16) | (p[o + 7]! << 24)) >>> 0) * TWO_32 +
            ((p[o]! | (p[o + 1]! << 8) | (p[o + 2]! << 16) | (p[o + 3]! << 24)) >>> 0);
          len = (p[o + 8]! | (p[o + 9]! << 8) | (p[o + 10]! << 16) | (p[o + 11]! << 24)) >>> 0;
          flagsNext = (p[o + 12]! | (p[o + 13]! << 8) | (p[o + 14]! << 16) | (p[o + 15]! << 24)) >>> 0;
        } else {
          addr = mem.readU64Number(d);
          len = mem.readU32(d + 8);
          flagsNext = mem.readU32(d + 12);
        }
      }
      const flags = flagsNext & 0xffff;
      if ((flags & F_INDIRECT) !== 0) {
        // "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the VIRTIO_F_INDIRECT_DESC
        // feature was negotiated ... MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect
        // descriptor ... MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT".
        // "The device MUST ignore the write-only flag ... in the descriptor that refers to an indirect table."
        if (!this._indirect) return { malformed: 'indirect-without-feature', head };
        if (inIndirect) return { malformed: 'nested-indirect', head };
        if ((flags & F_NEXT) !== 0) return { malformed: 'indirect-with-next', head };
        if (len === 0 || len % 16 !== 0) return { malformed: 'indirect-bad-length', head };
        // "A driver MUST NOT create a descriptor chain longer than the Queue Size of the device."
        if (len / 16 > this.size) return { malformed: 'indirect-too-long', head };
        if (addr + len > ramSize) return { malformed: 'outside-guest-memory', head };
        if (overlaps(addr, len, this._used, 6 + 8 * this.size)) return { malformed: 'overlaps-ring', head };
        table = addr;
        tableLen = len / 16;
        inIndirect = true;
        const to = mem.pageOffset(addr);
        if ((to & 3) === 0 && to + len <= PAGE_SIZE) {
          tableW = mem.pageWordsOf(addr);
          tableW0 = to >>> 2;
        }
        i = 0;
        visited = 0;
        continue;
      }
      if ((flags & F_WRITE) !== 0) {
        seenWritable = true;
      } else if (seenWritable) {
        // "The driver MUST place any device-writable descriptor elements after any device-readable
        // descriptor elements."
        return { malformed: 'readable-after-writable', head };
      }
      if (len !== 0) {
        // addr and len are non-negative integers (addr may be rounded above 2^53, still past the end).
        if (addr + len > ramSize) return { malformed: 'outside-guest-memory', head };
        if (seenWritable) {
          // "A device MUST NOT write to a device-readable buffer" - nor to what only the driver writes.
          if (
            overlaps(addr, len, queueDesc, queueDescBytes) ||
            overlaps(addr, len, this._avail, this._availBytes) ||
            (inIndirect && overlaps(addr, len, table, 16 * tableLen))
          ) {
            return { malformed: 'overlaps-ring', head };
          }
          if (2 * wCount === this._wSegs.length) this._growSegs();
          this._wSegs[2 * wCount] = addr;
          this._wSegs[2 * wCount + 1] = len;
          wCount++;
          writeLen += len;
          if (readLen + writeLen > MAX_CHAIN_BYTES) return { malformed: 'chain-too-large', head };
        } else {
          if (readLen + len > this._maxReadable) return { malformed: 'readable-too-large', head };
          if (readLen + len > this._scratch.length) this._growScratch(readLen + len);
          const ro = mem.pageOffset(addr);
          if (len <= SMALL_GATHER && ro + len <= PAGE_SIZE) {
            const scratch = this._scratch;
            let k = 0;
            if (((ro | readLen) & 3) === 0) {
              // Aligned source and destination: whole words first.
              const pw = mem.pageWordsOf(addr);
              if (pw.length !== 0) {
                const sw = this._scratchWords;
                const from = ro >>> 2;
                const to = readLen >>> 2;
                const words = len >>> 2;
                for (let j = 0; j < words; j++) sw[to + j] = pw[from + j]!;
                k = words << 2;
              }
            }
            if (k < len) {
              const p = mem.pageOf(addr);
              for (; k < len; k++) scratch[readLen + k] = p[ro + k]!;
            }
          } else {
            mem.read(addr, this._scratch, readLen, len);
          }
          readLen += len;
        }
      }
      if ((flags & F_NEXT) === 0) break;
      const next = flagsNext >>> 16;
      if (next >= tableLen) return { malformed: 'next-out-of-range', head };
      i = next;
    }
    let readable = readLen < CACHED_VIEWS ? this._views[readLen]! : NO_BYTES;
    if (readable === NO_BYTES) {
      readable = this._scratch.subarray(0, readLen);
      if (readLen < CACHED_VIEWS) this._views[readLen] = readable;
    }
    const segs = this._wSegs;
    const more = wCount > 1 ? segs.slice(2, 2 * wCount) : undefined;
    const words = LITTLE_ENDIAN ? this._scratchWords : undefined;
    if (this._chain !== undefined) return this._chain.reset(head, readable, words, writeLen, wCount > 0 ? segs[0]! : 0, wCount > 0 ? segs[1]! : 0, more);
    return new Chain(head, readable, words, writeLen, mem, wCount > 0 ? segs[0]! : 0, wCount > 0 ? segs[1]! : 0, more);
  }

  /**
   * The chain every request of a Linux virtio-iommu driver is with INDIRECT_DESC (`virtqueue_add_sgs`
   * with one readable and one writable buffer): the head descriptor is INDIRECT alone, its table is two
   * descriptors in one page, [readable, NEXT → 1] then [writable, WRITE], the readable part at most
   * SMALL_GATHER bytes, word-aligned, in one page. This walks it with the general walk's checks and
   * returns its chain, or undefined as soon as anything differs (a check fails, or the shape is another
   * one): the general walk then walks the chain again and names the problem, so both give one answer.
   */
  private _walkIndirectPair(head: number): Chain | undefined {
    const mem = this._mem;
    const ramSize = mem.size;
    const dw = this._descW;
    const hi = this._descW0 + 4 * head;
    const tAddr = dw[hi + 1]! * TWO_32 + dw[hi]!;
    // A two-entry table in a queue of one is 'indirect-too-long'.
    if (dw[hi + 2] !== 32 || (dw[hi + 3]! & 0xffff) !== F_INDIRECT || this.size < 2) return undefined;
    if (tAddr + 32 > ramSize || overlaps(tAddr, 32, this._used, 6 + 8 * this.size)) return undefined;
    const to = mem.pageOffset(tAddr);
    if ((to & 3) !== 0 || to + 32 > PAGE_SIZE) return undefined;
    const tw = mem.pageWordsOf(tAddr);
    if (tw.length === 0) return undefined;
    const ti = to >>> 2;
    // Descriptor 0: readable, NEXT → 1.
    const rAddr = tw[ti + 1]! * TWO_32 + tw[ti]!;
    const rLen = tw[ti + 2]!;
    if (tw[ti + 3] !== (F_NEXT | (1 << 16)) || rLen === 0 || rLen > SMALL_GATHER || (rLen & 3) !== 0) return undefined;
    if (rAddr + rLen > ramSize || rLen > this._maxReadable) return undefined;
    const ro = mem.pageOffset(rAddr);
    if ((ro & 3) !== 0 || ro + rLen > PAGE_SIZE) return undefined;
    // Descriptor 1: writable, last.
    const wAddr = tw[ti + 5]! * TWO_32 + tw[ti + 4]!;
    const wLen = tw[ti + 6]!;
    if ((tw[ti + 7]! & 0xffff) !== F_WRITE || wLen === 0 || wAddr + wLen > ramSize || rLen + wLen > MAX_CHAIN_BYTES) return undefined;
    if (overlaps(wAddr, wLen, this._desc, 16 * this.size) || overlaps(wAddr, wLen, this._avail, this._availBytes) || overlaps(wAddr, wLen, tAddr, 32)) {
      return undefined;
    }
    // The readable bytes usually share the table's page (a request slot): no second page lookup then.
    const pw = rAddr - ro === tAddr - to ? tw : mem.pageWordsOf(rAddr);
    if (pw.length === 0) return undefined;
    const sw = this._scratchWords;
    const from = ro >>> 2;
    const words = rLen >>> 2;
    for (let j = 0; j < words; j++) sw[j] = pw[from + j]!;
    let readable = this._views[rLen]!;
    if (readable === NO_BYTES) readable = this._views[rLen] = this._scratch.subarray(0, rLen);
    if (this._chain !== undefined) return this._chain.reset(head, readable, sw, wLen, wAddr, wLen, undefined);
    return new Chain(head, readable, sw, wLen, mem, wAddr, wLen, undefined);
  }

  /**
   * Returns chain `head` to the driver with `usedLength` bytes written: the used ring entry first, then
   * used.idx ("The device MUST set len prior to updating the used idx").
   * @throws SimBugError when nothing popped is waiting to be pushed (a device bug)
   */
  push(head: number, usedLength: number): void {
    if (this._inFlight === 0) throw new SimBugError('virtqueue push without a popped chain');
    const u = this._usedIdx;
    if (this._direct) {
      const ui = this._usedW0 + 1 + 2 * (u & this._mask);
      this._usedW[ui] = head;
      this._usedW[ui + 1] = usedLength;
      this._usedIdx = (u + 1) & 0xffff;
      this._usedH[this._usedH0 + 1] = this._usedIdx;
      this._inFlight--;
      return;
    }
    const mem = this._mem;
    const e = this._used + 4 + 8 * (u & this._mask);
    const o = mem.pageOffset(e);
    const w = (o & 3) === 0 ? mem.pageWordsOf(e) : NO_WORDS;
    if (w.length !== 0 && o <= PAGE_SIZE - 8) {
      w[o >>> 2] = head;
      w[(o >>> 2) + 1] = usedLength;
    } else if (o <= PAGE_SIZE - 8) {
      const p = mem.pageOf(e);
      p[o] = head;
      p[o + 1] = head >>> 8;
      p[o + 2] = head >>> 16;
      p[o + 3] = head >>> 24;
      p[o + 4] = usedLength;
      p[o + 5] = usedLength >>> 8;
      p[o + 6] = usedLength >>> 16;
      p[o + 7] = usedLength >>> 24;
    } else {
      mem.writeU32(e, head);
      mem.writeU32(e + 4, usedLength);
    }
    this._usedIdx = (u + 1) & 0xffff;
    mem.writeU16(this._used + 2, this._usedIdx);
    this._inFlight--;
  }

  /**
   * Whether the driver wants an interrupt for the entries pushed since the last call (false when there
   * are none). Without EVENT_IDX: unless avail.flags has NO_INTERRUPT ("If flags is 0, the device MUST
   * send a notification"). With EVENT_IDX: iff used_event is among the used indices just published
   * (vring_need_event; the low bit of avail.flags is ignored). Counts the positive answers in
   * `notifications`.
   */
  needsInterrupt(): boolean {
    const newIdx = this._usedIdx;
    const oldIdx = this._signalled;
    if (newIdx === oldIdx) return false;
    this._signalled = newIdx;
    const mem = this._mem;
    let need: boolean;
    if (this._direct) {
      const availH = this._availH;
      need = this._eventIdx ? vringNeedEvent(availH[this._availH0 + 2 + this.size]!, newIdx, oldIdx) : (availH[this._availH0]! & NO_INTERRUPT) === 0;
    } else {
      need = this._eventIdx ? vringNeedEvent(mem.readU16(this._usedEvent), newIdx, oldIdx) : (mem.readU16(this._avail) & NO_INTERRUPT) === 0;
    }
    if (need) this._notifications++;
    return need;
  }

  /**
   * Writes avail_event = `idx` (u16): with EVENT_IDX the driver kicks when it publishes the entry at
   * index `idx`. Without EVENT_IDX the field does not exist and nothing is written (use
   * `setNotification` for used.flags). Pops overwrite avail_event while kicks are wanted.
   */
  setAvailEvent(idx: number): void {
    if (this._eventIdx) this._mem.writeU16(this._availEvent, idx);
  }

  /**
   * Whether the device wants kicks (available-buffer notifications). Without EVENT_IDX: used.flags =
   * 0 or NO_NOTIFY. With EVENT_IDX (used.flags stays 0: "The device MUST set flags to 0"): enabling
   * publishes avail_event = last available index now and at every pop; disabling stops publishing, so the
   * driver stops kicking once it passes the last published value.
   */
  setNotification(enabled: boolean): void {
    this._kicksWanted = enabled;
    if (this._eventIdx) {
      if (enabled) this._mem.writeU16(this._availEvent, this._lastAvail);
    } else {
      this._mem.writeU16(this._used, enabled ? 0 : NO_NOTIFY);
    }
  }

  private _growScratch(min: number): void {
    let n = this._scratch.length * 2;
    while (n < min) n *= 2;
    const grown = new Uint8Array(Math.min(n, Math.max(min, this._maxReadable)));
    grown.set(this._scratch);
    this._scratch = grown;
    this._scratchWords = new Uint32Array(grown.buffer, 0, grown.length >>> 2);
    this._views = new Array<Uint8Array>(CACHED_VIEWS).fill(NO_BYTES);
  }

  private _growSegs(): void {
    const grown = new Float64Array(this._wSegs.length * 2);
    grown.set(this._wSegs);
    this._wSegs = grown;
  }
}
