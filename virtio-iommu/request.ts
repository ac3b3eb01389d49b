/**
 * Request decoding: the device-readable bytes of one requestq chain → a typed request. This is the only
 * place that knows the wire layouts of the requests (spec §Device operations; reference §2.2), and the
 * only place where the spec's inclusive `virt_end` is turned into the exclusive `end` every other file
 * uses (DESIGN.md §3: "converted once, in the request decoder").
 *
 * - Layouts are the current spec's (UAPI v0.12), not the v0.9 drafts (reference §2.3): ATTACH has
 *   `flags` + `reserved[4]`, MAP flags are READ 1, WRITE 2, MMIO 4.
 * - `head.reserved` is ignored: "The device MUST ignore field reserved of struct
 *   virtio_iommu_req_head" (spec §Device operations).
 * - Reserved fields the spec lets the device check are reported, not judged, here: ATTACH `reserved`
 *   (MUST → INVAL) and UNMAP `reserved` (MAY → INVAL). DETACH and PROBE `reserved` are not even read:
 *   "The device MUST ignore reserved" (spec §DETACH, §PROBE).
 * - A readable part longer than the request is accepted (the extra bytes are ignored); a shorter one is
 *   `truncated` and answered with S_INVAL (QEMU and cloud-hypervisor: a wrong payload size is INVAL).
 *   No head, or an unknown type, is `unparsable`: the buffer is returned unwritten with used length 0
 *   ("If a request type is not recognized, the device SHOULD NOT write the buffer and SHOULD set the
 *   used length to zero"; "When the device fails to parse a request … it returns the buffers without
 *   writing to them").
 * - `end = virt_end + 1` may be 2^64 (UNMAP(0, ~0)); `end <= start` means `virt_end < virt_start`, which
 *   the handlers answer with S_RANGE. A size never leaves bigint, so a 2^64-byte range is exact.
 * - Numbers where exact: MAP and UNMAP carry `startN`/`endN`/`physN` and `small` (every field below
 *   2^53); the handlers' fast paths use those and never touch a BigInt. The bigint fields are made on
 *   first read when `small`, and decoded eagerly otherwise (garbage or edge requests such as
 *   UNMAP(0, ~0), which take the bigint path).
 */
import {
  VIRTIO_IOMMU_REQ_HEAD_SIZE,
  VIRTIO_IOMMU_REQ_TAIL_SIZE,
  VIRTIO_IOMMU_T_ATTACH,
  VIRTIO_IOMMU_T_DETACH,
  VIRTIO_IOMMU_T_MAP,
  VIRTIO_IOMMU_T_PROBE,
  VIRTIO_IOMMU_T_UNMAP,
  VirtioIommuReqAttach,
  VirtioIommuReqDetach,
  VirtioIommuReqMap,
  VirtioIommuReqProbe,
  VirtioIommuReqUnmap,
} from '../uapi/virtio-iommu';

/** ATTACH (spec §ATTACH request). */
export interface AttachRequest {
  readonly kind: 'attach';
  readonly domain: number;
  readonly endpoint: number;
  readonly flags: number;
  /** `reserved[4]` is all zero. */
  readonly reservedIsZero: boolean;
}

/** DETACH (spec §DETACH request); its `reserved[8]` is ignored. */
export interface DetachRequest {
  readonly kind: 'detach';
  readonly domain: number;
  readonly endpoint: number;
}

/** MAP (spec §MAP request): `[start, end)` → `phys`. */
export interface MapRequest {
  readonly kind: 'map';
  readonly domain: number;
  readonly start: bigint;
  /** `virt_end + 1`: exclusive, at most 2^64; `<= start` when the driver sent virt_end < virt_start. */
  readonly end: bigint;
  readonly phys: bigint;
  readonly flags: number;
  /**
   * The low 32 bits of `start`, `end` and `phys` OR-ed together (`end` modulo 2^64): an alignment check
   * against a mask below 2^32 needs no BigInt.
   */
  readonly lowBits: number;
  /** `start`, `end` and `phys` are all below 2^53 (so `phys + size` cannot pass 2^64). */
  readonly small: boolean;
  /** `start`, `end` and `phys` as numbers: exact when `small` (the fast path reads these, no BigInt). */
  readonly startN: number;
  readonly endN: number;
  readonly physN: number;
}

/** UNMAP (spec §UNMAP request): every mapping inside `[start, end)`. */
export interface UnmapRequest {
  readonly kind: 'unmap';
  readonly domain: number;
  readonly start: bigint;
  /** `virt_end + 1`: exclusive, at most 2^64. */
  readonly end: bigint;
  /** `reserved[4]` is all zero. */
  readonly reservedIsZero: boolean;
  /** `start` and `end` are both below 2^53. */
  readonly small: boolean;
  /** `start` and `end` as numbers: exact when `small`. */
  readonly startN: number;
  readonly endN: number;
}

/** PROBE (spec §PROBE request); its `reserved[64]` is ignored. */
export interface ProbeRequest {
  readonly kind: 'probe';
  readonly endpoint: number;
}

/** A request the device understood. */
export type VirtioIommuRequest = AttachRequest | DetachRequest | MapRequest | UnmapRequest | ProbeRequest;

/** A known type whose readable part is shorter than its layout: answered S_INVAL when a tail fits. */
export interface TruncatedRequest {
  readonly kind: 'truncated';
  readonly type: number;
  readonly readableLength: number;
}

/** No head, or an unknown type: completed with used length 0 and nothing written. */
export interface UnparsableRequest {
  readonly kind: 'unparsable';
  readonly reason: 'no-head' | 'unknown-type';
  readonly type: number;
}

/** What `decodeRequest` returns. */
export type DecodedRequest = VirtioIommuRequest | TruncatedRequest | UnparsableRequest;

/**
 * Size of the device-readable part of each request type: head included, tail excluded (the readable
 * part ends where the tail starts; PROBE's is the whole fixed struct, 72 bytes).
 */
export const READABLE_SIZE: Readonly<Record<number, number>> = {
  [VIRTIO_IOMMU_T_ATTACH]: VirtioIommuReqAttach.offsetof('status'),
  [VIRTIO_IOMMU_T_DETACH]: VirtioIommuReqDetach.offsetof('status'),
  [VIRTIO_IOMMU_T_MAP]: VirtioIommuReqMap.offsetof('status'),
  [VIRTIO_IOMMU_T_UNMAP]: VirtioIommuReqUnmap.offsetof('status'),
  [VIRTIO_IOMMU_T_PROBE]: VirtioIommuReqProbe.size,
};

// Field offsets as u32 word indices, taken once from the uapi codecs (every field of every request is
// 4-aligned; checked below). The hot path reads words rather than decode(), which would build an object
// of every field.
const W_ATTACH_DOMAIN = word(VirtioIommuReqAttach.offsetof('domain'));
const W_ATTACH_ENDPOINT = word(VirtioIommuReqAttach.offsetof('endpoint'));
const W_ATTACH_FLAGS = word(VirtioIommuReqAttach.offsetof('flags'));
const W_ATTACH_RESERVED = word(VirtioIommuReqAttach.offsetof('reserved'));
const W_DETACH_DOMAIN = word(VirtioIommuReqDetach.offsetof('domain'));
const W_DETACH_ENDPOINT = word(VirtioIommuReqDetach.offsetof('endpoint'));
const W_MAP_DOMAIN = word(VirtioIommuReqMap.offsetof('domain'));
const W_MAP_VIRT_START = word(VirtioIommuReqMap.offsetof('virt_start'));
const W_MAP_VIRT_END = word(VirtioIommuReqMap.offsetof('virt_end'));
const W_MAP_PHYS = word(VirtioIommuReqMap.offsetof('phys_start'));
const W_MAP_FLAGS = word(VirtioIommuReqMap.offsetof('flags'));
const W_UNMAP_DOMAIN = word(VirtioIommuReqUnmap.offsetof('domain'));
const W_UNMAP_VIRT_START = word(VirtioIommuReqUnmap.offsetof('virt_start'));
const W_UNMAP_VIRT_END = word(VirtioIommuReqUnmap.offsetof('virt_end'));
const W_UNMAP_RESERVED = word(VirtioIommuReqUnmap.offsetof('reserved'));
const W_PROBE_ENDPOINT = word(VirtioIommuReqProbe.offsetof('endpoint'));

function word(offset: number): number {
  if ((offset & 3) !== 0) throw new Error(`virtio-iommu request field at ${offset} is not 4-aligned`);
  return offset >>> 2;
}

/** Words a request's readable part can hold: the largest fixed layout (PROBE, 72 bytes). */
const MAX_WORDS = VirtioIommuReqProbe.size >>> 2;
/** The words of a readable part given as bytes only (see decodeRequest), filled per request. */
const byteWords = new Uint32Array(MAX_WORDS);

/** Word i of `b` (little-endian bytes 4i..4i+3) for every whole word up to MAX_WORDS; endian-neutral. */
function wordsOf(b: Uint8Array): Uint32Array {
  const n = Math.min(b.length >>> 2, MAX_WORDS);
  for (let i = 0; i < n; i++) {
    const o = 4 * i;
    byteWords[i] = (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  }
  return byteWords;
}

/** The u64 at word `wi` (low word first). */
function readU64(w: Uint32Array, wi: number): bigint {
  const lo = w[wi]!;
  const hi = w[wi + 1]!;
  return hi < 0x20_0000 ? BigInt(hi * TWO_32 + lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/** The u64 at word `wi` plus one (at most 2^64): one BigInt when the sum is exact in a double. */
function readU64PlusOne(w: Uint32Array, wi: number): bigint {
  const lo = w[wi]!;
  const hi = w[wi + 1]!;
  return hi < 0x1f_ffff ? BigInt(hi * TWO_32 + lo + 1) : ((BigInt(hi) << 32n) | BigInt(lo)) + 1n;
}

const TWO_32 = 2 ** 32;

/**
 * Every decoded request has this one runtime shape, whatever its kind: handlers and the dispatcher then
 * read `kind`, `domain`, `start`… through monomorphic property accesses (seven object literal shapes made
 * them megamorphic and cost more than the decoding itself). The TypeScript view stays the union above;
 * fields a kind does not have hold 0 / 0n / true and are never read through that kind's type.
 */
class Decoded {
  constructor(
    readonly kind: DecodedRequest['kind'],
    readonly type: number,
    readonly domain: number,
    readonly endpoint: number,
    readonly flags: number,
    /** Exact when `small`; the bigint fields are then made from them only if read. */
    readonly startN: number,
    readonly endN: number,
    readonly physN: number,
    /** The bigint values when not `small` (undefined when `small`: made on first read). */
    private _start: bigint | undefined,
    private _end: bigint | undefined,
    private _phys: bigint | undefined,
    readonly reservedIsZero: boolean,
    readonly readableLength: number,
    readonly reason: UnparsableRequest['reason'] | undefined,
    readonly lowBits: number,
    readonly small: boolean,
  ) {}

  get start(): bigint {
    return (this._start ??= BigInt(this.startN));
  }

  get end(): bigint {
    return (this._end ??= BigInt(this.endN));
  }

  get phys(): bigint {
    return (this._phys ??= BigInt(this.physN));
  }
}

const U = undefined;
/** Every u64 word pair below this high word is exact in a double, plus one (< 2^53 − 2^32). */
const SMALL_HI = 0x1f_ffff;

/**
 * Decodes the device-readable part of one request. Never throws for guest input.
 * @param readable the gathered readable bytes (any length)
 * @param words the same bytes as host-order u32 words, word i holding the little-endian bytes 4i..4i+3
 *   (the virtqueue's scratch on a little-endian host): fields are then read without assembling bytes.
 *   Without it the words are assembled here.
 */
export function decodeRequest(readable: Uint8Array, words?: Uint32Array): DecodedRequest {
  const n = readable.length;
  if (n < VIRTIO_IOMMU_REQ_HEAD_SIZE) return new Decoded('unparsable', n > 0 ? readable[0]! : -1, 0, 0, 0, 0, 0, 0, U, U, U, true, n, 'no-head', 0, true) as UnparsableRequest;
  const type = readable[0]!;
  const need = READABLE_SIZE[type];
  if (need === undefined) return new Decoded('unparsable', type, 0, 0, 0, 0, 0, 0, U, U, U, true, n, 'unknown-type', 0, true) as UnparsableRequest;
  if (n < need) return new Decoded('truncated', type, 0, 0, 0, 0, 0, 0, U, U, U, true, n, undefined, 0, true) as TruncatedRequest;
  const w = words ?? wordsOf(readable);
  switch (type) {
    case VIRTIO_IOMMU_T_MAP: {
      const startLo = w[W_MAP_VIRT_START]!;
      const startHi = w[W_MAP_VIRT_START + 1]!;
      const endLo = w[W_MAP_VIRT_END]!;
      const endHi = w[W_MAP_VIRT_END + 1]!;
      const physLo = w[W_MAP_PHYS]!;
      const physHi = w[W_MAP_PHYS + 1]!;
      const small = (startHi | endHi | physHi) >>> 0 < SMALL_HI;
      return new Decoded(
        'map',
        type,
        w[W_MAP_DOMAIN]!,
        0,
        w[W_MAP_FLAGS]!,
        startHi * TWO_32 + startLo,
        // The inclusive virt_end becomes an exclusive end here, and only here (both representations).
        endHi * TWO_32 + endLo + 1,
        physHi * TWO_32 + physLo,
        small ? U : readU64(w, W_MAP_VIRT_START),
        small ? U : readU64PlusOne(w, W_MAP_VIRT_END),
        small ? U : readU64(w, W_MAP_PHYS),
        true,
        n,
        undefined,
        startLo | ((endLo + 1) >>> 0) | physLo,
        small,
      ) as MapRequest;
    }
    case VIRTIO_IOMMU_T_UNMAP: {
      const startHi = w[W_UNMAP_VIRT_START + 1]!;
      const endHi = w[W_UNMAP_VIRT_END + 1]!;
      const small = (startHi | endHi) >>> 0 < SMALL_HI;
      return new Decoded(
        'unmap',
        type,
        w[W_UNMAP_DOMAIN]!,
        0,
        0,
        startHi * TWO_32 + w[W_UNMAP_VIRT_START]!,
        endHi * TWO_32 + w[W_UNMAP_VIRT_END]! + 1,
        0,
        small ? U : readU64(w, W_UNMAP_VIRT_START),
        small ? U : readU64PlusOne(w, W_UNMAP_VIRT_END),
        U,
        w[W_UNMAP_RESERVED] === 0,
        n,
        undefined,
        0,
        small,
      ) as UnmapRequest;
    }
    case VIRTIO_IOMMU_T_ATTACH:
      return new Decoded(
        'attach',
        type,
        w[W_ATTACH_DOMAIN]!,
        w[W_ATTACH_ENDPOINT]!,
        w[W_ATTACH_FLAGS]!,
        0,
        0,
        0,
        U,
        U,
        U,
        w[W_ATTACH_RESERVED] === 0,
        n,
        undefined,
        0,
        true,
      ) as AttachRequest;
    case VIRTIO_IOMMU_T_DETACH:
      return new Decoded('detach', type, w[W_DETACH_DOMAIN]!, w[W_DETACH_ENDPOINT]!, 0, 0, 0, 0, U, U, U, true, n, undefined, 0, true) as DetachRequest;
    default:
      return new Decoded('probe', type, 0, w[W_PROBE_ENDPOINT]!, 0, 0, 0, 0, U, U, U, true, n, undefined, 0, true) as ProbeRequest;
  }
}

/**
 * Bytes of the device-writable part a request needs: the tail, plus `probe_size` bytes of properties
 * for PROBE (spec §PROBE request: "u8 properties[probe_size]; struct virtio_iommu_req_tail tail").
 */
export function responseLength(type: number, probeSize: number): number {
  return type === VIRTIO_IOMMU_T_PROBE ? probeSize + VIRTIO_IOMMU_REQ_TAIL_SIZE : VIRTIO_IOMMU_REQ_TAIL_SIZE;
}
