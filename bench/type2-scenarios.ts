/**
 * The windowed (type2) scenarios, each beside the raw limit measured in the same run:
 *
 * - map-window-16m / -256m / -1g: one MAP_DMA of one window backed by one hugetlb page of the window's
 *   size on fsl-p4080 (median of timed samples, UNMAP untimed between them). The cost must not grow with
 *   the window size: the 1 GiB figure is compared with the 16 MiB one measured in the same run.
 * - set-windows-256: SET_ATTR WINDOWS 256 on a container whose geometry is set (from 1 window each time).
 */
import { Kernel, VfioContainer, VfioGroup, uapi } from '../index';
import { rawStore, sample } from './harness';
import type { ScenarioResult } from './type1-scenarios';

const MiB = 1n << 20n;

interface Type2World {
  kernel: Kernel;
  proc: ReturnType<Kernel['spawn']>;
  container: VfioContainer;
  setAttr(attribute: number, value: Record<string, bigint | number>): void;
}

function type2World(): Type2World {
  const kernel = new Kernel({ machine: 'fsl-p4080', devices: [{ bdf: '0000:01:00.0', group: 1, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: 1n << 40n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 1);
  group.setContainer(container);
  container.setIommu(uapi.VFIO_TYPE2_IOMMU);
  return {
    kernel,
    proc,
    container,
    setAttr: (attribute, value) => {
      proc.ioctl(container.fd, uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, attribute, ...value }));
    },
  };
}

/** Median time of one window's MAP_DMA, for each window size. */
function mapOneWindow(windowBytes: bigint, smoke: boolean): { medianMs: number; entries: number } {
  const w = type2World();
  w.setAttr(uapi.VFIO_ATTR_GEOMETRY, { aperture_start: 0n, aperture_end: 16n * windowBytes - 1n });
  w.setAttr(uapi.VFIO_ATTR_WINDOWS, { windows: 16 });
  const vaddr = w.proc.mmap(windowBytes, { pageSize: windowBytes, populate: true });
  const map = uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: 3, vaddr, iova: 2n * windowBytes, size: windowBytes });
  const unmap = (): void => {
    w.proc.ioctl(w.container.fd, uapi.VFIO_IOMMU_UNMAP_DMA, uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, iova: 2n * windowBytes, size: windowBytes }));
  };
  const before = w.kernel.iommus[0]!.counters();
  w.proc.ioctl(w.container.fd, uapi.VFIO_IOMMU_MAP_DMA, map);
  const after = w.kernel.iommus[0]!.counters();
  unmap();
  const s = sample(smoke ? 5 : 201, smoke ? 1 : 50, () => void w.proc.ioctl(w.container.fd, uapi.VFIO_IOMMU_MAP_DMA, map), undefined, unmap);
  w.kernel.shutdown();
  const entries = (after['secondaryProgrammed'] ?? 0) + (after['primaryProgrammed'] ?? 0) - (before['secondaryProgrammed'] ?? 0) - (before['primaryProgrammed'] ?? 0);
  return { medianMs: s.medianMs, entries };
}

export function mapWindows(smoke: boolean): ScenarioResult[] {
  const sizes: [string, bigint][] = [['16m', 16n * MiB], ['256m', 256n * MiB], ['1g', 1024n * MiB]];
  const measured = sizes.map(([name, bytes]) => ({ name, bytes, ...mapOneWindow(bytes, smoke) }));
  const raw = rawStore(1, smoke ? 5 : 201);
  const base = measured[0]!.medianMs;
  return measured.map((m) => {
    const us = m.medianMs * 1000;
    const growth = m.medianMs / base;
    return {
      name: `map-window-${m.name}`,
      what: `type2 MAP_DMA of one ${m.bytes >> 20n} MiB window (hugetlb backing, fsl-p4080)`,
      value: us,
      unit: 'µs',
      ...(smoke ? {} : { target: '≤ 50 µs; 1 GiB within 2× of 16 MiB', met: us <= 50 && growth <= 2 }),
      raw: raw.medianMs * 1000,
      ratio: us / (raw.medianMs * 1000),
      details: { entriesProgrammed: m.entries, vs16MiB: Math.round(growth * 100) / 100 },
    };
  });
}

export function setWindows256(smoke: boolean): ScenarioResult {
  const w = type2World();
  w.setAttr(uapi.VFIO_ATTR_GEOMETRY, { aperture_start: 0n, aperture_end: (1n << 34n) - 1n });
  const s = sample(smoke ? 5 : 201, smoke ? 1 : 50, () => w.setAttr(uapi.VFIO_ATTR_WINDOWS, { windows: 256 }), () => w.setAttr(uapi.VFIO_ATTR_WINDOWS, { windows: 1 }));
  const c = w.kernel.iommus[0]!.counters();
  w.kernel.shutdown();
  const raw = rawStore(256, smoke ? 5 : 201);
  const us = s.medianMs * 1000;
  return {
    name: 'set-windows-256',
    what: 'SET_ATTR WINDOWS 256 (one LIODN attached, from 1 window)',
    value: us,
    unit: 'µs',
    ...(smoke ? {} : { target: '≤ 200 µs', met: us <= 200 }),
    raw: raw.medianMs * 1000,
    ratio: us / (raw.medianMs * 1000),
    details: { secondaryHeld: c['secondaryHeld'] ?? 0 },
  };
}
