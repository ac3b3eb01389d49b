/**
 * Mapping pinned pages into IOMMU domains and taking them out again: the part of type1's
 * vfio_pin_map_dma / vfio_unmap_unpin that any backend backed by pinned user memory shares.
 *
 * - `mapIntoDomain` is all or nothing per domain. With `singlePages` (disable_hugepages) every page is
 *   its own iommu_map call, so only 4 KiB IOPTEs are written.
 * - `mapBatchIntoDomains` maps a pinned batch of runs into every domain, in one call per domain where the
 *   domain offers `mapRuns`.
 * - `unmapAndUnpin` unmaps a range from every domain; the first domain is the record of which physical
 *   pages back the range (type1 asks it with iommu_iova_to_phys), and those pages are unpinned after the
 *   IOTLB sync, as vfio_unmap_unpin does.
 */
import type { IommuDomain } from '../../../kernel-sim/iommu/iommu-domain';
import type { PhysMemory } from '../../../kernel-sim/mm/phys-mem';

/**
 * Maps the contiguous run [pfn, pfn + pageCount) at iovaPfn into `domain`; undoes its own partial work.
 * @throws SysError from the domain (EEXIST, ENOMEM, EINVAL)
 */
export function mapIntoDomain(domain: IommuDomain, iovaPfn: number, pfn: number, pageCount: number, prot: number, singlePages: boolean): void {
  if (!singlePages) {
    domain.map(iovaPfn, pfn, pageCount, prot);
    return;
  }
  let done = 0;
  try {
    for (; done < pageCount; done++) domain.map(iovaPfn + done, pfn + done, 1, prot);
  } catch (err) {
    if (done > 0) domain.unmap(iovaPfn, done);
    throw err;
  }
}

/**
 * Maps a pinned batch — run r is `counts[r]` pages from `pfns[r]`, placed one after another from
 * `iovaPfn`, `pageCount` pages in all — into every domain, all or nothing across them. Domains that offer `mapRuns` take the batch
 * in one call; others (and `singlePages`) are driven run by run.
 * @throws SysError from a domain
 */
export function mapBatchIntoDomains(
  domains: readonly IommuDomain[],
  iovaPfn: number,
  pfns: Uint32Array,
  counts: Uint32Array,
  length: number,
  pageCount: number,
  prot: number,
  singlePages: boolean,
): void {
  let done = 0;
  try {
    for (; done < domains.length; done++) {
      const domain = domains[done]!;
      if (domain.mapRuns !== undefined && !singlePages) {
        domain.mapRuns(iovaPfn, pfns, counts, length, pageCount, prot);
        continue;
      }
      let at = iovaPfn;
      try {
        for (let r = 0; r < length; r++) {
          mapIntoDomain(domain, at, pfns[r]!, counts[r]!, prot, singlePages);
          at += counts[r]!;
        }
      } catch (err) {
        if (at > iovaPfn) domain.unmap(iovaPfn, at - iovaPfn);
        throw err;
      }
    }
  } catch (err) {
    for (let j = 0; j < done; j++) domains[j]!.unmap(iovaPfn, pageCount);
    throw err;
  }
}

/**
 * Unmaps [iovaPfn, iovaPfn + pageCount) from every domain and unpins the pages the first domain mapped.
 * @returns the number of pages unpinned
 */
export function unmapAndUnpin(domains: readonly IommuDomain[], phys: PhysMemory, iovaPfn: number, pageCount: number): number {
  if (domains.length === 0) return 0;
  for (let i = 1; i < domains.length; i++) domains[i]!.unmap(iovaPfn, pageCount);
  let unpinned = 0;
  domains[0]!.unmap(iovaPfn, pageCount, (_iova, pfn, count) => {
    phys.unpin(pfn, count);
    unpinned += count;
  });
  return unpinned;
}
