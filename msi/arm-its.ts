/**
 * Arm MSI through a GICv3 ITS (drivers/irqchip/irq-gic-v3-its.c, its-msi-pci.c).
 *
 * Model and constraints:
 * - The doorbell is GITS_TRANSLATER, a 32-bit write-only register in the ITS translation frame: an MSI
 *   is a write of the EventID there (its_irq_compose_msi_msg: address = its->phys_base + 0x10040,
 *   data = event). The simulator registers the 4 KiB page holding it; a write to any other offset of the
 *   page is ignored (dropped).
 * - The ITS learns the DeviceID from the requester (the SMMU's StreamID / the PCI requester ID travel
 *   with the write), never from the data: a device can only raise events of its own interrupt
 *   translation table (ITT). Isolation holds without remapping; `isolatedMsi` is true.
 * - Behind an SMMU the write is a DMA write like any other, so the doorbell page must be mapped in the
 *   device's domain: the kernel maps it in the IOMMU_RESV_SW_MSI window (iommu_get_msi_cookie,
 *   iommu_dma_prepare_msi) and the message carries that IOVA. A device whose domain lacks the mapping
 *   faults and raises nothing. Without a domain cookie the message carries the physical address.
 * - Event allocation per device (its_alloc_device_irq: bitmap_find_free_region): an MSI capability's
 *   vectors take one naturally aligned power-of-two block of events (multi-message MSI works); each
 *   MSI-X vector the first free event. 65536 events per device (16 ID bits); none free: ENOSPC.
 * - DeviceIDs do not alias in the model: every PCI function is its own requester.
 */
import { sysError } from '../kernel-sim/errors';
import type { DmaRequester } from '../kernel-sim/iommu/iommu-domain';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import { deliver, newCounters, SlotTable, type ComposeContext, type MsiCapability, type MsiController, type MsiDoorbell, type MsiVector } from './msi-controller';

/** Events per device ITT (the model's bound: 16 EventID bits). */
export const ITS_EVENTS_PER_DEVICE = 65536;

interface ItsEvent extends MsiVector {
  readonly event: number;
}

/** A GICv3 ITS; see the file header. */
export class ArmItsController implements MsiController {
  readonly kind = 'arm-its' as const;
  readonly multiMsi = true;
  readonly cookieDoorbellPfns: readonly number[];
  readonly counters = newCounters();
  /** Byte offset of GITS_TRANSLATER in its page. */
  readonly translaterOffset: number;
  private readonly _itts = new Map<DmaRequester, SlotTable<ItsEvent>>();
  private readonly _blocks = new Map<MsiVector, readonly [number, number]>();
  private _live = 0;

  constructor(
    /** Physical address of GITS_TRANSLATER. */
    readonly translater: bigint,
  ) {
    if ((translater & 3n) !== 0n) throw new RangeError('GITS_TRANSLATER must be 32-bit aligned');
    this.cookieDoorbellPfns = [Number(translater >> 12n)];
    this.translaterOffset = Number(translater & 0xfffn);
  }

  doorbells(): readonly MsiDoorbell[] {
    return [{ name: 'its-gits-translater', pfn: this.cookieDoorbellPfns[0]!, pageCount: 1, intercept: false, onWrite: this.onWrite }];
  }

  /** @throws SysError ENOSPC (the device's events are taken), EINVAL (no doorbell address) */
  allocate(device: PciDevice, capability: MsiCapability, count: number, ctx: ComposeContext): MsiVector[] {
    const address = ctx.doorbellIova(device, this.translater);
    if (address === undefined) throw sysError('EINVAL', 'the device cannot reach the ITS doorbell');
    let itt = this._itts.get(device);
    const fresh = itt === undefined;
    itt ??= new SlotTable<ItsEvent>(ITS_EVENTS_PER_DEVICE);
    const vectors: ItsEvent[] = [];
    if (capability === 'msi') {
      const base = itt.findBlock(count);
      if (base < 0) throw sysError('ENOSPC', 'no free ITS events for the device');
      const block = 2 ** Math.ceil(Math.log2(count));
      for (let v = 0; v < count; v++) vectors.push({ device, capability, vector: v, address, data: base + v, trigger: undefined, event: base + v });
      for (let i = 0; i < block; i++) itt.set(base + i, i < count ? vectors[i]! : null);
      this._blocks.set(vectors[0]!, [block, count]);
    } else {
      if (ITS_EVENTS_PER_DEVICE - itt.used < count) throw sysError('ENOSPC', 'no free ITS events for the device');
      for (let v = 0; v < count; v++) {
        const event = itt.findFree();
        const entry: ItsEvent = { device, capability, vector: v, address, data: event, trigger: undefined, event };
        itt.set(event, entry);
        vectors.push(entry);
      }
    }
    if (fresh) this._itts.set(device, itt);
    this._live += count;
    this.counters.composed += count;
    return vectors;
  }

  free(vectors: readonly MsiVector[]): void {
    for (const entry of vectors as readonly ItsEvent[]) {
      const itt = this._itts.get(entry.device)!;
      itt.clear(entry.event);
      this._live--;
      const block = this._blocks.get(entry);
      if (block !== undefined) {
        for (let i = block[1]; i < block[0]; i++) itt.clear(entry.event + i);
        this._blocks.delete(entry);
      }
      if (itt.used === 0) this._itts.delete(entry.device);
    }
  }

  liveVectors(): number {
    return this._live;
  }

  /** A write to the GITS_TRANSLATER page: `offset` within the page. The interrupt path. */
  readonly onWrite = (offset: number, data: number, requester: DmaRequester): void => {
    if (offset !== this.translaterOffset) {
      this.counters.dropped++;
      return;
    }
    deliver(this._itts.get(requester)?.at(data), requester, this.counters);
  };
}
