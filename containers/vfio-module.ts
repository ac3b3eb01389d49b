/**
 * The VFIO kernel module: the vfio-pci driver, /dev/vfio/vfio, the /dev/vfio/$GROUP nodes that appear
 * while a group has a device bound to vfio-pci, and the registry of IOMMU backends. Backends are
 * separate modules that register themselves (vfio_register_iommu_driver), type1 first.
 */
import { sysError } from '../kernel-sim/errors';
import { SimFile } from '../kernel-sim/fs/file';
import type { Kernel, KernelModule } from '../kernel-sim/kernel';
import type { AddressSpace } from '../kernel-sim/mm/address-space';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import type { PciDriver } from '../kernel-sim/pci/pci-driver';
import { BackendRegistry, type VfioIommuBackend } from './backend';
import { CONTAINER_FILE_OPS, VfioContainer } from './vfio-container';
import { VfioDevice } from './vfio-device';
import { VfioGroup } from './vfio-group';

export const VFIO_MODULE_NAME = 'vfio';

/** VFIO's state in one kernel. */
export class VfioModule implements KernelModule {
  readonly name = VFIO_MODULE_NAME;
  readonly backends = new BackendRegistry();
  private readonly _groups = new Map<number, VfioGroup>();
  private readonly _containers = new Set<VfioContainer>();

  constructor(private readonly _kernel: Kernel) {
    _kernel.registerDriver(this._vfioPciDriver());
    _kernel.devfs.register('/dev/vfio/vfio', () => {
      const container = new VfioContainer(_kernel, this.backends, (c) => this._containers.delete(c));
      this._containers.add(container);
      return new SimFile(CONTAINER_FILE_OPS, '/dev/vfio/vfio', container);
    });
  }

  /** The vfio-pci driver: binding registers the device with VFIO (vfio_pci_core_register_device). */
  private _vfioPciDriver(): PciDriver {
    return {
      name: 'vfio-pci',
      driverManagedDma: true,
      probe: (device) => this._registerDevice(device),
      remove: (device) => this._unregisterDevice(device),
    };
  }

  private _registerDevice(pci: PciDevice): void {
    const id = pci.group.id;
    let group = this._groups.get(id);
    if (group === undefined) {
      const path = `/dev/vfio/${id}`;
      group = new VfioGroup(pci.group, path, (g) => this._groupIdle(g));
      this._groups.set(id, group);
      const created = group;
      this._kernel.devfs.register(path, () => created.open());
    }
    group.devices.set(pci.bdf, new VfioDevice(pci, group));
  }

  /**
   * Unbinding an opened device would block in the kernel until userspace closes it (vfio_unregister_
   * group_dev waits, and sends a REQ interrupt); the simulator refuses with EBUSY instead.
   */
  private _unregisterDevice(pci: PciDevice): void {
    const group = this._groups.get(pci.group.id)!;
    const device = group.devices.get(pci.bdf)!;
    if (device.openCount > 0) {
      // vfio_pci_core_request: ask the user to release the device (the REQ interrupt), then refuse.
      device.intrs.request();
      throw sysError('EBUSY', `device ${pci.bdf} is open through VFIO`);
    }
    group.devices.delete(pci.bdf);
    if (group.devices.size === 0) this._removeGroup(group);
  }

  /**
   * The group's last VFIO device went (vfio_device_remove_group): its node goes at once, even while the
   * group is open, and the group leaves its container. An open group fd is left without its IOMMU group.
   */
  private _removeGroup(group: VfioGroup): void {
    group.removed();
    this._groups.delete(group.iommuGroup.id);
    this._kernel.devfs.unregister(group.path);
  }

  /** A group with no VFIO device and no open file goes away with its node. */
  private _groupIdle(group: VfioGroup): void {
    if (group.devices.size > 0 || group.isOpen || this._groups.get(group.iommuGroup.id) !== group) return;
    this._groups.delete(group.iommuGroup.id);
    this._kernel.devfs.unregister(group.path);
  }

  /** Live containers (an fd or an attached group still refers to them). */
  containers(): VfioContainer[] {
    return [...this._containers];
  }

  pinnedPages(): number {
    let pages = 0;
    for (const container of this._containers) pages += container.bound?.instance.pinnedPages() ?? 0;
    return pages;
  }

  lockedVm(mm: AddressSpace): number {
    let pages = 0;
    for (const container of this._containers) pages += container.bound?.instance.lockedVm(mm) ?? 0;
    return pages;
  }

  checkInvariants(problems: string[]): void {
    for (const container of this._containers) {
      if (container.isUnused) problems.push('a VFIO container with no fd and no group is still alive');
      for (const group of container.groups) {
        if (group.container !== container) problems.push(`group ${group.iommuGroup.id} is listed by a container it does not name`);
      }
      container.bound?.instance.checkInvariants?.(problems);
    }
    for (const group of this._groups.values()) {
      if (group.container !== undefined && !group.isOpen) problems.push(`group ${group.iommuGroup.id} has a container but no open file`);
      if (group.container !== undefined && group.iommuGroup.userOwner !== group) problems.push(`group ${group.iommuGroup.id} is in a container without owning its DMA`);
    }
  }
}

/** The module factory index.ts registers as built in. */
export function vfioModule(kernel: Kernel): VfioModule {
  return new VfioModule(kernel);
}

/**
 * Registers an IOMMU backend with a kernel's VFIO, after the built-in ones (or first). This is the call
 * type1 and type2 register through, and the one a new IOMMU type uses.
 */
export function registerIommuBackend(kernel: Kernel, backend: VfioIommuBackend, options: { first?: boolean } = {}): void {
  kernel.module<VfioModule>(VFIO_MODULE_NAME).backends.register(backend, options);
}
