/**
 * MMIO doorbells seen by device DMA: physical frame ranges whose device writes go to a register
 * handler instead of RAM (an MSI controller's doorbell: the GIC ITS GITS_TRANSLATER frame, an MPIC
 * MSIIR alias page), and IOVA ranges that an IOMMU intercepts before translation (the x86 interrupt
 * address range 0xFEE00000–0xFEEFFFFF, which VT-d treats as interrupt requests, never as DMA).
 *
 * Model and constraints (the simulator's choices where hardware differs by register):
 * - A device write reaches a doorbell handler one naturally aligned 32-bit word at a time (little-endian,
 *   as PCIe carries an MSI's DWORD). Bytes of a write that do not fill an aligned word are dropped: the
 *   doorbells modelled are 32-bit write-only registers. An intercepted range takes only single aligned
 *   DWORD writes (interrupt requests); ../dma refuses any other write there as a fault.
 * - A device read of a doorbell frame returns zeros and touches no RAM (write-only registers read as 0).
 *   Reads are never intercepted by IOVA: they translate normally (the x86 range is reserved, so nothing
 *   is mapped there and they fault).
 * - A doorbell frame shadows RAM at the same frame number for device accesses. Machine descriptions
 *   keep RAM clear of doorbells; `overlapsRam` lets a caller check.
 * - Lookups scan a short array (a machine has a handful of doorbells) and allocate nothing: the MSI
 *   path calls them for every interrupt.
 *
 * Ranges are in 4 KiB frames; `end` is exclusive.
 */
import { SimBugError } from './errors';
import type { DmaRequester } from './iommu/iommu-domain';

/**
 * A register write: `offset` is the byte offset of the 32-bit word from the start of the range, `value`
 * the word (u32), `requester` the device that wrote it (its requester ID / LIODN travel with the write).
 */
export type MmioWriteHandler = (offset: number, value: number, requester: DmaRequester) => void;

/** One registered range. */
export interface MmioRegion {
  readonly firstPfn: number;
  readonly pageCount: number;
  readonly onWrite: MmioWriteHandler;
  /** What the range is, for errors and reports ('its-translater', 'mpic-msiir-0'). */
  readonly name: string;
}

/** Frame ranges that are RAM: [firstPfn, firstPfn + pageCount). */
export type RamRange = readonly [firstPfn: number, pageCount: number];

/** The machine's doorbell map. */
export class Mmio {
  private readonly _doorbells: MmioRegion[] = [];
  private readonly _intercepts: MmioRegion[] = [];

  constructor(private readonly _ram: readonly RamRange[] = []) {}

  /** Physical doorbells: device writes that translate into [firstPfn, firstPfn + pageCount) call `onWrite`. */
  register(name: string, firstPfn: number, pageCount: number, onWrite: MmioWriteHandler): MmioRegion {
    return add(this._doorbells, { name, firstPfn, pageCount, onWrite });
  }

  /**
   * IOVA intercepts: device writes to [firstIovaPfn, firstIovaPfn + pageCount) never reach translation;
   * they call `onWrite` (an interrupt remapping unit's interrupt address range).
   */
  intercept(name: string, firstIovaPfn: number, pageCount: number, onWrite: MmioWriteHandler): MmioRegion {
    return add(this._intercepts, { name, firstPfn: firstIovaPfn, pageCount, onWrite });
  }

  /** Removes a range made by `register` or `intercept`. */
  unregister(region: MmioRegion): void {
    for (const list of [this._doorbells, this._intercepts]) {
      const at = list.indexOf(region);
      if (at >= 0) {
        list.splice(at, 1);
        return;
      }
    }
    throw new SimBugError(`MMIO range ${region.name} is not registered`);
  }

  /** The doorbell holding physical frame `pfn`, or undefined (RAM). */
  doorbellAt(pfn: number): MmioRegion | undefined {
    return find(this._doorbells, pfn);
  }

  /** The intercept holding IOVA frame `iovaPfn`, or undefined (translate as usual). */
  interceptAt(iovaPfn: number): MmioRegion | undefined {
    return find(this._intercepts, iovaPfn);
  }

  /** Whether any doorbell or intercept exists (lets bulk DMA skip per-page lookups). */
  get isEmpty(): boolean {
    return this._doorbells.length === 0 && this._intercepts.length === 0;
  }

  get hasDoorbells(): boolean {
    return this._doorbells.length > 0;
  }

  get hasIntercepts(): boolean {
    return this._intercepts.length > 0;
  }

  /** Registered doorbells (physical) and intercepts (IOVA). */
  regions(): { doorbells: readonly MmioRegion[]; intercepts: readonly MmioRegion[] } {
    return { doorbells: [...this._doorbells], intercepts: [...this._intercepts] };
  }

  /** Doorbells whose frames are also RAM frames of the machine (a misdescribed memory map). */
  overlapsRam(): MmioRegion[] {
    return this._doorbells.filter((d) => this._ram.some(([first, count]) => d.firstPfn < first + count && first < d.firstPfn + d.pageCount));
  }
}

function add(list: MmioRegion[], region: MmioRegion): MmioRegion {
  const { firstPfn, pageCount } = region;
  if (!Number.isSafeInteger(firstPfn) || firstPfn < 0 || !Number.isSafeInteger(pageCount) || pageCount <= 0) {
    throw new SimBugError(`MMIO range ${region.name}: bad frame range ${firstPfn} + ${pageCount}`);
  }
  const clash = list.find((r) => firstPfn < r.firstPfn + r.pageCount && r.firstPfn < firstPfn + pageCount);
  if (clash !== undefined) throw new SimBugError(`MMIO range ${region.name} overlaps ${clash.name}`);
  list.push(region);
  return region;
}

function find(list: readonly MmioRegion[], pfn: number): MmioRegion | undefined {
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    if (pfn >= r.firstPfn && pfn < r.firstPfn + r.pageCount) return r;
  }
  return undefined;
}
