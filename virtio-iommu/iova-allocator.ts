/**
 * IovaAllocator: the guest's IOVA space for one domain, as the Linux DMA API keeps it
 * (drivers/iommu/iova.c): ranges of granule-aligned IOVAs handed out top-down (Linux allocates below the
 * DMA limit, highest first), with the endpoint's RESV_MEM regions never handed out ("The driver SHOULD
 * NOT map any virtual address described by a VIRTIO_IOMMU_RESV_MEM_T_RESERVED or
 * VIRTIO_IOMMU_RESV_MEM_T_MSI property").
 *
 * - Units: granules, as plain numbers (IOVA / granule < 2^53 for any granule ≥ 2 KiB, and the space is
 *   clipped below 2^53 bytes otherwise). Free space is an IntervalFreeList of `[start, end)` granule
 *   intervals, coalesced on free; allocation is first-fit from the top.
 * - `end` is exclusive, `last` inclusive (DESIGN.md §3).
 */
import type { IovaRange } from './endpoint-mapper';
import { IntervalFreeList } from './interval-free-list';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Granule-aligned IOVA ranges of one domain. */
export class IovaAllocator {
  readonly granule: bigint;
  /** Free intervals in granules. */
  private readonly _free = new IntervalFreeList();
  private _allocated = 0;

  /**
   * @param space the usable IOVA hull (inclusive)
   * @param reserved ranges never handed out (inclusive)
   * @param granule a power of two
   */
  constructor(space: IovaRange, reserved: readonly IovaRange[], granule: bigint) {
    this.granule = granule;
    const maxLast = MAX_SAFE * granule < space.last ? MAX_SAFE * granule : space.last;
    const first = ceilDiv(space.start, granule);
    const end = (maxLast + 1n) / granule;
    const holes = reserved
      .map((r) => [r.start / granule, ceilDiv(r.last + 1n, granule)] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
    let at = first;
    for (const [hs, he] of holes) {
      if (hs > at && at < end) this._free.free(Number(at), Number(hs < end ? hs : end));
      if (he > at) at = he;
    }
    if (at < end) this._free.free(Number(at), Number(end));
  }

  /** Granules handed out and not freed. */
  get allocatedGranules(): number {
    return this._allocated;
  }

  /**
   * Hands out `size` bytes (rounded up to the granule), highest free range first.
   * @returns the IOVA, or undefined when no free range is large enough
   */
  alloc(size: bigint): bigint | undefined {
    const n = Number(ceilDiv(size, this.granule));
    const at = this._free.allocHighest(n);
    if (at < 0) return undefined;
    this._allocated += n;
    return BigInt(at) * this.granule;
  }

  /** Gives back what `alloc(size)` returned at `iova`. */
  free(iova: bigint, size: bigint): void {
    const start = Number(iova / this.granule);
    const end = start + Number(ceilDiv(size, this.granule));
    this._free.free(start, end);
    this._allocated -= end - start;
  }
}

function ceilDiv(x: bigint, d: bigint): bigint {
  return (x + d - 1n) / d;
}
