/**
 * Window arithmetic of the windowed backend: where an IOVA falls in the aperture and whether a request
 * fits whole windows. The aperture is [start, start + count · size); window i starts at start + i · size.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { U64Pages } from '../../user-arg';
import type { Type2Iommu } from './type2-iommu';

/** The container's window layout in pages, or EINVAL when WINDOWS was never set. */
export function windowLayout(iommu: Type2Iommu): { startPfn: number; windowPages: number; count: number } {
  const windows = iommu.domain.windows;
  const bytes = windows.windowBytes();
  const geometry = windows.geometry();
  if (bytes === 0n || geometry === undefined) throw sysError('EINVAL', 'GEOMETRY and WINDOWS are not set');
  return { startPfn: Number(geometry.start >> 12n), windowPages: Number(bytes >> 12n), count: windows.windowCount() };
}

/**
 * The index of the window whose base is `iova`, for a request of `pageCount` pages that must stay inside
 * the aperture.
 * @throws SysError EINVAL (windows not set, iova not a window base, outside the aperture)
 */
export function windowAt(iommu: Type2Iommu, iova: U64Pages, pageCount: number): number {
  const { startPfn, windowPages, count } = windowLayout(iommu);
  const rel = iova.pfn - startPfn;
  if (iova.low !== 0 || rel < 0 || rel % windowPages !== 0) throw sysError('EINVAL', 'iova is not the base of a window');
  const window = rel / windowPages;
  if (window >= count || rel + pageCount > count * windowPages) throw sysError('EINVAL', 'range is outside the aperture');
  return window;
}
