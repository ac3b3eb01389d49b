/**
 * exactNumber: a bigint as a number when it is a non-negative integer below 2^53 (exact in a double),
 * else −1 — the test every `Addr` fast path of this folder starts with.
 *
 * Why not `Number(v)`: in Node 20's optimised code a bigint-to-number conversion is a runtime call
 * (~20 ns on the reference host), and the driver makes five per MAP+UNMAP pair. A bigint comparison
 * against a constant and a store into a BigUint64Array are compiled inline; the two u32 halves then
 * make the number (~5 ns). The range check comes first: the store alone would wrap modulo 2^64.
 */
import { LITTLE_ENDIAN } from './host-order';

const LIMIT = 1n << 53n;
const TWO_32 = 2 ** 32;
const u64 = new BigUint64Array(1);
const u32 = new Uint32Array(u64.buffer);
/** Which of u32's words holds the low half of u64[0] (0 on a little-endian host). */
const LO = LITTLE_ENDIAN ? 0 : 1;

export function exactNumber(v: bigint): number {
  if (v < 0n || v >= LIMIT) return -1;
  u64[0] = v;
  return u32[1 - LO]! * TWO_32 + u32[LO]!;
}
