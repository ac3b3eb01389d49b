/**
 * THE errno → status table of the virtio-iommu device (reference/virtio-iommu.md §5.4 and §5.6,
 * reference/aesthetics.md §9.4). Handlers decide the statuses the spec names at each check themselves
 * (S_NOENT for a missing domain, S_RANGE for misalignment, …); every failure that comes back from a
 * backend — a `SysError` thrown by an EndpointMapper — goes through this one table, and the two expected
 * refusals a mapper returns as values go through `statusOfOutcome`.
 *
 * | errno                         | status    | precedent                                            |
 * |-------------------------------|-----------|------------------------------------------------------|
 * | EINVAL, EEXIST                | S_INVAL   | kvmtool (EINVAL); crosvm (VFIO EEXIST → INVAL)        |
 * | ERANGE                        | S_RANGE   | kvmtool                                              |
 * | ENOENT, ENODEV, ESRCH         | S_NOENT   | kvmtool                                              |
 * | ENOSYS, EOPNOTSUPP, ENOTTY    | S_UNSUPP  | kvmtool (ENOSYS)                                     |
 * | EFAULT                        | S_FAULT   | kvmtool                                              |
 * | EIO                           | S_IOERR   | kvmtool                                              |
 * | ENOMEM, ENOSPC                | S_NOMEM   | cloud-hypervisor (caps → NOMEM)                      |
 * | anything else                 | S_DEVERR  | kvmtool's default                                    |
 *
 * | mapper outcome | status  | why                                                                  |
 * |----------------|---------|----------------------------------------------------------------------|
 * | 'overlap'      | S_INVAL | spec §MAP: "If a mapping already exists in the requested range … INVAL" |
 * | 'would-split'  | S_RANGE | spec §UNMAP: "would split the mapping … S_RANGE" (the table above would say INVAL for type1's EINVAL) |
 *
 * A non-SysError (a `SimBugError`, a TypeError) is a bug of the simulator: it is rethrown, never
 * turned into a status.
 */
import { SysError } from '../kernel-sim';
import {
  VIRTIO_IOMMU_S_DEVERR,
  VIRTIO_IOMMU_S_FAULT,
  VIRTIO_IOMMU_S_INVAL,
  VIRTIO_IOMMU_S_IOERR,
  VIRTIO_IOMMU_S_NOENT,
  VIRTIO_IOMMU_S_NOMEM,
  VIRTIO_IOMMU_S_RANGE,
  VIRTIO_IOMMU_S_UNSUPP,
} from '../uapi/virtio-iommu';
import type { ErrnoCode } from '../uapi/errno';

const STATUS_OF_ERRNO: Readonly<Partial<Record<ErrnoCode, number>>> = {
  EINVAL: VIRTIO_IOMMU_S_INVAL,
  EEXIST: VIRTIO_IOMMU_S_INVAL,
  ERANGE: VIRTIO_IOMMU_S_RANGE,
  ENOENT: VIRTIO_IOMMU_S_NOENT,
  ENODEV: VIRTIO_IOMMU_S_NOENT,
  ESRCH: VIRTIO_IOMMU_S_NOENT,
  ENOSYS: VIRTIO_IOMMU_S_UNSUPP,
  EOPNOTSUPP: VIRTIO_IOMMU_S_UNSUPP,
  ENOTTY: VIRTIO_IOMMU_S_UNSUPP,
  EFAULT: VIRTIO_IOMMU_S_FAULT,
  EIO: VIRTIO_IOMMU_S_IOERR,
  ENOMEM: VIRTIO_IOMMU_S_NOMEM,
  ENOSPC: VIRTIO_IOMMU_S_NOMEM,
};

/** The status for a backend errno. */
export function statusOfErrno(code: ErrnoCode): number {
  return STATUS_OF_ERRNO[code] ?? VIRTIO_IOMMU_S_DEVERR;
}

/** The status for a mapper's expected refusal. */
export function statusOfOutcome(outcome: 'overlap' | 'would-split'): number {
  return outcome === 'overlap' ? VIRTIO_IOMMU_S_INVAL : VIRTIO_IOMMU_S_RANGE;
}

/**
 * The status for an error a mapper threw.
 * @throws the error itself when it is not a SysError (a simulator bug must not become a status)
 */
export function statusOfError(err: unknown): number {
  if (err instanceof SysError) return statusOfErrno(err.code);
  throw err;
}
