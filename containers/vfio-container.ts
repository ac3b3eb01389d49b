/**
 * The container: /dev/vfio/vfio (drivers/vfio/container.c). Every open makes a new, empty container.
 * It holds groups and, once VFIO_SET_IOMMU succeeded, one IOMMU backend instance that receives every
 * ioctl the core does not handle.
 *
 * Lifetime: the file holds one reference and every attached group another; closing the fd while groups
 * are attached keeps the IOMMU state and all DMA mappings alive until the last group detaches
 * (reference/vfio-uapi.md §7.8).
 */
import { SimBugError, sysError } from '../kernel-sim/errors';
import type { FileOps, IoctlArg, SimFile } from '../kernel-sim/fs/file';
import type { Process } from '../kernel-sim/process';
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_CONTAINER_IOCTL_NAMES,
  VFIO_GET_API_VERSION,
  VFIO_SET_IOMMU,
} from '../uapi/vfio';
import type { BackendRegistry, VfioIommuBackend, VfioIommuBackendInstance } from './backend';
import type { VfioGroup } from './vfio-group';
import type { Kernel } from '../kernel-sim/kernel';
import { byValue } from './user-arg';

/** The backend a container is bound to. */
export interface BoundBackend {
  readonly backend: VfioIommuBackend;
  readonly instance: VfioIommuBackendInstance;
}

/** A VFIO container. */
export class VfioContainer {
  readonly groups: VfioGroup[] = [];
  private _bound: BoundBackend | undefined;
  private _fileOpen = true;

  constructor(
    private readonly _kernel: Kernel,
    private readonly _registry: BackendRegistry,
    private readonly _onUnused: (container: VfioContainer) => void,
  ) {}

  get bound(): BoundBackend | undefined {
    return this._bound;
  }

  /** Nothing refers to the container any more: no fd, no group. */
  get isUnused(): boolean {
    return !this._fileOpen && this.groups.length === 0;
  }

  /** VFIO_CHECK_EXTENSION (vfio_container_ioctl_check_extension): the answer is the return value. */
  checkExtension(extension: number): number {
    if (this._bound !== undefined) return this._bound.instance.checkExtension(extension);
    // No driver yet: the first registered backend that says yes answers.
    for (const backend of this._registry.list()) {
      const answer = backend.checkExtension(extension);
      if (answer > 0) return answer;
    }
    return 0;
  }

  /**
   * VFIO_SET_IOMMU (vfio_ioctl_set_iommu): negotiate a backend over the registry.
   * @throws SysError EINVAL (no group, or already set), ENODEV (no backend supports the type), or the
   *   last backend's open/attach error
   */
  setIommu(type: number): void {
    if (this.groups.length === 0 || this._bound !== undefined) {
      throw sysError('EINVAL', this._bound !== undefined ? 'an IOMMU is already set' : 'container has no group');
    }
    let lastError: unknown = sysError('ENODEV', `no IOMMU backend supports type ${type}`);
    for (const backend of this._registry.list()) {
      if (backend.checkExtension(type) <= 0) continue;
      let instance: VfioIommuBackendInstance;
      try {
        instance = backend.open(type, { kernel: this._kernel });
      } catch (err) {
        lastError = err;
        continue;
      }
      const attached: VfioGroup[] = [];
      try {
        for (const group of this.groups) {
          instance.attachGroup(group.iommuGroup);
          attached.push(group);
        }
      } catch (err) {
        for (const group of attached.reverse()) instance.detachGroup(group.iommuGroup);
        instance.release();
        lastError = err;
        continue;
      }
      this._bound = { backend, instance };
      return;
    }
    throw lastError;
  }

  /**
   * Adds a group (vfio_container_attach_group): claim its DMA, attach it to the bound backend if any.
   * @throws SysError EPERM (not viable), or the backend's attach error; nothing changes on failure
   */
  attachGroup(group: VfioGroup): void {
    group.iommuGroup.claimDmaOwner(group);
    if (this._bound !== undefined) {
      try {
        this._bound.instance.attachGroup(group.iommuGroup);
      } catch (err) {
        group.iommuGroup.releaseDmaOwner(group);
        throw err;
      }
    }
    this.groups.push(group);
  }

  /** Removes a group (vfio_group_detach_container); the last one releases the backend. */
  detachGroup(group: VfioGroup): void {
    const index = this.groups.indexOf(group);
    if (index < 0) throw new SimBugError(`group ${group.iommuGroup.id} detached from a container it is not in`);
    this._bound?.instance.detachGroup(group.iommuGroup);
    group.iommuGroup.releaseDmaOwner(group);
    this.groups.splice(index, 1);
    if (this.groups.length === 0 && this._bound !== undefined) {
      // The container goes back to "no IOMMU set"; SET_IOMMU is needed again (__vfio_group_unset_container).
      const bound = this._bound;
      this._bound = undefined;
      bound.instance.release();
    }
    if (this.isUnused) this._onUnused(this);
  }

  /** The container fd's last reference went. */
  fileReleased(): void {
    this._fileOpen = false;
    if (this.isUnused) this._onUnused(this);
  }
}

/** file_operations of /dev/vfio/vfio. */
export const CONTAINER_FILE_OPS: FileOps<VfioContainer> = {
  kind: 'vfio-container',

  ioctl(file: SimFile<VfioContainer>, request: number, arg: IoctlArg, caller: Process): number {
    const container = file.data;
    switch (request) {
      case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION: return container.checkExtension(byValue(arg));
      case VFIO_SET_IOMMU: return containerIoctlSetIommu(container, arg);
      default: return containerIoctlPassthrough(container, request, arg, caller);
    }
  },

  requestName(request: number): string | undefined {
    return VFIO_CONTAINER_IOCTL_NAMES.get(request);
  },

  release(file: SimFile<VfioContainer>): void {
    file.data.fileReleased();
  },
};

function containerIoctlSetIommu(container: VfioContainer, arg: IoctlArg): number {
  container.setIommu(byValue(arg));
  return 0;
}

/** Anything else goes to the bound backend; before SET_IOMMU it is EINVAL (container.c's initial ret). */
function containerIoctlPassthrough(container: VfioContainer, request: number, arg: IoctlArg, caller: Process): number {
  const bound = container.bound;
  if (bound === undefined) throw sysError('EINVAL', 'no IOMMU set on this container');
  return bound.instance.ioctl(request, arg, caller);
}
