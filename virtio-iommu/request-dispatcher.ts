/**
 * One requestq chain, start to finish: decode the readable bytes (request.ts), pick the handler, write
 * the reply into the writable part, and say how many bytes were written (the used length). The three
 * steps are kept apart as kvmtool keeps them (reference/aesthetics.md §7, §9.9 item 1): decoding knows
 * layouts, handlers know rules and return a status, and this file knows only where the reply goes.
 *
 * Where the reply goes (spec §Device operations; QEMU `virtio_iommu_handle_command` writes the reply
 * from writable offset 0, which is where Linux's exactly-sized writable part starts):
 * - ATTACH, DETACH, MAP, UNMAP: the 4-byte tail at writable offset 0; used length 4.
 * - PROBE: `probe_size` bytes of properties then the tail; used length probe_size + 4. A writable part
 *   shorter than that cannot hold the properties: S_INVAL, no property written (D-PRB-7), the area
 *   before the tail zeroed and the tail in the last 4 writable bytes; used length = the writable length.
 * - The tail's `reserved[3]` is written as zero ("SHOULD set field reserved of struct
 *   virtio_iommu_req_tail to zero").
 *
 * Used length 0, nothing written ("When the device fails to parse a request … it returns the buffers
 * without writing to them"; "If a request type is not recognized, the device SHOULD NOT write the
 * buffer and SHOULD set the used length to zero"):
 * - no 4-byte head, or an unknown type;
 * - a writable part shorter than the 4-byte tail (the device "cannot find the tail");
 * - PROBE when F_PROBE is not offered ("the device SHOULD NOT write the buffer and SHOULD set the used
 *   length to zero").
 *
 * Status without handler:
 * - a known type whose readable part is shorter than its layout → S_INVAL (QEMU, cloud-hypervisor);
 * - MAP or UNMAP without F_MAP_UNMAP negotiated → S_UNSUPP ("This request is only available when
 *   VIRTIO_IOMMU_F_MAP_UNMAP has been negotiated").
 */
import { handleAttach } from './attach-handler';
import { handleDetach } from './detach-handler';
import type { IommuState } from './iommu-state';
import { handleMap } from './map-handler';
import { handleProbe } from './probe-handler';
import { decodeRequest } from './request';
import type { DescriptorChain } from './split-virtqueue';
import { handleUnmap } from './unmap-handler';
import {
  VIRTIO_IOMMU_REQ_TAIL_SIZE,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_UNSUPP,
  VIRTIO_IOMMU_T_PROBE,
} from '../uapi/virtio-iommu';

const TAIL = VIRTIO_IOMMU_REQ_TAIL_SIZE;

/** Executes the request in `chain` against `state`; returns the used length. Never throws for guest input. */
export function executeRequest(state: IommuState, chain: DescriptorChain, tail: Uint8Array): number {
  const writable = chain.writableLength;
  const req = decodeRequest(chain.readable, chain.readableWords);
  if (req.kind === 'unparsable') return 0;
  if (writable < TAIL) return 0;
  const { limits } = state;
  const type = req.kind === 'truncated' ? req.type : req.kind === 'probe' ? VIRTIO_IOMMU_T_PROBE : 0;
  if (type === VIRTIO_IOMMU_T_PROBE) {
    if (!limits.probeOffered) return 0;
    return probeReply(state, chain, req.kind === 'probe' ? req : undefined);
  }
  let status: number;
  switch (req.kind) {
    case 'truncated':
      status = VIRTIO_IOMMU_S_INVAL;
      break;
    case 'attach':
      status = handleAttach(state, req);
      break;
    case 'detach':
      status = handleDetach(state, req);
      break;
    case 'map':
      status = limits.mapUnmapNegotiated ? handleMap(state, req) : VIRTIO_IOMMU_S_UNSUPP;
      break;
    case 'unmap':
      status = limits.mapUnmapNegotiated ? handleUnmap(state, req) : VIRTIO_IOMMU_S_UNSUPP;
      break;
    default:
      status = VIRTIO_IOMMU_S_INVAL;
  }
  tail[0] = status;
  tail[1] = 0;
  tail[2] = 0;
  tail[3] = 0;
  return chain.write(0, tail);
}

/** PROBE's reply: properties then tail, or S_INVAL when the writable part is short or the readable one was. */
function probeReply(state: IommuState, chain: DescriptorChain, req: Parameters<typeof handleProbe>[1] | undefined): number {
  const probeSize = state.limits.probeSize;
  const writable = chain.writableLength;
  // "If the properties list is smaller than probe_size, the device SHOULD NOT write any property. It
  // SHOULD reject the request and set status to VIRTIO_IOMMU_S_INVAL."
  const fits = writable >= probeSize + TAIL;
  const reply = new Uint8Array(fits ? probeSize + TAIL : writable);
  const tailAt = reply.length - TAIL;
  reply[tailAt] = fits && req !== undefined ? handleProbe(state, req, reply.subarray(0, probeSize)) : VIRTIO_IOMMU_S_INVAL;
  return chain.write(0, reply);
}
