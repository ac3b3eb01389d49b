/**
 * The DMA fault log: a ring of recent records numbered by a running sequence.
 */
import { DmaFaultLog, type DmaFaultRecord } from '../../../kernel-sim/dma';
import { Kernel } from '../../../index';

const fault = (n: number): DmaFaultRecord => ({ bdf: '0000:00:01.0', group: 1, iova: BigInt(n), access: 'read', reason: 'unmapped' });

test('since(seq) returns what came after seq, oldest first, and count is the newest sequence number', () => {
  const log = new DmaFaultLog(4);
  for (let n = 1; n <= 3; n++) log.record(fault(n));
  expect(log.count).toBe(3);
  expect(log.since(1).map((r) => r.iova)).toEqual([2n, 3n]);
  expect(log.since(3)).toEqual([]);
});

test('the ring keeps the last `capacity` records; older ones are gone from since() and records()', () => {
  const log = new DmaFaultLog(4);
  for (let n = 1; n <= 10; n++) log.record(fault(n));
  expect(log.records().map((r) => r.iova)).toEqual([7n, 8n, 9n, 10n]);
  expect(log.since(2).map((r) => r.iova)).toEqual([7n, 8n, 9n, 10n]);
  expect(log.since(8).map((r) => r.iova)).toEqual([9n, 10n]);
});

test('clear() forgets the records held but the sequence goes on', () => {
  const log = new DmaFaultLog(4);
  log.record(fault(1));
  log.clear();
  expect(log.records()).toEqual([]);
  log.record(fault(2));
  expect([log.count, log.since(0).map((r) => r.iova)]).toEqual([2, [2n]]);
});

test('the kernel answers the sysfs-like questions: a device\'s IOMMU group and its reserved regions', () => {
  const kernel = new Kernel({ machine: 'arm-smmuv3', devices: [{ bdf: '0000:03:00.0', group: 7 }] });
  expect(kernel.iommuGroupOf('0000:03:00.0')).toBe(7);
  expect(kernel.reservedRegionsOf('0000:03:00.0')).toEqual([{ start: 0x8000000n, last: 0x80fffffn, type: 'sw-msi' }]);
  expect(() => kernel.iommuGroupOf('0000:09:00.0')).toThrow(RangeError);
});
