/**
 * The state of one windowed ("type2") container and its group attach/detach rules: one windowed domain
 * shared by every group of the container (one window layout), the LIODNs of the groups' devices attached
 * to it, the RAM mappings (whole windows), and the MSI bank windows.
 *
 * The SDK backend this replaces (vfio_iommu_fsl_pamu.c) and its defects, fixed here
 * (reference/pamu-windowed.md §3.3, DESIGN.md §4):
 * - every failure is reported (the SDK returned 0 from GET/SET_ATTR and the MSI bank ioctls whatever the
 *   handler said);
 * - a MAP smaller than a window, or with a remainder, is EINVAL (the SDK recorded it and mapped nothing);
 * - overlap is EEXIST as in type1 (the SDK said EBUSY);
 * - UNMAP reports the bytes unmapped and refuses to split a mapping (the SDK trimmed and split);
 * - locked_vm is charged and returned per page (the SDK added one per window and subtracted per page);
 * - an MSI bank is mapped by one container at a time unless allow_unsafe_interrupts (the SDK let every
 *   container map every bank, so a device could raise any interrupt of a shared bank).
 *
 * Ranges are in 4 KiB pages; `end` is exclusive.
 */
import { SimBugError, sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import type { IommuGroup } from '../../../kernel-sim/iommu/iommu-group';
import { isWindowedDomain, type WindowedDomain } from '../../../kernel-sim/iommu/windowed-domain';
import type { Kernel } from '../../../kernel-sim/kernel';
import type { AddressSpace } from '../../../kernel-sim/mm/address-space';
import type { Process } from '../../../kernel-sim/process';
import {
  VFIO_IOMMU_PAMU_GET_ATTR,
  VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT,
  VFIO_IOMMU_PAMU_MAP_MSI_BANK,
  VFIO_IOMMU_PAMU_SET_ATTR,
  VFIO_IOMMU_PAMU_UNMAP_MSI_BANK,
  VFIO_PAMU_IOCTL_NAMES,
  VFIO_TYPE2_IOMMU,
} from '../../../uapi/vfio-pamu';
import { VFIO_CONTAINER_IOCTL_NAMES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_UNMAP_ALL } from '../../../uapi/vfio';
import type { VfioIommuBackendInstance } from '../../backend';
import { DmaTree } from '../common/dma-tree';
import { lockedPagesOf } from '../common/locked-vm';
import type { MsiBankProvider } from './msi-bank-provider';
import { type2IoctlGetAttr, type2IoctlSetAttr } from './pamu-attr';
import { type2IoctlGetMsiBankCount, type2IoctlMapMsiBank, type2IoctlUnmapMsiBank } from './msi-bank-ioctls';
import type { Type2Dma } from './type2-dma';
import { type2IoctlGetInfo } from './type2-get-info';
import { type2IoctlMapDma } from './type2-map-dma';
import { type2IoctlUnmapDma } from './type2-unmap-dma';

/** An MSI bank mapped into a window of this container. */
export interface MappedBank {
  readonly bank: number;
  readonly window: number;
  readonly iovaPfn: number;
}

/** One windowed container's IOMMU state. */
export class Type2Iommu implements VfioIommuBackendInstance {
  readonly dmas = new DmaTree<Type2Dma>();
  readonly banks = new Map<number, MappedBank>();
  /** The PAMU stash attribute, once set. */
  stash: { cpu: number; cache: number } | undefined;
  private _domain: WindowedDomain | undefined;
  private readonly _groups = new Map<IommuGroup, number[]>();
  private _pinned = 0;

  constructor(
    readonly kernel: Kernel,
    /** The MSI banks of the machine (the MPIC), or undefined on a machine without them. */
    readonly msiBanks: MsiBankProvider | undefined,
  ) {}

  /** The container's windowed domain. @throws SimBugError before a group attached */
  get domain(): WindowedDomain {
    if (this._domain === undefined) throw new SimBugError('type2 container has no domain');
    return this._domain;
  }

  checkExtension(extension: number): number {
    return extension === VFIO_TYPE2_IOMMU || extension === VFIO_UNMAP_ALL ? 1 : 0;
  }

  ioctl(request: number, arg: IoctlArg, caller: Process): number {
    switch (request) {
      case VFIO_IOMMU_GET_INFO: return type2IoctlGetInfo(this, arg);
      case VFIO_IOMMU_MAP_DMA: return type2IoctlMapDma(this, arg, caller);
      case VFIO_IOMMU_UNMAP_DMA: return type2IoctlUnmapDma(this, arg);
      case VFIO_IOMMU_PAMU_GET_ATTR: return type2IoctlGetAttr(this, arg);
      case VFIO_IOMMU_PAMU_SET_ATTR: return type2IoctlSetAttr(this, arg);
      case VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT: return type2IoctlGetMsiBankCount(this);
      case VFIO_IOMMU_PAMU_MAP_MSI_BANK: return type2IoctlMapMsiBank(this, arg);
      case VFIO_IOMMU_PAMU_UNMAP_MSI_BANK: return type2IoctlUnmapMsiBank(this, arg);
      default: throw sysError('ENOTTY', 'unknown windowed IOMMU ioctl');
    }
  }

  requestName(request: number): string | undefined {
    return VFIO_PAMU_IOCTL_NAMES.get(request) ?? VFIO_CONTAINER_IOCTL_NAMES.get(request);
  }

  // ---- groups ------------------------------------------------------------------------------------

  /**
   * Attaches a group: every group of the container shares one windowed domain, and the LIODNs of the
   * group's devices are attached to it (programmed with the current windows). All or nothing.
   * @throws SysError EINVAL (not behind a windowed IOMMU, a device without LIODN, another unit than the
   *   container's, already attached, LIODN outside the table), EBUSY (LIODN held elsewhere), ENOSPC
   */
  attachGroup(group: IommuGroup): void {
    if (this._groups.has(group)) throw sysError('EINVAL', 'group is already attached');
    const liodns = [...new Set(group.devices.map((d) => d.liodn))];
    if (liodns.some((l) => l === undefined)) throw sysError('EINVAL', 'a device of the group has no LIODN');
    if (this._domain !== undefined && this._domain.hardware !== group.hardware) {
      throw sysError('EINVAL', 'group is behind another IOMMU than the container');
    }
    let domain = this._domain;
    let fresh = false;
    if (domain === undefined) {
      const allocated = group.hardware.allocDomain();
      if (!isWindowedDomain(allocated)) {
        allocated.free();
        throw sysError('EINVAL', 'group is not behind a windowed IOMMU');
      }
      domain = allocated;
      fresh = true;
    }
    try {
      domain.attachLiodns(liodns as number[]);
      try {
        group.attachDomain(domain);
      } catch (err) {
        domain.detachLiodns(liodns as number[]);
        throw err;
      }
    } catch (err) {
      if (fresh) domain.free();
      throw err;
    }
    this._domain = domain;
    this._groups.set(group, liodns as number[]);
  }

  /** The group leaves the domain; its LIODNs are released. The container releases everything after the last. */
  detachGroup(group: IommuGroup): void {
    const liodns = this._groups.get(group);
    if (liodns === undefined) throw new SimBugError(`group ${group.id} is not attached to this type2 container`);
    group.detachDomain(this.domain);
    this.domain.detachLiodns(liodns);
    this._groups.delete(group);
  }

  /** Everything is unmapped, unpinned and freed; bank claims are given back. */
  release(): void {
    for (const dma of this.dmas.toArray()) this.removeDma(dma);
    for (const bank of [...this.banks.values()]) this.unmapBank(bank);
    if (this._domain !== undefined) {
      for (const [group, liodns] of this._groups) {
        group.detachDomain(this._domain);
        this._domain.detachLiodns(liodns);
      }
      this._groups.clear();
      this._domain.free();
      this._domain = undefined;
    }
  }

  // ---- mappings ----------------------------------------------------------------------------------

  /** Counts pages a MAP pinned (the invariant checker compares it with the records). */
  notePinned(pages: number): void {
    this._pinned += pages;
  }

  /** Disables the mapping's windows, unpins their pages, returns the locked_vm charge and the entry. */
  removeDma(dma: Type2Dma): void {
    const windows = this.domain.windows;
    for (let w = 0; w < dma.windowCount; w++) {
      windows.disableWindow(dma.firstWindow + w);
      this.kernel.phys.unpin(dma.windowPfns[w]!, dma.pagesPerWindow);
    }
    const pages = dma.windowCount * dma.pagesPerWindow;
    this._pinned -= pages;
    dma.mm.unaccountLocked(dma.lockedPages);
    dma.lockedPages = 0;
    this.dmas.remove(dma);
    this._updateEnable();
  }

  /** Disables a bank's window and gives the bank back. */
  unmapBank(bank: MappedBank): void {
    this.domain.windows.disableWindow(bank.window);
    this.banks.delete(bank.bank);
    this.msiBanks?.releaseBank(bank.bank, this);
    this._updateEnable();
  }

  /**
   * After a successful MAP (RAM or MSI bank): the PAMU enable attribute is set, as the SDK did after every
   * MAP_DMA. Setting it also re-enables the requesters a violation disabled, which is how a VMM revives a
   * device after a fault.
   */
  enableAfterMap(): void {
    this.domain.windows.setEnabled(true);
  }

  /**
   * The domain is disabled once no window is valid. The SDK disabled it when its DMA list emptied, which
   * also cut the MSI bank windows off; here a mapped bank keeps it enabled.
   */
  private _updateEnable(): void {
    const windows = this.domain.windows;
    if (this.dmas.size === 0 && this.banks.size === 0 && windows.isEnabled()) windows.setEnabled(false);
  }

  /** Whether window `index` is taken by a mapping or an MSI bank. */
  windowInUse(index: number): boolean {
    return this.domain.windows.window(index) !== undefined;
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

  /** Every record's windows are programmed as recorded, and the pin count matches the records. */
  checkInvariants(problems: string[]): void {
    let pinned = 0;
    for (const dma of this.dmas) {
      pinned += dma.windowCount * dma.pagesPerWindow;
      for (let w = 0; w < dma.windowCount; w++) {
        const state = this._domain?.windows.window(dma.firstWindow + w);
        if (state === undefined || state.pfn !== dma.windowPfns[w] || state.pageCount !== dma.pagesPerWindow) {
          problems.push(`type2 dma at pfn ${dma.iovaPfn}: window ${dma.firstWindow + w} disagrees with the record`);
        }
      }
    }
    if (pinned !== this._pinned) problems.push(`type2 counts ${this._pinned} pinned pages, records hold ${pinned}`);
    for (const bank of this.banks.values()) {
      if (this._domain?.windows.window(bank.window) === undefined) problems.push(`type2 MSI bank ${bank.bank}: window ${bank.window} is not valid`);
    }
  }
}
