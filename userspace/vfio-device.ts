/**
 * Typed helpers over the device ioctls.
 */
import type { Process } from '../kernel-sim';
import { type DecodedOf } from '../uapi/codec';
import {
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
} from '../uapi/vfio';
import { VfioDeviceInfo, VfioIrqInfo, VfioRegionInfo } from '../uapi/vfio-structs';

/** An open VFIO device fd. */
export class VfioDevice {
  constructor(
    readonly process: Process,
    readonly fd: number,
  ) {}

  info(): DecodedOf<typeof VfioDeviceInfo> {
    const buf = VfioDeviceInfo.encode({ argsz: VfioDeviceInfo.size });
    this.process.ioctl(this.fd, VFIO_DEVICE_GET_INFO, buf);
    return VfioDeviceInfo.decode(buf);
  }

  /** @throws SysError EINVAL for an index the device does not have */
  regionInfo(index: number): DecodedOf<typeof VfioRegionInfo> {
    const buf = VfioRegionInfo.encode({ argsz: VfioRegionInfo.size, index });
    this.process.ioctl(this.fd, VFIO_DEVICE_GET_REGION_INFO, buf);
    return VfioRegionInfo.decode(buf);
  }

  /** @throws SysError EINVAL for an index the device does not have */
  irqInfo(index: number): DecodedOf<typeof VfioIrqInfo> {
    const buf = VfioIrqInfo.encode({ argsz: VfioIrqInfo.size, index });
    this.process.ioctl(this.fd, VFIO_DEVICE_GET_IRQ_INFO, buf);
    return VfioIrqInfo.decode(buf);
  }

  /** @throws SysError EINVAL when the device cannot be reset */
  reset(): void {
    this.process.ioctl(this.fd, VFIO_DEVICE_RESET);
  }

  close(): void {
    this.process.close(this.fd);
  }
}
