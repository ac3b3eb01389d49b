/**
 * VFIO_IOMMU_GET_INFO on the windowed backend, so generic VMM code can discover the limits (DESIGN.md §4):
 * iova_pgsizes is the window size (the smallest unit a MAP may cover whole; before WINDOWS is set, the
 * domain's minimum window), and the IOVA_RANGE capability lists the aperture minus the windows holding MSI
 * banks. The argsz and capability rules are type1's (../common/iommu-info).
 */
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { addIovaRangeCap, answerIommuInfo } from '../common/iommu-info';
import type { IovaRange } from '../common/iova-ranges';
import type { Type2Iommu } from './type2-iommu';

/** @throws SysError EFAULT, EINVAL */
export function type2IoctlGetInfo(iommu: Type2Iommu, arg: IoctlArg): number {
  const domain = iommu.domain;
  return answerIommuInfo(arg, domain.pgsizeBitmap, (caps) => addIovaRangeCap(caps, usableRanges(iommu)));
}

/** The aperture with every MSI bank window cut out, ascending. */
export function usableRanges(iommu: Type2Iommu): IovaRange[] {
  const windows = iommu.domain.windows;
  const geometry = windows.geometry() ?? { start: iommu.domain.geometry.apertureStart, last: iommu.domain.geometry.apertureLast };
  const startPfn = Number(geometry.start >> 12n);
  const endPfn = Number((geometry.last + 1n) >> 12n);
  const windowPages = Number(windows.windowBytes() >> 12n);
  const holes = [...iommu.banks.values()].map((b) => startPfn + b.window * windowPages).sort((a, b) => a - b);
  const ranges: IovaRange[] = [];
  let at = startPfn;
  for (const hole of holes) {
    if (hole > at) ranges.push({ startPfn: at, endPfn: hole });
    at = hole + windowPages;
  }
  if (at < endPfn) ranges.push({ startPfn: at, endPfn });
  return ranges;
}
