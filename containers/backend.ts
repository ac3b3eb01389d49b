/**
 * The IOMMU backend plug-in interface (vfio_iommu_driver_ops) and its registry.
 *
 * A backend is registered once per kernel and answers VFIO_CHECK_EXTENSION without an instance. When
 * userspace calls VFIO_SET_IOMMU, the container walks the registry in registration order, skips each
 * backend whose `checkExtension(type)` is not positive, calls `open(type)`, and attaches every group of
 * the container; the first backend for which all of that succeeds is bound (vfio_ioctl_set_iommu). The
 * built-in type1 backend registers first, then the windowed backend; a user's backend comes after them
 * unless it is registered with `{ first: true }`.
 *
 * Contract of an instance:
 * - `attachGroup` is all or nothing: on failure it leaves no trace.
 * - `detachGroup` cannot fail.
 * - `ioctl` receives every container ioctl except GET_API_VERSION, CHECK_EXTENSION and SET_IOMMU;
 *   unknown requests throw ENOTTY.
 * - `release` tears everything down: afterwards the backend holds no pinned page and no locked_vm.
 */
import { SimBugError } from '../kernel-sim/errors';
import type { IoctlArg } from '../kernel-sim/fs/file';
import type { IommuGroup } from '../kernel-sim/iommu/iommu-group';
import type { Kernel } from '../kernel-sim/kernel';
import type { AddressSpace } from '../kernel-sim/mm/address-space';
import type { Process } from '../kernel-sim/process';

/** What a backend instance may use of the kernel. */
export interface BackendContext {
  readonly kernel: Kernel;
}

/** One container's IOMMU state (iommu_data). */
export interface VfioIommuBackendInstance {
  /** VFIO_CHECK_EXTENSION once this backend is bound. */
  checkExtension(extension: number): number;
  /** @throws SysError; leaves no trace on failure */
  attachGroup(group: IommuGroup): void;
  detachGroup(group: IommuGroup): void;
  /** @throws SysError (ENOTTY for unknown requests) */
  ioctl(request: number, arg: IoctlArg, caller: Process): number;
  /** The request's name, for errors and tracing. */
  requestName?(request: number): string | undefined;
  release(): void;
  /** Pinned 4 KiB pages held now (invariant checks). */
  pinnedPages(): number;
  /** Pages charged to `mm`'s locked_vm (invariant checks). */
  lockedVm(mm: AddressSpace): number;
  /** Appends broken invariants (e.g. a translation disagreeing with the records) to `problems`. */
  checkInvariants?(problems: string[]): void;
}

/** A registered IOMMU type family. */
export interface VfioIommuBackend {
  /** Unique: 'vfio-iommu-type1', 'vfio-iommu-type2'. */
  readonly name: string;
  /** CHECK_EXTENSION before any backend is bound: > 0 means supported. */
  checkExtension(extension: number): number;
  /** @throws SysError (EINVAL for a type that is not its own) */
  open(type: number, context: BackendContext): VfioIommuBackendInstance;
}

/** The backends of one kernel, in negotiation order. */
export class BackendRegistry {
  private readonly _backends: VfioIommuBackend[] = [];

  /** Adds a backend at the end of the negotiation order (or first). Duplicate names are a bug. */
  register(backend: VfioIommuBackend, options: { first?: boolean } = {}): void {
    if (this._backends.some((b) => b.name === backend.name)) throw new SimBugError(`IOMMU backend ${backend.name} registered twice`);
    if (options.first === true) this._backends.unshift(backend);
    else this._backends.push(backend);
  }

  unregister(backend: VfioIommuBackend): void {
    const index = this._backends.indexOf(backend);
    if (index < 0) throw new SimBugError(`IOMMU backend ${backend.name} is not registered`);
    this._backends.splice(index, 1);
  }

  /** In negotiation order. */
  list(): readonly VfioIommuBackend[] {
    return this._backends;
  }
}
