/**
 * ATTACH (spec §ATTACH request; reference §3.2). Checks, in this order (QEMU / cloud-hypervisor order,
 * with the domain-range check of reference §3.1 where the domain would be created):
 *
 * 1. `reserved` ≠ 0 → S_INVAL (MUST). Skipped with compat 'qemu' (QEMU does not check it).
 * 2. a `flags` bit the device does not recognise → S_INVAL (MUST). ATTACH_F_BYPASS is recognised only
 *    once F_BYPASS_CONFIG is negotiated ("When the VIRTIO_IOMMU_F_BYPASS_CONFIG is negotiated, the
 *    driver can set the VIRTIO_IOMMU_ATTACH_F_BYPASS flag").
 * 3. `domain` outside `domain_range` (F_DOMAIN_RANGE offered) → S_RANGE (reference §3.1 recommendation;
 *    the spec names no device status for it).
 * 4. unknown endpoint → S_NOENT (MUST).
 * 5. the domain exists and ATTACH_F_BYPASS does not match it → S_INVAL (SHOULD).
 * 6. already attached to this very domain → S_OK, nothing done (cloud-hypervisor; the spec only covers
 *    "attached to another domain"; QEMU would detach and re-attach, destroying a sole member's domain).
 * 7. a new domain beyond `maxDomains` → S_NOMEM (cloud-hypervisor's cap).
 * 8. the endpoint cannot hold the domain's existing mappings (input range, granule, RESV_MEM) → S_UNSUPP
 *    ("If properties of the endpoint … are compatible with properties of other endpoints already
 *    attached to the requested domain, then the device SHOULD attach the endpoint. Otherwise … UNSUPP").
 * 9. otherwise detach from the previous domain and attach ("behave as if the driver issued a DETACH
 *    request with this endpoint, followed by the ATTACH request"), replaying the domain's mappings into
 *    the endpoint's backend; a backend failure gives its status through status.ts and changes nothing.
 *    The spec's UNSUPP for a device that "cannot" detach first names an inability (crosvm: VFIO cannot
 *    detach one device); a transient backend failure (memlock, a pin) keeps its own status (NOMEM,
 *    FAULT…), which tells the driver more.
 *
 * Unlike QEMU, every check runs before the implicit detach, so a refused ATTACH leaves the endpoint
 * where it was (cloud-hypervisor: "Refuse before mutating any state").
 */
import { Domain } from './domain';
import type { IommuState } from './iommu-state';
import type { AttachRequest } from './request';
import {
  VIRTIO_IOMMU_ATTACH_F_BYPASS,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_NOMEM,
  VIRTIO_IOMMU_S_OK,
  VIRTIO_IOMMU_S_RANGE,
  VIRTIO_IOMMU_S_UNSUPP,
} from '../uapi/virtio-iommu';

/** Handles one ATTACH; returns its status. */
export function handleAttach(state: IommuState, req: AttachRequest): number {
  const { policy, limits } = state;
  // "If the reserved field of an ATTACH request is not zero, the device MUST reject the request and set
  // status to VIRTIO_IOMMU_S_INVAL."
  if (!req.reservedIsZero && policy.compat !== 'qemu') return VIRTIO_IOMMU_S_INVAL;
  // "If the device does not recognize a flags bit, it MUST reject the request and set status to
  // VIRTIO_IOMMU_S_INVAL."
  const known = limits.bypassConfigNegotiated ? VIRTIO_IOMMU_ATTACH_F_BYPASS : 0;
  if ((req.flags & ~known) !== 0) return VIRTIO_IOMMU_S_INVAL;
  if (limits.domainRangeOffered && (req.domain < limits.domainRange.start || req.domain > limits.domainRange.last)) return VIRTIO_IOMMU_S_RANGE;
  // "If the endpoint identified by endpoint doesn't exist, the device MUST reject the request and set
  // status to VIRTIO_IOMMU_S_NOENT."
  const endpoint = state.endpoints.get(req.endpoint);
  if (endpoint === undefined) return VIRTIO_IOMMU_S_NOENT;
  const bypass = (req.flags & VIRTIO_IOMMU_ATTACH_F_BYPASS) !== 0;
  const existing = state.domain(req.domain);
  // "If the domain already exists and the VIRTIO_IOMMU_ATTACH_F_BYPASS flag is not consistent with that
  // domain, the device SHOULD reject the request and set status to VIRTIO_IOMMU_S_INVAL."
  if (existing !== undefined && existing.bypass !== bypass) return VIRTIO_IOMMU_S_INVAL;
  if (existing !== undefined && endpoint.domain === existing) return VIRTIO_IOMMU_S_OK;
  if (existing === undefined && state.domains.size >= policy.maxDomains) return VIRTIO_IOMMU_S_NOMEM;
  const domain = existing ?? new Domain(req.domain, bypass);
  if (!state.canHold(endpoint, domain)) return VIRTIO_IOMMU_S_UNSUPP;
  return state.move(endpoint, domain);
}
