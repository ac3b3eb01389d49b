/**
 * A PCI function: address (BDF), identity, BARs, interrupt capabilities, its IOMMU group, its driver,
 * and the DMA it initiates (translated through the group's IOMMU domain; see ../dma).
 *
 * Interrupts, as the function sends them:
 * - MSI and MSI-X: the capability holds one programmed message per vector (address, data) and a
 *   per-vector mask. `raiseMsi(vector)` is the function's MSI write: a 32-bit DMA write of `data` to
 *   `address`, translated by the IOMMU like any other write (so an unmapped doorbell faults, the fault
 *   is logged, and no interrupt is delivered). Only the enabled capability sends (MSI and MSI-X are
 *   never both enabled, PCI 3.0 §6.8); a vector that is not programmed, or is masked, is not sent
 *   (the PCI rule for a masked MSI-X vector; the model gives MSI per-vector masking too). The kernel's
 *   MSI layer programs the messages (pci_write_msi_msg) and masks or unmasks vectors as irqs are
 *   requested and freed.
 * - INTx: a level. `raiseIntx` asserts the line, `lowerIntx` deasserts it (the device's driver cleared
 *   the cause). Whoever registered an INTx handler (vfio-pci's) sees each assertion, and may ask whether
 *   the line is still asserted when it unmasks (pci_check_and_unmask_intx).
 */
import { dmaRead, dmaWrite, dmaWriteU32, type DmaFaultLog } from '../dma';
import { SimBugError, sysError } from '../errors';
import type { IommuGroup } from '../iommu/iommu-group';
import type { PhysMemory } from '../mm/phys-mem';
import type { Mmio } from '../mmio';
import type { PciDriver } from './pci-driver';

/** What a device's DMA reaches: the machine's memory, its doorbells, and the IOMMU fault log. */
export interface DmaBus {
  readonly phys: PhysMemory;
  readonly faults: DmaFaultLog;
  readonly mmio: Mmio;
}

/** Which message-signalled interrupt capability is enabled. */
export type MsiMode = 'none' | 'msi' | 'msix';

/** One vector's state in the MSI or MSI-X capability. */
export interface MsiVectorState {
  /** The programmed message address (0n before programming). */
  readonly address: bigint;
  /** The programmed message data (u32). */
  readonly data: number;
  /** Programmed and not masked: the function may send it. */
  readonly enabled: boolean;
}

/**
 * The handler of the function's INTx line (request_irq on pdev->irq). Called on each assertion;
 * returns whether it signalled anything.
 */
export type IntxHandler = () => boolean;

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

  // MSI/MSI-X capability state, as typed arrays so `raiseMsi` reads it without BigInt or allocation.
  private _msiMode: MsiMode = 'none';
  private _msiCount = 0;
  private _msiIovaPfn = new Float64Array(0);
  private _msiOffset = new Int32Array(0);
  private _msiData = new Uint32Array(0);
  /** Bit 0: programmed; bit 1: masked. A vector sends when the value is exactly 1. */
  private _msiState = new Uint8Array(0);
  private _intxAsserted = false;
  private _intxHandler: IntxHandler | undefined;

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
    return dmaRead(this, this._bus, iova, length);
  }

  /**
   * The device writes `bytes` at `iova`, translated by its group's IOMMU domain.
   * @throws DmaFault when any byte is not mapped for writing (nothing is written)
   */
  dmaWrite(iova: bigint, bytes: Uint8Array): void {
    dmaWrite(this, this._bus, iova, bytes);
  }

  // ---- MSI / MSI-X ---------------------------------------------------------------------------------

  /** The enabled capability. */
  get msiMode(): MsiMode {
    return this._msiMode;
  }

  /** Vectors of the enabled capability (0 when none is enabled). */
  get msiVectorCount(): number {
    return this._msiCount;
  }

  /**
   * Enables the MSI or MSI-X capability with `vectorCount` vectors, none programmed, all masked.
   * @throws SimBugError when a capability is already enabled or the function has fewer vectors
   */
  enableMsi(mode: 'msi' | 'msix', vectorCount: number): void {
    if (this._msiMode !== 'none') throw new SimBugError(`${this.bdf}: ${mode} enabled while ${this._msiMode} is`);
    const max = mode === 'msi' ? this.msiVectors : this.msixVectors;
    if (!Number.isInteger(vectorCount) || vectorCount < 1 || vectorCount > max) {
      throw new SimBugError(`${this.bdf}: ${vectorCount} ${mode} vectors asked, the function has ${max}`);
    }
    this._msiMode = mode;
    this._msiCount = vectorCount;
    this._msiIovaPfn = new Float64Array(vectorCount);
    this._msiOffset = new Int32Array(vectorCount);
    this._msiData = new Uint32Array(vectorCount);
    this._msiState = new Uint8Array(vectorCount).fill(2);
  }

  /** Disables the enabled capability; every vector's message is forgotten. */
  disableMsi(): void {
    this._msiMode = 'none';
    this._msiCount = 0;
    this._msiIovaPfn = new Float64Array(0);
    this._msiOffset = new Int32Array(0);
    this._msiData = new Uint32Array(0);
    this._msiState = new Uint8Array(0);
  }

  /**
   * Writes a vector's message (pci_write_msi_msg); the mask is unchanged.
   * @throws SimBugError for a vector outside the enabled capability, or an address that is not a
   *   DWORD-aligned u64 (PCI: Message Address bits 1:0 are 0)
   */
  programMsiVector(vector: number, address: bigint, data: number): void {
    this._checkVector(vector);
    if (address < 0n || address >= 1n << 64n || (address & 3n) !== 0n) {
      throw new SimBugError(`${this.bdf}: MSI address 0x${address.toString(16)} is not a DWORD-aligned u64`);
    }
    this._msiIovaPfn[vector] = Number(address >> 12n);
    this._msiOffset[vector] = Number(address & 0xfffn);
    this._msiData[vector] = data >>> 0;
    this._msiState[vector] = this._msiState[vector]! | 1;
  }

  /** Sets or clears a vector's mask bit. @throws SimBugError for a vector outside the enabled capability */
  maskMsiVector(vector: number, masked: boolean): void {
    this._checkVector(vector);
    this._msiState[vector] = masked ? this._msiState[vector]! | 2 : this._msiState[vector]! & ~2;
  }

  /** A vector's state, or undefined outside the enabled capability. */
  msiVector(vector: number): MsiVectorState | undefined {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this._msiCount) return undefined;
    return {
      address: (BigInt(this._msiIovaPfn[vector]!) << 12n) | BigInt(this._msiOffset[vector]!),
      data: this._msiData[vector]!,
      enabled: this._msiState[vector] === 1,
    };
  }

  /**
   * The function sends vector `vector` of its enabled capability: a 32-bit DMA write of the message data
   * to the message address, through the IOMMU (or the interrupt address range an IOMMU intercepts).
   * Allocates nothing unless the write faults.
   * @returns true when the write left the function and was not refused by the IOMMU (whether it became
   *   an interrupt is the MSI controller's business: see its counters); false when the vector is not
   *   enabled (nothing is sent) or the write faulted (logged in the kernel's fault log).
   */
  raiseMsi(vector: number): boolean {
    if (!(vector >= 0 && vector < this._msiCount) || this._msiState[vector] !== 1) return false;
    return dmaWriteU32(this, this._bus, this._msiIovaPfn[vector]!, this._msiOffset[vector]!, this._msiData[vector]!);
  }

  private _checkVector(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this._msiCount) {
      throw new SimBugError(`${this.bdf}: vector ${vector} outside the enabled ${this._msiMode} capability (${this._msiCount})`);
    }
  }

  // ---- INTx --------------------------------------------------------------------------------------

  /** Whether the INTx line is asserted. */
  get intxAsserted(): boolean {
    return this._intxAsserted;
  }

  /** Installs (or, with undefined, removes) the handler of the INTx line. */
  setIntxHandler(handler: IntxHandler | undefined): void {
    this._intxHandler = handler;
  }

  /**
   * The function asserts INTx. A function without an INTx pin cannot.
   * @returns whether a handler signalled the interrupt (false: no pin, no handler, or masked)
   */
  raiseIntx(): boolean {
    if (!this.intxPin) return false;
    this._intxAsserted = true;
    return this._intxHandler?.() ?? false;
  }

  /** The function deasserts INTx (its driver serviced the cause). */
  lowerIntx(): void {
    this._intxAsserted = false;
  }

  /** A function-level reset. @throws SysError EINVAL when the device cannot be reset */
  reset(): void {
    if (!this.resetWorks) throw sysError('EINVAL', 'device has no reset method');
    this.resetCount++;
  }
}
