/**
 * A PCI function: address (BDF), identity, BARs, interrupt capabilities, its IOMMU group, its driver,
 * and the DMA it initiates (translated through the group's IOMMU domain; see ../dma).
 */
import { dmaRead, dmaWrite, type DmaFaultLog } from '../dma';
import { sysError } from '../errors';
import type { IommuGroup } from '../iommu/iommu-group';
import type { PhysMemory } from '../mm/phys-mem';
import type { PciDriver } from './pci-driver';

/** What a device's DMA reaches: the machine's memory and the IOMMU fault log. */
export interface DmaBus {
  readonly phys: PhysMemory;
  readonly faults: DmaFaultLog;
}

/** One base address register. A size of 0 means the BAR is not implemented. */
export interface PciBar {
  readonly size: bigint;
  readonly kind: 'mem32' | 'mem64' | 'io';
  readonly prefetchable: boolean;
}

/** How a device is described to the Kernel. */
export interface PciDeviceSpec {
  /** 'dddd:bb:dd.f' */
  bdf: string;
  /** The IOMMU group the topology puts it in. */
  group: number;
  /** Which IOMMU unit of the machine translates it (index into MachineSpec.iommus). Default 0. */
  iommu?: number;
  vendor?: number;
  device?: number;
  /** 24-bit class code. */
  classCode?: number;
  kind?: 'endpoint' | 'bridge';
  /** Up to six BARs; missing ones are unimplemented. */
  bars?: Partial<PciBar>[];
  romSize?: bigint;
  /** Legacy VGA ranges (VFIO_PCI_VGA_REGION_INDEX). */
  vga?: boolean;
  /** PCI Express: 4 KiB config space and an ERR interrupt. */
  pcie?: boolean;
  /** Function-level reset works (VFIO_DEVICE_FLAGS_RESET). Default true. */
  resetWorks?: boolean;
  /** INTx pin wired. Default true for endpoints. */
  intx?: boolean;
  /** MSI vectors the MSI capability offers (a power of two, 0 = no MSI). Default 1. */
  msiVectors?: number;
  /** MSI-X table size (0 = no MSI-X). Default 0. */
  msixVectors?: number;
  /** Which BAR holds the MSI-X table. Default 0. */
  msixBar?: number;
  /** Driver at boot: 'host' for endpoints, 'none' for bridges by default. */
  driver?: string;
  /**
   * Logical I/O device number, for IOMMUs that identify requesters by LIODN (PAMU). Devices behind one
   * PCIe controller share the controller's LIODN; machines with such an IOMMU give a default.
   */
  liodn?: number;
}

const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

/** A PCI function of the simulated machine. */
export class PciDevice {
  readonly bdf: string;
  readonly vendor: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly isBridge: boolean;
  readonly isPcie: boolean;
  readonly hasVga: boolean;
  readonly resetWorks: boolean;
  readonly bars: readonly PciBar[];
  readonly romSize: bigint;
  readonly intxPin: boolean;
  readonly msiVectors: number;
  readonly msixVectors: number;
  readonly msixBar: number;
  /** LIODN of the requester (PAMU machines), else undefined. */
  readonly liodn: number | undefined;
  /** The bound driver, or undefined. Changed only through Kernel.bindDriver. */
  driver: PciDriver | undefined;
  /** Resets performed (VFIO_DEVICE_RESET, hot reset). */
  resetCount = 0;

  constructor(
    spec: PciDeviceSpec,
    readonly group: IommuGroup,
    private readonly _bus: DmaBus,
  ) {
    if (!BDF.test(spec.bdf)) throw new RangeError(`'${spec.bdf}' is not a PCI address (dddd:bb:dd.f, lower-case hex)`);
    this.bdf = spec.bdf;
    this.isBridge = spec.kind === 'bridge';
    this.vendor = spec.vendor ?? 0x1102;
    this.deviceId = spec.device ?? (this.isBridge ? 0x244e : 0x0002);
    this.classCode = spec.classCode ?? (this.isBridge ? 0x060400 : 0x040100);
    this.isPcie = spec.pcie ?? false;
    this.hasVga = spec.vga ?? false;
    this.resetWorks = spec.resetWorks ?? true;
    const bars = spec.bars ?? (this.isBridge ? [] : [{ size: 0x10000n, kind: 'mem32' as const }]);
    if (bars.length > 6) throw new RangeError('a PCI function has at most six BARs');
    this.bars = Array.from({ length: 6 }, (_, i) => ({
      size: bars[i]?.size ?? 0n,
      kind: bars[i]?.kind ?? 'mem32',
      prefetchable: bars[i]?.prefetchable ?? false,
    }));
    this.romSize = spec.romSize ?? 0n;
    this.intxPin = spec.intx ?? !this.isBridge;
    this.msiVectors = spec.msiVectors ?? (this.isBridge ? 0 : 1);
    this.msixVectors = spec.msixVectors ?? 0;
    this.msixBar = spec.msixBar ?? 0;
    this.liodn = spec.liodn;
  }

  /** Size of PCI configuration space: 4 KiB for PCI Express, 256 bytes otherwise. */
  get configSize(): number {
    return this.isPcie ? 4096 : 256;
  }

  /** The bound driver's name, or 'none'. */
  get driverName(): string {
    return this.driver?.name ?? 'none';
  }

  /**
   * The device reads `length` bytes of memory at `iova`, translated by its group's IOMMU domain.
   * @throws DmaFault when any byte is not mapped for reading (nothing is read)
   */
  dmaRead(iova: bigint, length: number): Uint8Array {
    return dmaRead(this, this._bus.phys, this._bus.faults, iova, length);
  }

  /**
   * The device writes `bytes` at `iova`, translated by its group's IOMMU domain.
   * @throws DmaFault when any byte is not mapped for writing (nothing is written)
   */
  dmaWrite(iova: bigint, bytes: Uint8Array): void {
    dmaWrite(this, this._bus.phys, this._bus.faults, iova, bytes);
  }

  /** A function-level reset. @throws SysError EINVAL when the device cannot be reset */
  reset(): void {
    if (!this.resetWorks) throw sysError('EINVAL', 'device has no reset method');
    this.resetCount++;
  }
}
