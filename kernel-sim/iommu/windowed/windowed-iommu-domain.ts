/**
 * A domain of a windowed IOMMU unit (fsl_pamu_domain.c, windowed era): an aperture split into
 * power-of-two windows, each mapping one physically contiguous region, translated per requester (LIODN)
 * with the PAMU's enable state and its disable-on-violation behaviour (reference/pamu-windowed.md
 * §1.4–§1.6, §2.3, §7).
 *
 * Model and constraints:
 * - Order: GEOMETRY, then WINDOWS (count N, slot = aperture / N), then window enables, then ENABLE = 1.
 *   The errno of every rule is the driver's (§2.3); a refused call changes nothing.
 * - Window i covers [start + i·slot, start + (i+1)·slot) and maps `pageCount` pages (a power of two,
 *   ≥ minWindowBytes, ≤ slot) at its base; the rest of the slot faults.
 * - Requesters: the LIODNs attached with `attachLiodns`. The VFIO backend calls it when a group attaches
 *   (with the LIODNs of the group's devices) and `detachLiodns` with the same list when it detaches.
 *   Attachments are counted per LIODN, so several groups behind one PCIe controller (one LIODN) can share
 *   a domain. A LIODN costs 1 PPAACE + (N − 1) SPAACEs while attached.
 * - `translate` refuses an access from a requester that is not attached (no LIODN, or one this domain
 *   does not hold) with TRANSLATE_BLOCKED and no violation. Any other refusal is a violation: logged on
 *   the unit, counted, and the LIODN is disabled until `reenableRequester` or ENABLE = 1 (pamu_av_isr).
 * - No page tables: `map` is ENODEV (iommu_map on PAMU), `unmap` changes nothing and returns 0; windows
 *   are programmed only through `windows`.
 * - `iovaToPfn` is the driver's software lookup without side effects, except that an offset beyond a
 *   window's mapped size is TRANSLATE_NO_MAPPING, as `translate` (the driver wraps it; derived quirk).
 * - After `free` every method is a simulator bug (use after iommu_domain_free).
 *
 * Deviations from the kernel driver, each a fix of a derived defect:
 * - enableWindow checks the natural alignment of the backing (documented, never checked by the driver);
 * - a LIODN held by another domain is refused (EBUSY) rather than silently moved;
 * - set WINDOWS frees a LIODN's old SPAACEs before taking new ones (the driver leaked them);
 * - set GEOMETRY with windows set keeps them (as the driver) but reprograms the PPAACEs so the hardware
 *   follows, and refuses (EINVAL) a slot below the minimum or (EBUSY) one a valid window no longer fits.
 *
 * Ranges: `end` is exclusive, `last` is inclusive. Addresses inside the domain are 4 KiB frame numbers.
 */
import { SimBugError, sysError } from '../../errors';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  PAGE_SHIFT,
  TRANSLATE_BLOCKED,
  TRANSLATE_NO_MAPPING,
  TRANSLATE_NO_PERMISSION,
  type DmaRequester,
  type IommuGeometry,
  type IommuHardware,
  type MappingVisitor,
} from '../iommu-domain';
import type { WindowOps, WindowState, WindowedDomain, WindowedIommuParams } from '../windowed-domain';
import { PAACE_BYTES, type Paact, type WindowedFaultKind } from './paact';

/** What a domain receives from the unit that allocates it. */
export interface WindowedIommuDomainParams {
  readonly hardware: IommuHardware;
  /** Unique within the unit, ≥ 1. */
  readonly id: number;
  readonly params: WindowedIommuParams;
  /** The unit's tables, shared by all its domains. */
  readonly paact: Paact;
  /** Called once, by `free`, so the unit can forget the domain. */
  readonly onFree: (domain: WindowedIommuDomain) => void;
}

const PAGE_SHIFT_N = BigInt(PAGE_SHIFT);
const RW = IOMMU_READ | IOMMU_WRITE;
const NO_WINDOWS = new Float64Array(0);

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** A translation context on a windowed IOMMU; see the file header. */
export class WindowedIommuDomain implements WindowedDomain {
  readonly hardware: IommuHardware;
  readonly id: number;
  readonly enforceCacheCoherency = true;
  /** The window operations (DOMAIN_ATTR_GEOMETRY/WINDOWS, window enable/disable, the enable attribute). */
  readonly windows: WindowOps;

  private readonly _params: WindowedIommuParams;
  private readonly _paact: Paact;
  private readonly _onFree: (domain: WindowedIommuDomain) => void;
  private readonly _minPages: number;
  private _freed = false;

  /** LIODN → attachments (each `attachLiodns` occurrence counts once). */
  private readonly _liodns = new Map<number, number>();

  /** The aperture as IommuGeometry: the hardware's until GEOMETRY is set. */
  private _geometry: IommuGeometry;
  private _hasGeometry = false;
  private _startPfn = 0;
  private _aperturePages = 0;

  /** Window count; 0 while WINDOWS was never set. */
  private _count = 0;
  private _slotPages = 0;
  /** Per window: backing frame, mapped pages (0 = not valid), prot. */
  private _winPfn = NO_WINDOWS;
  private _winPages = NO_WINDOWS;
  private _winProt = new Uint8Array(0);
  private _validWindows = 0;
  private _mappedPages = 0;
  private _enabled = false;

  constructor(p: WindowedIommuDomainParams) {
    this.hardware = p.hardware;
    this.id = p.id;
    this._params = p.params;
    this._paact = p.paact;
    this._onFree = p.onFree;
    this._minPages = Number(p.params.minWindowBytes >> PAGE_SHIFT_N);
    this._geometry = p.hardware.geometry;
    this.windows = {
      params: p.params,
      geometry: () => this._apertureRange(),
      setGeometry: (start, last) => this._setGeometry(start, last),
      windowCount: () => this._windowCount(),
      setWindowCount: (count) => this._setWindowCount(count),
      windowBytes: () => this._windowBytes(),
      enableWindow: (index, pfn, pageCount, prot) => this._enableWindow(index, pfn, pageCount, prot),
      disableWindow: (index) => this._disableWindow(index),
      window: (index) => this._window(index),
      setEnabled: (enabled) => this._setEnabled(enabled),
      isEnabled: () => this._live() && this._enabled,
      reenableRequester: (liodn) => this._reenableRequester(liodn),
    };
  }

  /** The aperture: [0, maxApertureLast] until GEOMETRY is set, then the set one; force_aperture always. */
  get geometry(): IommuGeometry {
    return this._geometry;
  }

  /** The window size once WINDOWS is set (one bit); `minWindowBytes` before (0x1000 for PAMU). */
  get pgsizeBitmap(): bigint {
    return this._count === 0 ? this._params.minWindowBytes : BigInt(this._slotPages) << PAGE_SHIFT_N;
  }

  // ---- requesters --------------------------------------------------------------------------------

  /**
   * Attaches requesters: the VFIO backend calls it when a group attaches, with the LIODNs of the group's
   * devices (duplicates allowed: each occurrence is one attachment). A LIODN new to the domain takes its
   * PPAACE and, when windows are set, N − 1 SPAACEs, programmed with the domain's current windows
   * (1 + (N − 1) entry writes). All or nothing.
   * @throws SysError EINVAL (a LIODN not an integer in 0 .. primaryEntries − 1: PPAACT size 0x500 on PAMU),
   *   EBUSY (a LIODN held by another domain), ENOSPC (the SPAACE pool cannot supply the runs)
   * @throws SimBugError after free
   */
  attachLiodns(liodns: readonly number[]): void {
    this._live();
    const paact = this._paact;
    const fresh: number[] = [];
    for (const liodn of liodns) {
      if (!Number.isInteger(liodn) || liodn < 0 || liodn >= paact.primaryEntries) {
        throw sysError('EINVAL', `LIODN ${liodn} is outside the PPAACT (0..${paact.primaryEntries - 1})`);
      }
      const owner = paact.owner[liodn]!;
      if (owner !== 0 && owner !== this.id) throw sysError('EBUSY', `LIODN ${liodn} is attached to domain ${owner}`);
      if (owner === 0 && !fresh.includes(liodn)) fresh.push(liodn);
    }
    const each = this._secondaryEach();
    paact.hold(this.id, fresh, each);
    for (const liodn of liodns) this._liodns.set(liodn, (this._liodns.get(liodn) ?? 0) + 1);
    if (this._count > 0) {
      paact.stats.primaryProgrammed += fresh.length;
      paact.stats.secondaryProgrammed += fresh.length * each;
    }
  }

  /**
   * Undoes `attachLiodns(liodns)`: one attachment per occurrence; a LIODN whose last attachment goes
   * releases its entries and its violation state, and its accesses are blocked from then on.
   * @throws SimBugError after free, or when a LIODN has fewer attachments than `liodns` names
   */
  detachLiodns(liodns: readonly number[]): void {
    this._live();
    const after = new Map<number, number>();
    for (const liodn of liodns) {
      const left = (after.get(liodn) ?? this._liodns.get(liodn) ?? 0) - 1;
      if (left < 0) throw new SimBugError(`detach of LIODN ${liodn}, not attached to domain ${this.id}`);
      after.set(liodn, left);
    }
    const released: number[] = [];
    for (const [liodn, left] of after) {
      if (left === 0) {
        this._liodns.delete(liodn);
        released.push(liodn);
      } else {
        this._liodns.set(liodn, left);
      }
    }
    this._paact.release(released);
  }

  /** The LIODNs attached now, in attach order. @throws SimBugError after free */
  liodns(): number[] {
    this._live();
    return [...this._liodns.keys()];
  }

  // ---- IommuDomain -------------------------------------------------------------------------------

  /**
   * iommu_map: PAMU has no map op, so the IOMMU core answers ENODEV. Windows are programmed through
   * `windows.enableWindow`.
   * @throws SysError ENODEV, always
   * @throws SimBugError after free
   */
  map(_iovaPfn: number, _pfn: number, _pageCount: number, _prot: number): void {
    this._live();
    throw sysError('ENODEV', 'a windowed domain has no map operation (use window enable)');
  }

  /**
   * iommu_unmap: nothing to clear (no page tables); windows are removed by `windows.disableWindow`.
   * @returns 0; `visit` is never called.
   * @throws SimBugError after free
   */
  unmap(_iovaPfn: number, _pageCount: number, _visit?: MappingVisitor): number {
    this._live();
    return 0;
  }

  /**
   * Visits each valid window's mapped run that intersects [iovaPfn, iovaPfn + pageCount), clipped to the
   * range, in ascending order: one run per window (adjacent windows are not merged). Changes nothing.
   * @throws SimBugError after free
   */
  walk(iovaPfn: number, pageCount: number, visit: MappingVisitor): void {
    this._live();
    if (this._count === 0 || pageCount <= 0) return;
    const end = Math.min(iovaPfn + pageCount, this._startPfn + this._aperturePages);
    const begin = Math.max(iovaPfn, this._startPfn);
    if (begin >= end) return;
    const slotPages = this._slotPages;
    const first = Math.floor((begin - this._startPfn) / slotPages);
    const last = Math.floor((end - 1 - this._startPfn) / slotPages);
    for (let i = first; i <= last; i++) {
      const pages = this._winPages[i]!;
      if (pages === 0) continue;
      const base = this._startPfn + i * slotPages;
      const runStart = Math.max(base, begin);
      const runEnd = Math.min(base + pages, end);
      if (runStart < runEnd) visit(runStart, this._winPfn[i]! + (runStart - base), runEnd - runStart, this._winProt[i]!);
    }
  }

  /**
   * iommu_iova_to_phys at page granularity through the windows (the driver's get_phys_addr): no enable,
   * requester or violation side effects, no counters.
   * @returns the frame, or TRANSLATE_NO_MAPPING (outside the aperture, window not valid, beyond its size)
   * @throws SimBugError after free
   */
  iovaToPfn(iovaPfn: number): number {
    this._live();
    const slot = this._slotOf(iovaPfn);
    if (slot < 0) return TRANSLATE_NO_MAPPING;
    const offset = iovaPfn - this._startPfn - slot * this._slotPages;
    return offset < this._winPages[slot]! ? this._winPfn[slot]! + offset : TRANSLATE_NO_MAPPING;
  }

  /**
   * A device access from `requester`, as the PAMU checks it: LIODN attached, LIODN not disabled, domain
   * enabled, inside the aperture, window valid, offset inside the mapped size, permission.
   * A refusal for an attached LIODN is a violation: logged on the unit, counted, LIODN disabled.
   * @returns the frame, TRANSLATE_BLOCKED (requester not attached or disabled, domain disabled),
   *   TRANSLATE_NO_MAPPING or TRANSLATE_NO_PERMISSION
   * @throws SimBugError after free, or when `access` is not IOMMU_READ or IOMMU_WRITE
   */
  translate(iovaPfn: number, access: typeof IOMMU_READ | typeof IOMMU_WRITE, requester?: DmaRequester): number {
    this._live();
    if (access !== IOMMU_READ && access !== IOMMU_WRITE) {
      throw new SimBugError(`translate: access ${access} is neither IOMMU_READ nor IOMMU_WRITE`);
    }
    const liodn = requester?.liodn;
    if (liodn === undefined) return TRANSLATE_BLOCKED;
    const paact = this._paact;
    // Out-of-range or fractional LIODNs read `undefined` from the typed array: not attached.
    if (paact.owner[liodn] !== this.id) return TRANSLATE_BLOCKED;
    if (paact.violated[liodn] !== 0) return this._violation(liodn, iovaPfn, access, 'liodn-disabled', TRANSLATE_BLOCKED);
    if (!this._enabled) return this._violation(liodn, iovaPfn, access, 'domain-disabled', TRANSLATE_BLOCKED);
    const rel = iovaPfn - this._startPfn;
    if (!(rel >= 0 && rel < this._aperturePages)) {
      return this._violation(liodn, iovaPfn, access, 'outside-aperture', TRANSLATE_NO_MAPPING);
    }
    const slot = Math.floor(rel / this._slotPages);
    const pages = this._winPages[slot]!;
    if (pages === 0) return this._violation(liodn, iovaPfn, access, 'window-invalid', TRANSLATE_NO_MAPPING);
    const offset = rel - slot * this._slotPages;
    if (offset >= pages) return this._violation(liodn, iovaPfn, access, 'beyond-window', TRANSLATE_NO_MAPPING);
    if ((this._winProt[slot]! & access) === 0) {
      return this._violation(liodn, iovaPfn, access, 'permission', TRANSLATE_NO_PERMISSION);
    }
    return this._winPfn[slot]! + offset;
  }

  /**
   * Bytes of PAACEs this domain's LIODNs hold now: 64 × (1 + (N − 1)) per LIODN (1 per LIODN before
   * WINDOWS is set or with N = 1).
   * @throws SimBugError after free
   */
  tableBytes(): number {
    this._live();
    return this._liodns.size * (1 + this._secondaryEach()) * PAACE_BYTES;
  }

  /**
   * 4 KiB pages mapped by the valid windows (their mapped sizes, not their slots).
   * @throws SimBugError after free
   */
  mappedPages(): number {
    this._live();
    return this._mappedPages;
  }

  /** Whether `free` ran. */
  isFreed(): boolean {
    return this._freed;
  }

  /**
   * iommu_domain_free: releases every entry its LIODNs hold (they are detached) and drops the windows
   * (the caller already unpinned their backing).
   * @throws SimBugError on a second free
   */
  free(): void {
    this._live();
    this._paact.release([...this._liodns.keys()]);
    this._liodns.clear();
    this._freed = true;
    this._onFree(this);
  }

  // ---- window operations (exposed as `windows`) --------------------------------------------------

  private _apertureRange(): { readonly start: bigint; readonly last: bigint } | undefined {
    this._live();
    if (!this._hasGeometry) return undefined;
    return { start: this._geometry.apertureStart, last: this._geometry.apertureLast };
  }

  private _setGeometry(start: bigint, last: bigint): void {
    this._live();
    const p = this._params;
    const size = last - start + 1n;
    // FSL_PAMUV1: "the aperture size must be power of 2 and the start address naturally aligned" (check_size).
    if (start < 0n || last < start || last > p.maxApertureLast) {
      throw sysError('EINVAL', `aperture [0x${start.toString(16)}, 0x${last.toString(16)}] outside [0, 0x${p.maxApertureLast.toString(16)}]`);
    }
    if ((size & (size - 1n)) !== 0n || size < p.minWindowBytes || (start & (size - 1n)) !== 0n) {
      throw sysError('EINVAL', `aperture of 0x${size.toString(16)} bytes at 0x${start.toString(16)} is not a naturally aligned power of two ≥ 0x${p.minWindowBytes.toString(16)}`);
    }
    if (this._enabled) throw sysError('EBUSY', 'geometry cannot change while the domain is enabled');
    const aperturePages = Number(size >> PAGE_SHIFT_N);
    let slotPages = 0;
    if (this._count > 0) {
      // The driver keeps the windows; the model keeps them consistent with the new slot size.
      slotPages = aperturePages / this._count;
      if (slotPages < this._minPages) throw sysError('EINVAL', `a ${this._count}-window slot of this aperture is below the minimum window`);
      for (let i = 0; i < this._count; i++) {
        if (this._winPages[i]! > slotPages) throw sysError('EBUSY', `window ${i} does not fit the new slot size; disable it first`);
      }
    }
    this._geometry = Object.freeze({ apertureStart: start, apertureLast: last, forceAperture: true });
    this._hasGeometry = true;
    this._startPfn = Number(start >> PAGE_SHIFT_N);
    this._aperturePages = aperturePages;
    const stats = this._paact.stats;
    stats.geometrySets++;
    if (this._count > 0) {
      this._slotPages = slotPages;
      stats.primaryProgrammed += this._liodns.size;
    }
  }

  private _windowCount(): number {
    this._live();
    return this._count === 0 ? this._params.maxWindows : this._count;
  }

  private _setWindowCount(count: number): void {
    this._live();
    const p = this._params;
    if (this._enabled) throw sysError('EBUSY', 'window count cannot change while the domain is enabled');
    if (!this._hasGeometry) throw sysError('EINVAL', 'set the geometry before the window count');
    if (!Number.isInteger(count) || !isPowerOfTwo(count) || count > p.maxWindows) {
      throw sysError('EINVAL', `window count ${count} is not a power of two in 1..${p.maxWindows}`);
    }
    const slotPages = this._aperturePages / count;
    // pamu_config_spaace refuses a sub-window below 4 KiB.
    if (slotPages < this._minPages) throw sysError('EINVAL', `${count} windows make slots below the minimum window`);
    const each = count > 1 ? count - 1 : 0;
    const liodns = [...this._liodns.keys()];
    this._paact.resize(liodns, each);
    // A new zeroed window array (the driver's new win_arr): every window invalid.
    if (this._winPages.length === count) {
      this._winPfn.fill(0);
      this._winPages.fill(0);
      this._winProt.fill(0);
    } else {
      this._winPfn = new Float64Array(count);
      this._winPages = new Float64Array(count);
      this._winProt = new Uint8Array(count);
    }
    this._count = count;
    this._slotPages = slotPages;
    this._validWindows = 0;
    this._mappedPages = 0;
    const stats = this._paact.stats;
    stats.windowCountSets++;
    stats.primaryProgrammed += liodns.length;
    stats.secondaryProgrammed += liodns.length * each;
  }

  private _windowBytes(): bigint {
    this._live();
    return BigInt(this._slotPages) << PAGE_SHIFT_N;
  }

  private _enableWindow(index: number, pfn: number, pageCount: number, prot: number): void {
    this._live();
    if (!Number.isSafeInteger(pfn) || pfn < 0 || !Number.isSafeInteger(pageCount) || pageCount < 0) {
      throw new SimBugError(`enableWindow: pfn ${pfn} / pageCount ${pageCount} are not frame numbers`);
    }
    const count = this._count;
    if (count === 0) throw sysError('ENODEV', 'windows are not set');
    if (!Number.isInteger(index) || index < 0 || index >= count) throw sysError('EINVAL', `window ${index} outside 0..${count - 1}`);
    if (pageCount > this._slotPages) throw sysError('EINVAL', 'mapped size exceeds the window size');
    const sizeOk = isPowerOfTwo(pageCount) && pageCount >= this._minPages;
    if (count === 1) {
      if (this._enabled) throw sysError('EBUSY', 'the single window cannot change while the domain is enabled');
      // check_size(size, aperture_start): a power of two ≥ 4 KiB that aligns the aperture start.
      if (!sizeOk || this._startPfn % pageCount !== 0) throw sysError('EINVAL', 'single window size is not a power of two ≥ the minimum aligning the aperture');
    }
    // "Disable the window before updating the mapping".
    if (this._winPages[index]! !== 0) throw sysError('EBUSY', `window ${index} is valid; disable it first`);
    // pamu_config_spaace: the sub-window size must be a power of two ≥ 4 KiB.
    if (!sizeOk) throw sysError('EINVAL', `mapped size of ${pageCount} pages is not a power of two ≥ the minimum`);
    // FSL_PAMUV1: "physical address must be naturally aligned" (documented; the driver never checked).
    if (this._params.requireNaturalAlignment && pfn % pageCount !== 0) {
      throw sysError('EINVAL', 'window backing is not naturally aligned to its size');
    }
    if ((prot & RW) === 0) throw sysError('EINVAL', 'window needs IOMMU_READ or IOMMU_WRITE');
    this._winPfn[index] = pfn;
    this._winPages[index] = pageCount;
    this._winProt[index] = prot & RW;
    this._validWindows++;
    this._mappedPages += pageCount;
    this._paact.stats.windowsEnabled++;
    this._countWindowWrite(index);
  }

  private _disableWindow(index: number): void {
    this._live();
    // A void function in the kernel: a bad index, no windows or an invalid window change nothing.
    if (!Number.isInteger(index) || index < 0 || index >= this._count) return;
    const pages = this._winPages[index]!;
    if (pages === 0) return;
    this._winPages[index] = 0;
    this._winPfn[index] = 0;
    this._winProt[index] = 0;
    this._validWindows--;
    this._mappedPages -= pages;
    this._paact.stats.windowsDisabled++;
    this._countWindowWrite(index);
    // With one window it lives in the PPAACE: clearing it clears V, disabling the domain.
    if (this._count === 1) this._enabled = false;
  }

  private _window(index: number): WindowState | undefined {
    this._live();
    if (!Number.isInteger(index) || index < 0 || index >= this._count || this._winPages[index] === 0) return undefined;
    return { pfn: this._winPfn[index]!, pageCount: this._winPages[index]!, prot: this._winProt[index]! };
  }

  private _setEnabled(enabled: boolean): void {
    this._live();
    // configure_domain_dma_state: "Can't enable DMA domain without valid mapping".
    if (enabled && this._validWindows === 0) throw sysError('ENODEV', 'no valid window');
    this._enabled = enabled;
    // Sets (or clears) V in every attached LIODN's PPAACE, which also revives LIODNs a violation disabled.
    if (enabled) for (const liodn of this._liodns.keys()) this._paact.violated[liodn] = 0;
    this._paact.stats.primaryProgrammed += this._liodns.size;
  }

  private _reenableRequester(liodn: number): void {
    this._live();
    if (!this._liodns.has(liodn)) throw sysError('EINVAL', `LIODN ${liodn} is not attached to domain ${this.id}`);
    const paact = this._paact;
    if (paact.violated[liodn] === 0) return;
    paact.violated[liodn] = 0;
    paact.stats.primaryProgrammed++;
  }

  // ---- helpers -----------------------------------------------------------------------------------

  /** SPAACEs each LIODN needs for the current count. */
  private _secondaryEach(): number {
    return this._count > 1 ? this._count - 1 : 0;
  }

  /** The slot of `iovaPfn`, or -1 outside the aperture or before windows are set. */
  private _slotOf(iovaPfn: number): number {
    if (this._count === 0) return -1;
    const rel = iovaPfn - this._startPfn;
    if (!(rel >= 0 && rel < this._aperturePages)) return -1;
    return Math.floor(rel / this._slotPages);
  }

  /** One entry write per attached LIODN: the PPAACE for window 0 or a single window, else a SPAACE. */
  private _countWindowWrite(index: number): void {
    const stats = this._paact.stats;
    if (this._count === 1 || index === 0) stats.primaryProgrammed += this._liodns.size;
    else stats.secondaryProgrammed += this._liodns.size;
  }

  private _violation(liodn: number, iovaPfn: number, access: number, kind: WindowedFaultKind, result: number): number {
    this._paact.recordViolation({
      address: BigInt(iovaPfn) << PAGE_SHIFT_N,
      liodn,
      access: access === IOMMU_WRITE ? 'write' : 'read',
      kind,
      domainId: this.id,
    });
    return result;
  }

  /** Throws on use after free; returns true so it can guard expressions. */
  private _live(): true {
    if (this._freed) throw new SimBugError(`${this.hardware.name} domain ${this.id} used after free`);
    return true;
  }
}
