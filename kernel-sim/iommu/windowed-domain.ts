/**
 * The windowed IOMMU capability (the PAMU-like model, reference/pamu-windowed.md §1.4, §2): an optional
 * interface a domain offers on top of IommuDomain, the way the kernel's window API
 * (DOMAIN_ATTR_GEOMETRY, DOMAIN_ATTR_WINDOWS, iommu_domain_window_enable/disable, the PAMU enable
 * attribute) sat beside iommu_map. A windowed domain has no page tables: its `map` answers ENODEV as
 * iommu_map does on PAMU, and translation goes through windows.
 *
 * The abstraction, stated once (DESIGN.md §4; the FSL_PAMUV1 constraint set of include/linux/iommu.h):
 * - aperture: a power-of-two size ≥ `minWindowBytes`, start naturally aligned to its size, last byte ≤
 *   `maxApertureLast`; DMA outside it faults (force_aperture is always true);
 * - window count: a power of two from 1 to `maxWindows`; window i covers
 *   [start + i·size, start + (i+1)·size) with size = aperture / count;
 * - what a window maps: a power-of-two region ≥ `minWindowBytes` and ≤ the window size, at the window's
 *   base IOVA, physically contiguous, and (where `requireNaturalAlignment`) naturally aligned to its
 *   size; per-window permissions;
 * - geometry and count cannot change while the domain is enabled (EBUSY); a window must be disabled
 *   before it is reprogrammed (EBUSY);
 * - entry costs: one primary entry per requester, plus count − 1 secondary entries when count > 1, from
 *   a shared pool of `secondaryEntries` (exhaustion is ENOSPC);
 * - MSI doorbells need windows of their own (`msiBanks` banks, doorbell at `msiPageOffset` in the page).
 */
import type { IommuDomain } from './iommu-domain';

/** The documented parameter set of a windowed IOMMU. */
export interface WindowedIommuParams {
  /** Largest window count (power of two; PAMU: 2^(1 + PC3.MWCE), documented 256). */
  readonly maxWindows: number;
  /** Smallest aperture, window and mapped size (PAMU: 4 KiB). */
  readonly minWindowBytes: bigint;
  /** Highest addressable IOVA (PAMU: 2^36 − 1, the 64 GiB "maximum system address"). */
  readonly maxApertureLast: bigint;
  /** The backing of a window must be aligned to its mapped size (documented for PAMU). */
  readonly requireNaturalAlignment: boolean;
  /** Primary entries (PAMU PPAACT: 0x500, so LIODNs ≥ 1280 cannot attach). */
  readonly primaryEntries: number;
  /** Secondary entries shared by all requesters (PAMU SPAACT: 0x800). */
  readonly secondaryEntries: number;
}

/** One window's programming. Sizes are in 4 KiB pages. */
export interface WindowState {
  readonly pfn: number;
  readonly pageCount: number;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly prot: number;
}

/** The window operations of a windowed domain. */
export interface WindowOps {
  readonly params: WindowedIommuParams;
  /** The aperture, or undefined before it is set. */
  geometry(): { readonly start: bigint; readonly last: bigint } | undefined;
  /** DOMAIN_ATTR_GEOMETRY. @throws SysError EINVAL (rules above), EBUSY (enabled) */
  setGeometry(start: bigint, last: bigint): void;
  /** DOMAIN_ATTR_WINDOWS: the count set, or `maxWindows` before any is set. */
  windowCount(): number;
  /** @throws SysError EINVAL (no geometry, not a power of two, above the maximum), EBUSY (enabled), ENOSPC (secondary pool) */
  setWindowCount(count: number): void;
  /** Window size in bytes (aperture / count); 0n before windows are set. */
  windowBytes(): bigint;
  /**
   * iommu_domain_window_enable.
   * @throws SysError ENODEV (windows not set), EINVAL (bad index, size, alignment), EBUSY (window valid)
   */
  enableWindow(index: number, pfn: number, pageCount: number, prot: number): void;
  /** iommu_domain_window_disable; a bad index is ignored, as the kernel's void function does. */
  disableWindow(index: number): void;
  /** The window's programming, or undefined when it is not valid. */
  window(index: number): WindowState | undefined;
  /** The PAMU enable attribute. @throws SysError ENODEV (enabling with no valid window) */
  setEnabled(enabled: boolean): void;
  isEnabled(): boolean;
  /** Re-enables a requester disabled after an access violation. @throws SysError EINVAL (LIODN not attached here) */
  reenableRequester(liodn: number): void;
}

/** A domain with the window capability. */
export interface WindowedDomain extends IommuDomain {
  readonly windows: WindowOps;
  /**
   * Attaches requesters (the LIODNs of a group's devices) when the group attaches; each occurrence is one
   * attachment. All or nothing. @throws SysError EINVAL (LIODN ≥ primaryEntries), EBUSY (held by another
   * domain), ENOSPC (secondary pool)
   */
  attachLiodns(liodns: readonly number[]): void;
  /** Undoes `attachLiodns` with the same list when the group detaches. */
  detachLiodns(liodns: readonly number[]): void;
}

/** Whether a domain offers windows. */
export function isWindowedDomain(domain: IommuDomain): domain is WindowedDomain {
  return (domain as Partial<WindowedDomain>).windows !== undefined;
}
