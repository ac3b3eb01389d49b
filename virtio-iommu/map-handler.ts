/**
 * MAP (spec §MAP request; reference §3.4), in the strict decision order of reference §3.8:
 *
 * 1. readable part too short → S_INVAL (decided by the dispatcher from request.ts's `truncated`).
 * 2. a `flags` bit the device does not recognise → S_INVAL (MUST). MAP_F_MMIO is recognised only when
 *    F_MMIO is negotiated ("It is only available when the VIRTIO_IOMMU_F_MMIO feature has been
 *    negotiated").
 * 3. outside `input_range` → S_RANGE, whenever F_INPUT_RANGE is offered, accepted or not ("Any mapping
 *    request to virtual addresses outside of this range fails"; reference §8.3: offered, not negotiated).
 * 4. no such domain → S_NOENT (SHOULD).
 * 5. a bypass domain → S_INVAL (SHOULD).
 * 6. `virt_end < virt_start`, or the physical range wraps 2^64 → S_RANGE (kvmtool / cloud-hypervisor;
 *    virt_end == virt_start is a 1-byte mapping, legal when the granule is one byte).
 * 7. `virt_start`, `phys_start` or `virt_end + 1` not aligned to the granule → S_RANGE (SHOULD). Skipped
 *    with compat 'qemu' (QEMU does not check; its qtest maps 5-byte ranges).
 * 8. overlaps an existing mapping → S_INVAL (SHOULD).
 * 9. overlaps a RESV_MEM region of an endpoint in the domain → S_INVAL ("The device SHOULD reject a MAP
 *    request that overlaps a RESV_MEM region"; the status is reference §3.8's choice).
 * 10. the domain already holds `maxMappingsPerDomain` mappings → S_NOMEM.
 * 11. replicate into every endpoint's backend; a failure gives its status through status.ts, with every
 *     endpoint rolled back.
 */
import type { Domain } from './domain';
import type { IommuState } from './iommu-state';
import { SmallMapping, type Mapping } from './mapping-tree';
import type { MapRequest } from './request';
import {
  VIRTIO_IOMMU_MAP_F_MMIO,
  VIRTIO_IOMMU_MAP_F_READ,
  VIRTIO_IOMMU_MAP_F_WRITE,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_NOMEM,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_S_RANGE,
} from '../uapi/virtio-iommu';

const TWO_64 = 1n << 64n;
const LOW_MASK = 0xffff_ffffn;
const RW = VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE;

/** Handles one MAP; returns its status. */
export function handleMap(state: IommuState, req: MapRequest): number {
  const { limits, policy } = state;
  // "If the device doesn't recognize a flags bit, it MUST reject the request and set status to
  // VIRTIO_IOMMU_S_INVAL."
  const known = limits.mmioNegotiated ? RW | VIRTIO_IOMMU_MAP_F_MMIO : RW;
  if ((req.flags & ~known) !== 0) return VIRTIO_IOMMU_S_INVAL;
  if (limits.inputRangeOffered && (req.small ? req.startN < limits.inputRangeStartN || req.endN > limits.inputRangeEndN : req.start < limits.inputRange.start || req.end > limits.inputRangeEnd)) {
    return VIRTIO_IOMMU_S_RANGE;
  }
  // "If domain does not exist, the device SHOULD reject the request and set status to VIRTIO_IOMMU_S_NOENT."
  const domain = state.domain(req.domain);
  if (domain === undefined) return VIRTIO_IOMMU_S_NOENT;
  // "If the domain is a bypass domain, the device SHOULD reject the request and set status to
  // VIRTIO_IOMMU_S_INVAL."
  if (domain.bypass) return VIRTIO_IOMMU_S_INVAL;
  if (req.small) return mapSmall(state, domain, req);
  const { start, end, phys } = req;
  if (end <= start) return VIRTIO_IOMMU_S_RANGE;
  const size = end - start;
  if (phys + size > TWO_64) return VIRTIO_IOMMU_S_RANGE;
  // "If virt_start, phys_start or (virt_end + 1) is not aligned on the page granularity, the device
  // SHOULD reject the request and set status to VIRTIO_IOMMU_S_RANGE." (A mask below 2^32 is checked
  // on the low words, with no BigInt.)
  const alignMask = domain.alignMask;
  if (policy.compat !== 'qemu' && (alignMask <= LOW_MASK ? (req.lowBits & Number(alignMask)) !== 0 : ((start | end | phys) & alignMask) !== 0n)) return VIRTIO_IOMMU_S_RANGE;
  // "If a mapping already exists in the requested range, the device SHOULD reject the request and set
  // status to VIRTIO_IOMMU_S_INVAL."
  if (domain.mappings.overlaps(start, end)) return VIRTIO_IOMMU_S_INVAL;
  if (domain.overlapsReserved(start, end)) return VIRTIO_IOMMU_S_INVAL;
  if (domain.mappings.size >= policy.maxMappingsPerDomain) return VIRTIO_IOMMU_S_NOMEM;
  const mapping = { start, end, size, phys, flags: req.flags };
  const status = state.mapInDomain(domain, mapping);
  if (status !== VIRTIO_IOMMU_S_OK) return status;
  domain.mappings.insert(mapping);
  return VIRTIO_IOMMU_S_OK;
}

/**
 * Steps 6–11 for a request whose fields are all below 2^53 (`req.small`): the same decisions in the
 * same order on numbers, so no BigInt is made. `phys + size` cannot pass 2^64 here.
 */
function mapSmall(state: IommuState, domain: Domain, req: MapRequest): number {
  const start = req.startN;
  const end = req.endN;
  const phys = req.physN;
  if (end <= start) return VIRTIO_IOMMU_S_RANGE;
  const alignLow = domain.alignMaskLow;
  if (state.policy.compat !== 'qemu') {
    if (alignLow >= 0) {
      if ((req.lowBits & alignLow) !== 0) return VIRTIO_IOMMU_S_RANGE;
    } else if (((req.start | req.end | req.phys) & domain.alignMask) !== 0n) {
      return VIRTIO_IOMMU_S_RANGE;
    }
  }
  // One search: the position found here is where the mapping goes once every endpoint holds it (the
  // replication below changes the endpoints' tables, never the domain's).
  const at = domain.mappings.slotForN(start, end);
  if (at < 0) return VIRTIO_IOMMU_S_INVAL;
  if (domain.overlapsReservedN(start, end)) return VIRTIO_IOMMU_S_INVAL;
  if (domain.mappings.size >= state.policy.maxMappingsPerDomain) return VIRTIO_IOMMU_S_NOMEM;
  const small = SmallMapping.fits(start, end, phys);
  const mapping: Mapping = small ? new SmallMapping(start, end, phys, req.flags) : { start: req.start, end: req.end, size: req.end - req.start, phys: req.phys, flags: req.flags };
  const status = state.mapInDomain(domain, mapping);
  if (status !== VIRTIO_IOMMU_S_OK) return status;
  if (small) domain.mappings.insertSmallAt(at, mapping as SmallMapping);
  else domain.mappings.insert(mapping);
  return VIRTIO_IOMMU_S_OK;
}
