/**
 * Process.pageBytes (with AddressSpace.pageBytes and PhysMemory.pageData): the live 4 KiB data array of
 * the page holding an address, faulted in on demand, shared with readMemory/writeMemory, with mmap's
 * permissions, and EFAULT where nothing is mapped.
 */
import { Kernel, SysError } from '../../../index';
import { PhysMemory } from '../../../kernel-sim/mm/phys-mem';
import { codeOf } from '../../helpers/expect-sys-error';

function proc() {
  const kernel = new Kernel({ machine: 'x86-vtd', devices: [] });
  return { kernel, p: kernel.spawn() };
}

describe('Process.pageBytes', () => {
  test('returns the page\'s 4096 live bytes: writes through it show in readMemory, writeMemory shows in it', () => {
    const { p } = proc();
    const va = p.mmap(3 * 4096);
    const page = p.pageBytes(va + 4096n + 123n, true);
    expect(page.length).toBe(4096);
    page[5] = 0xab;
    expect(Array.from(p.readMemory(va + 4096n + 5n, 1))).toEqual([0xab]);
    p.writeMemory(va + 4096n + 4094n, Uint8Array.of(1, 2, 3, 4)); // straddles into the next page
    expect([page[4094], page[4095]]).toEqual([1, 2]);
    expect(Array.from(p.pageBytes(va + 8192n, false).subarray(0, 2))).toEqual([3, 4]);
  });

  test('repeated calls for any address in the page return the same array; other pages get other arrays', () => {
    const { p } = proc();
    const va = p.mmap(2 * 4096);
    const a = p.pageBytes(va, true);
    expect(p.pageBytes(va + 4095n, false)).toBe(a);
    expect(p.pageBytes(va + 4096n, true)).not.toBe(a);
  });

  test('faults the page in once: one frame, zero-filled', () => {
    const { kernel, p } = proc();
    const va = p.mmap(16 * 4096);
    const before = kernel.phys.stats().anonFramesInUse;
    const page = p.pageBytes(va + 7n * 4096n, false);
    p.pageBytes(va + 7n * 4096n, true);
    expect(kernel.phys.stats().anonFramesInUse).toBe(before + 1);
    expect(p.mm.residentPages()).toBe(1);
    expect(page.every((b) => b === 0)).toBe(true);
  });

  test('pages of a 2 MiB hugetlb mapping are distinct 4 KiB arrays of one folio', () => {
    const { kernel, p } = proc();
    const va = p.mmap(2n << 20n, { pageSize: '2M' });
    const first = p.pageBytes(va, true);
    const second = p.pageBytes(va + 4096n, true);
    expect(second).not.toBe(first);
    first[0] = 1;
    second[0] = 2;
    expect(Array.from(p.readMemory(va, 1))).toEqual([1]);
    expect(Array.from(p.readMemory(va + 4096n, 1))).toEqual([2]);
    expect(kernel.phys.stats().hugeFoliosInUse).toBe(1);
  });

  test.each([
    ['an unmapped address, read', 'unmapped', false],
    ['an unmapped address, write', 'unmapped', true],
    ['a PROT_NONE mapping, read', 'none', false],
    ['a read-only mapping, write', 'r', true],
  ] as const)('%s is EFAULT, named as a process_vm access', (_name, kind, write) => {
    const { p } = proc();
    const va = kind === 'unmapped' ? 0x1000n : p.mmap(4096, { prot: kind });
    let err: unknown;
    try {
      p.pageBytes(va, write);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe('EFAULT');
    expect((err as SysError).syscall).toBe(write ? 'process_vm_writev' : 'process_vm_readv');
  });

  test('a read-only mapping gives its bytes for reading', () => {
    const { p } = proc();
    const va = p.mmap(4096, { prot: 'r' });
    expect(p.pageBytes(va, false).length).toBe(4096);
  });

  test('after munmap the address is EFAULT again', () => {
    const { p } = proc();
    const va = p.mmap(4096);
    p.pageBytes(va, true)[0] = 9;
    p.munmap(va, 4096);
    expect(codeOf(() => p.pageBytes(va, false))).toBe('EFAULT');
  });
});

describe('PhysMemory.pageData', () => {
  test('creates a zeroed page on first use and returns the same array after', () => {
    const phys = new PhysMemory({ anonBytes: 1n << 24n });
    const pfn = phys.allocAnon();
    expect(phys.stats().pagesWithData).toBe(0);
    const page = phys.pageData(pfn);
    expect(page.length).toBe(4096);
    expect(page.every((b) => b === 0)).toBe(true);
    expect(phys.pageData(pfn)).toBe(page);
    expect(phys.stats().pagesWithData).toBe(1);
    phys.release(pfn);
  });

  test('is the array read and write use, both ways', () => {
    const phys = new PhysMemory({ anonBytes: 1n << 24n });
    const pfn = phys.allocAnon();
    phys.write(pfn, 10, Uint8Array.of(7, 8), 0, 2);
    const page = phys.pageData(pfn);
    expect([page[10], page[11]]).toEqual([7, 8]);
    page[100] = 0x55;
    const out = new Uint8Array(1);
    phys.read(pfn, 100, out, 0, 1);
    expect(out[0]).toBe(0x55);
    phys.release(pfn);
  });

  test('the data goes with the frame: a reused frame starts zeroed', () => {
    const phys = new PhysMemory({ anonBytes: 1n << 24n });
    const pfn = phys.allocAnon();
    phys.pageData(pfn).fill(0xff);
    phys.release(pfn);
    expect(phys.stats().pagesWithData).toBe(0);
    const again = phys.allocAnon();
    expect(again).toBe(pfn); // freed frames are reused first
    expect(phys.pageData(again).every((b) => b === 0)).toBe(true);
    phys.release(again);
  });
});
