/**
 * Device-initiated DMA: every access is translated page by page through the IOMMU domain attached to
 * the device's group, and touches the physical memory behind it. An access the domain does not
 * allow is refused whole (nothing is read or written) with a DmaFault, and recorded in the kernel's
 * fault log, as the IOMMU's fault reporting would (dmar_fault / arm_smmu_evtq).
 */
import { PAGE_SHIFT, PAGE_SIZE, IOMMU_READ, IOMMU_WRITE, TRANSLATE_BLOCKED, TRANSLATE_NO_PERMISSION } from './iommu/iommu-domain';
import type { PhysMemory } from './mm/phys-mem';
import type { PciDevice } from './pci/pci-device';

/** Why the IOMMU refused a device access. */
export type DmaFaultReason = 'no-domain' | 'unmapped' | 'permission' | 'out-of-range' | 'blocked';

/** One refused device access, as the IOMMU records it. */
export interface DmaFaultRecord {
  readonly bdf: string;
  readonly group: number;
  /** The first byte of the access that faulted. */
  readonly iova: bigint;
  readonly access: 'read' | 'write';
  readonly reason: DmaFaultReason;
  /** The LIODN of the requester, on IOMMUs that identify requesters by LIODN. */
  readonly liodn?: number;
}

/** A device access the IOMMU refused. */
export class DmaFault extends Error {
  constructor(readonly record: DmaFaultRecord) {
    super(`DMA ${record.access} fault at iova 0x${record.iova.toString(16)} from ${record.bdf}: ${record.reason}`);
    this.name = 'DmaFault';
  }
  get bdf(): string {
    return this.record.bdf;
  }
  get iova(): bigint {
    return this.record.iova;
  }
  get reason(): DmaFaultReason {
    return this.record.reason;
  }
}

/** Where faults are recorded: the last `capacity` records and a running count. */
export class DmaFaultLog {
  private readonly _records: DmaFaultRecord[] = [];
  private _count = 0;

  constructor(private readonly _capacity = 1024) {}

  record(fault: DmaFaultRecord): void {
    this._count++;
    this._records.push(fault);
    if (this._records.length > this._capacity) this._records.shift();
  }

  /** The most recent records, oldest first. */
  records(): readonly DmaFaultRecord[] {
    return this._records;
  }

  /** Faults ever recorded. */
  get count(): number {
    return this._count;
  }

  clear(): void {
    this._records.length = 0;
  }
}

const MAX_IOVA = (1n << 64n) - 1n;

/**
 * Translates an access of `length` bytes at `iova` into frame numbers (one per touched page).
 * @throws DmaFault (recorded in `log`)
 */
function translateRange(device: PciDevice, iova: bigint, length: number, write: boolean, log: DmaFaultLog): number[] {
  const access = write ? IOMMU_WRITE : IOMMU_READ;
  const fail = (at: bigint, reason: DmaFaultReason): never => {
    const record: DmaFaultRecord = {
      bdf: device.bdf,
      group: device.group.id,
      iova: at,
      access: write ? 'write' : 'read',
      reason,
      ...(device.liodn === undefined ? {} : { liodn: device.liodn }),
    };
    log.record(record);
    throw new DmaFault(record);
  };
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('DMA length must be a non-negative integer');
  if (iova < 0n || iova + BigInt(Math.max(length, 1)) - 1n > MAX_IOVA) fail(iova, 'out-of-range');
  const domain = device.group.domain;
  if (domain === undefined) fail(iova, 'no-domain');
  const first = Number(iova >> BigInt(PAGE_SHIFT));
  const last = Number((iova + BigInt(Math.max(length, 1)) - 1n) >> BigInt(PAGE_SHIFT));
  const pfns: number[] = [];
  for (let page = first; page <= last; page++) {
    const pfn = domain!.translate(page, access, device);
    if (pfn < 0) {
      const at = page === first ? iova : BigInt(page) << BigInt(PAGE_SHIFT);
      fail(at, pfn === TRANSLATE_NO_PERMISSION ? 'permission' : pfn === TRANSLATE_BLOCKED ? 'blocked' : 'unmapped');
    }
    pfns.push(pfn);
  }
  return pfns;
}

/** A device reads `length` bytes at `iova`. @throws DmaFault */
export function dmaRead(device: PciDevice, phys: PhysMemory, log: DmaFaultLog, iova: bigint, length: number): Uint8Array {
  const pfns = translateRange(device, iova, length, false, log);
  const out = new Uint8Array(length);
  let offset = Number(iova & BigInt(PAGE_SIZE - 1));
  let done = 0;
  for (const pfn of pfns) {
    const n = Math.min(PAGE_SIZE - offset, length - done);
    phys.read(pfn, offset, out, done, n);
    done += n;
    offset = 0;
  }
  return out;
}

/** A device writes `bytes` at `iova`; a faulting write changes nothing. @throws DmaFault */
export function dmaWrite(device: PciDevice, phys: PhysMemory, log: DmaFaultLog, iova: bigint, bytes: Uint8Array): void {
  const pfns = translateRange(device, iova, bytes.length, true, log);
  let offset = Number(iova & BigInt(PAGE_SIZE - 1));
  let done = 0;
  for (const pfn of pfns) {
    const n = Math.min(PAGE_SIZE - offset, bytes.length - done);
    phys.write(pfn, offset, bytes, done, n);
    done += n;
    offset = 0;
  }
}
