/**
 * VFIO INFO capability chains (vfio_info_cap_add / vfio_info_cap_shift, reference/vfio-uapi.md §4.2):
 * each capability starts with {u16 id, u16 version, u32 next}, is padded to a multiple of 8 bytes
 * (kernels since 6.6), and `next` is the offset of the following capability from the start of the whole
 * INFO buffer (0 ends the chain).
 *
 * `placeCaps` applies the rule every INFO ioctl shares: when argsz leaves room for the chain, the caps are
 * copied right after the fixed struct and cap_offset points at them; when it does not, argsz is rewritten
 * to the size needed, cap_offset stays 0, no cap is copied, and the call still succeeds.
 */
import { checkOut } from './user-arg';
import { writeU32 } from '../uapi/codec';

/** A capability chain under construction. */
export class CapabilityChain {
  private readonly _caps: { id: number; version: number; body: Uint8Array }[] = [];

  /** Appends a capability; `body` is what follows the 8-byte header. */
  add(id: number, version: number, body: Uint8Array): void {
    this._caps.push({ id, version, body });
  }

  get isEmpty(): boolean {
    return this._caps.length === 0;
  }

  /** Bytes the chain takes, each cap padded to 8 bytes. */
  get size(): number {
    return this._caps.reduce((sum, cap) => sum + align8(8 + cap.body.length), 0);
  }

  /** The chain laid out for a buffer where it starts at `base` (next offsets already shifted). */
  build(base: number): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    this._caps.forEach((cap, i) => {
      const len = align8(8 + cap.body.length);
      out[at] = cap.id & 0xff;
      out[at + 1] = cap.id >>> 8;
      out[at + 2] = cap.version & 0xff;
      out[at + 3] = cap.version >>> 8;
      writeU32(out, at + 4, i + 1 < this._caps.length ? base + at + len : 0);
      out.set(cap.body, at + 8);
      at += len;
    });
    return out;
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** The fixed-struct fields placeCaps updates. */
export interface CapPlacement {
  /** The argsz to report (rewritten when the caps do not fit). */
  argsz: number;
  /** 0 when the caps were not copied. */
  capOffset: number;
  /** Whether the CAPS flag must be set (the chain is not empty). */
  hasCaps: boolean;
}

/**
 * Copies the chain after the fixed struct of size `structSize` if argsz leaves room for it.
 * @throws SysError EFAULT when argsz promises more than the buffer holds
 */
export function placeCaps(buf: Uint8Array, argsz: number, structSize: number, caps: CapabilityChain): CapPlacement {
  if (caps.isEmpty) return { argsz, capOffset: 0, hasCaps: false };
  const needed = structSize + caps.size;
  if (argsz < needed) return { argsz: needed, capOffset: 0, hasCaps: true };
  const chain = caps.build(structSize);
  checkOut(buf, structSize, chain.length);
  buf.set(chain, structSize);
  return { argsz, capOffset: structSize, hasCaps: true };
}
