/**
 * x86 MSI through Intel VT-d interrupt remapping (drivers/iommu/intel/irq_remapping.c).
 *
 * Model and constraints:
 * - Device writes to 0xFEE00000–0xFEEFFFFF are interrupt requests: the remapping unit intercepts them
 *   before DMA translation (so the MSI range needs no IOMMU mapping; it is reserved as IOMMU_RESV_MSI).
 * - Messages are in remappable format (intel_irq_remapping_prepare_irte / fill_msi_msg):
 *   address = 0xFEE00000 | handle[14:0] << 5 | 1 << 4 (remappable) | 1 << 3 (SHV) | handle[15] << 2,
 *   data = sub-handle. The IRTE used is handle + sub-handle.
 * - Allocation (alloc_irte: bitmap_find_free_region over 65536 IRTEs): an MSI capability's vectors share
 *   one naturally aligned power-of-two block (handle = its base, sub-handle = the vector: multi-message
 *   MSI works); each MSI-X vector gets its own IRTE (sub-handle 0). No free block: ENOSPC.
 * - Delivery: an IRTE that is not present, or whose source-id is not the requester's
 *   (set_msi_sid; here: the IRTE's device is not the writer), blocks the interrupt (an IR fault:
 *   counted dropped). Compatibility-format messages (bit 4 clear) are blocked as well: Linux clears
 *   GCMD.CFI when it enables remapping. So a device cannot raise another device's interrupt.
 */
import { sysError } from '../kernel-sim/errors';
import type { DmaRequester } from '../kernel-sim/iommu/iommu-domain';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import { deliver, newCounters, SlotTable, type MsiCapability, type MsiController, type MsiDoorbell, type MsiVector } from './msi-controller';

/** The x86 interrupt address range (IOAPIC_RANGE / the LAPIC MSI window), first byte. */
export const X86_MSI_BASE = 0xfee00000n;
/** Bytes in the range: 1 MiB. */
export const X86_MSI_BYTES = 0x100000;
/** Interrupt remapping table entries (INTR_REMAP_TABLE_ENTRIES). */
export const INTR_REMAP_TABLE_ENTRIES = 65536;

const MSI_ADDR_IR_EXT_INT = 1 << 4;
const MSI_ADDR_IR_SHV = 1 << 3;

interface Irte extends MsiVector {
  /** The IRTE index. */
  readonly index: number;
}

/** The interrupt address range as an intercept whose writes go to `onWrite`. */
export function x86InterruptRange(name: string, onWrite: MsiDoorbell['onWrite']): MsiDoorbell {
  return { name, pfn: Number(X86_MSI_BASE >> 12n), pageCount: X86_MSI_BYTES / 4096, intercept: true, onWrite };
}

/** The remappable-format address of IRTE block `handle`. */
export function remappableAddress(handle: number): bigint {
  const lo = ((handle & 0x7fff) << 5) | MSI_ADDR_IR_EXT_INT | MSI_ADDR_IR_SHV | ((handle >> 15) << 2);
  return X86_MSI_BASE | BigInt(lo);
}

/** VT-d interrupt remapping; see the file header. */
export class X86RemappingController implements MsiController {
  readonly kind = 'x86-remapping' as const;
  readonly multiMsi = true;
  readonly cookieDoorbellPfns: readonly number[] = [];
  readonly counters = newCounters();
  private readonly _table = new SlotTable<Irte>(INTR_REMAP_TABLE_ENTRIES);
  /** An MSI block's first vector → [block size, vectors in it]. */
  private readonly _blocks = new Map<MsiVector, readonly [number, number]>();
  private _live = 0;

  doorbells(): readonly MsiDoorbell[] {
    return [x86InterruptRange('x86-interrupt-remapping', this.onWrite)];
  }

  /** @throws SysError ENOSPC (no free IRTE block) */
  allocate(device: PciDevice, capability: MsiCapability, count: number): MsiVector[] {
    const vectors: Irte[] = [];
    if (capability === 'msi') {
      const base = this._table.findBlock(count);
      if (base < 0) throw sysError('ENOSPC', 'interrupt remapping table is full');
      const address = remappableAddress(base);
      for (let v = 0; v < count; v++) vectors.push({ device, capability, vector: v, address, data: v, trigger: undefined, index: base + v });
      const block = 2 ** Math.ceil(Math.log2(count));
      for (let i = 0; i < block; i++) this._table.set(base + i, i < count ? vectors[i]! : null);
      this._blocks.set(vectors[0]!, [block, count]);
    } else {
      if (INTR_REMAP_TABLE_ENTRIES - this._table.used < count) throw sysError('ENOSPC', 'interrupt remapping table is full');
      for (let v = 0; v < count; v++) {
        const index = this._table.findFree();
        const irte: Irte = { device, capability, vector: v, address: remappableAddress(index), data: 0, trigger: undefined, index };
        this._table.set(index, irte);
        vectors.push(irte);
      }
    }
    this._live += count;
    this.counters.composed += count;
    return vectors;
  }

  free(vectors: readonly MsiVector[]): void {
    for (const vector of vectors as readonly Irte[]) {
      this._table.clear(vector.index);
      this._live--;
      const block = this._blocks.get(vector);
      if (block !== undefined) {
        // The padding of the power-of-two block goes with the first vector.
        for (let i = block[1]; i < block[0]; i++) this._table.clear(vector.index + i);
        this._blocks.delete(vector);
      }
    }
  }

  liveVectors(): number {
    return this._live;
  }

  /** A write to the interrupt address range: `offset` from 0xFEE00000. The interrupt path. */
  readonly onWrite = (offset: number, data: number, requester: DmaRequester): void => {
    // Compatibility format: blocked while remapping is on (GCMD.CFI clear).
    if ((offset & MSI_ADDR_IR_EXT_INT) === 0) {
      this.counters.dropped++;
      return;
    }
    let index = ((offset >>> 5) & 0x7fff) | (((offset >>> 2) & 1) << 15);
    if ((offset & MSI_ADDR_IR_SHV) !== 0) index += data & 0xffff;
    const irte = this._table.at(index);
    // Source-id validation: the IRTE names the device allowed to use it.
    if (irte !== undefined && irte.device !== requester) {
      this.counters.dropped++;
      return;
    }
    deliver(irte, requester, this.counters);
  };
}
