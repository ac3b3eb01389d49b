/**
 * The host's byte order, and the halves of a u64 held as an exact number: what the word fast paths of
 * this folder (guest memory, the virtqueue, the driver, the VFIO mapper) share. virtio 1.x and the VFIO
 * structs are little-endian; a Uint32Array reads the host's order, so word views are used only when the
 * two agree.
 */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const TWO_32 = 2 ** 32;

/**
 * The high 32 bits of the non-negative safe integer `v` (its low half is `v - high32(v) * 2^32`).
 * A division and floor, not `v % 2^32`: a float modulo is a C call in V8's optimised code.
 */
export function high32(v: number): number {
  return v < TWO_32 ? 0 : Math.floor(v / TWO_32);
}
