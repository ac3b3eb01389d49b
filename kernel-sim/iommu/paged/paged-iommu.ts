/**
 * A page-table IOMMU unit, VT-d / Arm SMMU-like: it allocates paging domains, each backed by a multi-level
 * I/O page table (io-pgtable.ts), and owns one IOTLB shared by all of them and tagged by domain id
 * (iotlb.ts). It is the `IommuHardware` a machine preset plugs in below the VFIO backends.
 *
 * Model and constraints:
 * - Page sizes: the requested bitmap restricted to what a 4 KiB-granule table can produce (4 KiB, 2 MiB,
 *   1 GiB), as io_pgtable_cfg is in/out; `pgsizeBitmap` reports the result. 0x1000 alone models
 *   `disable_hugepages` or an IOMMU without superpage support.
 * - Geometry: aperture [0, 2^ias - 1], force_aperture true (include/linux/iommu.h,
 *   iommu_domain_geometry). ias 39 / 48 / 57 give 3 / 4 / 5 table levels.
 * - Counters are unit-wide and summed over every domain ever allocated; `counters()` returns a snapshot.
 *   Faults are not counted here: the DMA layer records them.
 * - Domain ids start at 1 and are never reused, so a stale IOTLB tag can never alias a new domain.
 */
import { sysError } from '../../errors';
import { DomainRegistry } from '../domain-registry';
import type { IommuGeometry, IommuHardware } from '../iommu-domain';
import { IoPgtableStats, resolveIoPgtableCfg } from './io-pgtable';
import { Iotlb, IOTLB_DEFAULT_ENTRIES, IOTLB_MAX_ENTRIES } from './iotlb';
import { PagedDomain } from './paged-domain';

/** Construction options of a PagedIommu. */
export interface PagedIommuOptions {
  /** The unit's name: 'intel-vtd', 'arm-smmuv3', ... */
  readonly name: string;
  /** Requested page sizes (bit n: 2^n bytes); default 0x40201000n (4 KiB | 2 MiB | 1 GiB). */
  readonly pgsizeBitmap?: bigint;
  /** Input address size in bits, 21 .. 57; default 48. */
  readonly ias?: number;
  /** Output (physical) address size in bits, 32 .. 52; default 52. */
  readonly oas?: number;
  /** IOTLB entries, 0 .. 2^20; 0 disables the IOTLB; default 64. */
  readonly iotlbEntries?: number;
  /** IOMMU_CAP_CACHE_COHERENCY / enforce_cache_coherency; default true. */
  readonly enforceCacheCoherency?: boolean;
}

/** The unit's counters (a snapshot; keys are stable). */
export type PagedIommuCounters = {
  /** Domains allocated. */
  domainsAllocated: number;
  /** Domains freed. */
  domainsFreed: number;
  /** Tables allocated, each domain's root included. */
  tablesAllocated: number;
  /** Tables freed: emptied by an unmap, or released with their domain. */
  tablesFreed: number;
  /** Bytes of tables held now by the live domains (4096 per table); a level, not a count, so never reset. */
  tableBytes: number;
  /** Leaf descriptors written by map, all sizes. */
  leafWritten: number;
  /** 4 KiB leaves written. */
  leafWritten4K: number;
  /** 2 MiB leaves written. */
  leafWritten2M: number;
  /** 1 GiB leaves written. */
  leafWritten1G: number;
  /** Leaf descriptors cleared by unmap, all sizes (leaves dropped with a freed domain are not counted). */
  leafCleared: number;
  /** 4 KiB leaves cleared. */
  leafCleared4K: number;
  /** 2 MiB leaves cleared. */
  leafCleared2M: number;
  /** 1 GiB leaves cleared. */
  leafCleared1G: number;
  /** IOTLB lookups by device accesses (none when the IOTLB is disabled). */
  iotlbLookups: number;
  /** Lookups that hit. */
  iotlbHits: number;
  /** Lookups that missed. */
  iotlbMisses: number;
  /** Entries filled after a successful walk. */
  iotlbFills: number;
  /** Fills that replaced a valid entry. */
  iotlbEvictions: number;
  /** Invalidation commands: one per unmap that cleared something, one per domain free. */
  iotlbInvalidations: number;
  /** Valid entries those commands removed. */
  iotlbEntriesInvalidated: number;
  /** Hardware page walks (device accesses that missed the IOTLB or found it disabled). */
  walks: number;
  /** Descriptors read by those walks: one per level down to the leaf or the empty descriptor. */
  walkReads: number;
};

/** A page-table IOMMU unit; see the file header. */
export class PagedIommu implements IommuHardware {
  readonly name: string;
  readonly pgsizeBitmap: bigint;
  readonly geometry: IommuGeometry;
  readonly enforceCacheCoherency: boolean;
  /** Input address size in bits. */
  readonly ias: number;
  /** Output address size in bits. */
  readonly oas: number;
  /** IOTLB capacity (0: disabled). */
  readonly iotlbEntries: number;

  private readonly _stats = new IoPgtableStats();
  private readonly _iotlb: Iotlb;
  private readonly _domains = new DomainRegistry<PagedDomain>();
  private _nextId = 1;

  /**
   * @throws SysError EINVAL: ias, oas or iotlbEntries out of range, or a bitmap without the 4 KiB granule
   */
  constructor(options: PagedIommuOptions) {
    // The unit advertises what its tables will provide (the io_pgtable_cfg is in/out).
    const { ias, oas, pgsizeBitmap } = resolveIoPgtableCfg(options);
    const iotlbEntries = options.iotlbEntries ?? IOTLB_DEFAULT_ENTRIES;
    if (!Number.isInteger(iotlbEntries) || iotlbEntries < 0 || iotlbEntries > IOTLB_MAX_ENTRIES) {
      throw sysError('EINVAL', `iotlbEntries ${iotlbEntries} outside 0..${IOTLB_MAX_ENTRIES}`);
    }
    this.name = options.name;
    this.pgsizeBitmap = pgsizeBitmap;
    this.ias = ias;
    this.oas = oas;
    this.iotlbEntries = iotlbEntries;
    this.enforceCacheCoherency = options.enforceCacheCoherency ?? true;
    this.geometry = Object.freeze({
      apertureStart: 0n,
      apertureLast: (1n << BigInt(ias)) - 1n,
      forceAperture: true,
    });
    this._iotlb = new Iotlb(iotlbEntries);
  }

  /** Allocates a paging domain with an empty table (its root only). @throws SysError ENOMEM (never today) */
  allocDomain(): PagedDomain {
    const domain = new PagedDomain({
      hardware: this,
      id: this._nextId++,
      ias: this.ias,
      oas: this.oas,
      pgsizeBitmap: this.pgsizeBitmap,
      enforceCacheCoherency: this.enforceCacheCoherency,
      iotlb: this._iotlb,
      stats: this._stats,
      onFree: (d) => this._domains.remove(d),
    });
    return this._domains.add(domain);
  }

  /** Live domains. */
  domainCount(): number {
    return this._domains.size;
  }

  /** IOTLB entries valid now (for tests and reports). */
  iotlbValidEntries(): number {
    return this._iotlb.validEntries();
  }

  /** A snapshot of the counters, summed over all domains ever allocated. */
  counters(): PagedIommuCounters {
    const s = this._stats;
    const t = this._iotlb;
    let tableBytes = 0;
    for (const d of this._domains) tableBytes += d.tableBytes();
    const w = s.leafWritten;
    const c = s.leafCleared;
    return {
      domainsAllocated: this._domains.allocated,
      domainsFreed: this._domains.freed,
      tablesAllocated: s.tablesAllocated,
      tablesFreed: s.tablesFreed,
      tableBytes,
      leafWritten: w[0]! + w[1]! + w[2]!,
      leafWritten4K: w[0]!,
      leafWritten2M: w[1]!,
      leafWritten1G: w[2]!,
      leafCleared: c[0]! + c[1]! + c[2]!,
      leafCleared4K: c[0]!,
      leafCleared2M: c[1]!,
      leafCleared1G: c[2]!,
      iotlbLookups: t.lookups,
      iotlbHits: t.hits,
      iotlbMisses: t.misses,
      iotlbFills: t.fills,
      iotlbEvictions: t.evictions,
      iotlbInvalidations: t.invalidations,
      iotlbEntriesInvalidated: t.entriesInvalidated,
      walks: s.walks,
      walkReads: s.walkReads,
    };
  }

  /** Zeroes every counter except `tableBytes`, which describes the present. IOTLB contents stay. */
  resetCounters(): void {
    this._stats.reset();
    this._iotlb.resetStats();
    this._domains.resetCounters();
  }
}
