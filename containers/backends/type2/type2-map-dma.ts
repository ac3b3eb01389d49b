/**
 * VFIO_IOMMU_MAP_DMA on the windowed backend. After the checks every backend makes first
 * (../common/dma-map-args: EFAULT, EINVAL for argsz and flags, EINVAL size 0, EOVERFLOW for wraps):
 *
 *  5. neither READ nor WRITE → EINVAL (VADDR is not supported: an unknown flag here, EINVAL)
 *  6. iova, size or vaddr not 4 KiB aligned → EINVAL
 *  7. the shape: either k ≥ 1 whole windows (size a multiple of the window size) or one power-of-two
 *     region smaller than a window; the iova must be a window base and the range inside the aperture;
 *     windows not configured → EINVAL (the SDK silently mapped nothing for a MAP smaller than a window)
 *  8. a window already holds a mapping or an MSI bank → EEXIST (the SDK said EBUSY)
 *  9. per window: its pages are pinned and must be one physically contiguous run → EFAULT (scattered
 *     anonymous memory fails, hugetlb of the window size succeeds); RLIMIT_MEMLOCK → ENOMEM; then, once
 *     pinned, the window is programmed and the hardware refuses backing that is not naturally aligned
 *     to the mapped size → EINVAL (documented by the vendor, never checked) — the pin is given back
 * All or nothing: a failure disables the windows enabled so far and returns their pins and charge.
 * Then the PAMU enable attribute is set, as the SDK did after every MAP_DMA (it also revives requesters a
 * violation disabled).
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { IOMMU_READ, IOMMU_WRITE } from '../../../kernel-sim/iommu/iommu-domain';
import type { Process } from '../../../kernel-sim/process';
import { VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE } from '../../../uapi/vfio';
import { decodeDmaMap } from '../common/dma-map-args';
import type { Type2Dma } from './type2-dma';
import type { Type2Iommu } from './type2-iommu';
import { windowAt, windowLayout } from './window-layout';

const KNOWN_FLAGS = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

/** @throws SysError EFAULT, EINVAL, EOVERFLOW, EEXIST, ENOMEM */
export function type2IoctlMapDma(iommu: Type2Iommu, arg: IoctlArg, caller: Process): number {
  const { flags, vaddr, iova, size } = decodeDmaMap(arg, KNOWN_FLAGS);
  const prot = (flags & VFIO_DMA_MAP_FLAG_READ ? IOMMU_READ : 0) | (flags & VFIO_DMA_MAP_FLAG_WRITE ? IOMMU_WRITE : 0);
  if (prot === 0) throw sysError('EINVAL', 'neither READ nor WRITE');
  if ((iova.low | size.low | vaddr.low) !== 0) throw sysError('EINVAL', 'iova, size or vaddr is not 4 KiB aligned');
  const { windowPages } = windowLayout(iommu);
  const pages = size.pfn;
  let windowCount: number;
  let pagesPerWindow: number;
  if (pages >= windowPages) {
    if (pages % windowPages !== 0) throw sysError('EINVAL', 'size is not a whole number of windows');
    windowCount = pages / windowPages;
    pagesPerWindow = windowPages;
  } else {
    // A window maps a power-of-two region from its base (the FSL_PAMUV1 rules).
    if ((pages & (pages - 1)) !== 0) throw sysError('EINVAL', 'a mapping smaller than a window must be a power of two');
    windowCount = 1;
    pagesPerWindow = pages;
  }
  const first = windowAt(iommu, iova, pages);
  for (let w = first; w < first + windowCount; w++) {
    if (iommu.windowInUse(w)) throw sysError('EEXIST', `window ${w} is already mapped`);
  }
  const dma: Type2Dma = {
    iovaPfn: iova.pfn,
    pageCount: pages,
    prot,
    mm: caller.mm,
    firstWindow: first,
    windowCount,
    pagesPerWindow,
    windowPfns: [],
    lockedPages: 0,
  };
  const limit = caller.memlockLimitPages();
  try {
    for (let w = 0; w < windowCount; w++) {
      const pfn = pinWindow(caller, vaddr.pfn + w * pagesPerWindow, pagesPerWindow, prot, limit);
      try {
        iommu.domain.windows.enableWindow(first + w, pfn, pagesPerWindow, prot);
      } catch (err) {
        caller.mm.unaccountLocked(pagesPerWindow);
        iommu.kernel.phys.unpin(pfn, pagesPerWindow);
        throw err;
      }
      dma.windowPfns.push(pfn);
      dma.lockedPages += pagesPerWindow;
    }
  } catch (err) {
    for (let w = 0; w < dma.windowPfns.length; w++) {
      iommu.domain.windows.disableWindow(first + w);
      iommu.kernel.phys.unpin(dma.windowPfns[w]!, pagesPerWindow);
    }
    caller.mm.unaccountLocked(dma.lockedPages);
    throw err;
  }
  iommu.dmas.insert(dma);
  iommu.notePinned(pages);
  iommu.enableAfterMap();
  return 0;
}

/**
 * Pins one window's pages, which must be a single physically contiguous run, and charges them to
 * locked_vm. Returns the first frame. On failure nothing stays pinned or charged.
 * @throws SysError EFAULT (not contiguous, not mapped), ENOMEM (RLIMIT_MEMLOCK)
 */
function pinWindow(caller: Process, vpfn: number, pageCount: number, prot: number, limit: number | undefined): number {
  const mm = caller.mm;
  let pfn = -1;
  let pinned = 0;
  try {
    mm.pin(vpfn, pageCount, (prot & IOMMU_WRITE) !== 0, (runs) => {
      // The SDK: "All Pages should be contigious" (each PFN = previous + 1), else -EFAULT.
      if (pfn !== -1 || runs.length !== 1) throw sysError('EFAULT', 'window backing is not physically contiguous');
      mm.accountLocked(runs.pages, limit);
      pfn = runs.pfn[0]!;
      pinned = runs.pages;
    });
  } catch (err) {
    // A run accepted before the failure (a later page was missing) is ours to give back.
    if (pinned !== 0) {
      mm.unaccountLocked(pinned);
      caller.kernel.phys.unpin(pfn, pinned);
    }
    throw err;
  }
  return pfn;
}
