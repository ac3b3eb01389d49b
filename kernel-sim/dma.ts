/**
 * Device-initiated DMA: every access is translated page by page through the IOMMU domain attached to
 * the device's group, and touches the physical memory behind it. An access the domain does not
 * allow is refused whole (nothing is read or written) with a DmaFault, and recorded in the kernel's
 * fault log, as the IOMMU's fault reporting would (dmar_fault / arm_smmu_evtq).
 *
 * Doorbells (../mmio): a write whose IOVA an IOMMU intercepts (the x86 interrupt address range) skips
 * translation and goes to the interrupt handler when it is one aligned DWORD (an interrupt request);
 * any other write there is a malformed request, refused whole and logged as a fault with reason
 * 'unmapped' (nothing can be mapped in the range). A write page that translates to a doorbell frame
 * goes to the doorbell's handler, one aligned 32-bit word at a time, never to RAM; reads of a doorbell
 * frame return zeros. `dmaWriteU32` is the MSI write: one DWORD, no exception and no allocation unless
 * it faults.
 */
import { PAGE_SHIFT, PAGE_SIZE, IOMMU_READ, IOMMU_WRITE, TRANSLATE_BLOCKED, TRANSLATE_NO_PERMISSION } from './iommu/iommu-domain';
import type { MmioRegion } from './mmio';
import type { DmaBus, PciDevice } from './pci/pci-device';

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

/**
 * Where faults are recorded: a ring of the last `capacity` records, each numbered by a running sequence
 * (the first fault is 1), so a reader can ask for what came after the last record it saw.
 */
export class DmaFaultLog {
  private readonly _ring: (DmaFaultRecord | undefined)[];
  private _count = 0;
  private _cleared = 0;

  constructor(private readonly _capacity = 1024) {
    this._ring = new Array<DmaFaultRecord | undefined>(_capacity).fill(undefined);
  }

  record(fault: DmaFaultRecord): void {
    this._ring[this._count % this._capacity] = fault;
    this._count++;
  }

  /** The records still held that came after sequence number `seq`, oldest first. */
  since(seq: number): DmaFaultRecord[] {
    const first = Math.max(seq, this._cleared, this._count - this._capacity);
    const out: DmaFaultRecord[] = [];
    for (let n = first; n < this._count; n++) out.push(this._ring[n % this._capacity]!);
    return out;
  }

  /** The most recent records, oldest first. */
  records(): readonly DmaFaultRecord[] {
    return this.since(0);
  }

  /** Faults ever recorded: the sequence number of the newest record. */
  get count(): number {
    return this._count;
  }

  /** Forgets the records held (the count goes on). */
  clear(): void {
    this._cleared = this._count;
  }
}

const MAX_IOVA = (1n << 64n) - 1n;

/** In a translated page list: this page's IOVA is intercepted (writes go to the interrupt handler). */
const PAGE_INTERCEPTED = -100;

function faultReason(pfn: number): DmaFaultReason {
  return pfn === TRANSLATE_NO_PERMISSION ? 'permission' : pfn === TRANSLATE_BLOCKED ? 'blocked' : 'unmapped';
}

function faultRecord(device: PciDevice, iova: bigint, write: boolean, reason: DmaFaultReason): DmaFaultRecord {
  return {
    bdf: device.bdf,
    group: device.group.id,
    iova,
    access: write ? 'write' : 'read',
    reason,
    ...(device.liodn === undefined ? {} : { liodn: device.liodn }),
  };
}

/**
 * Translates an access of `length` bytes at `iova` into frame numbers (one per touched page), or
 * PAGE_INTERCEPTED for a written page whose IOVA an IOMMU intercepts.
 * @throws DmaFault (recorded in the bus's log)
 */
function translateRange(device: PciDevice, bus: DmaBus, iova: bigint, length: number, write: boolean): number[] {
  const access = write ? IOMMU_WRITE : IOMMU_READ;
  const fail = (at: bigint, reason: DmaFaultReason): never => {
    const record = faultRecord(device, at, write, reason);
    bus.faults.record(record);
    throw new DmaFault(record);
  };
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('DMA length must be a non-negative integer');
  if (iova < 0n || iova + BigInt(Math.max(length, 1)) - 1n > MAX_IOVA) fail(iova, 'out-of-range');
  const mmio = bus.mmio;
  const intercepts = write && mmio.hasIntercepts;
  const domain = device.group.domain;
  const first = Number(iova >> BigInt(PAGE_SHIFT));
  const last = Number((iova + BigInt(Math.max(length, 1)) - 1n) >> BigInt(PAGE_SHIFT));
  const pfns: number[] = [];
  for (let page = first; page <= last; page++) {
    if (intercepts && mmio.interceptAt(page) !== undefined) {
      // An interrupt request is one aligned DWORD; anything else is malformed, blocked and logged (VT-d).
      if (length !== 4 || (iova & 3n) !== 0n) fail(page === first ? iova : BigInt(page) << BigInt(PAGE_SHIFT), 'unmapped');
      pfns.push(PAGE_INTERCEPTED);
      continue;
    }
    const pfn = domain === undefined ? TRANSLATE_BLOCKED : domain.translate(page, access, device);
    if (pfn < 0) fail(page === first ? iova : BigInt(page) << BigInt(PAGE_SHIFT), domain === undefined ? 'no-domain' : faultReason(pfn));
    pfns.push(pfn);
  }
  return pfns;
}

/**
 * Hands the aligned 32-bit words of `bytes[src, src + n)`, written at byte `offset` of frame `pfn` of
 * `region`, to the region's handler; bytes that do not fill an aligned word are dropped.
 */
function writeWords(region: MmioRegion, pfn: number, offset: number, bytes: Uint8Array, src: number, n: number, device: PciDevice): void {
  const base = (pfn - region.firstPfn) * PAGE_SIZE;
  for (let o = (offset + 3) & ~3; o + 4 <= offset + n; o += 4) {
    const i = src + (o - offset);
    const value = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
    region.onWrite(base + o, value, device);
  }
}

/** A device reads `length` bytes at `iova`; doorbell frames read as zeros. @throws DmaFault */
export function dmaRead(device: PciDevice, bus: DmaBus, iova: bigint, length: number): Uint8Array {
  const pfns = translateRange(device, bus, iova, length, false);
  const out = new Uint8Array(length);
  const doorbells = bus.mmio.hasDoorbells;
  let offset = Number(iova & BigInt(PAGE_SIZE - 1));
  let done = 0;
  for (const pfn of pfns) {
    const n = Math.min(PAGE_SIZE - offset, length - done);
    if (!doorbells || bus.mmio.doorbellAt(pfn) === undefined) bus.phys.read(pfn, offset, out, done, n);
    done += n;
    offset = 0;
  }
  return out;
}

/**
 * A device writes `bytes` at `iova`; a faulting write changes nothing. Pages that are doorbells or
 * intercepted interrupt addresses take aligned 32-bit words instead of bytes. @throws DmaFault
 */
export function dmaWrite(device: PciDevice, bus: DmaBus, iova: bigint, bytes: Uint8Array): void {
  const pfns = translateRange(device, bus, iova, bytes.length, true);
  const mmio = bus.mmio;
  const special = !mmio.isEmpty;
  let page = Number(iova >> BigInt(PAGE_SHIFT));
  let offset = Number(iova & BigInt(PAGE_SIZE - 1));
  let done = 0;
  for (const pfn of pfns) {
    const n = Math.min(PAGE_SIZE - offset, bytes.length - done);
    const region = !special ? undefined : pfn === PAGE_INTERCEPTED ? mmio.interceptAt(page) : mmio.doorbellAt(pfn);
    if (region !== undefined) writeWords(region, pfn === PAGE_INTERCEPTED ? page : pfn, offset, bytes, done, n, device);
    else bus.phys.write(pfn, offset, bytes, done, n);
    done += n;
    offset = 0;
    page++;
  }
}

/**
 * One naturally aligned 32-bit write (an MSI message) at IOVA frame `iovaPfn`, byte `offset` (a multiple
 * of 4): intercepted, or translated to a doorbell or RAM. Allocates nothing and throws nothing on the
 * success path; a fault is recorded in the bus's log.
 * @returns false when the IOMMU refused the write
 */
export function dmaWriteU32(device: PciDevice, bus: DmaBus, iovaPfn: number, offset: number, value: number): boolean {
  const mmio = bus.mmio;
  if (mmio.hasIntercepts) {
    const region = mmio.interceptAt(iovaPfn);
    if (region !== undefined) {
      region.onWrite((iovaPfn - region.firstPfn) * PAGE_SIZE + offset, value, device);
      return true;
    }
  }
  const domain = device.group.domain;
  const pfn = domain === undefined ? TRANSLATE_BLOCKED : domain.translate(iovaPfn, IOMMU_WRITE, device);
  if (pfn < 0) {
    const iova = (BigInt(iovaPfn) << BigInt(PAGE_SHIFT)) | BigInt(offset);
    bus.faults.record(faultRecord(device, iova, true, domain === undefined ? 'no-domain' : faultReason(pfn)));
    return false;
  }
  if (mmio.hasDoorbells) {
    const region = mmio.doorbellAt(pfn);
    if (region !== undefined) {
      region.onWrite((pfn - region.firstPfn) * PAGE_SIZE + offset, value, device);
      return true;
    }
  }
  const bytes = bus.phys.pageData(pfn);
  bytes[offset] = value;
  bytes[offset + 1] = value >>> 8;
  bytes[offset + 2] = value >>> 16;
  bytes[offset + 3] = value >>> 24;
  return true;
}
