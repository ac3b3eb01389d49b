/**
 * StructCodec: byte-exact, little-endian views of C structs in a `Uint8Array`, the way the kernel sees
 * an ioctl argument. A codec is a name, a `sizeof` and a table of fields (kind + byte offset) transcribed
 * from the C layout; it holds no behaviour beyond moving numbers in and out of bytes.
 *
 * - Little-endian only (x86-64 / arm64, the ABI the simulator presents).
 * - `u8`/`u16`/`u32`/`s32` are JS numbers; `u64` is a `bigint`, so 64-bit values (IOVAs, sizes, vaddrs)
 *   keep every bit, including values ≥ 2^63.
 * - Writes convert as C does on assignment to an unsigned or signed field: modulo 2^width
 *   (`flags: 1 << 31` stores 0x80000000, `-1n` in a u64 stores 0xFFFF_FFFF_FFFF_FFFF).
 * - Works on any `Uint8Array` view (any `byteOffset`); bytes are read and written with direct
 *   arithmetic, no DataView allocation and no BigInt on the 8/16/32-bit paths.
 * - Offsets that run past the buffer throw RangeError: callers check lengths (argsz, minsz) first, so a
 *   RangeError here is a bug in the caller, never an ABI outcome.
 * - Unions are described by overlapping fields (see vfio-pamu.ts). `encode` zeroes every field that is
 *   missing from the value before writing the present ones, so supplying one union member is enough.
 *
 * Source: the layout rules of reference/vfio-uapi.md §3 (`__aligned_u64`, little-endian).
 */

/** The C scalar types that VFIO structs use. */
export type FieldKind = 'u8' | 'u16' | 'u32' | 's32' | 'u64';

/** One field of a C struct: its scalar kind and its byte offset from the start of the struct. */
export interface FieldDef {
  readonly kind: FieldKind;
  readonly offset: number;
}

/** The JS value of every field of a struct: `bigint` for u64, `number` otherwise. */
export type Decoded<F extends Record<string, FieldDef>> = {
  -readonly [K in keyof F]: F[K]['kind'] extends 'u64' ? bigint : number;
};

/** The decoded value type of a codec, `DecodedOf<typeof VfioIommuType1DmaMap>`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type DecodedOf<C extends StructCodec<any>> = C extends StructCodec<infer F> ? Decoded<F> : never;

/** Byte width of each field kind. */
export const FIELD_WIDTH: Readonly<Record<FieldKind, number>> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

/** A field definition with its kind kept as a literal type: `argsz: field('u32', 0)`. */
export function field<K extends FieldKind>(kind: K, offset: number): { readonly kind: K; readonly offset: number } {
  return { kind, offset };
}

function checkRange(bytes: Uint8Array, off: number, width: number): void {
  if (!Number.isInteger(off) || off < 0 || off + width > bytes.length) {
    throw new RangeError(`${width}-byte access at offset ${off} is outside a ${bytes.length}-byte buffer`);
  }
}

// The unchecked primitives below assume the caller validated the range.

function getU16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function getU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function getS32(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

function getU64(b: Uint8Array, o: number): bigint {
  const lo = getU32(b, o);
  const hi = getU32(b, o + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  // Uint8Array stores keep the low 8 bits; `>>>` first converts v modulo 2^32, as a C store would.
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

function putU64(b: Uint8Array, o: number, v: bigint | number): void {
  if (typeof v === 'bigint' && v >= 0n && v <= 0x1f_ffff_ffff_ffffn) {
    // Fast path for values exact in a double (most IOVAs, vaddrs and sizes): one BigInt conversion.
    const n = Number(v);
    putU32(b, o, n);
    putU32(b, o + 4, n / 0x1_0000_0000);
    return;
  }
  const x = BigInt.asUintN(64, typeof v === 'bigint' ? v : BigInt(v));
  putU32(b, o, Number(x & 0xffffffffn));
  putU32(b, o + 4, Number(x >> 32n));
}

/** Read a little-endian u16 at `off`. @throws RangeError past the end of `bytes`. */
export function readU16(bytes: Uint8Array, off: number): number {
  checkRange(bytes, off, 2);
  return getU16(bytes, off);
}

/** Write the low 16 bits of `v`, little-endian, at `off`. @throws RangeError past the end of `bytes`. */
export function writeU16(bytes: Uint8Array, off: number, v: number): void {
  checkRange(bytes, off, 2);
  putU16(bytes, off, v);
}

/** Read a little-endian u32 at `off` as a non-negative number. @throws RangeError past the end of `bytes`. */
export function readU32(bytes: Uint8Array, off: number): number {
  checkRange(bytes, off, 4);
  return getU32(bytes, off);
}

/** Write `v` modulo 2^32, little-endian, at `off`. @throws RangeError past the end of `bytes`. */
export function writeU32(bytes: Uint8Array, off: number, v: number): void {
  checkRange(bytes, off, 4);
  putU32(bytes, off, v);
}

/** Read a little-endian u64 at `off` as a bigint in [0, 2^64). @throws RangeError past the end of `bytes`. */
export function readU64(bytes: Uint8Array, off: number): bigint {
  checkRange(bytes, off, 8);
  return getU64(bytes, off);
}

/** Write `v` modulo 2^64, little-endian, at `off`. @throws RangeError past the end of `bytes`. */
export function writeU64(bytes: Uint8Array, off: number, v: bigint): void {
  checkRange(bytes, off, 8);
  putU64(bytes, off, v);
}

// Field kinds as small integers, so the hot loops switch on a number.
const K_U8 = 0;
const K_U16 = 1;
const K_U32 = 2;
const K_S32 = 3;
const K_U64 = 4;
const KIND_CODE: Readonly<Record<FieldKind, number>> = { u8: K_U8, u16: K_U16, u32: K_U32, s32: K_S32, u64: K_U64 };

function getField(b: Uint8Array, o: number, code: number): number | bigint {
  switch (code) {
    case K_U8:
      return b[o]!;
    case K_U16:
      return getU16(b, o);
    case K_U32:
      return getU32(b, o);
    case K_S32:
      return getS32(b, o);
    default:
      return getU64(b, o);
  }
}

function putField(b: Uint8Array, o: number, code: number, v: number | bigint): void {
  switch (code) {
    case K_U8:
      b[o] = v as number;
      return;
    case K_U16:
      putU16(b, o, v as number);
      return;
    case K_U32:
    case K_S32:
      putU32(b, o, v as number);
      return;
    default:
      putU64(b, o, v);
  }
}

/**
 * A byte-exact codec for one C struct (fixed part only; flexible arrays such as `data[]` are read by
 * their users at `size`). Field names keep the C spelling.
 */
export class StructCodec<F extends Record<string, FieldDef>> {
  private readonly _names: readonly string[];
  private readonly _offsets: readonly number[];
  private readonly _codes: readonly number[];

  /**
   * @param name the C struct name, `'vfio_iommu_type1_dma_map'`
   * @param size `sizeof` the struct in bytes (including tail padding)
   * @param fields every named field with its kind and offset
   * @throws RangeError when a field does not fit inside `size` (a transcription error).
   */
  constructor(
    readonly name: string,
    readonly size: number,
    readonly fields: F,
  ) {
    const names = Object.keys(fields);
    for (const n of names) {
      const f = fields[n]!;
      if (!Number.isInteger(f.offset) || f.offset < 0 || f.offset + FIELD_WIDTH[f.kind] > size) {
        throw new RangeError(`${name}.${n} (${f.kind} @${f.offset}) does not fit in ${size} bytes`);
      }
    }
    this._names = names;
    this._offsets = names.map((n) => fields[n]!.offset);
    this._codes = names.map((n) => KIND_CODE[fields[n]!.kind]);
  }

  private _def(field: keyof F): FieldDef {
    const f = this.fields[field];
    if (f === undefined) throw new TypeError(`${this.name} has no field ${String(field)}`);
    return f;
  }

  /** `offsetof(struct, field)`. */
  offsetof(field: keyof F): number {
    return this._def(field).offset;
  }

  /** `offsetofend(struct, field)` = offset + width; how the kernel defines `minsz`. */
  offsetofend(field: keyof F): number {
    const f = this._def(field);
    return f.offset + FIELD_WIDTH[f.kind];
  }

  /**
   * Read every field of the struct that starts at `base`.
   * @throws RangeError when `bytes` holds fewer than `base + size` bytes.
   */
  decode(bytes: Uint8Array, base = 0): Decoded<F> {
    checkRange(bytes, base, this.size);
    const out: Record<string, number | bigint> = {};
    const names = this._names;
    for (let i = 0; i < names.length; i++) {
      out[names[i]!] = getField(bytes, base + this._offsets[i]!, this._codes[i]!);
    }
    return out as Decoded<F>;
  }

  /**
   * Write `value` as the struct at `base` of `into` (or of a new zeroed `size`-byte buffer), and return
   * that buffer. Fields missing from `value` are written as 0; bytes that belong to no field (implicit
   * padding) and bytes outside the struct are left as they were.
   * @throws RangeError when `into` holds fewer than `base + size` bytes.
   */
  encode(value: Partial<Decoded<F>>, into?: Uint8Array, base = 0): Uint8Array {
    const fresh = into === undefined;
    const bytes = into ?? new Uint8Array(this.size);
    checkRange(bytes, base, this.size);
    const names = this._names;
    const v = value as Record<string, number | bigint | undefined>;
    // Zeroes first, then values: a union member that is present wins over absent members that overlap it.
    if (!fresh) {
      for (let i = 0; i < names.length; i++) {
        if (v[names[i]!] === undefined) putField(bytes, base + this._offsets[i]!, this._codes[i]!, 0);
      }
    }
    for (let i = 0; i < names.length; i++) {
      const x = v[names[i]!];
      if (x !== undefined) putField(bytes, base + this._offsets[i]!, this._codes[i]!, x);
    }
    return bytes;
  }

  /**
   * Read one field of the struct at `base`.
   * @throws RangeError when the field runs past the end of `bytes`.
   */
  read<K extends keyof F>(bytes: Uint8Array, field: K, base = 0): Decoded<F>[K] {
    const f = this._def(field);
    const o = base + f.offset;
    checkRange(bytes, o, FIELD_WIDTH[f.kind]);
    return getField(bytes, o, KIND_CODE[f.kind]) as Decoded<F>[K];
  }

  /**
   * Write one field of the struct at `base` (modulo its width, as C would).
   * @throws RangeError when the field runs past the end of `bytes`.
   */
  write<K extends keyof F>(bytes: Uint8Array, field: K, value: Decoded<F>[K], base = 0): void {
    const f = this._def(field);
    const o = base + f.offset;
    checkRange(bytes, o, FIELD_WIDTH[f.kind]);
    putField(bytes, o, KIND_CODE[f.kind], value as number | bigint);
  }
}
