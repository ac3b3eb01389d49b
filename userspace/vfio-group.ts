/**
 * Typed helpers over the group ioctls.
 */
import type { Process } from '../kernel-sim';
import { writeU32 } from '../uapi/codec';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
} from '../uapi/vfio';
import { VfioGroupStatus } from '../uapi/vfio-structs';
import type { VfioContainer } from './vfio-container';
import { VfioDevice } from './vfio-device';

/** An open /dev/vfio/$GROUP. */
export class VfioGroup {
  private constructor(
    readonly process: Process,
    readonly id: number,
    readonly fd: number,
  ) {}

  /** @throws SysError ENOENT (no such node), EBUSY (already open), ENODEV */
  static open(process: Process, id: number): VfioGroup {
    return new VfioGroup(process, id, process.open(`/dev/vfio/${id}`));
  }

  /** VFIO_GROUP_GET_STATUS flags. */
  statusFlags(): number {
    const buf = VfioGroupStatus.encode({ argsz: VfioGroupStatus.size });
    this.process.ioctl(this.fd, VFIO_GROUP_GET_STATUS, buf);
    return VfioGroupStatus.read(buf, 'flags');
  }

  get isViable(): boolean {
    return (this.statusFlags() & VFIO_GROUP_FLAGS_VIABLE) !== 0;
  }

  get hasContainer(): boolean {
    return (this.statusFlags() & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0;
  }

  /** VFIO_GROUP_SET_CONTAINER. @throws SysError */
  setContainer(container: VfioContainer): void {
    const fd = new Uint8Array(4);
    writeU32(fd, 0, container.fd);
    this.process.ioctl(this.fd, VFIO_GROUP_SET_CONTAINER, fd);
  }

  /** VFIO_GROUP_UNSET_CONTAINER. @throws SysError */
  unsetContainer(): void {
    this.process.ioctl(this.fd, VFIO_GROUP_UNSET_CONTAINER);
  }

  /** VFIO_GROUP_GET_DEVICE_FD. @throws SysError */
  device(name: string): VfioDevice {
    return new VfioDevice(this.process, this.process.ioctl(this.fd, VFIO_GROUP_GET_DEVICE_FD, name));
  }

  close(): void {
    this.process.close(this.fd);
  }
}
