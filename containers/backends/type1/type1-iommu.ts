/**
 * The state of one type1 container (struct vfio_iommu) and the group attach/detach rules of
 * vfio_iommu_type1_attach_group / detach_group (reference/vfio-uapi.md §7.5–7.6).
 *
 * - `dmas`: one record per successful MAP_DMA (struct vfio_dma), never split or merged.
 * - `domains`: one per set of groups that can share page tables (same IOMMU hardware, same cache
 *   coherency enforcement). Every domain maps every record; the first is the record of which physical
 *   pages back each mapping.
 * - `iovaRanges`: the usable IOVA space (apertures minus reserved regions), recomputed on attach/detach.
 * - `pgsizeBitmap`: the AND of the domains' page sizes; MAP/UNMAP alignment uses its smallest size.
 *
 * Ranges are in 4 KiB pages; `end` is exclusive.
 */
import { SimBugError, sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { type IommuDomain, type ReservedRegion } from '../../../kernel-sim/iommu/iommu-domain';
import type { IommuGroup } from '../../../kernel-sim/iommu/iommu-group';
import type { Kernel } from '../../../kernel-sim/kernel';
import type { AddressSpace } from '../../../kernel-sim/mm/address-space';
import type { Process } from '../../../kernel-sim/process';
import {
  VFIO_CONTAINER_IOCTL_NAMES,
  VFIO_DMA_CC_IOMMU,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
} from '../../../uapi/vfio';
import { MSI_MODULE_NAME, type MsiModule } from '../../../msi';
import type { VfioIommuBackendInstance } from '../../backend';
import { DmaTree, type DmaRange } from '../common/dma-tree';
import { lockedPagesOf } from '../common/locked-vm';
import {
  hitsReserved,
  intersectPgsizes,
  smallestPageShift,
  usableIovaRanges,
  type IovaRange,
} from '../common/iova-ranges';
import { mapIntoDomain, unmapAndUnpin } from '../common/pinned-mapping';
import { type1IoctlDirtyPages } from './dirty-pages';
import { type1IoctlGetInfo } from './get-info';
import { type1IoctlMapDma } from './map-dma';
import { type1IoctlUnmapDma } from './unmap-dma';

/** One MAP_DMA (struct vfio_dma). */
export interface Type1Dma extends DmaRange {
  readonly iovaPfn: number;
  readonly pageCount: number;
  vaddrVpfn: number;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly prot: number;
  /** The address space the pages were pinned in and whose locked_vm is charged. */
  mm: AddressSpace;
  /** RLIMIT_MEMLOCK in pages of the mapping task; undefined with CAP_IPC_LOCK (dma->lock_cap). */
  limitPages: number | undefined;
  /** Set by UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR until MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR. */
  vaddrInvalid: boolean;
  pinnedPages: number;
  lockedPages: number;
}

/** A domain and the groups attached to it (struct vfio_domain). */
interface Type1Domain {
  readonly domain: IommuDomain;
  readonly groups: IommuGroup[];
}

/** One type1 container's IOMMU state. */
export class Type1Iommu implements VfioIommuBackendInstance {
  readonly dmas = new DmaTree<Type1Dma>();
  /** Entries left before dma_entry_limit (ENOSPC). */
  dmaAvail: number;
  dirtyTracking = false;
  vaddrInvalidCount = 0;
  iovaRanges: IovaRange[] = [];
  pgsizeBitmap = intersectPgsizes([]);
  /** The smallest supported page, in 4 KiB pages (MAP/UNMAP alignment). */
  minPages = 1;
  private readonly _domains: Type1Domain[] = [];
  /** The domains as a plain array, first one first (the hot path's view). */
  domainList: IommuDomain[] = [];
  private _pinned = 0;
  private readonly _entryLimit: number;

  constructor(
    readonly kernel: Kernel,
    /** VFIO_TYPE1v2_IOMMU semantics (no partial unmap, DIRTY_PAGES). */
    readonly v2: boolean,
  ) {
    // dma_entry_limit is read when the container's IOMMU is opened.
    this._entryLimit = kernel.params.dmaEntryLimit;
    this.dmaAvail = this._entryLimit;
  }

  /** VFIO_CHECK_EXTENSION once bound (vfio_iommu_type1_check_extension with iommu data). */
  checkExtension(extension: number): number {
    switch (extension) {
      case VFIO_TYPE1_IOMMU:
      case VFIO_TYPE1v2_IOMMU:
      case VFIO_UNMAP_ALL:
      case VFIO_UPDATE_VADDR:
        return 1;
      case VFIO_DMA_CC_IOMMU:
        return this._domains.every((d) => d.domain.enforceCacheCoherency) ? 1 : 0;
      default:
        return 0;
    }
  }

  ioctl(request: number, arg: IoctlArg, caller: Process): number {
    switch (request) {
      case VFIO_IOMMU_GET_INFO: return type1IoctlGetInfo(this, arg);
      case VFIO_IOMMU_MAP_DMA: return type1IoctlMapDma(this, arg, caller);
      case VFIO_IOMMU_UNMAP_DMA: return type1IoctlUnmapDma(this, arg, caller);
      case VFIO_IOMMU_DIRTY_PAGES: return type1IoctlDirtyPages(this, arg, caller);
      default: throw sysError('ENOTTY', 'unknown type1 ioctl');
    }
  }

  requestName(request: number): string | undefined {
    return VFIO_CONTAINER_IOCTL_NAMES.get(request);
  }

  // ---- groups ------------------------------------------------------------------------------------

  /**
   * vfio_iommu_type1_attach_group, all or nothing.
   * @throws SysError EBUSY (a vaddr is invalid), EINVAL (already attached, aperture or reserved region
   *   conflicts with mappings, no usable IOVA left), EPERM (MSIs not isolated), errors of replay
   */
  attachGroup(group: IommuGroup): void {
    if (this.vaddrInvalidCount > 0) throw sysError('EBUSY', 'a mapping has an invalidated vaddr');
    if (this._domains.some((d) => d.groups.includes(group))) throw sysError('EINVAL', 'group is already attached');
    const hardware = group.hardware;
    // The aperture must keep every existing mapping, and the reserved regions must avoid them.
    const aperture = hardware.geometry;
    const apertureStart = Number(aperture.apertureStart >> 12n);
    const apertureEnd = Number((aperture.apertureLast + 1n) >> 12n);
    for (const dma of this.dmas) {
      if (dma.iovaPfn < apertureStart || dma.iovaPfn + dma.pageCount > apertureEnd) {
        throw sysError('EINVAL', 'existing mappings fall outside the new aperture');
      }
      if (hitsReserved(group.reservedRegions(), dma.iovaPfn, dma.iovaPfn + dma.pageCount)) {
        throw sysError('EINVAL', 'a reserved region of the group overlaps an existing mapping');
      }
    }
    const ranges = this._computeRanges([...this._groups(), group], [...this._domains.map((d) => d.domain.geometry), aperture]);
    if (ranges.length === 0) throw sysError('EINVAL', 'no usable IOVA space would remain');
    // Without interrupt remapping a device could DMA-write an MSI to any vector (vfio_iommu_type1_attach_group).
    if (!this.kernel.params.allowUnsafeInterrupts && !group.hasIsolatedMsi()) {
      throw sysError('EPERM', 'no interrupt remapping support; use the allow_unsafe_interrupts module parameter');
    }
    // Share a domain with the same hardware (iommu_ops) and cache coherency enforcement if one exists.
    const shared = this._domains.find((d) => d.domain.hardware === hardware && d.domain.enforceCacheCoherency === hardware.enforceCacheCoherency);
    if (shared !== undefined) {
      group.attachDomain(shared.domain);
      shared.groups.push(group);
    } else {
      const domain = hardware.allocDomain();
      try {
        group.attachDomain(domain);
        try {
          this._replay(domain);
          // iommu_get_msi_cookie: the kernel maps MSI doorbells in the group's software MSI window.
          const swMsi = swMsiBase(group.reservedRegions());
          if (swMsi !== undefined) this._msi()?.prepareCookie(domain, swMsi);
        } catch (err) {
          group.detachDomain(domain);
          throw err;
        }
      } catch (err) {
        domain.free();
        throw err;
      }
      this._domains.push({ domain, groups: [group] });
      this._domainsChanged();
    }
    this.iovaRanges = ranges;
  }

  /** vfio_iommu_replay: maps every existing record into a new domain, all or nothing. */
  private _replay(domain: IommuDomain): void {
    const first = this.domainList[0];
    if (first === undefined) return;
    const single = this.kernel.params.disableHugepages;
    try {
      for (const dma of this.dmas) {
        first.walk(dma.iovaPfn, dma.pageCount, (iovaPfn, pfn, pageCount) => mapIntoDomain(domain, iovaPfn, pfn, pageCount, dma.prot, single));
      }
    } catch (err) {
      for (const dma of this.dmas) domain.unmap(dma.iovaPfn, dma.pageCount);
      throw err;
    }
  }

  /** vfio_iommu_type1_detach_group. */
  detachGroup(group: IommuGroup): void {
    const index = this._domains.findIndex((d) => d.groups.includes(group));
    if (index < 0) throw new SimBugError(`group ${group.id} is not attached to this type1 container`);
    const entry = this._domains[index]!;
    group.detachDomain(entry.domain);
    entry.groups.splice(entry.groups.indexOf(group), 1);
    if (entry.groups.length === 0) {
      this._msi()?.releaseCookie(entry.domain);
      if (this._domains.length === 1) {
        // The last IOMMU-backed domain: with no emulated groups, every mapping goes.
        this._removeAllDmas();
      } else {
        entry.domain.unmap(0, 2 ** 52);
      }
      entry.domain.free();
      this._domains.splice(index, 1);
      this._domainsChanged();
    }
    // The aperture grows back and reserved regions are recomputed from the groups left.
    this.iovaRanges = this._computeRanges(this._groups(), this._domains.map((d) => d.domain.geometry));
  }

  /** vfio_iommu_type1_release: everything is unmapped, unpinned and freed. */
  release(): void {
    this._removeAllDmas();
    for (const entry of this._domains) {
      for (const group of entry.groups) group.detachDomain(entry.domain);
      this._msi()?.releaseCookie(entry.domain);
      entry.domain.free();
    }
    this._domains.length = 0;
    this._domainsChanged();
    this.iovaRanges = [];
  }

  /** The MSI layer (SW_MSI cookies); undefined in a kernel built without it. */
  private _msi(): MsiModule | undefined {
    return this.kernel.findModule<MsiModule>(MSI_MODULE_NAME);
  }

  private _groups(): IommuGroup[] {
    return this._domains.flatMap((d) => d.groups);
  }

  private _computeRanges(groups: readonly IommuGroup[], apertures: Parameters<typeof usableIovaRanges>[0]): IovaRange[] {
    return usableIovaRanges(apertures, groups.flatMap((g) => g.reservedRegions()));
  }

  private _domainsChanged(): void {
    this.domainList = this._domains.map((d) => d.domain);
    this.pgsizeBitmap = intersectPgsizes(this.domainList.map((d) => d.pgsizeBitmap));
    this.minPages = 2 ** Math.max(0, Math.min(smallestPageShift(this.pgsizeBitmap), 64) - 12);
  }

  // ---- mapping records ---------------------------------------------------------------------------

  /** Counts pages pinned on behalf of a record (called while a MAP pins). */
  notePinned(pages: number): void {
    this._pinned += pages;
  }

  /** vfio_remove_dma: unmap from every domain, unpin, unaccount, give the entry back. */
  removeDma(dma: Type1Dma): void {
    const unpinned = unmapAndUnpin(this.domainList, this.kernel.phys, dma.iovaPfn, dma.pageCount);
    if (unpinned !== dma.pinnedPages) throw new SimBugError(`dma at pfn ${dma.iovaPfn}: unpinned ${unpinned} of ${dma.pinnedPages} pinned pages`);
    this._pinned -= unpinned;
    dma.mm.unaccountLocked(dma.lockedPages);
    dma.pinnedPages = 0;
    dma.lockedPages = 0;
    if (dma.vaddrInvalid) this.vaddrInvalidCount--;
    this.dmas.remove(dma);
    this.dmaAvail++;
  }

  private _removeAllDmas(): void {
    for (const dma of this.dmas.toArray()) this.removeDma(dma);
  }

  // ---- invariants --------------------------------------------------------------------------------

  /** Pinned 4 KiB pages held now. */
  pinnedPages(): number {
    return this._pinned;
  }

  /** Pages charged to `mm`'s locked_vm by this container's mappings. */
  lockedVm(mm: AddressSpace): number {
    return lockedPagesOf(this.dmas, mm);
  }

  /** Records, pins, domain contents (plus SW_MSI cookie pages) and dma_avail agree. */
  checkInvariants(problems: string[]): void {
    let mapped = 0;
    let pinned = 0;
    for (const dma of this.dmas) {
      mapped += dma.pageCount;
      pinned += dma.pinnedPages;
      if (dma.pinnedPages !== dma.pageCount) problems.push(`type1 dma at pfn ${dma.iovaPfn} pins ${dma.pinnedPages} of ${dma.pageCount} pages`);
    }
    if (pinned !== this._pinned) problems.push(`type1 counts ${this._pinned} pinned pages, records hold ${pinned}`);
    for (const domain of this.domainList) {
      // Besides the records, a domain maps the MSI doorbell pages of its SW_MSI cookie.
      const expected = mapped + (this._msi()?.cookiePages(domain) ?? 0);
      if (domain.mappedPages() !== expected) problems.push(`type1 domain ${domain.id} maps ${domain.mappedPages()} pages, records and MSI cookie hold ${expected}`);
    }
    if (this.dmaAvail + this.dmas.size !== this._entryLimit) {
      problems.push(`type1 dma_avail ${this.dmaAvail} + ${this.dmas.size} records != dma_entry_limit ${this._entryLimit}`);
    }
  }
}

/**
 * vfio_iommu_has_sw_msi: the base of the group's IOMMU_RESV_SW_MSI region, or undefined when it has
 * none or also reports a hardware IOMMU_RESV_MSI region ("real" MSI regions take precedence).
 */
function swMsiBase(regions: readonly ReservedRegion[]): bigint | undefined {
  if (regions.some((r) => r.type === 'msi')) return undefined;
  return regions.find((r) => r.type === 'sw-msi')?.start;
}
