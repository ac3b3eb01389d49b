/**
 * The type1 scenarios of the foundation issue, each beside the raw limit measured in the same run (a
 * plain typed-array loop storing the same number of entries):
 *
 * - map-1g-4k: one MAP_DMA of 1 GiB of scattered 4 KiB pages (faulted in by a first map).
 * - map-1g-2m: one MAP_DMA of 1 GiB backed by 2 MiB hugepages, with the 2M leaves it writes.
 * - map-unmap-pair: MAP_DMA + UNMAP_DMA of one 4 KiB page through ioctl with struct bytes.
 * - entries-65535: 65,535 single-page mappings, then UNMAP_ALL; the cost of a map near 1,000 and
 *   near 65,535 entries.
 * - guest-64g-4k: a 64 GiB guest mapped with scattered 4 KiB pages, time and simulator bytes per page.
 *
 * Smoke mode (CI) shrinks every size; it checks that the scenarios run, not how fast.
 */
import { CostModel, uapi } from '../index';
import { memoryAfterGc, rawStore, sample, summarize, throughput, type Samples } from './harness';
import { delta, type1World } from './type1-world';

/** One line of the report. */
export interface ScenarioResult {
  name: string;
  what: string;
  /** The headline figure, with its unit. */
  value: number;
  unit: string;
  /** The target of the issue, in the same unit, and whether the figure meets it (undefined in smoke runs). */
  target?: string;
  met?: boolean;
  /** The raw limit measured in the same run, and the ratio value / raw when it makes sense. */
  raw?: number;
  ratio?: number;
  modelledMs?: number;
  details: Record<string, number | string>;
}

const GiB = 1n << 30n;
const cost = new CostModel();

function modelledMs(counters: Record<string, number>, ioctls: number): number {
  return (
    cost.modelled({
      pagesPinned: counters['pagesPinned'],
      pagesUnpinned: counters['pagesUnpinned'],
      leafWritten: counters['leafWritten'],
      leafCleared: counters['leafCleared'],
      tablesAllocated: counters['tablesAllocated'],
      iotlbInvalidations: counters['iotlbInvalidations'],
      walks: counters['walks'],
      ioctls,
    }).totalNs / 1e6
  );
}

export function mapScattered(smoke: boolean): ScenarioResult {
  const bytes = smoke ? 16n << 20n : GiB;
  const pages = Number(bytes >> 12n);
  const w = type1World();
  const vaddr = w.proc.mmap(bytes);
  const map = w.mapBytes(vaddr, 0n, bytes);
  const unmap = w.unmapBytes(0n, bytes);
  const ioctl = (buf: Uint8Array, req: number): void => void w.proc.ioctl(w.container.fd, req, buf);
  // The first map faults every page in; the samples measure pin + map, as the kernel's pre-faulted tests do.
  ioctl(map, uapi.VFIO_IOMMU_MAP_DMA);
  ioctl(unmap, uapi.VFIO_IOMMU_UNMAP_DMA);
  const before = w.counters();
  const s = sample(smoke ? 2 : 15, smoke ? 0 : 3, () => ioctl(map, uapi.VFIO_IOMMU_MAP_DMA), undefined, () => ioctl(unmap, uapi.VFIO_IOMMU_UNMAP_DMA));
  const runs = s.count + (smoke ? 0 : 3);
  const perMap = scale(delta(w.counters(), before), 1 / runs);
  const raw = rawStore(pages, smoke ? 3 : 15);
  w.kernel.shutdown();
  const ratio = s.medianMs / raw.medianMs;
  return {
    name: 'map-1g-4k',
    what: `one MAP_DMA of ${fmtBytes(bytes)}, scattered 4 KiB pages`,
    value: s.medianMs,
    unit: 'ms',
    ...(smoke ? {} : { target: '≤ 15 ms and ≤ 25× raw', met: s.medianMs <= 15 && ratio <= 25 }),
    raw: raw.medianMs,
    ratio,
    modelledMs: modelledMs({ ...perMap, pagesUnpinned: 0, leafCleared: 0, iotlbInvalidations: 0 }, 1),
    details: { pages, leafWritten4K: perMap['leafWritten4K'] ?? 0, minMs: s.minMs, maxMs: s.maxMs },
  };
}

export function mapHuge2M(smoke: boolean): ScenarioResult {
  const bytes = smoke ? 64n << 20n : GiB;
  const w = type1World();
  const vaddr = w.proc.mmap(bytes, { pageSize: '2M' });
  const map = w.mapBytes(vaddr, 0n, bytes);
  const unmap = w.unmapBytes(0n, bytes);
  const ioctl = (buf: Uint8Array, req: number): void => void w.proc.ioctl(w.container.fd, req, buf);
  ioctl(map, uapi.VFIO_IOMMU_MAP_DMA);
  ioctl(unmap, uapi.VFIO_IOMMU_UNMAP_DMA);
  const before = w.counters();
  ioctl(map, uapi.VFIO_IOMMU_MAP_DMA);
  const one = delta(w.counters(), before);
  ioctl(unmap, uapi.VFIO_IOMMU_UNMAP_DMA);
  const s = sample(smoke ? 3 : 41, smoke ? 0 : 10, () => ioctl(map, uapi.VFIO_IOMMU_MAP_DMA), undefined, () => ioctl(unmap, uapi.VFIO_IOMMU_UNMAP_DMA));
  const raw = rawStore(Number(bytes >> 21n), smoke ? 3 : 41);
  w.kernel.shutdown();
  const leaves = one['leafWritten2M'] ?? 0;
  const expected = Number(bytes >> 21n);
  return {
    name: 'map-1g-2m',
    what: `one MAP_DMA of ${fmtBytes(bytes)}, 2 MiB hugepages`,
    value: s.medianMs,
    unit: 'ms',
    ...(smoke ? {} : { target: '≤ 1 ms, exactly 512 2M leaves', met: s.medianMs <= 1 && leaves === 512 }),
    raw: raw.medianMs,
    ratio: s.medianMs / raw.medianMs,
    modelledMs: modelledMs({ ...one, pagesUnpinned: 0, leafCleared: 0, iotlbInvalidations: 0 }, 1),
    details: { leafWritten2M: leaves, expected2M: expected, leafWritten4K: one['leafWritten4K'] ?? 0, leafWritten1G: one['leafWritten1G'] ?? 0 },
  };
}

export function mapUnmapPair(smoke: boolean): ScenarioResult {
  const w = type1World();
  const vaddr = w.proc.mmap(4096, { populate: true });
  const map = w.mapBytes(vaddr, 0x100000n, 4096n);
  const unmap = w.unmapBytes(0x100000n, 4096n);
  const fd = w.container.fd;
  const proc = w.proc;
  const before = w.counters();
  let pairs = 0;
  const t = throughput(
    'map+unmap',
    () => {
      proc.ioctl(fd, uapi.VFIO_IOMMU_MAP_DMA, map);
      proc.ioctl(fd, uapi.VFIO_IOMMU_UNMAP_DMA, unmap);
      pairs++;
    },
    smoke ? 0.2 : 3,
  );
  const perPair = scale(delta(w.counters(), before), 1 / Math.max(pairs, 1));
  const table = new Float64Array(1);
  let i = 0;
  const raw = throughput('raw store', () => {
    table[0] = i++ * 4 + 3;
  }, smoke ? 0.2 : 2);
  w.kernel.shutdown();
  return {
    name: 'map-unmap-pair',
    what: 'MAP_DMA + UNMAP_DMA of one 4 KiB page through ioctl (struct bytes)',
    value: t.hz,
    unit: 'pairs/s',
    ...(smoke ? {} : { target: '≥ 1,000,000 pairs/s', met: t.hz >= 1e6 }),
    raw: raw.hz,
    ratio: raw.hz / t.hz,
    modelledMs: modelledMs(perPair, 2),
    details: { meanPairsPerSecond: Math.round(t.meanHz), rmePercent: round(t.rmePercent, 2), samples: t.samples, tablesAllocatedPerPair: round(perPair['tablesAllocated'] ?? 0, 3) },
  };
}

export function entryLimit(smoke: boolean): ScenarioResult {
  const count = smoke ? 2000 : 65535;
  const w = type1World({ dmaEntryLimit: count });
  const vaddr = w.proc.mmap(BigInt(count) * 4096n, { populate: true });
  const maps = Array.from({ length: count }, (_, i) => w.mapBytes(vaddr + BigInt(i) * 4096n, BigInt(i) * 4096n, 4096n));
  const fd = w.container.fd;
  const rounds = smoke ? 1 : 5;
  const mapAll: number[] = [];
  const unmapAll: number[] = [];
  const early: number[] = [];
  const late: number[] = [];
  const WINDOW = 200;
  for (let r = 0; r < rounds + 1; r++) {
    const per = new Float64Array(count);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const a = process.hrtime.bigint();
      w.proc.ioctl(fd, uapi.VFIO_IOMMU_MAP_DMA, maps[i]!);
      per[i] = Number(process.hrtime.bigint() - a);
    }
    // UNMAP_ALL writes the bytes unmapped back into `size`, so every round needs fresh bytes.
    const all = w.unmapBytes(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL);
    const t1 = process.hrtime.bigint();
    w.proc.ioctl(fd, uapi.VFIO_IOMMU_UNMAP_DMA, all);
    const t2 = process.hrtime.bigint();
    if (r === 0) continue; // warm-up round
    mapAll.push(Number(t1 - t0) / 1e6);
    unmapAll.push(Number(t2 - t1) / 1e6);
    // "One more map" at 1,000 and at 65,535 entries: the mean cost of the maps that took the tree there.
    early.push(meanOf(per, 1000 - WINDOW, 1000));
    late.push(meanOf(per, count - WINDOW, count));
  }
  // Mapping all includes one hrtime pair per map; the per-map clock costs are the same at both ends.
  const m = summarize(mapAll);
  const u = summarize(unmapAll);
  const e = summarize(early);
  const l = summarize(late);
  const raw = rawStore(count, 5);
  w.kernel.shutdown();
  const growth = l.medianMs / e.medianMs;
  return {
    name: 'entries-65535',
    what: `${count} single-page mappings, then UNMAP_ALL`,
    value: m.medianMs,
    unit: 'ms (map all)',
    ...(smoke ? {} : { target: 'map all ≤ 150 ms, UNMAP_ALL ≤ 100 ms, one map at 65,535 ≤ 3× at 1,000', met: m.medianMs <= 150 && u.medianMs <= 100 && growth <= 3 }),
    raw: raw.medianMs,
    ratio: m.medianMs / raw.medianMs,
    details: { unmapAllMs: round(u.medianMs, 2), mapNsAt1000: round(e.medianMs, 0), mapNsAtLimit: round(l.medianMs, 0), growth: round(growth, 2) },
  };
}

export function guest64g(smoke: boolean): ScenarioResult {
  const bytes = smoke ? 256n << 20n : 64n * GiB;
  const pages = Number(bytes >> 12n);
  const baseline = memoryAfterGc();
  const w = type1World();
  const vaddr = w.proc.mmap(bytes);
  // As an x86 VMM lays guest RAM out: below 3 GiB at IOVA 0, the rest from 4 GiB, around the MSI hole.
  const low = bytes < 3n * GiB ? bytes : 3n * GiB;
  const maps = [w.mapBytes(vaddr, 0n, low)];
  if (bytes > low) maps.push(w.mapBytes(vaddr + low, 4n * GiB, bytes - low));
  const s = sample(1, 0, () => {
    for (const map of maps) w.proc.ioctl(w.container.fd, uapi.VFIO_IOMMU_MAP_DMA, map);
  });
  const used = memoryAfterGc() - baseline;
  const c = w.counters();
  w.kernel.shutdown();
  const perPage = used / pages;
  return {
    name: 'guest-64g-4k',
    what: `a ${fmtBytes(bytes)} guest mapped with scattered 4 KiB pages (faults included; RAM below 3 GiB and from 4 GiB)`,
    value: s.medianMs,
    unit: 'ms',
    ...(smoke ? {} : { target: '≤ 3 s and ≤ 48 bytes per mapped page', met: s.medianMs <= 3000 && perPage <= 48 }),
    modelledMs: modelledMs(c, maps.length),
    details: { maps: maps.length, pages, bytesPerPage: round(perPage, 1), tableBytes: c['tableBytes'] ?? 0 },
  };
}

function meanOf(values: Float64Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i]!;
  return sum / (to - from);
}

function scale(counters: Record<string, number>, factor: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counters)) out[k] = v * factor;
  return out;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function fmtBytes(bytes: bigint): string {
  if (bytes >= GiB) return `${bytes / GiB} GiB`;
  return `${bytes >> 20n} MiB`;
}

export type { Samples };
