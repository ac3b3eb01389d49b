/**
 * The RESV_MEM regions of an endpoint behind a host IOMMU, computed the way QEMU does for assigned
 * devices (reference §5.3: `virtio_iommu_set_host_iova_ranges` + `rebuild_resv_regions`):
 *
 * 1. the complement of the host's usable IOVA ranges (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) inside
 *    [0; 2^64 - 1], each gap a RESERVED region (`range_inverse_array`);
 * 2. then the platform's MSI windows, inserted with priority as MSI regions
 *    (`resv_region_list_insert`): an MSI window carves the RESERVED region it falls into, so the
 *    result stays sorted and disjoint (spec: "The device SHOULD NOT present multiple RESV_MEM
 *    properties that overlap each other for the same endpoint");
 * 3. touching regions of the same subtype merged.
 *
 * All ranges are inclusive (`last`), as RESV_MEM's `end` is.
 */
import type { IovaRange, ReservedRegion } from './endpoint-mapper';

const U64_LAST = (1n << 64n) - 1n;

/** The gaps between `usable` ranges inside [0; 2^64 - 1]. `usable` may be unsorted; overlaps are merged. */
export function complementOf(usable: readonly IovaRange[]): IovaRange[] {
  const sorted = [...usable].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const gaps: IovaRange[] = [];
  let next = 0n; // first address not yet known to be usable
  let covered = false; // whether `next` went past 2^64 - 1
  for (const r of sorted) {
    if (r.start > next) gaps.push({ start: next, last: r.start - 1n });
    if (r.last + 1n > next) next = r.last + 1n;
    if (next > U64_LAST) {
      covered = true;
      break;
    }
  }
  if (!covered) gaps.push({ start: next, last: U64_LAST });
  return gaps;
}

/**
 * RESERVED regions = the complement of `usable`, with `msiWindows` inserted on top as MSI regions.
 * @returns sorted, disjoint regions
 */
export function hostReservedRegions(usable: readonly IovaRange[], msiWindows: readonly IovaRange[]): ReservedRegion[] {
  let regions: ReservedRegion[] = complementOf(usable).map((g) => ({ start: g.start, last: g.last, subtype: 'reserved' as const }));
  for (const w of msiWindows) regions = insertWithPriority(regions, { start: w.start, last: w.last, subtype: 'msi' });
  return mergeAdjacent(regions);
}

/**
 * Joins touching regions of the same subtype (adjacent MSI bank windows become one MSI region: "The
 * device SHOULD NOT present more than one VIRTIO_IOMMU_RESV_MEM_T_MSI property per endpoint").
 */
export function mergeAdjacent(sorted: readonly ReservedRegion[]): ReservedRegion[] {
  const out: ReservedRegion[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.subtype === r.subtype && prev.last + 1n === r.start) out[out.length - 1] = { start: prev.start, last: r.last, subtype: r.subtype };
    else out.push(r);
  }
  return out;
}

/** Inserts `region`, cutting whatever it overlaps out of the existing regions (the new one wins). */
export function insertWithPriority(regions: readonly ReservedRegion[], region: ReservedRegion): ReservedRegion[] {
  const out: ReservedRegion[] = [];
  for (const r of regions) {
    if (r.last < region.start || r.start > region.last) {
      out.push(r);
      continue;
    }
    if (r.start < region.start) out.push({ start: r.start, last: region.start - 1n, subtype: r.subtype });
    if (r.last > region.last) out.push({ start: region.last + 1n, last: r.last, subtype: r.subtype });
  }
  out.push(region);
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}
