/**
 * The usable IOVA space of a container (type1's `iova_list`): the intersection of every domain's
 * aperture, minus every reserved region of every group except IOMMU_RESV_DIRECT_RELAXABLE
 * (vfio_iommu_aper_resize, vfio_iommu_resv_exclude; reference/vfio-uapi.md §9).
 *
 * Ranges are held in 4 KiB pages, [startPfn, endPfn) with `end` exclusive. Apertures are shrunk and
 * reserved regions grown to page boundaries; every preset's bounds are page aligned, so nothing is lost.
 * The list is recomputed from scratch on every attach and detach, which gives the same answer as the
 * kernel's incremental resize/exclude/expand steps.
 */
import type { IommuGeometry, ReservedRegion } from '../../../kernel-sim/iommu/iommu-domain';

/** A usable IOVA range in pages. */
export interface IovaRange {
  readonly startPfn: number;
  /** Exclusive. */
  readonly endPfn: number;
}

const PAGE_SHIFT = 12n;

/** The usable ranges for these apertures and reserved regions, ascending. Empty apertures give []. */
export function usableIovaRanges(apertures: readonly IommuGeometry[], reserved: readonly ReservedRegion[]): IovaRange[] {
  if (apertures.length === 0) return [];
  let start = 0n;
  let end = 1n << 52n;
  for (const geometry of apertures) {
    const s = (geometry.apertureStart + 0xfffn) >> PAGE_SHIFT;
    const e = (geometry.apertureLast + 1n) >> PAGE_SHIFT;
    if (s > start) start = s;
    if (e < end) end = e;
  }
  if (start >= end) return [];
  let ranges: IovaRange[] = [{ startPfn: Number(start), endPfn: Number(end) }];
  for (const region of reserved) {
    if (region.type === 'direct-relaxable') continue;
    const cutStart = Number(region.start >> PAGE_SHIFT);
    const cutEnd = Number((region.last + 0x1000n) >> PAGE_SHIFT);
    ranges = ranges.flatMap((r) => {
      if (cutEnd <= r.startPfn || cutStart >= r.endPfn) return [r];
      const pieces: IovaRange[] = [];
      if (cutStart > r.startPfn) pieces.push({ startPfn: r.startPfn, endPfn: cutStart });
      if (cutEnd < r.endPfn) pieces.push({ startPfn: cutEnd, endPfn: r.endPfn });
      return pieces;
    });
  }
  return ranges;
}

/** Whether [startPfn, endPfn) lies inside a single range (vfio_iommu_iova_dma_valid). */
export function fitsOneRange(ranges: readonly IovaRange[], startPfn: number, endPfn: number): boolean {
  for (const r of ranges) {
    if (startPfn >= r.startPfn && endPfn <= r.endPfn) return true;
  }
  return false;
}

/** Whether [startPfn, endPfn) intersects a reserved region that VFIO cuts out. */
export function hitsReserved(reserved: readonly ReservedRegion[], startPfn: number, endPfn: number): boolean {
  return reserved.some((region) => {
    if (region.type === 'direct-relaxable') return false;
    const cutStart = Number(region.start >> PAGE_SHIFT);
    const cutEnd = Number((region.last + 0x1000n) >> PAGE_SHIFT);
    return cutStart < endPfn && startPfn < cutEnd;
  });
}

/** A range as VFIO reports it: byte start and inclusive byte end (struct vfio_iova_range). */
export function rangeBytes(range: IovaRange): { start: bigint; end: bigint } {
  return { start: BigInt(range.startPfn) << PAGE_SHIFT, end: (BigInt(range.endPfn) << PAGE_SHIFT) - 1n };
}

/**
 * The container's page-size bitmap (vfio_update_pgsize_bitmap): the AND of every domain's, with any
 * sub-page bits folded into PAGE_SIZE. With no domain: PAGE_MASK.
 */
export function intersectPgsizes(bitmaps: readonly bigint[]): bigint {
  const pageMask = BigInt.asUintN(64, ~0xfffn);
  if (bitmaps.length === 0) return pageMask;
  let bitmap = BigInt.asUintN(64, ~0n);
  for (const b of bitmaps) bitmap &= b;
  if ((bitmap & 0xfffn) !== 0n) bitmap = (bitmap & ~0xfffn) | 0x1000n;
  return bitmap;
}

/** log2 of the smallest page size in a bitmap (__ffs), or 64 for an empty bitmap. */
export function smallestPageShift(bitmap: bigint): number {
  if (bitmap === 0n) return 64;
  let shift = 0;
  while (((bitmap >> BigInt(shift)) & 1n) === 0n) shift++;
  return shift;
}
