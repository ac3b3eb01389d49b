/**
 * DETACH (spec §DETACH request; reference §3.3). Checks, in this order:
 *
 * 1. `reserved` is never read: "The device MUST ignore reserved."
 * 2. unknown endpoint → S_NOENT (MUST). With compat 'qemu', an endpoint never attached since the last
 *    reset is unknown too (QEMU's endpoint table is filled lazily by ATTACH).
 * 3. the domain does not exist, or the endpoint is not attached to it → S_INVAL ("the device MAY set the
 *    request status to VIRTIO_IOMMU_S_INVAL"; QEMU and kvmtool do).
 * 4. otherwise the endpoint leaves the domain — "the endpoint cannot access any mapping from that domain
 *    anymore" — its backend drops the domain's mappings (and enters bypass when the `bypass` byte says
 *    so); the last endpoint out takes the domain and its mappings with it.
 */
import type { IommuState } from './iommu-state';
import type { DetachRequest } from './request';
import { VIRTIO_IOMMU_S_INVAL, VIRTIO_IOMMU_S_NOENT } from '../uapi/virtio-iommu';

/** Handles one DETACH; returns its status. */
export function handleDetach(state: IommuState, req: DetachRequest): number {
  // "If the endpoint identified by endpoint doesn't exist, then the device MUST reject the request and
  // set status to VIRTIO_IOMMU_S_NOENT."
  const endpoint = state.endpoints.get(req.endpoint);
  if (endpoint === undefined) return VIRTIO_IOMMU_S_NOENT;
  if (state.policy.compat === 'qemu' && !endpoint.everAttached) return VIRTIO_IOMMU_S_NOENT;
  // "If the domain identified by domain doesn't exist, or if the endpoint identified by endpoint isn't
  // attached to this domain, then the device MAY set the request status to VIRTIO_IOMMU_S_INVAL."
  const domain = state.domain(req.domain);
  if (domain === undefined || endpoint.domain !== domain) return VIRTIO_IOMMU_S_INVAL;
  return state.move(endpoint, undefined);
}
