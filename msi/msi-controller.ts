/**
 * What every MSI controller model shares: the allocated interrupt (`MsiVector`, the msi_desc + irq of
 * the kernel), the controller interface the MSI module drives, the counters, and delivery.
 *
 * A controller composes messages (irq_chip compose_msi_msg) when vectors are allocated, owns the
 * doorbell registers that device writes reach, and turns a doorbell write into an eventfd signal for the
 * vector it names. Who may raise which vector is the controller's isolation property:
 * - x86 interrupt remapping checks the requester against the IRTE (source-id validation);
 * - the GICv3 ITS takes the DeviceID from the requester, so a device can only name its own events;
 * - x86 compatibility format and the MPIC MSIIR take the interrupt number from the message alone: any
 *   device able to write the doorbell can raise any interrupt (counted as forged when the writer is not
 *   the vector's device; the interrupt is still delivered, as the hardware would).
 */
import { SimBugError } from '../kernel-sim/errors';
import type { EventFd } from '../kernel-sim/fs/eventfd';
import type { DmaRequester } from '../kernel-sim/iommu/iommu-domain';
import type { MsiControllerSpec } from '../kernel-sim/machines';
import type { MmioWriteHandler } from '../kernel-sim/mmio';
import type { PciDevice } from '../kernel-sim/pci/pci-device';

/** The capability a vector belongs to. */
export type MsiCapability = 'msi' | 'msix';

/** One allocated interrupt of a device: its composed message and where it is delivered. */
export interface MsiVector {
  readonly device: PciDevice;
  readonly capability: MsiCapability;
  /** The vector number in the device's capability. */
  readonly vector: number;
  /** The composed message address (what the device writes to). */
  readonly address: bigint;
  /** The composed message data (u32). */
  readonly data: number;
  /** The eventfd a delivered interrupt signals (request_irq's handler), or undefined (no handler yet). */
  trigger: EventFd | undefined;
}

/** What a controller counts; a snapshot is returned by `MsiModule.counters()`. */
export interface MsiCounters {
  /** Messages composed (vectors allocated). */
  composed: number;
  /** Doorbell writes that signalled an eventfd. */
  delivered: number;
  /** Doorbell writes that named no allocated vector, a vector without a handler, another register, or
   *  were refused by the controller (an IRTE's source-id check, a compatibility-format message). */
  dropped: number;
  /** Delivered writes whose requester is not the vector's device (a subset of `delivered`). */
  forged: number;
}

/** What composing needs from the MSI module. */
export interface ComposeContext {
  /**
   * The address at which `device` reaches the physical doorbell address `phys` (iommu_dma_compose_msi_msg,
   * fsl_iommu_get_iova): its IOVA in the SW_MSI cookie of the device's domain, the IOVA of the window
   * that maps the doorbell page in a windowed domain, or `phys` itself when the device has no domain or
   * its domain translates MSIs some other way. Undefined: a windowed domain with no window on the page.
   */
  doorbellIova(device: PciDevice, phys: bigint): bigint | undefined;
}

/** A register range of the controller that device writes reach. */
export interface MsiDoorbell {
  readonly name: string;
  /** First frame: physical for a doorbell, IOVA for an intercept. */
  readonly pfn: number;
  readonly pageCount: number;
  /** An IOVA range the IOMMU intercepts before translation (x86), rather than a physical doorbell. */
  readonly intercept: boolean;
  readonly onWrite: MmioWriteHandler;
}

/** An MSI controller model. */
export interface MsiController {
  readonly kind: MsiControllerSpec['kind'];
  /** Multiple-message MSI (MSI_FLAG_MULTI_PCI_MSI): more than one vector in the MSI capability. */
  readonly multiMsi: boolean;
  /** Physical frames of the doorbells that must be mapped behind an SW_MSI cookie, in cookie order. */
  readonly cookieDoorbellPfns: readonly number[];
  readonly counters: MsiCounters;
  /** The doorbells to register in the kernel's MMIO map. */
  doorbells(): readonly MsiDoorbell[];
  /**
   * Allocates and composes vectors 0 … count − 1 of `device`'s `capability`, all or nothing.
   * @throws SysError ENOSPC (no free interrupt), EINVAL (the device cannot reach a doorbell)
   */
  allocate(device: PciDevice, capability: MsiCapability, count: number, ctx: ComposeContext): MsiVector[];
  /** Frees vectors made by `allocate` (pci_free_irq_vectors). */
  free(vectors: readonly MsiVector[]): void;
  /** Vectors allocated now. */
  liveVectors(): number;
  /** Appends broken invariants of the controller's tables. */
  checkInvariants?(problems: string[]): void;
}

/** An empty counter set. */
export function newCounters(): MsiCounters {
  return { composed: 0, delivered: 0, dropped: 0, forged: 0 };
}

/**
 * A doorbell write that named `vector` (or nothing): signal its eventfd and count. The interrupt path:
 * no allocation.
 */
export function deliver(vector: MsiVector | undefined, requester: DmaRequester, counters: MsiCounters): void {
  const trigger = vector?.trigger;
  if (trigger === undefined) {
    counters.dropped++;
    return;
  }
  if (vector!.device !== requester) counters.forged++;
  counters.delivered++;
  trigger.signal();
}

/** The smallest power of two ≥ n (n ≥ 1). */
export function roundUpPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

/**
 * A table of interrupt slots with the kernel's bitmap allocators: the first free aligned block of a
 * power-of-two size (bitmap_find_free_region) or the first free slot. A slot holds its vector, or null
 * when it is allocated without an interrupt behind it (the padding of a power-of-two block).
 */
export class SlotTable<T extends object> {
  private readonly _slots: (T | null | undefined)[];
  private _used = 0;

  constructor(readonly size: number) {
    this._slots = new Array<T | null | undefined>(size).fill(undefined);
  }

  /** Slots allocated (padding included). */
  get used(): number {
    return this._used;
  }

  /** The vector in a slot (undefined when free, padding, or outside the table). */
  at(slot: number): T | undefined {
    return this._slots[slot] ?? undefined;
  }

  /** The first slot of a free, naturally aligned block of roundUpPow2(count) slots, or -1. */
  findBlock(count: number): number {
    const block = roundUpPow2(count);
    for (let base = 0; base + block <= this.size; base += block) {
      let free = true;
      for (let i = 0; i < block && free; i++) free = this._slots[base + i] === undefined;
      if (free) return base;
    }
    return -1;
  }

  /** The first free slot, or -1. */
  findFree(): number {
    return this._slots.indexOf(undefined);
  }

  /** Takes a free slot for `value` (null: padding). */
  set(slot: number, value: T | null): void {
    if (this._slots[slot] !== undefined) throw new SimBugError(`interrupt slot ${slot} is taken`);
    this._used++;
    this._slots[slot] = value;
  }

  /** Frees a slot. */
  clear(slot: number): void {
    if (this._slots[slot] === undefined) throw new SimBugError(`interrupt slot ${slot} is already free`);
    this._used--;
    this._slots[slot] = undefined;
  }
}
