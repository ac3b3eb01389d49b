/**
 * A windowed domain test double: the WindowOps capability (kernel-sim/iommu/windowed-domain.ts) reduced
 * to what MSI composition and delivery use: an aperture, a window count, window programming, and a
 * translation through the windows. No LIODNs (attach/detach accept anything), no entry costs, no enable state, no violations; rule
 * breaks are simulator bugs (SimBugError), not errnos. Plugged into a machine as a 'custom' IOMMU unit.
 */
import { SimBugError, sysError } from '../../kernel-sim/errors';
import {
  TRANSLATE_NO_MAPPING,
  TRANSLATE_NO_PERMISSION,
  type IommuDomain,
  type IommuGeometry,
  type IommuHardware,
} from '../../kernel-sim/iommu/iommu-domain';
import type { WindowOps, WindowState, WindowedDomain, WindowedIommuParams } from '../../kernel-sim/iommu/windowed-domain';
import type { IommuUnitSpec, MachineSpec, MsiControllerSpec } from '../../kernel-sim/machines';

const PARAMS: WindowedIommuParams = {
  maxWindows: 256,
  minWindowBytes: 4096n,
  maxApertureLast: (1n << 36n) - 1n,
  requireNaturalAlignment: true,
  primaryEntries: 0x500,
  secondaryEntries: 0x800,
};

const GEOMETRY: IommuGeometry = { apertureStart: 0n, apertureLast: PARAMS.maxApertureLast, forceAperture: true };

/** A windowed domain with the minimal WindowOps. */
export class WindowedDomainDouble implements WindowedDomain {
  readonly geometry = GEOMETRY;
  readonly pgsizeBitmap = 0x1000n;
  readonly enforceCacheCoherency = true;
  readonly windows: WindowOps;
  private _aperture: { start: bigint; last: bigint } | undefined;
  private _count = 0;
  private readonly _windows = new Map<number, WindowState>();
  private _freed = false;

  constructor(
    readonly hardware: IommuHardware,
    readonly id: number,
    private readonly _onFree: () => void,
  ) {
    this.windows = {
      params: PARAMS,
      geometry: () => this._aperture,
      setGeometry: (start, last) => {
        this._aperture = { start, last };
      },
      windowCount: () => (this._count === 0 ? PARAMS.maxWindows : this._count),
      setWindowCount: (count) => {
        if (this._aperture === undefined) throw new SimBugError('double: windows before geometry');
        this._count = count;
        this._windows.clear();
      },
      windowBytes: () => (this._aperture === undefined || this._count === 0 ? 0n : (this._aperture.last - this._aperture.start + 1n) / BigInt(this._count)),
      enableWindow: (index, pfn, pageCount, prot) => {
        if (this._count === 0 || index >= this._count) throw new SimBugError('double: no such window');
        this._windows.set(index, { pfn, pageCount, prot });
      },
      disableWindow: (index) => {
        this._windows.delete(index);
      },
      window: (index) => this._windows.get(index),
      setEnabled: () => undefined,
      isEnabled: () => true,
      reenableRequester: () => undefined,
    };
  }

  attachLiodns(): void {}

  detachLiodns(): void {}

  map(): void {
    throw sysError('ENODEV', 'a windowed domain has no page tables');
  }

  unmap(): number {
    return 0;
  }

  walk(): void {}

  iovaToPfn(iovaPfn: number): number {
    const slot = this._slot(iovaPfn);
    return slot === undefined ? TRANSLATE_NO_MAPPING : slot.pfn + slot.offset;
  }

  translate(iovaPfn: number, access: number): number {
    const slot = this._slot(iovaPfn);
    if (slot === undefined) return TRANSLATE_NO_MAPPING;
    return (slot.prot & access) === 0 ? TRANSLATE_NO_PERMISSION : slot.pfn + slot.offset;
  }

  tableBytes(): number {
    return 0;
  }

  mappedPages(): number {
    let pages = 0;
    for (const w of this._windows.values()) pages += w.pageCount;
    return pages;
  }

  free(): void {
    if (this._freed) throw new SimBugError('double: freed twice');
    this._freed = true;
    this._onFree();
  }

  private _slot(iovaPfn: number): (WindowState & { offset: number }) | undefined {
    const bytes = this.windows.windowBytes();
    if (this._aperture === undefined || bytes === 0n) return undefined;
    const iova = BigInt(iovaPfn) << 12n;
    if (iova < this._aperture.start || iova > this._aperture.last) return undefined;
    const index = Number((iova - this._aperture.start) / bytes);
    const state = this._windows.get(index);
    const offset = Number((iova - this._aperture.start - BigInt(index) * bytes) >> 12n);
    return state === undefined || offset >= state.pageCount ? undefined : { ...state, offset };
  }
}

/** Hardware that hands out WindowedDomainDouble domains. */
export class WindowedHardwareDouble implements IommuHardware {
  readonly name = 'windowed-double';
  readonly pgsizeBitmap = 0x1000n;
  readonly geometry = GEOMETRY;
  readonly enforceCacheCoherency = true;
  private _live = 0;
  private _next = 1;

  allocDomain(): IommuDomain {
    this._live++;
    return new WindowedDomainDouble(this, this._next++, () => this._live--);
  }

  domainCount(): number {
    return this._live;
  }

  counters(): Readonly<Record<string, number>> {
    return {};
  }

  resetCounters(): void {}
}

/** A machine with the double as its IOMMU and the given MSI controller. */
export function windowedDoubleMachine(msi: MsiControllerSpec): MachineSpec {
  const unit: IommuUnitSpec = { model: 'custom', name: 'windowed-double', create: () => new WindowedHardwareDouble(), reservedRegions: [], isolatedMsi: true };
  return { name: 'windowed-double', description: 'a windowed IOMMU test double', iommus: [unit], memory: { anonBytes: 1n << 30n }, msi };
}
