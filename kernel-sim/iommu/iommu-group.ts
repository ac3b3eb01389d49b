/**
 * IOMMU groups (drivers/iommu/iommu.c): the smallest set of devices the IOMMU can isolate, and so the
 * unit of ownership. The group tracks who owns its DMA: kernel drivers through the default domain
 * (`ownerCount`), or one user (VFIO) that claimed it and attaches its own domain.
 */
import { SimBugError, sysError } from '../errors';
import type { PciDevice } from '../pci/pci-device';
import type { IommuDomain, IommuHardware, ReservedRegion } from './iommu-domain';

/** An IOMMU group of the machine. */
export class IommuGroup {
  readonly devices: PciDevice[] = [];
  private _kernelOwners = 0;
  private _userOwner: object | undefined;
  private _domain: IommuDomain | undefined;

  constructor(
    readonly id: number,
    readonly hardware: IommuHardware,
    private readonly _reserved: readonly ReservedRegion[],
    private readonly _isolatedMsi: boolean,
  ) {}

  /** The domain a user attached, or undefined (DMA is blocked). */
  get domain(): IommuDomain | undefined {
    return this._domain;
  }

  /** True when some kernel driver or user owns the group's DMA (iommu_group_dma_owner_claimed). */
  get isDmaOwnerClaimed(): boolean {
    return this._kernelOwners > 0 || this._userOwner !== undefined;
  }

  get userOwner(): object | undefined {
    return this._userOwner;
  }

  /** A kernel driver bound to a member (iommu_device_use_default_domain). @throws SysError EBUSY when a user owns it */
  useDefaultDomain(): void {
    if (this._userOwner !== undefined) throw sysError('EBUSY', 'group DMA is owned by a user');
    this._kernelOwners++;
  }

  /** The kernel driver went away (iommu_device_unuse_default_domain). */
  unuseDefaultDomain(): void {
    if (this._kernelOwners === 0) throw new SimBugError(`group ${this.id} kernel owner count underflow`);
    this._kernelOwners--;
  }

  /** iommu_group_claim_dma_owner. @throws SysError EPERM when anyone already owns the group's DMA */
  claimDmaOwner(owner: object): void {
    if (this.isDmaOwnerClaimed) throw sysError('EPERM', 'group is not viable: its DMA is already owned');
    this._userOwner = owner;
  }

  /** iommu_group_release_dma_owner: any user domain is detached. */
  releaseDmaOwner(owner: object): void {
    if (this._userOwner !== owner) throw new SimBugError(`group ${this.id} released by a non-owner`);
    this._domain = undefined;
    this._userOwner = undefined;
  }

  /** iommu_attach_group. @throws SysError EBUSY (another domain is attached), EINVAL (foreign hardware) */
  attachDomain(domain: IommuDomain): void {
    if (this._userOwner === undefined) throw new SimBugError(`attach to group ${this.id} without a DMA owner`);
    if (this._domain !== undefined) throw sysError('EBUSY', 'group already has a domain attached');
    if (domain.hardware !== this.hardware) throw sysError('EINVAL', 'domain belongs to another IOMMU');
    this._domain = domain;
  }

  /** iommu_detach_group: DMA is blocked again. */
  detachDomain(domain: IommuDomain): void {
    if (this._domain !== domain) throw new SimBugError(`group ${this.id} detached from a domain it is not in`);
    this._domain = undefined;
  }

  /** iommu_get_group_resv_regions. */
  reservedRegions(): readonly ReservedRegion[] {
    return this._reserved;
  }

  /** iommu_group_has_isolated_msi: interrupt remapping or an MSI-isolating irq domain. */
  hasIsolatedMsi(): boolean {
    return this._isolatedMsi;
  }
}
