/**
 * A VFIO device fd of a PCI function bound to vfio-pci (drivers/vfio/pci/vfio_pci_core.c): device info,
 * region info for the fixed vfio-pci regions (BAR0–5, ROM, config, VGA), IRQ info, interrupts
 * (VFIO_DEVICE_SET_IRQS: validation here, the actions in vfio-pci-intrs.ts), and reset.
 *
 * The same device may be opened several times through its group (open_count); every open holds a
 * reference on the group's file. Interrupt state belongs to the device, not to an fd: it is torn down
 * when the last fd closes (vfio_pci_core_close_device).
 */
import { SimBugError, sysError } from '../kernel-sim/errors';
import type { FileOps, IoctlArg, SimFile } from '../kernel-sim/fs/file';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import type { Process } from '../kernel-sim/process';
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_IOCTL_NAMES,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from '../uapi/vfio';
import { VFIO_DEVICE_INFO_MINSZ, VFIO_IRQ_INFO_MINSZ, VFIO_IRQ_SET_MINSZ, VFIO_REGION_INFO_MINSZ, VfioIrqSet } from '../uapi/vfio-structs';
import { CapabilityChain, placeCaps } from './capability-chain';
import type { VfioGroup } from './vfio-group';
import { VfioPciIntrs } from './vfio-pci-intrs';
import { checkOut, copyIn } from './user-arg';
import { readU32, writeU32, writeU64 } from '../uapi/codec';

/** sizeof(struct vfio_device_info) in kernels with the `pad` field (6.6+). */
const DEVICE_INFO_SIZE = 24;
/** Legacy VGA: 0xa0000–0xbffff MMIO plus the 0x3b0–0x3df I/O ports, as vfio-pci exposes them. */
const VGA_REGION_SIZE = 0xc0000n;

/** A PCI function registered with VFIO. */
export class VfioDevice {
  private _openCount = 0;
  /** INTx / MSI / MSI-X / ERR / REQ state (vfio_pci_intrs.c). */
  readonly intrs: VfioPciIntrs;

  constructor(
    readonly pci: PciDevice,
    readonly group: VfioGroup,
  ) {
    this.intrs = new VfioPciIntrs(pci);
  }

  get openCount(): number {
    return this._openCount;
  }

  /** vfio_df_open: the first open would call the bus driver's open_device. */
  open(): void {
    this._openCount++;
  }

  /** The device fd's last reference went. */
  fileReleased(): void {
    if (this._openCount === 0) throw new SimBugError(`device ${this.pci.bdf} open count underflow`);
    this._openCount--;
    // vfio_pci_core_close_device on the last close: interrupts off, every eventfd reference dropped.
    if (this._openCount === 0) this.intrs.closeDevice();
    this.group.deviceClosed();
  }
}

/** file_operations of a vfio-pci device fd. */
export const DEVICE_FILE_OPS: FileOps<VfioDevice> = {
  kind: 'vfio-device',

  ioctl(file: SimFile<VfioDevice>, request: number, arg: IoctlArg, caller: Process): number {
    const device = file.data.pci;
    switch (request) {
      case VFIO_DEVICE_GET_INFO: return deviceIoctlGetInfo(device, arg);
      case VFIO_DEVICE_GET_REGION_INFO: return deviceIoctlGetRegionInfo(device, arg);
      case VFIO_DEVICE_GET_IRQ_INFO: return deviceIoctlGetIrqInfo(device, arg);
      case VFIO_DEVICE_SET_IRQS: return deviceIoctlSetIrqs(file.data, arg, caller);
      case VFIO_DEVICE_RESET: return deviceIoctlReset(device);
      default: throw sysError('ENOTTY', 'unknown device ioctl');
    }
  },

  requestName(request: number): string | undefined {
    return VFIO_DEVICE_IOCTL_NAMES.get(request);
  },

  release(file: SimFile<VfioDevice>): void {
    file.data.fileReleased();
  },
};

function deviceIoctlGetInfo(device: PciDevice, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_DEVICE_INFO_MINSZ);
  const argsz = readU32(buf, 0);
  if (argsz < VFIO_DEVICE_INFO_MINSZ) throw sysError('EINVAL', 'argsz is below 16');
  // Written back: min(argsz, sizeof(info)); no capabilities are offered, so cap_offset is 0.
  const out = new Uint8Array(DEVICE_INFO_SIZE);
  writeU32(out, 0, argsz);
  writeU32(out, 4, VFIO_DEVICE_FLAGS_PCI | (device.resetWorks ? VFIO_DEVICE_FLAGS_RESET : 0));
  writeU32(out, 8, VFIO_PCI_NUM_REGIONS);
  writeU32(out, 12, VFIO_PCI_NUM_IRQS);
  const n = Math.min(argsz, DEVICE_INFO_SIZE);
  checkOut(buf, 0, n);
  buf.set(out.subarray(0, n));
  return 0;
}

function deviceIoctlGetRegionInfo(device: PciDevice, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_REGION_INFO_MINSZ);
  const argsz = readU32(buf, 0);
  if (argsz < VFIO_REGION_INFO_MINSZ) throw sysError('EINVAL', 'argsz is below 32');
  const index = readU32(buf, 8);
  const caps = new CapabilityChain();
  let size = 0n;
  let flags = 0;
  if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
    const bar = device.bars[index]!;
    size = bar.size;
    if (size !== 0n) {
      flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      if (bar.kind !== 'io') flags |= VFIO_REGION_INFO_FLAG_MMAP;
      // The MSI-X table BAR may be mmapped whole (msix_mmappable_cap).
      if (device.msixVectors > 0 && device.msixBar === index) caps.add(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, new Uint8Array(0));
    }
  } else if (index === VFIO_PCI_ROM_REGION_INDEX) {
    size = device.romSize;
    if (size !== 0n) flags = VFIO_REGION_INFO_FLAG_READ;
  } else if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    size = BigInt(device.configSize);
    flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else if (index === VFIO_PCI_VGA_REGION_INDEX) {
    if (!device.hasVga) throw sysError('EINVAL', 'device has no VGA region');
    size = VGA_REGION_SIZE;
    flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  } else {
    throw sysError('EINVAL', `region index ${index} is out of range`);
  }
  const placed = placeCaps(buf, argsz, VFIO_REGION_INFO_MINSZ, caps);
  checkOut(buf, 0, VFIO_REGION_INFO_MINSZ);
  writeU32(buf, 0, placed.argsz);
  writeU32(buf, 4, flags | (placed.hasCaps ? VFIO_REGION_INFO_FLAG_CAPS : 0));
  writeU32(buf, 12, placed.capOffset);
  writeU64(buf, 16, size);
  writeU64(buf, 24, BigInt(index) << BigInt(VFIO_PCI_OFFSET_SHIFT));
  return 0;
}

function deviceIoctlGetIrqInfo(device: PciDevice, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_IRQ_INFO_MINSZ);
  const index = readU32(buf, 8);
  if (readU32(buf, 0) < VFIO_IRQ_INFO_MINSZ || index >= VFIO_PCI_NUM_IRQS) throw sysError('EINVAL', 'bad argsz or IRQ index');
  // The ERR index exists only on PCI Express functions.
  if (index === VFIO_PCI_ERR_IRQ_INDEX && !device.isPcie) throw sysError('EINVAL', 'device is not PCI Express');
  let flags = VFIO_IRQ_INFO_EVENTFD;
  flags |= index === VFIO_PCI_INTX_IRQ_INDEX ? VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED : VFIO_IRQ_INFO_NORESIZE;
  checkOut(buf, 0, VFIO_IRQ_INFO_MINSZ);
  writeU32(buf, 4, flags);
  writeU32(buf, 12, irqCount(device, index));
  return 0;
}

/**
 * VFIO_DEVICE_SET_IRQS (vfio_pci_ioctl_set_irqs): copy the header, validate it exactly as
 * vfio_set_irqs_validate_and_prepare does, in its order, copy data[], then act (vfio-pci-intrs.ts).
 * @throws SysError EFAULT (the buffer is shorter than the header, or than argsz says data[] is),
 *   EINVAL (a validation rule), and the action's errors
 */
function deviceIoctlSetIrqs(device: VfioDevice, arg: IoctlArg, caller: Process): number {
  const buf = copyIn(arg, VFIO_IRQ_SET_MINSZ);
  const { argsz, flags, index, start, count } = VfioIrqSet.decode(buf);
  const max = irqCount(device.pci, index);
  if (
    argsz < VFIO_IRQ_SET_MINSZ ||
    index >= VFIO_PCI_NUM_IRQS ||
    count >= 0xffffffff - start ||
    (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) !== 0
  ) {
    throw sysError('EINVAL', 'bad argsz, index, count or flags');
  }
  if (start >= max || start + count > max) throw sysError('EINVAL', `vectors ${start} + ${count} are outside the index's ${max}`);
  // Exactly one DATA_* type; the action bits are checked when the index dispatches (ENOTTY).
  let size: number;
  switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE: size = 0; break;
    case VFIO_IRQ_SET_DATA_BOOL: size = 1; break;
    case VFIO_IRQ_SET_DATA_EVENTFD: size = 4; break;
    default: throw sysError('EINVAL', 'not exactly one DATA_* flag');
  }
  if (size !== 0 && argsz - VFIO_IRQ_SET_MINSZ < count * size) throw sysError('EINVAL', 'argsz does not hold data[]');
  // memdup_user of data[]: the buffer must really hold it.
  const bytes = count * size;
  if (VFIO_IRQ_SET_MINSZ + bytes > buf.length) throw sysError('EFAULT', 'data[] runs past the buffer');
  const data = buf.slice(VFIO_IRQ_SET_MINSZ, VFIO_IRQ_SET_MINSZ + bytes);
  return device.intrs.setIrqs(flags, index, start, count, data, caller);
}

/** vfio_pci_get_irq_count. */
function irqCount(device: PciDevice, index: number): number {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX: return device.intxPin ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX: return device.msiVectors;
    case VFIO_PCI_MSIX_IRQ_INDEX: return device.msixVectors;
    case VFIO_PCI_ERR_IRQ_INDEX: return device.isPcie ? 1 : 0;
    case VFIO_PCI_REQ_IRQ_INDEX: return 1;
    default: return 0;
  }
}

function deviceIoctlReset(device: PciDevice): number {
  device.reset();
  return 0;
}
