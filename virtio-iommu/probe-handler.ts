/**
 * PROBE (spec §PROBE request, §PROBE properties; reference §3.6, §2.4). The dispatcher has already
 * answered a device without F_PROBE (used length 0, D-PRB-3) and a writable part too short for
 * `probe_size` bytes of properties plus the tail (S_INVAL, no property written, D-PRB-7). Here:
 *
 * 1. `reserved[64]` is never read: "The device MUST ignore field reserved of a PROBE request."
 * 2. unknown endpoint → S_NOENT (SHOULD). Existence, not attach state, decides (QEMU checks topology).
 * 3. the properties: one RESV_MEM per region of the endpoint (its host's reserved IOVA space as
 *    RESERVED, the MSI window as MSI — see the mappers), in address order, each 24 bytes with
 *    `length` = 20 ("The device MUST write the size of a property without the struct
 *    virtio_iommu_probe_property header"), back to back ("exactly (length + 4) bytes after the
 *    beginning of the first one"), `reserved` fields zero; then, behind the `probePageSizeMask`
 *    option, the endpoint's PAGE_SIZE_MASK (type 2, `{hdr; le64 pgsize_bitmap}`, the unmerged
 *    QEMU/Linux proposal of reference §2.4), so endpoints whose hosts have different granules can share
 *    one virtual IOMMU.
 * 4. the rest of `properties` stays zero — a NONE property ends the list ("If the device doesn't fill
 *    all probe_size bytes with properties, it SHOULD fill the remaining bytes of properties with
 *    zeroes"). Properties that do not fit in probe_size → S_INVAL with the area zeroed again (QEMU
 *    returns INVAL when its RESV_MEM list overflows).
 */
import type { IommuState } from './iommu-state';
import type { ProbeRequest } from './request';
import {
  VIRTIO_IOMMU_PROBE_T_PAGE_SIZE_MASK,
  VIRTIO_IOMMU_PROBE_T_RESV_MEM,
  VIRTIO_IOMMU_PROBE_PROPERTY_HEADER_SIZE,
  VIRTIO_IOMMU_RESV_MEM_T_MSI,
  VIRTIO_IOMMU_RESV_MEM_T_RESERVED,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_OK,
  VirtioIommuProbePageSizeMask,
  VirtioIommuProbeResvMem,
} from '../uapi/virtio-iommu';

const HEADER = VIRTIO_IOMMU_PROBE_PROPERTY_HEADER_SIZE;

/**
 * Handles one PROBE, writing the properties into `properties` (exactly probe_size bytes, zeroed by the
 * caller); returns its status.
 */
export function handleProbe(state: IommuState, req: ProbeRequest, properties: Uint8Array): number {
  // "If the endpoint identified by endpoint doesn't exist, then the device SHOULD reject the request
  // and set status to VIRTIO_IOMMU_S_NOENT."
  const endpoint = state.endpoints.get(req.endpoint);
  if (endpoint === undefined) return VIRTIO_IOMMU_S_NOENT;
  let at = 0;
  for (const region of endpoint.mapper.reservedRegions()) {
    if (at + VirtioIommuProbeResvMem.size > properties.length) return overflow(properties);
    VirtioIommuProbeResvMem.encode(
      {
        type: VIRTIO_IOMMU_PROBE_T_RESV_MEM,
        length: VirtioIommuProbeResvMem.size - HEADER,
        subtype: region.subtype === 'msi' ? VIRTIO_IOMMU_RESV_MEM_T_MSI : VIRTIO_IOMMU_RESV_MEM_T_RESERVED,
        start: region.start,
        end: region.last,
      },
      properties,
      at,
    );
    at += VirtioIommuProbeResvMem.size;
  }
  if (state.limits.probePageSizeMask) {
    if (at + VirtioIommuProbePageSizeMask.size > properties.length) return overflow(properties);
    VirtioIommuProbePageSizeMask.encode(
      {
        type: VIRTIO_IOMMU_PROBE_T_PAGE_SIZE_MASK,
        length: VirtioIommuProbePageSizeMask.size - HEADER,
        pgsize_bitmap: endpoint.mapper.pageSizeMask(),
      },
      properties,
      at,
    );
  }
  return VIRTIO_IOMMU_S_OK;
}

function overflow(properties: Uint8Array): number {
  properties.fill(0);
  return VIRTIO_IOMMU_S_INVAL;
}
