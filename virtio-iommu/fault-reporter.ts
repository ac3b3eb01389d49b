/**
 * Fault reporting on the eventq (spec §Fault reporting; reference §4). Faults wait in a short queue
 * until the driver has posted eventq buffers; each buffer takes one 24-byte `virtio_iommu_fault` record.
 *
 * - "If no buffer is available, the device can either wait for one to be consumed, or drop the event":
 *   records wait, up to `capacity` of them; beyond that new faults are dropped and counted (QEMU drops
 *   at once, kvmtool returns -ENOSPC).
 * - A buffer whose writable part is smaller than a record is returned unwritten (used length 0) and the
 *   record waits for the next buffer: "If a buffer is too small to contain the fault report, the device
 *   SHOULD NOT use multiple buffers to describe it" (QEMU would break the device, kvmtool truncates).
 * - A malformed eventq chain is returned with used length 0, like a malformed request.
 * - Records have `reserved`/`reserved1` zero and no undefined flag ("The device SHOULD set reserved and
 *   reserved1 to zero. The device SHOULD set undefined flags to zero"), a valid endpoint ID, and
 *   always the address (ADDRESS flag) plus the direction of the access (READ or WRITE) as fault context,
 *   as kvmtool does (QEMU sets the direction only for permission faults).
 */
import type { SplitVirtqueue } from './split-virtqueue';
import { VirtioIommuFault } from '../uapi/virtio-iommu';

/** One fault, ready to be written. */
export interface FaultRecord {
  /** VIRTIO_IOMMU_FAULT_R_*. */
  readonly reason: number;
  /** VIRTIO_IOMMU_FAULT_F_*. */
  readonly flags: number;
  readonly endpoint: number;
  readonly address: bigint;
}

/** The pending fault records and their delivery into eventq buffers. */
export class FaultReporter {
  private _pending: FaultRecord[] = [];
  private readonly _record = new Uint8Array(VirtioIommuFault.size);
  private _delivered = 0;
  private _dropped = 0;

  constructor(readonly capacity = 64) {}

  /** Queues one record (or drops it when `capacity` records already wait). */
  report(record: FaultRecord): void {
    if (this._pending.length >= this.capacity) this._dropped++;
    else this._pending.push(record);
  }

  /**
   * Writes waiting records into the buffers the driver posted on `eventq`.
   * @returns the number of chains returned to the driver (written or not)
   */
  deliver(eventq: SplitVirtqueue): number {
    let returned = 0;
    while (this._pending.length > 0) {
      const chain = eventq.pop();
      if (chain === 'empty') break;
      if ('malformed' in chain) {
        if (chain.head < 0) break; // a broken ring: the device sets NEEDS_RESET
        eventq.push(chain.head, 0);
        returned++;
        continue;
      }
      if (chain.writableLength < VirtioIommuFault.size) {
        eventq.push(chain.head, 0);
        returned++;
        continue;
      }
      const f = this._pending.shift()!;
      VirtioIommuFault.encode({ reason: f.reason, flags: f.flags, endpoint: f.endpoint, reserved1: 0, address: f.address }, this._record);
      // Bytes 1..3 (reserved[3]) belong to no codec field: zero them explicitly.
      this._record[1] = 0;
      this._record[2] = 0;
      this._record[3] = 0;
      eventq.push(chain.head, chain.write(0, this._record));
      this._delivered++;
      returned++;
    }
    return returned;
  }

  /** Records waiting for a buffer. */
  get pending(): readonly FaultRecord[] {
    return this._pending;
  }

  /** Records written into eventq buffers. */
  get delivered(): number {
    return this._delivered;
  }

  /** Records dropped because too many were waiting. */
  get dropped(): number {
    return this._dropped;
  }

  /** Drops every waiting record (device reset). */
  clear(): void {
    this._pending = [];
  }
}
