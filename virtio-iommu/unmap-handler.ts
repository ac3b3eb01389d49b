/**
 * UNMAP (spec §UNMAP request; reference §3.5), in the order of reference §3.8:
 *
 * 1. readable part too short → S_INVAL (the dispatcher, from request.ts's `truncated`).
 * 2. `reserved` ≠ 0 → S_INVAL, nothing removed ("the device MAY set the request status to
 *    VIRTIO_IOMMU_S_INVAL, in which case the device MAY perform the UNMAP operation": we do not).
 *    Skipped with compat 'qemu' (QEMU does not check it).
 * 3. NO input_range check, deliberately (a deviation from reference §3.8 step 3, which follows
 *    cloud-hypervisor): the spec's input_range rule is about mapping requests ("Any mapping request to
 *    virtual addresses outside of this range fails"), UNMAP "MAY spill over unmapped virtual
 *    addresses", and the unmap-all request UNMAP(0, ~0) — the reason `virt_end` is inclusive
 *    (mailing-list/000, Jean-Philippe Brucker: "it can send a single UNMAP request with start=0,
 *    end=~0ULL") — must work whatever the input range.
 * 4. no such domain → S_NOENT (SHOULD).
 * 5. a bypass domain → S_INVAL (SHOULD).
 * 6. `virt_end < virt_start` → S_RANGE (cloud-hypervisor; the range is meaningless).
 * 7. a mapping touched but not covered entirely → S_RANGE and nothing removed ("the device SHOULD set
 *    the request status to VIRTIO_IOMMU_S_RANGE, and SHOULD NOT remove any mapping"). Every mapping is
 *    checked before any is removed (unlike QEMU, which may remove some and then fail).
 * 8. otherwise every covered mapping goes, from every endpoint's backend first, then from the domain
 *    ("If part of the range or the full range is not covered by an existing mapping, then the device
 *    SHOULD remove all mappings affected by the range and set the request status to VIRTIO_IOMMU_S_OK").
 *    Backends are asked to remove exactly the mappings MAP created, never the raw range, so
 *    UNMAP(0, ~0) — a 2^64-byte range no VFIO call can express (reference §8.1) — works everywhere.
 */
import type { IommuState } from './iommu-state';
import type { UnmapRequest } from './request';
import { VIRTIO_IOMMU_S_INVAL, VIRTIO_IOMMU_S_NOENT, VIRTIO_IOMMU_S_OK, VIRTIO_IOMMU_S_RANGE } from '../uapi/virtio-iommu';

/** Handles one UNMAP; returns its status. */
export function handleUnmap(state: IommuState, req: UnmapRequest): number {
  if (!req.reservedIsZero && state.policy.compat !== 'qemu') return VIRTIO_IOMMU_S_INVAL;
  // "If domain does not exist, the device SHOULD set the request status to VIRTIO_IOMMU_S_NOENT."
  const domain = state.domain(req.domain);
  if (domain === undefined) return VIRTIO_IOMMU_S_NOENT;
  // "If the domain is a bypass domain, the device SHOULD reject the request and set status to
  // VIRTIO_IOMMU_S_INVAL."
  if (domain.bypass) return VIRTIO_IOMMU_S_INVAL;
  // Numbers when both ends are below 2^53 (every page-granular request of a real driver), else bigints.
  if (req.small ? req.endN <= req.startN : req.end <= req.start) return VIRTIO_IOMMU_S_RANGE;
  // "If a mapping affected by the range is not covered in its entirety by the range (the UNMAP request
  // would split the mapping), then the device SHOULD set the request status to VIRTIO_IOMMU_S_RANGE,
  // and SHOULD NOT remove any mapping."
  const span = req.small ? domain.mappings.coveredN(req.startN, req.endN) : domain.mappings.covered(req.start, req.end);
  if (span === 'would-split') return VIRTIO_IOMMU_S_RANGE;
  if (span.count === 0) return VIRTIO_IOMMU_S_OK;
  const status = state.unmapInDomain(domain, span.first, span.count);
  if (status !== VIRTIO_IOMMU_S_OK) return status;
  domain.mappings.removeSpan(span.first, span.count);
  return VIRTIO_IOMMU_S_OK;
}
