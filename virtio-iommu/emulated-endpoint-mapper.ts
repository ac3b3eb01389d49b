/**
 * EmulatedEndpointMapper: the translation of an emulated (or paravirtual) endpoint, done by the
 * virtio-iommu device itself, as QEMU's `virtio_iommu_translate` does for emulated devices: it reads
 * the mappings of the endpoint's domain directly (`useDomainMappings`, QEMU's per-domain tree) rather
 * than holding a copy, and answers the endpoint's DMA through `translate`. Nothing is replicated into it,
 * so its `map` and `unmap` are never called.
 *
 * - Ranges: `[start, end)` with `end` exclusive (may be 2^64); reserved regions are inclusive `last`.
 * - Its limits are configuration, not discovery: a page size mask (default every size from 4 KiB,
 *   `~0xFFF`, QEMU's 4k granule), an input range (default the whole 64-bit space, QEMU's aw-bits=64
 *   device default) and RESV_MEM regions (default the platform's MSI window, as QEMU's q35
 *   `reserved-regions` property, reported as MSI).
 * - Translation rules (spec §MAP, §Property RESV_MEM; QEMU virtio_iommu_translate):
 *   - bypass: identity, every access allowed (spec "All accesses from an endpoint in bypass mode are
 *     allowed and translated by the IOMMU using the identity function");
 *   - inside a RESERVED region: a MAPPING fault; inside an MSI region: identity (the doorbell is
 *     translated by the host, never by a guest mapping);
 *   - otherwise the mapping that contains the address, with its permission: "The device MUST NOT allow
 *     writes to a range mapped without the VIRTIO_IOMMU_MAP_F_WRITE flag". This model can do
 *     write-only mappings, so a read of a WRITE-only mapping faults as well.
 *   - An access may span adjacent mappings (cloud-hypervisor's translate does); every byte is checked
 *     before any is moved, so a faulting access touches nothing.
 */
import type { Addr, EndpointMapper, IovaRange, MapOutcome, ReservedRegion, UnmapOutcome } from './endpoint-mapper';
import type { MappingTree } from './mapping-tree';
import { SimBugError } from '../kernel-sim';
import { VIRTIO_IOMMU_MAP_F_READ, VIRTIO_IOMMU_MAP_F_WRITE } from '../uapi/virtio-iommu';

/** Every page size from 4 KiB up: QEMU's `granule=4k` page_size_mask. */
export const DEFAULT_EMULATED_PAGE_SIZE_MASK = 0xffff_ffff_ffff_f000n;
const U64_LAST = (1n << 64n) - 1n;

/** How an emulated endpoint is configured. */
export interface EmulatedEndpointConfig {
  /** Default DEFAULT_EMULATED_PAGE_SIZE_MASK. Must not be 0. */
  pageSizeMask?: bigint;
  /** Default [0; 2^64 - 1]. */
  inputRange?: IovaRange;
  /** Default none; the device passes the platform MSI window. Sorted and disjoint after construction. */
  reservedRegions?: readonly ReservedRegion[];
}

/** One piece of a translated access: `length` bytes at guest-physical `gpa`. */
export interface TranslatedSegment {
  gpa: bigint;
  length: number;
}

/** Why a translation was refused. */
export type TranslationFault = 'unmapped' | 'permission' | 'reserved';

/** The outcome of `translate`: the pieces to access, or the first faulting byte and why. */
export type Translation = { readonly segments: TranslatedSegment[] } | { readonly fault: TranslationFault; readonly iova: bigint };

/** The device's own translation for one emulated endpoint. */
export class EmulatedEndpointMapper implements EndpointMapper {
  readonly kind = 'emulated' as const;
  /** The mappings of the domain the endpoint is attached to (undefined: none, or a bypass domain). */
  private _table: MappingTree | undefined = undefined;
  private readonly _pageSizeMask: bigint;
  private readonly _inputRange: IovaRange;
  private readonly _reserved: readonly ReservedRegion[];
  private _bypass = false;

  /** @throws RangeError for a zero page size mask or an empty input range */
  constructor(config: EmulatedEndpointConfig = {}) {
    this._pageSizeMask = BigInt.asUintN(64, config.pageSizeMask ?? DEFAULT_EMULATED_PAGE_SIZE_MASK);
    if (this._pageSizeMask === 0n) throw new RangeError('an emulated endpoint needs a non-zero page size mask');
    this._inputRange = config.inputRange ?? { start: 0n, last: U64_LAST };
    if (this._inputRange.last < this._inputRange.start) throw new RangeError('an emulated endpoint needs a non-empty input range');
    this._reserved = [...(config.reservedRegions ?? [])].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  pageSizeMask(): bigint {
    return this._pageSizeMask;
  }

  inputRange(): IovaRange {
    return this._inputRange;
  }

  reservedRegions(): readonly ReservedRegion[] {
    return this._reserved;
  }

  /** Never called: the state replicates nothing into a mapper that reads its domain's mappings. */
  map(_iova: Addr, _gpa: Addr, _size: Addr, _flags: number): MapOutcome {
    throw new SimBugError('an emulated endpoint reads its domain\'s mappings; nothing is mapped into it');
  }

  /** Never called (see map). */
  unmap(_iova: Addr, _size: Addr): UnmapOutcome {
    throw new SimBugError('an emulated endpoint reads its domain\'s mappings; nothing is unmapped from it');
  }

  useDomainMappings(mappings: MappingTree | undefined): void {
    this._table = mappings;
  }

  setBypass(on: boolean): void {
    this._bypass = on;
  }

  clear(): void {
    this._table = undefined;
    this._bypass = false;
  }

  release(): void {
    this.clear();
  }

  /** Whether accesses are identity-translated. */
  get isBypass(): boolean {
    return this._bypass;
  }

  /** Mappings this endpoint translates through now (a copy, in address order). */
  mappings(): ReturnType<MappingTree['toArray']> {
    return this._table?.toArray() ?? [];
  }

  /**
   * Translates an access of `length` bytes at `iova` (a `write` or a read), checking every byte before
   * anything is accessed.
   */
  translate(iova: bigint, length: number, write: boolean): Translation {
    const segments: TranslatedSegment[] = [];
    if (this._bypass) {
      segments.push({ gpa: iova, length });
      return { segments };
    }
    const need = write ? VIRTIO_IOMMU_MAP_F_WRITE : VIRTIO_IOMMU_MAP_F_READ;
    let at = iova;
    let left = length;
    do {
      const region = this._regionAt(at);
      if (region !== undefined) {
        if (region.subtype === 'reserved') return { fault: 'reserved', iova: at };
        // MSI doorbell: identity up to the end of the window.
        const n = minLength(left, region.last - at + 1n);
        segments.push({ gpa: at, length: n });
        at += BigInt(n);
        left -= n;
        continue;
      }
      const m = this._table?.find(at);
      if (m === undefined) return { fault: 'unmapped', iova: at };
      if ((m.flags & need) === 0) return { fault: 'permission', iova: at };
      const n = minLength(left, m.end - at);
      segments.push({ gpa: m.phys + (at - m.start), length: n });
      at += BigInt(n);
      left -= n;
    } while (left > 0);
    return { segments };
  }

  private _regionAt(addr: bigint): ReservedRegion | undefined {
    for (const r of this._reserved) {
      if (addr < r.start) return undefined;
      if (addr <= r.last) return r;
    }
    return undefined;
  }
}

function minLength(left: number, room: bigint): number {
  return room < BigInt(left) ? Number(room) : left;
}
