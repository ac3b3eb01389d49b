/**
 * VFIO_IOMMU_MAP_DMA on type1 (vfio_iommu_type1_map_dma, vfio_dma_do_map), with the checks in the order
 * of current upstream (reference/vfio-uapi.md §5, the ≥6.18 order with EOVERFLOW for wrapping ranges):
 *
 *  1–4. decoding, shared by every backend (../common/dma-map-args): EFAULT, EINVAL, EOVERFLOW
 *  5. neither READ nor WRITE without VADDR, or VADDR with READ/WRITE → EINVAL
 *  6. iova, size or vaddr not aligned to the smallest page → EINVAL
 *  7. VADDR: no mapping → ENOENT; not the exact invalidated mapping → EINVAL; else the vaddr is updated.
 *     Otherwise any overlap → EEXIST
 *  8. no entry left (dma_entry_limit) → ENOSPC
 *  9. range not inside one usable IOVA range → EINVAL
 * 12. pin and map: unmapped or read-only memory → EFAULT, RLIMIT_MEMLOCK → ENOMEM; all or nothing.
 *
 * The hot path reads the struct with byte arithmetic and works in page numbers: no BigInt, no DataView.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { IOMMU_READ, IOMMU_WRITE } from '../../../kernel-sim/iommu/iommu-domain';
import type { Process } from '../../../kernel-sim/process';
import { VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE } from '../../../uapi/vfio';
import { decodeDmaMap } from '../common/dma-map-args';
import { fitsOneRange } from '../common/iova-ranges';
import { mapBatchIntoDomains } from '../common/pinned-mapping';
import type { Type1Dma, Type1Iommu } from './type1-iommu';

const KNOWN_FLAGS = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;

/** @throws SysError EFAULT, EINVAL, EOVERFLOW, ENOENT, EEXIST, ENOSPC, ENOMEM */
export function type1IoctlMapDma(iommu: Type1Iommu, arg: IoctlArg, caller: Process): number {
  const { flags, vaddr, iova, size } = decodeDmaMap(arg, KNOWN_FLAGS);
  const prot = (flags & VFIO_DMA_MAP_FLAG_READ ? IOMMU_READ : 0) | (flags & VFIO_DMA_MAP_FLAG_WRITE ? IOMMU_WRITE : 0);
  const isVaddr = (flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  if ((prot !== 0) === isVaddr) throw sysError('EINVAL', isVaddr ? 'VADDR cannot change permissions' : 'neither READ nor WRITE');
  const min = iommu.minPages;
  if ((iova.low | size.low | vaddr.low) !== 0 || (min > 1 && (iova.pfn % min !== 0 || size.pfn % min !== 0 || vaddr.pfn % min !== 0))) {
    throw sysError('EINVAL', 'iova, size or vaddr is not aligned to the smallest page size');
  }
  if (isVaddr) return updateVaddr(iommu, iova.pfn, size.pfn, vaddr.pfn, caller);
  return doMap(iommu, iova.pfn, size.pfn, vaddr.pfn, prot, caller);
}

/** Steps 7–12 for a new mapping. */
function doMap(iommu: Type1Iommu, iovaPfn: number, pageCount: number, vaddrVpfn: number, prot: number, caller: Process): number {
  if (iommu.dmas.firstOverlap(iovaPfn, pageCount) !== undefined) throw sysError('EEXIST', 'iova range overlaps an existing mapping');
  if (iommu.dmaAvail === 0) throw sysError('ENOSPC', 'dma_entry_limit reached');
  if (!fitsOneRange(iommu.iovaRanges, iovaPfn, iovaPfn + pageCount)) throw sysError('EINVAL', 'iova range is not inside one usable IOVA range');
  const dma: Type1Dma = {
    iovaPfn,
    pageCount,
    vaddrVpfn,
    prot,
    mm: caller.mm,
    limitPages: caller.memlockLimitPages(),
    vaddrInvalid: false,
    pinnedPages: 0,
    lockedPages: 0,
  };
  iommu.dmaAvail--;
  iommu.dmas.insert(dma);
  try {
    pinAndMap(iommu, dma);
  } catch (err) {
    iommu.removeDma(dma);
    throw err;
  }
  return 0;
}

/**
 * vfio_pin_map_dma: pin batch by batch, charge locked_vm per batch, map each run into every domain.
 * Pages of batches mapped before a failure stay recorded in `dma` so that removeDma undoes them; the
 * failing batch undoes itself (the kernel checks RLIMIT_MEMLOCK page by page inside a batch; either way
 * the MAP fails with ENOMEM and leaves nothing behind).
 */
function pinAndMap(iommu: Type1Iommu, dma: Type1Dma): void {
  const mm = dma.mm;
  const domains = iommu.domainList;
  const single = iommu.kernel.params.disableHugepages;
  const prot = dma.prot;
  mm.pin(dma.vaddrVpfn, dma.pageCount, (prot & IOMMU_WRITE) !== 0, (runs) => {
    mm.accountLocked(runs.pages, dma.limitPages);
    try {
      mapBatchIntoDomains(domains, dma.iovaPfn + dma.pinnedPages, runs.pfn, runs.count, runs.length, runs.pages, prot, single);
    } catch (err) {
      mm.unaccountLocked(runs.pages);
      throw err;
    }
    dma.pinnedPages += runs.pages;
    dma.lockedPages += runs.pages;
    iommu.notePinned(runs.pages);
  });
}

/**
 * VFIO_DMA_MAP_FLAG_VADDR: give an invalidated mapping its new vaddr (vfio_dma_do_map step 7). If the
 * caller is another process, its locked_vm takes over the charge (vfio_change_dma_owner).
 * @throws SysError ENOENT, EINVAL, ENOMEM
 */
function updateVaddr(iommu: Type1Iommu, iovaPfn: number, pageCount: number, vaddrVpfn: number, caller: Process): number {
  const dma = iommu.dmas.firstOverlap(iovaPfn, pageCount);
  if (dma === undefined) throw sysError('ENOENT', 'no mapping at this iova');
  if (!dma.vaddrInvalid || dma.iovaPfn !== iovaPfn || dma.pageCount !== pageCount) {
    throw sysError('EINVAL', 'VADDR must name exactly one mapping whose vaddr was invalidated');
  }
  if (caller.mm !== dma.mm) {
    const limit = caller.memlockLimitPages();
    caller.mm.accountLocked(dma.lockedPages, limit);
    dma.mm.unaccountLocked(dma.lockedPages);
    dma.mm = caller.mm;
    dma.limitPages = limit;
  }
  dma.vaddrVpfn = vaddrVpfn;
  dma.vaddrInvalid = false;
  iommu.vaddrInvalidCount--;
  return 0;
}
