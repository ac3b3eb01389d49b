/**
 * The group: /dev/vfio/$GROUP (drivers/vfio/group.c). The node exists while a device of the IOMMU
 * group is bound to a VFIO driver; it may be open once at a time. Through it userspace checks viability,
 * puts the group into a container, and gets device fds.
 *
 * Lifetime: every open device fd holds a reference on the group's file, so closing the group fd while
 * devices are open releases nothing; the release (which detaches the container, possibly tearing down
 * the whole IOMMU state) runs when the last device fd closes.
 */
import { SimBugError, sysError } from '../kernel-sim/errors';
import type { FileOps, IoctlArg, SimFile } from '../kernel-sim/fs/file';
import { SimFile as File } from '../kernel-sim/fs/file';
import type { IommuGroup } from '../kernel-sim/iommu/iommu-group';
import type { Process } from '../kernel-sim/process';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_IOCTL_NAMES,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
} from '../uapi/vfio';
import { VFIO_GROUP_STATUS_MINSZ } from '../uapi/vfio-structs';
import { CONTAINER_FILE_OPS, type VfioContainer } from './vfio-container';
import { DEVICE_FILE_OPS, type VfioDevice } from './vfio-device';
import { checkOut, copyIn } from './user-arg';
import { readU32, writeU32 } from '../uapi/codec';

const PAGE_SIZE = 4096;

/** A VFIO group. */
export class VfioGroup {
  /** Devices of the IOMMU group registered with VFIO (bound to vfio-pci), by name. */
  readonly devices = new Map<string, VfioDevice>();
  private _file: SimFile<VfioGroup> | undefined;
  private _container: VfioContainer | undefined;
  /** 1 while a container is set, plus one per open device fd (container_users). */
  private _containerUsers = 0;
  /** The last VFIO device went: group->iommu_group is NULL, the group's ioctls fail with ENODEV. */
  private _removed = false;

  constructor(
    readonly iommuGroup: IommuGroup,
    readonly path: string,
    private readonly _onIdle: (group: VfioGroup) => void,
  ) {}

  get container(): VfioContainer | undefined {
    return this._container;
  }

  get isOpen(): boolean {
    return this._file !== undefined;
  }

  get containerUsers(): number {
    return this._containerUsers;
  }

  /** vfio_group_fops_open. @throws SysError ENODEV (no VFIO device left), EBUSY (already open) */
  open(): SimFile<VfioGroup> {
    if (this.devices.size === 0) throw sysError('ENODEV', 'group has no VFIO devices');
    if (this._file !== undefined) throw sysError('EBUSY', 'group is already open');
    this._file = new File(GROUP_FILE_OPS, this.path, this);
    return this._file;
  }

  /** VFIO_GROUP_GET_STATUS flags. @throws SysError ENODEV (the group's last VFIO device went) */
  statusFlags(): number {
    if (this._removed) throw sysError('ENODEV', 'the group has no VFIO device any more');
    if (this._container !== undefined) return VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
    return this.iommuGroup.isDmaOwnerClaimed ? 0 : VFIO_GROUP_FLAGS_VIABLE;
  }

  /**
   * VFIO_GROUP_SET_CONTAINER with the container's file (vfio_group_ioctl_set_container).
   * @throws SysError EINVAL (a container is set), EBADFD (not a container fd), EPERM, backend errors
   */
  setContainer(file: SimFile): void {
    if (this._container !== undefined) throw sysError('EINVAL', 'group already has a container');
    if (this._removed) throw sysError('ENODEV', 'the group has no VFIO device any more');
    if (file.ops !== CONTAINER_FILE_OPS) throw sysError('EBADFD', 'fd is not a VFIO container');
    const container = (file as SimFile<VfioContainer>).data;
    container.attachGroup(this);
    this._container = container;
    this._containerUsers = 1;
  }

  /** VFIO_GROUP_UNSET_CONTAINER. @throws SysError EINVAL (no container), EBUSY (device fds open) */
  unsetContainer(): void {
    if (this._container === undefined) throw sysError('EINVAL', 'group has no container');
    if (this._containerUsers !== 1) throw sysError('EBUSY', 'device fds of the group are open');
    this._detach();
  }

  private _detach(): void {
    const container = this._container!;
    this._container = undefined;
    this._containerUsers = 0;
    container.detachGroup(this);
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD: opens a device of the group and installs its fd.
   * @throws SysError EINVAL (name too long, no container or IOMMU, bad vf_token), ENODEV (no such device)
   */
  openDevice(name: string, caller: Process): number {
    const [bdf, ...options] = name.split(' ');
    const device = this.devices.get(bdf ?? '');
    if (device === undefined) throw sysError('ENODEV', `no VFIO device '${name}' in group ${this.iommuGroup.id}`);
    // vfio_pci_core_match: a vf_token is only meaningful for SR-IOV PFs and VFs, which are not modelled.
    if (options.length > 0) throw sysError('EINVAL', 'VF token provided for a device that is not a PF or VF');
    // vfio_df_group_open: a container with an IOMMU driver is needed before the first device open.
    if (this._container === undefined) throw sysError('EINVAL', 'group has no container');
    if (this._container.bound === undefined) throw sysError('EINVAL', 'container has no IOMMU set');
    device.open();
    const file = new File(DEVICE_FILE_OPS, `vfio-device:${device.pci.bdf}`, device);
    this._file!.get();
    this._containerUsers++;
    return caller.installFile(file);
  }

  /** The last VFIO device of the group was unregistered (vfio_device_remove_group): leave the container. */
  removed(): void {
    this._removed = true;
    if (this._container !== undefined) this._detach();
  }

  /** A device fd was released (vfio_df_group_close). */
  deviceClosed(): void {
    if (this._containerUsers <= 1) throw new SimBugError(`group ${this.iommuGroup.id} container_users underflow`);
    this._containerUsers--;
    this._file!.put();
  }

  /** The group file's last reference went (vfio_group_fops_release). */
  fileReleased(): void {
    if (this._container !== undefined) this._detach();
    this._file = undefined;
    this._onIdle(this);
  }
}

/** file_operations of /dev/vfio/$GROUP. */
export const GROUP_FILE_OPS: FileOps<VfioGroup> = {
  kind: 'vfio-group',

  ioctl(file: SimFile<VfioGroup>, request: number, arg: IoctlArg, caller: Process): number {
    const group = file.data;
    switch (request) {
      case VFIO_GROUP_GET_STATUS: return groupIoctlGetStatus(group, arg);
      case VFIO_GROUP_SET_CONTAINER: return groupIoctlSetContainer(group, arg, caller);
      case VFIO_GROUP_UNSET_CONTAINER: return groupIoctlUnsetContainer(group);
      case VFIO_GROUP_GET_DEVICE_FD: return groupIoctlGetDeviceFd(group, arg, caller);
      default: throw sysError('ENOTTY', 'unknown group ioctl');
    }
  },

  requestName(request: number): string | undefined {
    return VFIO_GROUP_IOCTL_NAMES.get(request);
  },

  release(file: SimFile<VfioGroup>): void {
    file.data.fileReleased();
  },
};

function groupIoctlGetStatus(group: VfioGroup, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_GROUP_STATUS_MINSZ);
  if (readU32(buf, 0) < VFIO_GROUP_STATUS_MINSZ) throw sysError('EINVAL', 'argsz is below 8');
  checkOut(buf, 0, VFIO_GROUP_STATUS_MINSZ);
  writeU32(buf, 4, group.statusFlags());
  return 0;
}

function groupIoctlSetContainer(group: VfioGroup, arg: IoctlArg, caller: Process): number {
  // get_user(fd, (int __user *)arg), then fdget(fd).
  const buf = copyIn(arg, 4);
  const fd = readU32(buf, 0) | 0;
  const file = caller.fileOf(fd);
  if (file === undefined) throw sysError('EBADF', `fd ${fd} is not open`);
  group.setContainer(file);
  return 0;
}

function groupIoctlUnsetContainer(group: VfioGroup): number {
  group.unsetContainer();
  return 0;
}

function groupIoctlGetDeviceFd(group: VfioGroup, arg: IoctlArg, caller: Process): number {
  return group.openDevice(deviceName(arg), caller);
}

/** strndup_user(arg, PAGE_SIZE): the NUL-terminated name. @throws SysError EFAULT, EINVAL (too long) */
function deviceName(arg: IoctlArg): string {
  if (typeof arg === 'string') {
    if (arg.length >= PAGE_SIZE) throw sysError('EINVAL', 'device name is longer than a page');
    return arg;
  }
  if (!(arg instanceof Uint8Array)) throw sysError('EFAULT', 'device name is not a string');
  const limit = Math.min(arg.length, PAGE_SIZE);
  const nul = arg.subarray(0, limit).indexOf(0);
  if (nul < 0) {
    if (arg.length >= PAGE_SIZE) throw sysError('EINVAL', 'device name is longer than a page');
    throw sysError('EFAULT', 'device name is not NUL-terminated within the buffer');
  }
  return new TextDecoder().decode(arg.subarray(0, nul));
}
