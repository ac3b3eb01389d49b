/**
 * Domain: one virtio-iommu address space (spec §ATTACH: "domain uniquely identifies a domain within the
 * virtio-iommu device. If the domain doesn't exist in the device, it is created").
 *
 * - A domain exists while at least one endpoint is attached: "After all endpoints have been
 *   successfully detached from a domain, it ceases to exist and its ID can be reused" (spec §DETACH);
 *   its mappings go with it (QEMU removes the domain and its tree; Linux replays its own copy at the
 *   next first attach).
 * - A bypass domain (ATTACH_F_BYPASS) has no mappings: MAP and UNMAP on it are INVAL.
 * - The device's record of the mappings is `mappings`; every endpoint's mapper holds a copy (replay on
 *   ATTACH, removal on DETACH), kept identical by iommu-state.ts.
 * - `alignMask` and `reserved` cache what the endpoints in the domain allow, recomputed by the state
 *   whenever membership changes.
 * Ranges: `[start, end)`, `end` exclusive; reserved regions inclusive (`last`).
 */
import type { ReservedRegion } from './endpoint-mapper';
import type { Endpoint } from './endpoint';
import { MappingTree } from './mapping-tree';

/** One domain of the device. */
export class Domain {
  readonly mappings = new MappingTree();
  /** Attached endpoints, in attach order. */
  readonly endpoints: Endpoint[] = [];
  /** granule − 1 of the domain: a MAP's virt_start, virt_end + 1 and phys_start must clear these bits. */
  alignMask = 0n;
  /** `alignMask` as a number when it is below 2^32 (checked on a request's low words), else −1. */
  alignMaskLow = 0;
  /** The RESV_MEM regions of every endpoint in the domain (sorted by start; may overlap). */
  reserved: readonly ReservedRegion[] = [];
  /**
   * `reserved` as numbers, [start0, last0, start1, last1, …], rounded: rounding is monotonic and 2^53 is
   * a double, so against exact numbers below 2^53 these comparisons answer as the bigint ones would.
   */
  reservedN: readonly number[] = [];

  constructor(
    readonly id: number,
    /** Created with VIRTIO_IOMMU_ATTACH_F_BYPASS. */
    readonly bypass: boolean,
  ) {}

  /** Whether `[start, end)` shares a byte with a RESV_MEM region of an endpoint in the domain. */
  /** `overlapsReserved` for exact numbers (below 2^53): no BigInt comparison. */
  overlapsReservedN(start: number, end: number): boolean {
    const r = this.reservedN;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i]! >= end) return false;
      if (r[i + 1]! >= start) return true;
    }
    return false;
  }

  overlapsReserved(start: bigint, end: bigint): boolean {
    for (const r of this.reserved) {
      if (r.start >= end) return false;
      if (r.last >= start) return true;
    }
    return false;
  }
}
