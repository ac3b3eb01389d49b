/**
 * A windowed IOMMU unit, Freescale PAMU-like (reference/pamu-windowed.md §1, §2): it allocates windowed
 * domains (windowed-iommu-domain.ts) and owns the tables all of them share: the PPAACT indexed by LIODN,
 * the SPAACT pool, the per-LIODN violation state and the violation log (paact.ts).
 *
 * Model and constraints:
 * - The documented parameter set (WindowedIommuParams) describes the unit; `PAMU_PARAMS` holds the PAMU
 *   values: 256 windows, 4 KiB minimum, IOVA up to 2^36 − 1, natural alignment of each window's backing,
 *   0x500 PPAACEs, 0x800 SPAACEs.
 * - No page tables and no `pgsize_bitmap` in the kernel driver: the unit reports `minWindowBytes` as its
 *   bitmap (0x1000 for PAMU), and each domain reports its window size once windows are set.
 * - Geometry: [0, maxApertureLast] with force_aperture (the driver's default "maximum system address").
 * - Cache coherency: the driver sets the coherency-required bit on every DMA PAACE, so it is enforced.
 * - Requesters are LIODNs. A domain holds the LIODNs its attached groups use
 *   (WindowedIommuDomain.attachLiodns); each costs 1 PPAACE + (N − 1) SPAACEs.
 * - A violation (any refused access by an attached LIODN) is logged (`faults()`, the AVA/AVS registers)
 *   and disables that LIODN until re-enabled (pamu_av_isr). The kernel's DMA layer keeps its own log too.
 * - Counters are unit-wide and summed over every domain ever allocated; `counters()` returns a snapshot.
 * - Domain ids start at 1 and are never reused.
 */
import { sysError } from '../../errors';
import { DomainRegistry } from '../domain-registry';
import type { IommuGeometry, IommuHardware } from '../iommu-domain';
import type { WindowedIommuParams } from '../windowed-domain';
import { PAACE_BYTES, Paact, type WindowedFaultRecord } from './paact';
import { WindowedIommuDomain } from './windowed-iommu-domain';

export type { WindowedFaultKind, WindowedFaultRecord } from './paact';

/** The PAMU parameter set (fsl_pamu.c / fsl_pamu.h, the FSL_PAMUV1 constraints; §5 of the reference). */
export const PAMU_PARAMS: WindowedIommuParams = Object.freeze({
  maxWindows: 256,
  minWindowBytes: 4096n,
  maxApertureLast: (1n << 36n) - 1n,
  requireNaturalAlignment: true,
  primaryEntries: 0x500,
  secondaryEntries: 0x800,
});

/** Violation records kept by default (the log is a ring; the count of all violations is a counter). */
export const WINDOWED_FAULT_LOG_DEFAULT = 64;

/** Construction options of a WindowedIommu. */
export interface WindowedIommuOptions {
  /** The unit's name; default 'fsl-pamu'. */
  readonly name?: string;
  /** Changes to `PAMU_PARAMS`. */
  readonly params?: Partial<WindowedIommuParams>;
  /** Violation records kept, 0 .. 65536; default 64. */
  readonly faultLogEntries?: number;
}

/** The unit's counters (a snapshot; keys are stable). */
export type WindowedIommuCounters = {
  /** PPAACE writes: every (re)program of a held LIODN's primary entry (attach with windows set, set
   *  WINDOWS, set GEOMETRY with windows set, enabling or disabling window 0 or the single window, domain
   *  enable/disable, re-enabling a requester). Releasing entries is not counted. */
  primaryProgrammed: number;
  /** SPAACE writes: every (re)program of a secondary entry (attach and set WINDOWS write N − 1 per LIODN;
   *  enabling or disabling window i ≥ 1 of an N > 1 domain writes one per LIODN). */
  secondaryProgrammed: number;
  /** PPAACEs held now (LIODNs attached to a domain); a level, never reset. */
  primaryHeld: number;
  /** SPAACEs held now; a level, never reset. */
  secondaryHeld: number;
  /** Successful window enables (iommu_domain_window_enable). */
  windowsEnabled: number;
  /** Window disables that invalidated a valid window (set WINDOWS discarding windows is not counted). */
  windowsDisabled: number;
  /** Successful DOMAIN_ATTR_GEOMETRY sets. */
  geometrySets: number;
  /** Successful DOMAIN_ATTR_WINDOWS sets. */
  windowCountSets: number;
  /** Access violations (each refused access by an attached LIODN). */
  violations: number;
  /** Domains allocated. */
  domainsAllocated: number;
  /** Domains freed. */
  domainsFreed: number;
  /** Bytes of PAACEs held now, 64 per entry; a level, never reset. */
  tableBytes: number;
};

/** What the unit knows about one LIODN (a debug snapshot). */
export interface LiodnState {
  /** The domain holding it, or undefined. */
  readonly domainId: number | undefined;
  /** Disabled by a violation. */
  readonly disabled: boolean;
  /** Its first SPAACE (the PPAACE's fspi), or -1. */
  readonly secondaryBase: number;
  readonly secondaryCount: number;
}

function isPowerOfTwo(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

/** A windowed IOMMU unit; see the file header. */
export class WindowedIommu implements IommuHardware {
  readonly name: string;
  readonly params: WindowedIommuParams;
  readonly pgsizeBitmap: bigint;
  readonly geometry: IommuGeometry;
  readonly enforceCacheCoherency = true;

  private readonly _paact: Paact;
  private readonly _domains = new DomainRegistry<WindowedIommuDomain>();
  private _nextId = 1;

  /**
   * @throws SysError EINVAL: maxWindows not a power of two; minWindowBytes not a power of two ≥ 4 KiB;
   *   maxApertureLast below minWindowBytes − 1 or above 2^64 − 1; entry counts not integers in
   *   0 .. 2^20 (primaryEntries ≥ 1); faultLogEntries outside 0 .. 65536
   */
  constructor(options: WindowedIommuOptions = {}) {
    const p: WindowedIommuParams = { ...PAMU_PARAMS, ...options.params };
    if (!Number.isInteger(p.maxWindows) || p.maxWindows < 1 || !isPowerOfTwo(BigInt(p.maxWindows))) {
      throw sysError('EINVAL', `maxWindows ${p.maxWindows} is not a power of two`);
    }
    if (!isPowerOfTwo(p.minWindowBytes) || p.minWindowBytes < 4096n) {
      throw sysError('EINVAL', `minWindowBytes ${p.minWindowBytes} is not a power of two ≥ 4096`);
    }
    if (p.maxApertureLast < p.minWindowBytes - 1n || p.maxApertureLast >= 1n << 64n) {
      throw sysError('EINVAL', `maxApertureLast 0x${p.maxApertureLast.toString(16)} out of range`);
    }
    const entriesOk = (n: number, min: number): boolean => Number.isInteger(n) && n >= min && n <= 1 << 20;
    if (!entriesOk(p.primaryEntries, 1) || !entriesOk(p.secondaryEntries, 0)) {
      throw sysError('EINVAL', `entry counts ${p.primaryEntries}/${p.secondaryEntries} out of range`);
    }
    const faultLogEntries = options.faultLogEntries ?? WINDOWED_FAULT_LOG_DEFAULT;
    if (!Number.isInteger(faultLogEntries) || faultLogEntries < 0 || faultLogEntries > 65536) {
      throw sysError('EINVAL', `faultLogEntries ${faultLogEntries} outside 0..65536`);
    }
    this.name = options.name ?? 'fsl-pamu';
    this.params = Object.freeze(p);
    this.pgsizeBitmap = p.minWindowBytes;
    this.geometry = Object.freeze({ apertureStart: 0n, apertureLast: p.maxApertureLast, forceAperture: true });
    this._paact = new Paact(p.primaryEntries, p.secondaryEntries, faultLogEntries);
  }

  /** Allocates a windowed domain: no geometry, no windows, disabled, no LIODN. @throws SysError ENOMEM (never today) */
  allocDomain(): WindowedIommuDomain {
    const domain = new WindowedIommuDomain({
      hardware: this,
      id: this._nextId++,
      params: this.params,
      paact: this._paact,
      onFree: (d) => this._domains.remove(d),
    });
    return this._domains.add(domain);
  }

  /** Live domains. */
  domainCount(): number {
    return this._domains.size;
  }

  /** The most recent access violations, oldest first (at most `faultLogEntries`). */
  faults(): readonly WindowedFaultRecord[] {
    return this._paact.faults();
  }

  /** What the unit holds for `liodn`, or undefined when it is not below `primaryEntries`. */
  liodnState(liodn: number): LiodnState | undefined {
    const t = this._paact;
    if (!Number.isInteger(liodn) || liodn < 0 || liodn >= t.primaryEntries) return undefined;
    const owner = t.owner[liodn]!;
    return {
      domainId: owner === 0 ? undefined : owner,
      disabled: t.violated[liodn] === 1,
      secondaryBase: t.spaaceBase[liodn]!,
      secondaryCount: t.spaaceCount[liodn]!,
    };
  }

  /** SPAACEs free now, and the longest contiguous run one LIODN could get. */
  secondaryPool(): { readonly free: number; readonly largestRun: number } {
    return { free: this._paact.pool.freeEntries(), largestRun: this._paact.pool.largestFreeRun() };
  }

  /** A snapshot of the counters, summed over all domains ever allocated. */
  counters(): WindowedIommuCounters {
    const t = this._paact;
    const s = t.stats;
    return {
      primaryProgrammed: s.primaryProgrammed,
      secondaryProgrammed: s.secondaryProgrammed,
      primaryHeld: t.primaryHeld,
      secondaryHeld: t.secondaryHeld,
      windowsEnabled: s.windowsEnabled,
      windowsDisabled: s.windowsDisabled,
      geometrySets: s.geometrySets,
      windowCountSets: s.windowCountSets,
      violations: s.violations,
      domainsAllocated: this._domains.allocated,
      domainsFreed: this._domains.freed,
      tableBytes: (t.primaryHeld + t.secondaryHeld) * PAACE_BYTES,
    };
  }

  /** Zeroes every counter except the levels (`primaryHeld`, `secondaryHeld`, `tableBytes`). The log stays. */
  resetCounters(): void {
    this._paact.stats.reset();
    this._domains.resetCounters();
  }
}
