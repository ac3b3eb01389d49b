/**
 * The PAMU's authorization tables as the windowed model keeps them (reference/pamu-windowed.md §1.2,
 * §1.6): the PPAACT (one primary entry per LIODN, indexed by LIODN), the SPAACT pool of secondary
 * entries, the access-violation state of each LIODN, the violation log (the AVA/AVS registers as the
 * ISR prints them) and the unit's counters. One instance per hardware unit, shared by all its domains.
 *
 * Model and constraints:
 * - A LIODN is "held" while some domain has it attached: it costs its PPAACE plus, when the domain's
 *   window count N > 1, N − 1 contiguous SPAACEs. The cost is per LIODN, not per domain.
 * - A LIODN belongs to at most one domain at a time (the PPAACE has one owner).
 * - `violated` models the PPAACE V bit the violation ISR clears (pamu_av_isr): set by a violation,
 *   cleared by re-enabling the requester or the whole domain, or by releasing the LIODN.
 * - Every batch operation (`hold`, `resize`) is all or nothing: ENOSPC leaves the pool as it was.
 */
import { SimBugError, sysError } from '../../errors';
import { SpaacePool } from './spaace-pool';

/** The size of one PAACE, primary or secondary (struct paace, fsl_pamu.h). */
export const PAACE_BYTES = 64;

/** Why the hardware refused an access (which check of the translation failed). */
export type WindowedFaultKind =
  /** The LIODN was disabled by an earlier violation and not re-enabled. */
  | 'liodn-disabled'
  /** The domain is not enabled (the PAMU enable attribute is 0: PPAACE V clear). */
  | 'domain-disabled'
  /** The address is outside the aperture. */
  | 'outside-aperture'
  /** The address falls in a window that is not valid. */
  | 'window-invalid'
  /** The address is inside a valid window's slot but beyond its mapped size. */
  | 'beyond-window'
  /** The window does not grant the access (AP field). */
  | 'permission';

/** One access violation as the hardware logs it (AVA, the LIODN field of AVS1). */
export interface WindowedFaultRecord {
  /** The violating address (AVA), at page granularity: the base of the faulting 4 KiB page. */
  readonly address: bigint;
  readonly liodn: number;
  readonly access: 'read' | 'write';
  readonly kind: WindowedFaultKind;
  /** The domain that held the LIODN. */
  readonly domainId: number;
}

/** The unit's running counters (see WindowedIommuCounters for their meaning). */
export class WindowedStats {
  primaryProgrammed = 0;
  secondaryProgrammed = 0;
  windowsEnabled = 0;
  windowsDisabled = 0;
  geometrySets = 0;
  windowCountSets = 0;
  violations = 0;

  reset(): void {
    this.primaryProgrammed = 0;
    this.secondaryProgrammed = 0;
    this.windowsEnabled = 0;
    this.windowsDisabled = 0;
    this.geometrySets = 0;
    this.windowCountSets = 0;
    this.violations = 0;
  }
}

/** The PPAACT, SPAACT and violation state of one unit; see the file header. */
export class Paact {
  readonly stats = new WindowedStats();
  readonly pool: SpaacePool;
  /** The domain id that holds each LIODN; 0 when none. Indexed by LIODN. */
  readonly owner: Int32Array;
  /** 1 when the LIODN was disabled by a violation (PPAACE V cleared by the ISR). */
  readonly violated: Uint8Array;
  /** First SPAACE of each held LIODN's sub-windows 1 .. N − 1 (the PPAACE's fspi); -1 when it has none. */
  readonly spaaceBase: Int32Array;
  /** SPAACEs each held LIODN has. */
  readonly spaaceCount: Int32Array;

  private _primaryHeld = 0;
  private readonly _faults: WindowedFaultRecord[] = [];

  constructor(
    readonly primaryEntries: number,
    secondaryEntries: number,
    private readonly _faultCapacity: number,
  ) {
    this.pool = new SpaacePool(secondaryEntries);
    this.owner = new Int32Array(primaryEntries);
    this.violated = new Uint8Array(primaryEntries);
    this.spaaceBase = new Int32Array(primaryEntries).fill(-1);
    this.spaaceCount = new Int32Array(primaryEntries);
  }

  /** PPAACEs held now (LIODNs attached to some domain). */
  get primaryHeld(): number {
    return this._primaryHeld;
  }

  /** SPAACEs held now. */
  get secondaryHeld(): number {
    return this.pool.size - this.pool.freeEntries();
  }

  /**
   * Gives each LIODN of `liodns` (distinct, none held) to domain `domainId` with `each` contiguous
   * SPAACEs, clearing any violation state. All or nothing.
   * @throws SysError ENOSPC when the pool cannot supply every run (nothing changes)
   */
  hold(domainId: number, liodns: readonly number[], each: number): void {
    const bases = this._allocRuns(liodns.length, each);
    liodns.forEach((liodn, i) => {
      if (this.owner[liodn] !== 0) throw new SimBugError(`LIODN ${liodn} held twice`);
      this.owner[liodn] = domainId;
      this.violated[liodn] = 0;
      this.spaaceBase[liodn] = bases[i]!;
      this.spaaceCount[liodn] = each;
    });
    this._primaryHeld += liodns.length;
  }

  /**
   * Gives each held LIODN of `liodns` a new run of `each` SPAACEs in place of its old one (the old runs
   * are freed first, so they can be reused). All or nothing.
   * @throws SysError ENOSPC when the pool cannot supply every run (nothing changes)
   */
  resize(liodns: readonly number[], each: number): void {
    const before = this.pool.snapshot();
    for (const liodn of liodns) this._freeRun(liodn);
    let bases: number[];
    try {
      bases = this._allocRuns(liodns.length, each);
    } catch (err) {
      this.pool.restore(before);
      throw err;
    }
    liodns.forEach((liodn, i) => {
      this.spaaceBase[liodn] = bases[i]!;
      this.spaaceCount[liodn] = each;
    });
  }

  /** Releases each LIODN of `liodns` (held): its PPAACE, its SPAACEs and its violation state. */
  release(liodns: readonly number[]): void {
    for (const liodn of liodns) {
      if (this.owner[liodn] === 0) throw new SimBugError(`LIODN ${liodn} released but not held`);
      this._freeRun(liodn);
      this.spaaceBase[liodn] = -1;
      this.spaaceCount[liodn] = 0;
      this.owner[liodn] = 0;
      this.violated[liodn] = 0;
    }
    this._primaryHeld -= liodns.length;
  }

  /** Logs a violation, counts it and disables the LIODN, as pamu_av_isr does. */
  recordViolation(record: WindowedFaultRecord): void {
    this.stats.violations++;
    this.violated[record.liodn] = 1;
    this._faults.push(record);
    if (this._faults.length > this._faultCapacity) this._faults.shift();
  }

  /** The most recent violations, oldest first. */
  faults(): readonly WindowedFaultRecord[] {
    return this._faults;
  }

  /** Allocates `runs` runs of `each` entries, all or nothing. @throws SysError ENOSPC */
  private _allocRuns(runs: number, each: number): number[] {
    if (each === 0) return new Array<number>(runs).fill(-1);
    const before = this.pool.snapshot();
    const bases: number[] = [];
    for (let i = 0; i < runs; i++) {
      const base = this.pool.alloc(each);
      if (base < 0) {
        this.pool.restore(before);
        throw sysError('ENOSPC', `secondary PAACE pool cannot supply ${runs} runs of ${each} entries (${this.pool.freeEntries()} free)`);
      }
      bases.push(base);
    }
    return bases;
  }

  private _freeRun(liodn: number): void {
    const count = this.spaaceCount[liodn]!;
    if (count > 0) this.pool.free(this.spaaceBase[liodn]!, count);
  }
}
