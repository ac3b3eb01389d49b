/**
 * Freescale MPIC MSI banks (arch/powerpc/sysdev/fsl_msi.c, the PAMU SDK variant; reference/
 * pamu-windowed.md §3.4, §3.5, §5). The MSI side of the windowed (type2) model.
 *
 * Model and constraints:
 * - A bank is 8 (MPIC) or 16 (MPIC v4.3) MSIR registers × 32 bits: 256 or 512 interrupts (hwirqs). Its
 *   doorbell is the MSIIR (MSIIR1 on v4.3), which sits alone in a 4 KiB alias page (P4080: CCSR
 *   0x44140/0x45140/0x46140; T4240: 0x44148…0x47148). A 32-bit write of `data` to it raises
 *   hwirq = (MSIR index << srs_shift) | (bit << ibs_shift), with (srs_shift, ibs_shift) = (5, 0) for
 *   MSIIR and (0, 4) for MSIIR1; other data bits are ignored. A write elsewhere in the page is dropped.
 * - Nothing in the write identifies the writer: any device that can write a bank's page can raise any
 *   of its interrupts (pamu-windowed.md §3.5). Isolation therefore needs one bank per container: the
 *   bank API below keeps that bookkeeping (`claimBank`/`releaseBank`, EBUSY for a second owner); the
 *   type2 backend decides when to claim (not at all under allow_unsafe_interrupts). A write that raises
 *   another device's hwirq is delivered and counted as forged.
 * - Composing (fsl_compose_msi_msg / fsl_iommu_get_iova): the message address is the IOVA at which the
 *   device's domain maps the bank's MSIIR page (the window whose backing is the alias page) + the MSIIR
 *   offset; data = hwirq. A device without a domain gets the physical address.
 * - Bank choice, per vector: the lowest bank that the device can reach (its domain maps the bank's page;
 *   any bank without a domain) and that has a free hwirq; within it the lowest free hwirq
 *   (msi_bitmap_alloc_hwirqs). The SDK takes the first bank with a free hwirq whether or not the device
 *   can reach it, then fails if it cannot; choosing among reachable banks is the simulator's fix, which
 *   is what the SDK's `fsl,msi` pinning achieves and what one-bank-per-container isolation needs.
 *   No reachable bank: EINVAL ("fail setting MSI"); reachable banks all full: ENOSPC.
 * - No multiple-message MSI (fsl_setup_msi_irqs refuses nvec > 1 for MSI): an MSI capability gets 1.
 *
 * The bank API, for the type2 backend (VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT / MAP_MSI_BANK); it is the
 * backend's MsiBankProvider (containers/backends/type2/msi-bank-provider.ts), reached through
 * `MsiModule.msiBanks()`:
 * - `bankCount()`: the number of banks (system-wide, as fsl_msi_get_region_count);
 * - `bank(i)`: `{ index, doorbellPfn, doorbellAddress, msiirOffset, vectors, owners }`: map `doorbellPfn`
 *   (one 4 KiB page) into a window; the device's MSI address is then window IOVA + msiirOffset;
 * - `claimBank(i, owner, shared)` / `releaseBank(i, owner)`: who maps the bank. Claims nest per owner
 *   (counted). A claim while another owner holds the bank is EBUSY unless `shared` (the backend passes
 *   allow_unsafe_interrupts, a global setting, so whoever claims decides). An unknown bank is ENODEV.
 */
import { SimBugError, sysError } from '../kernel-sim/errors';
import type { DmaRequester } from '../kernel-sim/iommu/iommu-domain';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import { deliver, newCounters, SlotTable, type ComposeContext, type MsiCapability, type MsiController, type MsiDoorbell, type MsiVector } from './msi-controller';

/** What the type2 backend needs of a bank. */
export interface MpicBankInfo {
  readonly index: number;
  /** Physical frame of the bank's MSIIR alias page: the page to map into a window. */
  readonly doorbellPfn: number;
  /** Physical address of the MSIIR (alias page + msiirOffset). */
  readonly doorbellAddress: bigint;
  /** Byte offset of the MSIIR in its page (0x140 MSIIR, 0x148 MSIIR1). */
  readonly msiirOffset: number;
  /** Interrupts of the bank (256 or 512). */
  readonly vectors: number;
  /** Who holds the bank now (several only when claims were shared). */
  readonly owners: readonly object[];
}

/** How an MPIC is described (MsiControllerSpec 'mpic'). */
export interface MpicParams {
  readonly aliasPages: readonly bigint[];
  readonly msiirOffset: number;
  readonly vectorsPerBank: number;
  readonly srsShift: number;
  readonly ibsShift: number;
}

interface Hwirq extends MsiVector {
  readonly bank: number;
  readonly hwirq: number;
}

interface Bank {
  readonly index: number;
  readonly doorbellPfn: number;
  readonly doorbellAddress: bigint;
  readonly hwirqs: SlotTable<Hwirq>;
  /** Holders and their claim counts. */
  readonly claims: Map<object, number>;
}

/** An MPIC's MSI banks; see the file header. */
export class MpicController implements MsiController {
  readonly kind = 'mpic' as const;
  readonly multiMsi = false;
  readonly cookieDoorbellPfns: readonly number[] = [];
  readonly counters = newCounters();
  private readonly _banks: Bank[];
  private readonly _srsMask: number;
  private _live = 0;

  constructor(readonly params: MpicParams) {
    const { aliasPages, msiirOffset, vectorsPerBank } = params;
    if (vectorsPerBank % 32 !== 0 || vectorsPerBank < 32) throw new RangeError('an MPIC bank holds whole 32-bit MSIRs');
    if ((msiirOffset & 3) !== 0 || msiirOffset < 0 || msiirOffset > 0xffc) throw new RangeError('MSIIR offset must be a 32-bit register in the page');
    this._srsMask = vectorsPerBank / 32 - 1;
    this._banks = aliasPages.map((page, index) => {
      if ((page & 0xfffn) !== 0n) throw new RangeError(`MSI bank ${index}: alias page 0x${page.toString(16)} is not 4 KiB aligned`);
      return {
        index,
        doorbellPfn: Number(page >> 12n),
        doorbellAddress: page + BigInt(msiirOffset),
        hwirqs: new SlotTable<Hwirq>(vectorsPerBank),
        claims: new Map<object, number>(),
      };
    });
  }

  doorbells(): readonly MsiDoorbell[] {
    return this._banks.map((bank) => ({ name: `mpic-msiir-${bank.index}`, pfn: bank.doorbellPfn, pageCount: 1, intercept: false, onWrite: this.onWrite(bank.index) }));
  }

  // ---- the bank API (type2 backend) --------------------------------------------------------------

  /** Banks of the machine. */
  bankCount(): number {
    return this._banks.length;
  }

  /** A bank's facts. @throws SysError ENODEV (no such bank) */
  bank(index: number): MpicBankInfo {
    const bank = this._bank(index);
    return {
      index,
      doorbellPfn: bank.doorbellPfn,
      doorbellAddress: bank.doorbellAddress,
      msiirOffset: this.params.msiirOffset,
      vectors: this.params.vectorsPerBank,
      owners: [...bank.claims.keys()],
    };
  }

  /**
   * Records that `owner` maps bank `index`.
   * @throws SysError ENODEV (no such bank), EBUSY (another owner holds it and `shared` is false)
   */
  claimBank(index: number, owner: object, shared = false): void {
    const bank = this._bank(index);
    const held = bank.claims.get(owner) ?? 0;
    if (!shared && bank.claims.size > (held > 0 ? 1 : 0)) throw sysError('EBUSY', `MSI bank ${index} is mapped by another container`);
    bank.claims.set(owner, held + 1);
  }

  /** Drops one claim of `owner`. @throws SysError ENODEV; SimBugError when `owner` holds no claim */
  releaseBank(index: number, owner: object): void {
    const bank = this._bank(index);
    const held = bank.claims.get(owner);
    if (held === undefined) throw new SimBugError(`MSI bank ${index} released by a non-owner`);
    if (held === 1) bank.claims.delete(owner);
    else bank.claims.set(owner, held - 1);
  }

  /** Claims held now, all banks (for leak checks). */
  claimCount(): number {
    let claims = 0;
    for (const bank of this._banks) for (const n of bank.claims.values()) claims += n;
    return claims;
  }

  private _bank(index: number): Bank {
    const bank = Number.isInteger(index) ? this._banks[index] : undefined;
    if (bank === undefined) throw sysError('ENODEV', `no MSI bank ${index}`);
    return bank;
  }

  // ---- vectors -----------------------------------------------------------------------------------

  /** @throws SysError EINVAL (no bank reachable from the device's domain), ENOSPC (reachable banks full) */
  allocate(device: PciDevice, capability: MsiCapability, count: number, ctx: ComposeContext): MsiVector[] {
    const reachable: [Bank, bigint][] = [];
    for (const bank of this._banks) {
      const address = ctx.doorbellIova(device, bank.doorbellAddress);
      if (address !== undefined) reachable.push([bank, address]);
    }
    if (reachable.length === 0) throw sysError('EINVAL', 'fail setting MSI: no MSI bank is mapped in the device\'s domain');
    const free = reachable.reduce((n, [bank]) => n + bank.hwirqs.size - bank.hwirqs.used, 0);
    if (free < count) throw sysError('ENOSPC', 'the reachable MSI banks have no free interrupt');
    const vectors: Hwirq[] = [];
    for (let v = 0; v < count; v++) {
      const [bank, address] = reachable.find(([b]) => b.hwirqs.used < b.hwirqs.size)!;
      const hwirq = bank.hwirqs.findFree();
      const entry: Hwirq = { device, capability, vector: v, address, data: hwirq, trigger: undefined, bank: bank.index, hwirq };
      bank.hwirqs.set(hwirq, entry);
      vectors.push(entry);
    }
    this._live += count;
    this.counters.composed += count;
    return vectors;
  }

  free(vectors: readonly MsiVector[]): void {
    for (const entry of vectors as readonly Hwirq[]) {
      this._banks[entry.bank]!.hwirqs.clear(entry.hwirq);
      this._live--;
    }
  }

  liveVectors(): number {
    return this._live;
  }

  /** The MSIIR write handler of bank `index`: `offset` within the alias page. The interrupt path. */
  onWrite(index: number): (offset: number, data: number, requester: DmaRequester) => void {
    const bank = this._bank(index);
    const { msiirOffset, srsShift, ibsShift } = this.params;
    const srsMask = this._srsMask;
    return (offset, data, requester) => {
      if (offset !== msiirOffset) {
        this.counters.dropped++;
        return;
      }
      const hwirq = (((data >>> srsShift) & srsMask) << srsShift) | (((data >>> ibsShift) & 0x1f) << ibsShift);
      deliver(bank.hwirqs.at(hwirq), requester, this.counters);
    };
  }
}
