/**
 * The fast paths of the virtqueue pair: request slots (VirtqueueDriver slotBytes / addRequest), reaping
 * into a caller buffer without entry objects (reapInto), the device's reused chain object
 * (SplitVirtqueueOptions.reuseChain), MappingTree.removeExact, and the driver model's mapNoSync.
 * Each fast path must put exactly what the general path puts on the ring.
 */
import { GuestMemory, Kernel, VirtioIommuDevice, VirtioIommuDriver, uapi } from '../../../index';
import { MappingTree } from '../../../virtio-iommu/mapping-tree';
import { SplitVirtqueue, type DescriptorChain, type PopResult } from '../../../virtio-iommu/split-virtqueue';
import { VirtqueueDriver } from '../../../virtio-iommu/virtqueue-driver';
import { snapshot } from '../../helpers/virtqueue-world';

const { VIRTQ_DESC_F_NEXT: NEXT, VIRTQ_DESC_F_WRITE: WRITE, VIRTQ_DESC_F_INDIRECT: INDIRECT } = uapi;

function chainOf(r: PopResult): DescriptorChain {
  if (r === 'empty' || 'malformed' in r) throw new Error(`expected a chain, got ${JSON.stringify(r)}`);
  return r;
}

function guestRam(bytes = 1 << 20): GuestMemory {
  const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
  const proc = kernel.spawn({ name: 'vmm' });
  const hva = proc.mmap(bytes);
  return new GuestMemory(proc, hva, BigInt(bytes));
}

function descAt(mem: GuestMemory, gpa: number) {
  const d = uapi.VirtqDesc.decode(snapshot(mem, gpa, 16));
  return { addr: Number(d.addr), len: d.len, flags: d.flags, next: d.next };
}

/** A 36-byte readable request (as MAP's) given as words, with recognisable bytes. */
function request(): { words: Uint32Array; bytes: Uint8Array } {
  const bytes = new Uint8Array(40);
  for (let i = 0; i < 36; i++) bytes[i] = i + 1;
  return { words: new Uint32Array(bytes.buffer), bytes };
}

describe('request slots', () => {
  test.each([
    { indirect: true, eventIdx: false },
    { indirect: false, eventIdx: true },
    { indirect: true, eventIdx: true },
    { indirect: false, eventIdx: false },
  ])('addRequest lays a request out in its head slot and round-trips through the device (%o)', (features) => {
    const mem = guestRam();
    const drv = new VirtqueueDriver(mem, 0x1000, 16, features, { dataBytes: 0x1000, slotBytes: 128 });
    const dev = new SplitVirtqueue(mem, drv.config, features);
    const { words, bytes } = request();
    const free = drv.freeDescriptors;
    const head = drv.addRequest(words, 36, 4, features.indirect);
    // Slots start at the next GPA whose page offset is a multiple of the slot size (hva is page-aligned).
    const slotBase = Math.ceil((drv.dataStart + 0x1000) / 128) * 128;
    const ring = descAt(mem, drv.config.desc + 16 * head);
    if (features.indirect) {
      expect(ring).toEqual({ addr: slotBase + 128 * head, len: 32, flags: INDIRECT, next: 0 });
      expect(descAt(mem, ring.addr)).toEqual({ addr: ring.addr + 32, len: 36, flags: NEXT, next: 1 });
      expect(descAt(mem, ring.addr + 16)).toEqual({ addr: ring.addr + 68, len: 4, flags: WRITE, next: 0 });
    } else {
      expect(ring.flags).toBe(NEXT);
      expect(ring).toMatchObject({ addr: slotBase + 128 * head, len: 36 });
      expect(descAt(mem, drv.config.desc + 16 * ring.next)).toEqual({ addr: slotBase + 128 * head + 36, len: 4, flags: WRITE, next: 0 });
    }
    expect(drv.freeDescriptors).toBe(free - (features.indirect ? 1 : 2));
    expect(drv.kick()).toBe(true);
    const chain = chainOf(dev.pop());
    expect(chain.head).toBe(head);
    expect([...chain.readable]).toEqual([...bytes.subarray(0, 36)]);
    expect(chain.writableLength).toBe(4);
    expect(chain.write(0, new Uint8Array([7, 8, 9, 10]))).toBe(4);
    dev.push(chain.head, 4);
    const out = new Uint8Array(4);
    expect(drv.reapInto(out)).toBe(4);
    expect(drv.reapedHead).toBe(head);
    expect([...out]).toEqual([7, 8, 9, 10]);
    expect(drv.reapInto(out)).toBe(-1);
    expect(drv.freeDescriptors).toBe(free);
    expect(drv.inFlight).toBe(0);
  });

  test('the slot region follows the buffer area (slot-aligned in its page) and moves end; without slots the layout is unchanged', () => {
    const mem = guestRam();
    const plain = new VirtqueueDriver(mem, 0x1000, 16, { indirect: true, eventIdx: false }, { dataBytes: 0x1000 });
    const slotted = new VirtqueueDriver(mem, 0x1000, 16, { indirect: true, eventIdx: false }, { dataBytes: 0x1000, slotBytes: 256 });
    expect(slotted.config).toEqual(plain.config);
    expect(slotted.dataStart).toBe(plain.dataStart);
    expect(plain.end).toBe(plain.dataStart + 0x1000);
    expect(slotted.end).toBe(Math.ceil((plain.dataStart + 0x1000) / 256) * 256 + 16 * 256);
  });

  test('a request larger than a slot goes through add() and the buffer area, with the same chain', () => {
    const mem = guestRam();
    const drv = new VirtqueueDriver(mem, 0x1000, 16, { indirect: true, eventIdx: false }, { dataBytes: 0x1000, slotBytes: 64 });
    const dev = new SplitVirtqueue(mem, drv.config, { indirect: true, eventIdx: false });
    const { words, bytes } = request();
    const head = drv.addRequest(words, 36, 4, true);
    expect(descAt(mem, drv.config.desc + 16 * head).addr).toBe(drv.dataStart);
    const chain = chainOf(dev.pop());
    expect([...chain.readable]).toEqual([...bytes.subarray(0, 36)]);
    chain.write(0, new Uint8Array([1, 0, 0, 0]));
    dev.push(chain.head, 4);
    const out = new Uint8Array(4);
    expect(drv.reapInto(out)).toBe(4);
    expect(out[0]).toBe(1);
    expect(drv.freeDescriptors).toBe(16);
  });

  test.each([32, 100, 8192])('slotBytes %d is refused', (slotBytes) => {
    const mem = guestRam();
    expect(() => new VirtqueueDriver(mem, 0x1000, 16, { indirect: true, eventIdx: false }, { slotBytes })).toThrow(RangeError);
  });
});

describe('device fast paths', () => {
  test('reuseChain: every pop returns the same object, describing the new chain', () => {
    const mem = guestRam();
    const drv = new VirtqueueDriver(mem, 0x1000, 16, { indirect: false, eventIdx: false }, { dataBytes: 0x1000, slotBytes: 128 });
    const dev = new SplitVirtqueue(mem, drv.config, { indirect: false, eventIdx: false }, { reuseChain: true });
    const { words } = request();
    const h1 = drv.addRequest(words, 36, 4, false);
    const h2 = drv.addRequest(words, 28, 4, false);
    const a = chainOf(dev.pop());
    expect([a.head, a.readable.length]).toEqual([h1, 36]);
    dev.push(a.head, 0);
    const b = chainOf(dev.pop());
    expect(b).toBe(a);
    expect([b.head, b.readable.length]).toEqual([h2, 28]);
  });

  test('MappingTree.removeExact removes only a mapping with that start and size', () => {
    const t = new MappingTree();
    t.insert({ start: 0x1000n, end: 0x3000n, size: 0x2000n, phys: 0n, flags: 3 });
    expect(t.removeExact(0x1000n, 0x1000n)).toBe(false);
    expect(t.removeExact(0x2000n, 0x1000n)).toBe(false);
    expect(t.size).toBe(1);
    expect(t.removeExact(0x1000n, 0x2000n)).toBe(true);
    expect(t.size).toBe(0);
  });
});

describe('driver model', () => {
  test('mapNoSync queues MAPs without a kick; the next sync sends them all in one', () => {
    const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
    const vmm = kernel.spawn({ memlockLimit: 1n << 40n });
    const ram = 16 << 20;
    const hva = vmm.mmap(ram);
    const device = new VirtioIommuDevice(vmm, { guestRam: { hva, size: BigInt(ram) }, endpoints: [{ id: 0x10, kind: 'emulated' }], options: { bootBypass: false } });
    const guest = new VirtioIommuDriver(device, new GuestMemory(vmm, hva, BigInt(ram)), { base: 1 << 20, mode: 'lazy' });
    guest.init();
    const d = guest.createDomain();
    guest.attach(d, 0x10);
    const rw = uapi.VIRTIO_IOMMU_MAP_F_READ | uapi.VIRTIO_IOMMU_MAP_F_WRITE;
    const kicks = guest.stats.kicks;
    for (let i = 0n; i < 4n; i++) guest.mapNoSync(d, 0x10_0000n + i * 0x1000n, 0x40_0000n, 0x1000n, rw);
    expect(guest.stats.kicks).toBe(kicks);
    expect(device.debugState().domains[0]!.mappings).toEqual([]);
    guest.sync();
    expect(guest.stats.kicks).toBe(kicks + 1);
    expect(guest.stats.failedRequests).toBe(0);
    expect(device.debugState().domains[0]!.mappings.map((m) => m.start)).toEqual([0x10_0000n, 0x10_1000n, 0x10_2000n, 0x10_3000n]);
  });
});
