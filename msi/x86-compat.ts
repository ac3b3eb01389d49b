/**
 * x86 MSI without interrupt remapping: compatibility-format messages straight to the local APICs
 * (arch/x86/kernel/apic/msi.c, vector.c). The machine the `allow_unsafe_interrupts` parameter exists for.
 *
 * Model and constraints:
 * - Device writes to 0xFEE00000–0xFEEFFFFF are interrupt messages (intercepted before DMA translation,
 *   as on any VT-d or no IOMMU at all).
 * - The message names its target: address = 0xFEE00000 | destination APIC ID << 12 (physical mode,
 *   no redirection hint), data = vector (fixed delivery, edge). Nothing checks who wrote it, so a device
 *   can raise ANY vector on ANY CPU, another device's or the kernel's: isolation is impossible, which
 *   is why VFIO refuses such groups unless allow_unsafe_interrupts is set. A forged message is delivered
 *   and counted as forged; one that names no allocated vector is dropped (a spurious interrupt).
 * - Vector allocation (the irq matrix): `cpus` CPUs with APIC IDs 0 … cpus − 1, vectors 0x21–0xEB on
 *   each (FIRST_EXTERNAL_VECTOR + 1 up to FIRST_SYSTEM_VECTOR − 1; the simulator's choice of bounds).
 *   Each vector goes to the CPU with the fewest allocated vectors (lowest APIC ID on a tie), its lowest
 *   free vector, as irq_matrix_alloc spreads them. None free: ENOSPC.
 * - No multiple-message MSI (x86 supports it only with remapping): an MSI capability gets 1 vector.
 */
import { sysError } from '../kernel-sim/errors';
import type { DmaRequester } from '../kernel-sim/iommu/iommu-domain';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import { deliver, newCounters, type MsiCapability, type MsiController, type MsiDoorbell, type MsiVector } from './msi-controller';
import { X86_MSI_BASE, x86InterruptRange } from './x86-remapping';

/** The first and last vector the simulator hands to devices. */
export const X86_FIRST_DEVICE_VECTOR = 0x21;
export const X86_LAST_DEVICE_VECTOR = 0xeb;
/** Default CPU count. */
export const X86_COMPAT_DEFAULT_CPUS = 8;

interface CpuVector extends MsiVector {
  readonly apicId: number;
  readonly cpuVector: number;
}

/** Compatibility-format x86 MSI; see the file header. */
export class X86CompatController implements MsiController {
  readonly kind = 'x86-compat' as const;
  readonly multiMsi = false;
  readonly cookieDoorbellPfns: readonly number[] = [];
  readonly counters = newCounters();
  /** (APIC ID << 8 | vector) → the vector's owner. */
  private readonly _table: (CpuVector | undefined)[] = new Array<CpuVector | undefined>(256 * 256).fill(undefined);
  private readonly _perCpu: number[];
  private _live = 0;

  constructor(readonly cpus: number = X86_COMPAT_DEFAULT_CPUS) {
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255) throw new RangeError(`x86-compat: ${cpus} CPUs (1 … 255)`);
    this._perCpu = new Array<number>(cpus).fill(0);
  }

  doorbells(): readonly MsiDoorbell[] {
    return [x86InterruptRange('x86-interrupt-compat', this.onWrite)];
  }

  /** @throws SysError ENOSPC (every CPU's vectors are taken) */
  allocate(device: PciDevice, capability: MsiCapability, count: number): MsiVector[] {
    const perCpu = X86_LAST_DEVICE_VECTOR - X86_FIRST_DEVICE_VECTOR + 1;
    if (this.cpus * perCpu - this._live < count) throw sysError('ENOSPC', 'no free x86 vector');
    const vectors: CpuVector[] = [];
    for (let v = 0; v < count; v++) {
      let apicId = 0;
      for (let cpu = 1; cpu < this.cpus; cpu++) if (this._perCpu[cpu]! < this._perCpu[apicId]!) apicId = cpu;
      let cpuVector = X86_FIRST_DEVICE_VECTOR;
      while (this._table[(apicId << 8) | cpuVector] !== undefined) cpuVector++;
      const entry: CpuVector = {
        device,
        capability,
        vector: v,
        address: X86_MSI_BASE | BigInt(apicId << 12),
        data: cpuVector,
        trigger: undefined,
        apicId,
        cpuVector,
      };
      this._table[(apicId << 8) | cpuVector] = entry;
      this._perCpu[apicId]!++;
      vectors.push(entry);
    }
    this._live += count;
    this.counters.composed += count;
    return vectors;
  }

  free(vectors: readonly MsiVector[]): void {
    for (const entry of vectors as readonly CpuVector[]) {
      this._table[(entry.apicId << 8) | entry.cpuVector] = undefined;
      this._perCpu[entry.apicId]!--;
      this._live--;
    }
  }

  liveVectors(): number {
    return this._live;
  }

  /** A write to the interrupt address range: `offset` from 0xFEE00000. The interrupt path. */
  readonly onWrite = (offset: number, data: number, requester: DmaRequester): void => {
    const apicId = (offset >>> 12) & 0xff;
    deliver(this._table[(apicId << 8) | (data & 0xff)], requester, this.counters);
  };
}
