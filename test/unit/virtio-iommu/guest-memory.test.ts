/**
 * GuestMemory: guest RAM as a region of the VMM process (GPA g at hva + g), little-endian typed access,
 * copies across page boundaries, live page views shared with the process's memory, range checks, and
 * EFAULT for RAM the VMM did not map.
 */
import { Kernel, SysError } from '../../../index';
import { GuestMemory } from '../../../virtio-iommu/guest-memory';

function ramOf(size: bigint, skew = 0n) {
  const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
  const proc = kernel.spawn();
  const hva = proc.mmap(size + 4096n) + skew;
  return { kernel, proc, hva, mem: new GuestMemory(proc, hva, size) };
}

describe.each([0n, 1n, 6n])('GuestMemory with hva at page offset %d', (skew) => {
  test('u16/u32/u64 round trips are little-endian at hva + gpa', () => {
    const { proc, hva, mem } = ramOf(1n << 16n, skew);
    mem.writeU16(0x100, 0xbeef);
    mem.writeU32(0x102, 0xdeadbeef);
    mem.writeU64(0x106, 0x8000_0000_0000_0001n);
    expect(Array.from(proc.readMemory(hva + 0x100n, 6))).toEqual([0xef, 0xbe, 0xef, 0xbe, 0xad, 0xde]);
    expect(mem.readU16(0x100)).toBe(0xbeef);
    expect(mem.readU32(0x102)).toBe(0xdeadbeef);
    expect(mem.readU64(0x106)).toBe(0x8000_0000_0000_0001n);
  });

  test.each([4095, 4094, 4093, 4090])('typed accesses straddling a page boundary at gpa %d read back what was written', (gpa) => {
    const { proc, hva, mem } = ramOf(1n << 16n, skew);
    mem.writeU64(gpa, 0x0102_0304_0506_0708n);
    expect(mem.readU64(gpa)).toBe(0x0102_0304_0506_0708n);
    expect(Array.from(proc.readMemory(hva + BigInt(gpa), 8))).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    mem.writeU32(gpa, 0xa1b2c3d4);
    expect(mem.readU32(gpa)).toBe(0xa1b2c3d4);
    mem.writeU16(gpa + 1, 0x1234);
    expect(mem.readU16(gpa + 1)).toBe(0x1234);
  });

  test('read and write copy across several pages, from and into any offset of a buffer', () => {
    const { proc, hva, mem } = ramOf(1n << 16n, skew);
    const src = Uint8Array.from({ length: 10000 }, (_, i) => (i * 31 + 7) & 0xff);
    mem.write(4000, src, 3, 9000);
    expect(proc.readMemory(hva + 4000n, 9000)).toEqual(src.subarray(3, 9003));
    const out = new Uint8Array(9010).fill(0xee);
    mem.read(4000, out, 5, 9000);
    expect(out.subarray(5, 9005)).toEqual(src.subarray(3, 9003));
    expect([out[4], out[9005]]).toEqual([0xee, 0xee]);
  });

  test('small copies (word and byte paths) at every alignment land exactly', () => {
    const { proc, hva, mem } = ramOf(1n << 16n, skew);
    const backing = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
    for (let srcOff = 0; srcOff < 4; srcOff++) {
      for (let gpa = 0x200; gpa < 0x204; gpa++) {
        mem.fill(0x1f0, 0x40, 0);
        mem.write(gpa, backing.subarray(srcOff), 0, 37);
        const got = proc.readMemory(hva + 0x1f0n, 0x40);
        const want = new Uint8Array(0x40);
        want.set(backing.subarray(srcOff, srcOff + 37), gpa - 0x1f0);
        expect(got).toEqual(want);
        const back = new Uint8Array(37);
        mem.read(gpa, back);
        expect(back).toEqual(backing.subarray(srcOff, srcOff + 37));
      }
    }
  });

  test('fill sets exactly the range', () => {
    const { proc, hva, mem } = ramOf(1n << 16n, skew);
    mem.fill(4090, 12, 0x5a);
    expect(Array.from(proc.readMemory(hva + 4089n, 14))).toEqual([0, ...new Array<number>(12).fill(0x5a), 0]);
  });

  test('the process writing its memory and guest accesses see the same bytes (live page views)', () => {
    const { proc, hva, mem } = ramOf(1n << 16n, skew);
    expect(mem.readU32(0x3000)).toBe(0); // caches the page's view
    proc.writeMemory(hva + 0x3000n, Uint8Array.of(1, 2, 3, 4));
    expect(mem.readU32(0x3000)).toBe(0x04030201);
    mem.writeU16(0x3002, 0xffff);
    expect(Array.from(proc.readMemory(hva + 0x3000n, 4))).toEqual([1, 2, 0xff, 0xff]);
  });

  test('pageOf/pageOffset/pageWordsOf view the page holding a GPA', () => {
    const { mem } = ramOf(1n << 16n, skew);
    mem.writeU32(0x2008, 0x11223344);
    const page = mem.pageOf(0x2008);
    const o = mem.pageOffset(0x2008);
    expect(o).toBe(Number((0x2008n + skew) % 4096n));
    expect(Array.from(page.subarray(o, o + 4))).toEqual([0x44, 0x33, 0x22, 0x11]);
    const words = mem.pageWordsOf(0x2008);
    expect(words.length).toBe(1024);
    if (o % 4 === 0) expect(words[o / 4]).toBe(0x11223344);
    words[0] = 0xa0b0c0d0;
    expect(Array.from(page.subarray(0, 4))).toEqual([0xd0, 0xc0, 0xb0, 0xa0]);
  });
});

describe('GuestMemory range checks', () => {
  test('contains() is exact at both ends and false for negative, fractional and NaN input', () => {
    const { mem } = ramOf(0x10000n);
    expect(mem.size).toBe(0x10000);
    expect(mem.contains(0, 0x10000)).toBe(true);
    expect(mem.contains(0x10000, 0)).toBe(true);
    expect(mem.contains(0xffff, 2)).toBe(false);
    expect(mem.contains(-1, 1)).toBe(false);
    expect(mem.contains(0.5, 1)).toBe(false);
    expect(mem.contains(Number.NaN, 1)).toBe(false);
    expect(mem.contains(0, -1)).toBe(false);
    expect(mem.contains(2 ** 53, 0)).toBe(false);
  });

  test.each([
    ['readU16 at the last byte', (m: GuestMemory) => m.readU16(0xffff)],
    ['readU32 past the end', (m: GuestMemory) => m.readU32(0xfffd)],
    ['readU64 at a negative GPA', (m: GuestMemory) => m.readU64(-8)],
    ['writeU32 at a fractional GPA', (m: GuestMemory) => m.writeU32(1.5, 0)],
    ['read running past the end', (m: GuestMemory) => m.read(0xfff0, new Uint8Array(17))],
    ['write running past the end', (m: GuestMemory) => m.write(0x10000, new Uint8Array(1))],
    ['read into a buffer too short', (m: GuestMemory) => m.read(0, new Uint8Array(4), 2, 3)],
    ['fill past the end', (m: GuestMemory) => m.fill(0xffff, 2)],
    ['pageOf outside', (m: GuestMemory) => m.pageOf(0x10000)],
  ])('%s throws RangeError and touches nothing', (_name, access) => {
    const { proc, hva, mem } = ramOf(0x10000n);
    expect(() => access(mem)).toThrow(RangeError);
    expect(proc.readMemory(hva + 0xff00n, 0x100).every((b) => b === 0)).toBe(true);
  });

  test('readU64Number is exact below 2^53 and at least 2^53 above', () => {
    const { mem } = ramOf(0x10000n);
    mem.writeU64(0, 0x1f_ffff_ffff_ffffn);
    expect(mem.readU64Number(0)).toBe(2 ** 53 - 1);
    mem.writeU64(8, 0xffff_ffff_ffff_ffffn);
    expect(mem.readU64Number(8)).toBeGreaterThanOrEqual(2 ** 53);
    mem.writeU64(16, 1n << 53n);
    expect(mem.readU64Number(16)).toBe(2 ** 53);
  });

  test('construction faults nothing in; the first access faults in one page', () => {
    const { kernel, proc } = ramOf(0x10000n);
    const hva = proc.mmap(1n << 30n);
    const before = kernel.phys.stats().anonFramesInUse;
    const mem = new GuestMemory(proc, hva, 1n << 30n);
    expect(kernel.phys.stats().anonFramesInUse).toBe(before);
    mem.readU16(0x3fff_0000);
    expect(kernel.phys.stats().anonFramesInUse).toBe(before + 1);
  });

  test('guest RAM the VMM did not map is EFAULT on first access', () => {
    const { proc } = ramOf(0x1000n);
    const hva = proc.mmap(0x4000);
    proc.munmap(hva + 0x2000n, 0x1000);
    const mem = new GuestMemory(proc, hva, 0x4000n);
    expect(mem.readU32(0x1000)).toBe(0);
    let err: unknown;
    try {
      mem.readU32(0x2004);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe('EFAULT');
  });

  test('bad sizes and regions are refused at construction', () => {
    const { proc, hva } = ramOf(0x1000n);
    expect(() => new GuestMemory(proc, hva, 0n)).toThrow(RangeError);
    expect(() => new GuestMemory(proc, hva, 1n << 44n)).toThrow(RangeError);
    expect(() => new GuestMemory(proc, (1n << 64n) - 4096n, 8192n)).toThrow(RangeError);
  });

  test('hvaOf maps a GPA to hva + gpa', () => {
    const { hva, mem } = ramOf(0x1000n, 5n);
    expect(mem.hvaOf(0x123)).toBe(hva + 0x123n);
  });
});
