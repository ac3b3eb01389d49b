/**
 * A small world for interrupt tests: a kernel with vfio-pci devices, a process, a container holding
 * their group (type1 v2 on page-table machines, VFIO_SET_IOMMU skipped for 'none'), and device fds.
 *
 * `setIrqs` speaks raw VFIO_DEVICE_SET_IRQS and reports the kernel's answer as a value: the ioctl's
 * result (0, or a positive vector count) or the errno code. `state` snapshots what a failed call must
 * leave untouched: the vfio-pci interrupt state, the device's MSI capability, and every eventfd's count
 * and reference count.
 */
import { Kernel, SysError, uapi, type KernelOptions, type PciDevice, type PciDeviceSpec, type Process } from '../../index';
import type { VfioDevice as VfioPciDevice } from '../../containers/vfio-device';
import type { VfioIrqState } from '../../containers/vfio-pci-intrs';
import type { MsiVectorState } from '../../kernel-sim/pci/pci-device';

export const BDF = '0000:06:0d.0';
export const GROUP = 26;

export type IrqOutcome = number | uapi.ErrnoCode;

/** What SET_IRQS sends; `data` is the s32 fds (DATA_EVENTFD) or bools (DATA_BOOL). */
export interface IrqSet {
  flags: number;
  index: number;
  start?: number;
  count?: number;
  data?: readonly number[];
  /** Default 20 + the data's size. */
  argsz?: number;
  /** Bytes allocated for the struct; default argsz (or 20 + data). */
  bufferBytes?: number;
}

export interface IrqWorldOptions extends Omit<KernelOptions, 'devices'> {
  /** The device in group 26; more devices join the same container if listed in `more`. */
  device?: Partial<PciDeviceSpec>;
  more?: PciDeviceSpec[];
  /** Which IOMMU type SET_IOMMU selects; default type1 v2. */
  iommuType?: number | 'none';
}

export interface IrqState {
  irq: VfioIrqState;
  msiMode: string;
  vectors: (MsiVectorState | undefined)[];
  eventfds: { fd: number; count: bigint; refs: number }[];
}

export interface IrqWorld {
  kernel: Kernel;
  proc: Process;
  container: number;
  group: number;
  /** The device fd of BDF. */
  fd: number;
  pci: PciDevice;
  /** A device fd by BDF (opened on first use). */
  deviceFd(bdf: string): number;
  /** n new eventfds. */
  eventfds(n: number): number[];
  setIrqs(req: IrqSet, fd?: number): IrqOutcome;
  /** The raw bytes setIrqs would send. */
  encode(req: IrqSet): Uint8Array;
  /** The vfio-pci interrupt state of a device fd (internal: the file's VfioDevice). */
  irqState(fd?: number): VfioIrqState;
  state(fd?: number): IrqState;
  /** An eventfd's count, without consuming it: 0n when nothing arrived. */
  peek(efd: number): bigint;
}

export const TRIGGER = uapi.VFIO_IRQ_SET_ACTION_TRIGGER;
export const EVENTFD_TRIGGER = uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;
export const NONE_TRIGGER = uapi.VFIO_IRQ_SET_DATA_NONE | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;
export const BOOL_TRIGGER = uapi.VFIO_IRQ_SET_DATA_BOOL | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;

/** Builds the world; see the file header. */
export function irqWorld(options: IrqWorldOptions = {}): IrqWorld {
  const { device = {}, more = [], iommuType = uapi.VFIO_TYPE1v2_IOMMU, ...kernelOptions } = options;
  const kernel = new Kernel({
    ...kernelOptions,
    devices: [{ bdf: BDF, group: GROUP, msiVectors: 16, msixVectors: 64, driver: 'vfio-pci', ...device }, ...more],
  });
  const proc = kernel.spawn({ memlockLimit: 1n << 40n });
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open(`/dev/vfio/${GROUP}`);
  const fdBytes = new Uint8Array(4);
  uapi.writeU32(fdBytes, 0, container);
  proc.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, fdBytes);
  if (iommuType !== 'none') proc.ioctl(container, uapi.VFIO_SET_IOMMU, iommuType);
  const fds = new Map<string, number>();
  const created: number[] = [];
  const deviceFd = (bdf: string): number => {
    let fd = fds.get(bdf);
    if (fd === undefined) {
      fd = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, bdf);
      fds.set(bdf, fd);
    }
    return fd;
  };
  const encode = (req: IrqSet): Uint8Array => {
    const data = req.data ?? [];
    const size = (req.flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD) !== 0 ? 4 : (req.flags & uapi.VFIO_IRQ_SET_DATA_BOOL) !== 0 ? 1 : 0;
    const argsz = req.argsz ?? 20 + data.length * size;
    const buf = new Uint8Array(req.bufferBytes ?? Math.max(argsz, 20 + data.length * size));
    uapi.VfioIrqSet.encode({ argsz, flags: req.flags, index: req.index, start: req.start ?? 0, count: req.count ?? data.length }, buf);
    data.forEach((v, i) => {
      if (size === 4 && 20 + 4 * i + 4 <= buf.length) uapi.writeU32(buf, 20 + 4 * i, v);
      if (size === 1 && 20 + i < buf.length) buf[20 + i] = v;
    });
    return buf;
  };
  const vfioDevice = (fd: number): VfioPciDevice => proc.fileOf(fd)!.data as VfioPciDevice;
  const world: IrqWorld = {
    kernel,
    proc,
    container,
    group,
    fd: deviceFd(BDF),
    pci: kernel.device(BDF),
    deviceFd,
    eventfds: (n) => {
      const out = Array.from({ length: n }, () => proc.eventfd());
      created.push(...out);
      return out;
    },
    encode,
    setIrqs: (req, fd = world.fd) => {
      try {
        return proc.ioctl(fd, uapi.VFIO_DEVICE_SET_IRQS, encode(req));
      } catch (err) {
        if (err instanceof SysError) return err.code;
        throw err;
      }
    },
    irqState: (fd = world.fd) => vfioDevice(fd).intrs.debugState(),
    state: (fd = world.fd) => {
      const pci = vfioDevice(fd).pci;
      return {
        irq: world.irqState(fd),
        msiMode: pci.msiMode,
        vectors: Array.from({ length: pci.msiVectorCount }, (_, v) => pci.msiVector(v)),
        eventfds: created.filter((e) => proc.fileOf(e) !== undefined).map((e) => ({ fd: e, count: world.peek(e), refs: proc.fileOf(e)!.refCount })),
      };
    },
    peek: (efd) => {
      const file = proc.fileOf(efd)!;
      return (file.data as { count: bigint }).count;
    },
  };
  return world;
}

/** An eventfd read that reports EAGAIN as a value. */
export function readOrCode(proc: Process, efd: number): bigint | uapi.ErrnoCode {
  try {
    return proc.eventfdRead(efd);
  } catch (err) {
    if (err instanceof SysError) return err.code;
    throw err;
  }
}
