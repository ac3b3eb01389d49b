/**
 * AddressSpace: mmap placement, demand faulting, munmap splitting, the EFAULT rules of user copies and
 * pinning, pinned runs and batches, pins outliving munmap and exit, and locked_vm accounting.
 */
import { SimBugError } from '../../../../kernel-sim/errors';
import { FaultInjector } from '../../../../kernel-sim/fault-injector';
import { AddressSpace, PIN_BATCH_RUNS, PROT_NONE, PROT_READ, PROT_WRITE } from '../../../../kernel-sim/mm/address-space';
import { PhysMemory } from '../../../../kernel-sim/mm/phys-mem';
import { codeOf } from '../../../helpers/expect-sys-error';

const RW = PROT_READ | PROT_WRITE;

function world(): { phys: PhysMemory; faults: FaultInjector; mm: AddressSpace } {
  const phys = new PhysMemory();
  const faults = new FaultInjector();
  return { phys, faults, mm: new AddressSpace(phys, faults) };
}

/** Pins and records every run handed over, batch by batch. */
function pinAll(mm: AddressSpace, vpfn: number, pages: number, write = true): { batches: [number, number][][]; pages: number } {
  const batches: [number, number][][] = [];
  let total = 0;
  mm.pin(vpfn, pages, write, (runs) => {
    const batch: [number, number][] = [];
    for (let i = 0; i < runs.length; i++) batch.push([runs.pfn[i]!, runs.count[i]!]);
    batches.push(batch);
    total += runs.pages;
  });
  return { batches, pages: total };
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

describe('mmap', () => {
  test('mappings start 2 MiB aligned (1 GiB for 1 GiB pages) and never overlap', () => {
    const { mm } = world();
    const a = mm.mmap(1, 0, RW, 'anon');
    const b = mm.mmap(3, 0, RW, 'anon');
    const c = mm.mmap(512, 9, RW, 'hugetlb');
    const d = mm.mmap(1, 18, RW, 'hugetlb');
    for (const vpfn of [a, b, c]) expect(vpfn % 512).toBe(0);
    expect(d % 2 ** 18).toBe(0);
    expect(a < b && b < c && c < d).toBe(true);
    expect(mm.findVma(a)).toMatchObject({ startVpfn: a, pageCount: 1, kind: 'anon', order: 0 });
    expect(mm.findVma(a + 1)).toBeUndefined();
    // A hugetlb length is rounded up to whole pages of its size.
    expect(mm.findVma(d)).toMatchObject({ startVpfn: d, pageCount: 2 ** 18, kind: 'hugetlb', order: 18 });
  });

  test('a zero length is EINVAL; a hugetlb pool that cannot back the mapping is ENOMEM at mmap time', () => {
    const phys = new PhysMemory({ hugeBytes: 4n << 20n });
    const mm = new AddressSpace(phys, new FaultInjector());
    expect(codeOf(() => mm.mmap(0, 0, RW, 'anon'))).toBe('EINVAL');
    expect(codeOf(() => mm.mmap(3 * 512, 9, RW, 'hugetlb'))).toBe('ENOMEM');
    expect(mm.mmap(2 * 512, 9, RW, 'hugetlb') % 512).toBe(0);
  });

  test('pages are faulted in on first touch only, anonymous ones from scattered frames', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(64, 0, RW, 'anon');
    expect(mm.residentPages()).toBe(0);
    const frames = Array.from({ length: 64 }, (_, i) => mm.resolve(vpfn + i, false));
    expect(mm.residentPages()).toBe(64);
    expect(phys.stats().anonFramesInUse).toBe(64);
    expect(mm.resolve(vpfn + 5, true)).toBe(frames[5]);
    let adjacent = 0;
    for (let i = 1; i < frames.length; i++) if (frames[i] === frames[i - 1]! + 1) adjacent++;
    expect(adjacent).toBeLessThan(4);
  });

  test('a hugetlb page is one naturally aligned folio: offsets inside it are physically contiguous', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(512, 9, RW, 'hugetlb');
    const head = mm.resolve(vpfn, false);
    expect(head % 512).toBe(0);
    expect(mm.resolve(vpfn + 300, false)).toBe(head + 300);
    expect(mm.residentPages()).toBe(512);
    expect(phys.stats()).toMatchObject({ hugeFoliosInUse: 1, anonFramesInUse: 0 });
  });
});

describe('munmap', () => {
  test('unmapping the middle of a mapping splits it in two; the pages left keep their frames and bytes', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(16, 0, RW, 'anon');
    for (let i = 0; i < 16; i++) mm.write(vpfn + i, 100, bytes(8, i));
    const frames = Array.from({ length: 16 }, (_, i) => mm.resolve(vpfn + i, false));
    mm.munmap(vpfn + 4, 4);
    expect(mm.findVma(vpfn)).toMatchObject({ startVpfn: vpfn, pageCount: 4 });
    expect(mm.findVma(vpfn + 8)).toMatchObject({ startVpfn: vpfn + 8, pageCount: 8 });
    for (let i = 4; i < 8; i++) {
      expect(mm.findVma(vpfn + i)).toBeUndefined();
      expect(phys.refCount(frames[i]!)).toBe(0);
      expect(codeOf(() => mm.resolve(vpfn + i, false))).toBe('EFAULT');
    }
    expect(phys.stats().anonFramesInUse).toBe(12);
    for (const i of [0, 3, 8, 15]) {
      expect(mm.resolve(vpfn + i, false)).toBe(frames[i]);
      const out = new Uint8Array(8);
      mm.read(vpfn + i, 100, out);
      expect(out).toEqual(bytes(8, i));
    }
  });

  test('one munmap may cover several mappings and the holes between them', () => {
    const { phys, mm } = world();
    const a = mm.mmap(4, 0, RW, 'anon');
    const b = mm.mmap(4, 0, RW, 'anon');
    for (const vpfn of [a, b]) for (let i = 0; i < 4; i++) mm.resolve(vpfn + i, true);
    mm.munmap(a + 2, b + 2 - (a + 2));
    expect(mm.findVma(a)).toMatchObject({ pageCount: 2 });
    expect(mm.findVma(b + 2)).toMatchObject({ startVpfn: b + 2, pageCount: 2 });
    expect(mm.findVma(b)).toBeUndefined();
    expect(phys.stats().anonFramesInUse).toBe(4);
  });

  test('cutting a hugetlb mapping off a page boundary is EINVAL and changes nothing, not even other mappings', () => {
    const { phys, mm } = world();
    const anon = mm.mmap(4, 0, RW, 'anon');
    const huge = mm.mmap(1024, 9, RW, 'hugetlb');
    mm.resolve(anon, true);
    mm.resolve(huge, true);
    expect(codeOf(() => mm.munmap(anon, huge + 100 - anon))).toBe('EINVAL');
    expect(codeOf(() => mm.munmap(huge + 1, 511))).toBe('EINVAL');
    expect(mm.findVma(anon)).toBeDefined();
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 1, hugeFoliosInUse: 1 });
    // On a page boundary it splits like any mapping.
    mm.munmap(huge + 512, 512);
    expect(mm.findVma(huge)).toMatchObject({ pageCount: 512 });
    expect(mm.findVma(huge + 512)).toBeUndefined();
  });
});

describe('user copies (EFAULT rules)', () => {
  test('reads and writes cross page boundaries', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(4, 0, RW, 'anon');
    const data = bytes(10000, 3);
    mm.write(vpfn, 4000, data);
    const out = new Uint8Array(10000);
    mm.read(vpfn, 4000, out);
    expect(out).toEqual(data);
    // Bytes 4000 .. 13999 touch pages 0, 1, 2 and 3.
    expect(phys.stats().pagesWithData).toBe(4);
    const tail = new Uint8Array(4);
    mm.read(vpfn + 3, 1708, tail);
    expect(tail).toEqual(data.subarray(9996, 10000));
  });

  test('an access to an unmapped address is EFAULT', () => {
    const { mm } = world();
    const vpfn = mm.mmap(1, 0, RW, 'anon');
    expect(codeOf(() => mm.read(vpfn + 1, 0, new Uint8Array(1)))).toBe('EFAULT');
    expect(codeOf(() => mm.write(vpfn - 1, 0, new Uint8Array(1)))).toBe('EFAULT');
    expect(codeOf(() => mm.resolve(vpfn + 1, false))).toBe('EFAULT');
  });

  test('a copy that runs into an unmapped page fails whole: nothing of it is written', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(1, 0, RW, 'anon');
    expect(codeOf(() => mm.write(vpfn, 4000, bytes(200, 1)))).toBe('EFAULT');
    const out = new Uint8Array(96);
    mm.read(vpfn, 4000, out);
    expect(out.every((b) => b === 0)).toBe(true);
    expect(phys.stats().pagesWithData).toBe(0);
  });

  test('PROT_READ allows reads only; PROT_NONE allows nothing', () => {
    const { mm } = world();
    const ro = mm.mmap(1, 0, PROT_READ, 'anon');
    const none = mm.mmap(1, 0, PROT_NONE, 'anon');
    expect(codeOf(() => mm.read(ro, 0, new Uint8Array(4)))).toBeUndefined();
    expect(codeOf(() => mm.write(ro, 0, new Uint8Array(4)))).toBe('EFAULT');
    expect(codeOf(() => mm.resolve(ro, true))).toBe('EFAULT');
    expect(codeOf(() => mm.read(none, 0, new Uint8Array(4)))).toBe('EFAULT');
    expect(codeOf(() => mm.resolve(none, false))).toBe('EFAULT');
  });
});

describe('pinning', () => {
  test('anonymous memory pins as scattered single-page runs; each pinned page takes one reference', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(256, 0, RW, 'anon');
    const { batches, pages } = pinAll(mm, vpfn, 256);
    expect(pages).toBe(256);
    expect(batches).toHaveLength(1);
    const runs = batches[0]!;
    expect(runs.length).toBeGreaterThan(250);
    expect(runs.reduce((sum, [, n]) => sum + n, 0)).toBe(256);
    // The runs follow the virtual order: run i starts at the frame of the page it covers.
    let at = vpfn;
    for (const [pfn, n] of runs) {
      expect(mm.resolve(at, false)).toBe(pfn);
      at += n;
    }
    expect(phys.stats().pinnedPages).toBe(256);
    expect(phys.refCount(runs[0]![0])).toBe(2);
  });

  test('a 2 MiB hugetlb page pins as one run of 512; any part of a 1 GiB page pins as one run', () => {
    const { phys, mm } = world();
    const huge = mm.mmap(512, 9, RW, 'hugetlb');
    expect(pinAll(mm, huge, 512).batches).toEqual([[[mm.resolve(huge, false), 512]]]);
    const giant = mm.mmap(2 ** 18, 18, RW, 'hugetlb');
    const head = mm.resolve(giant, false);
    expect(pinAll(mm, giant + 1000, 5000).batches).toEqual([[[head + 1000, 5000]]]);
    expect(phys.stats().pinnedPages).toBe(5512);
  });

  test('runs come in batches of at most PIN_BATCH_RUNS runs', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(2048, 0, RW, 'anon');
    const { batches, pages } = pinAll(mm, vpfn, 2048);
    expect(pages).toBe(2048);
    expect(batches.length).toBeGreaterThanOrEqual(4);
    for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(PIN_BATCH_RUNS);
    expect(batches.slice(0, -1).every((b) => b.length === PIN_BATCH_RUNS)).toBe(true);
    expect(phys.stats().pinnedPages).toBe(2048);
  });

  test('a visitor that throws gets its batch unpinned; batches it accepted before stay pinned', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(2048, 0, RW, 'anon');
    let seen = 0;
    let kept = 0;
    expect(() =>
      mm.pin(vpfn, 2048, true, (runs) => {
        if (++seen === 2) throw new Error('stop');
        kept += runs.pages;
      }),
    ).toThrow('stop');
    expect(seen).toBe(2);
    expect(kept).toBeGreaterThan(0);
    expect(phys.stats().pinnedPages).toBe(kept);
  });

  test('pinning stops with EFAULT at a hole or at a page without the permission asked; the pages before it were handed over', () => {
    const { phys, mm } = world();
    const a = mm.mmap(4, 0, RW, 'anon');
    const ro = mm.mmap(4, 0, PROT_READ, 'anon');
    // Hole: a + 4 is not mapped.
    let handed = 0;
    expect(codeOf(() => mm.pin(a, 8, false, (runs) => void (handed += runs.pages)))).toBe('EFAULT');
    expect(handed).toBe(4);
    expect(phys.stats().pinnedPages).toBe(4);
    // Write pin of a read-only mapping, read pin of it.
    expect(codeOf(() => mm.pin(ro, 4, true, () => undefined))).toBe('EFAULT');
    expect(codeOf(() => mm.pin(ro, 4, false, () => undefined))).toBeUndefined();
    expect(phys.stats().pinnedPages).toBe(8);
  });

  test('an injected pin failure ends the pinning with EFAULT after the allowed pages', () => {
    const { phys, faults, mm } = world();
    const vpfn = mm.mmap(8, 0, RW, 'anon');
    faults.failPinAfter(3);
    let handed = 0;
    expect(codeOf(() => mm.pin(vpfn, 8, true, (runs) => void (handed += runs.pages)))).toBe('EFAULT');
    expect(handed).toBe(3);
    expect(phys.stats().pinnedPages).toBe(3);
    // One-shot: the next pin succeeds.
    expect(pinAll(mm, vpfn, 8).pages).toBe(8);
  });

  test('pinned frames outlive munmap and exit; the last unpin frees them', () => {
    const { phys, mm } = world();
    const anon = mm.mmap(4, 0, RW, 'anon');
    const huge = mm.mmap(512, 9, RW, 'hugetlb');
    const anonRuns = pinAll(mm, anon, 4).batches.flat();
    const hugeRuns = pinAll(mm, huge, 512).batches.flat();
    mm.write(anon, 0, new Uint8Array([42]));
    mm.munmap(anon, 4);
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 4, pinnedPages: 516 });
    // The pinned page still holds what was written (a device may still DMA to it).
    const out = new Uint8Array(1);
    phys.read(anonRuns[0]![0], 0, out, 0, 1);
    expect(out[0]).toBe(42);
    mm.destroy();
    expect(mm.isDead).toBe(true);
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 4, hugeFoliosInUse: 1, pinnedPages: 516 });
    for (const [pfn, n] of [...anonRuns, ...hugeRuns]) phys.unpin(pfn, n);
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 0, hugeFoliosInUse: 0, pinnedPages: 0, pagesWithData: 0 });
  });

  test('destroy without pins frees every frame', () => {
    const { phys, mm } = world();
    const vpfn = mm.mmap(8, 0, RW, 'anon');
    mm.write(vpfn, 0, bytes(8 * 4096, 1));
    mm.resolve(mm.mmap(512, 9, RW, 'hugetlb'), false);
    mm.destroy();
    expect(phys.stats()).toMatchObject({ anonFramesInUse: 0, hugeFoliosInUse: 0, pagesWithData: 0 });
    expect(mm.residentPages()).toBe(0);
  });
});

describe('locked_vm', () => {
  test('charges add up to the limit inclusive; one page more is ENOMEM and charges nothing', () => {
    const { mm } = world();
    mm.accountLocked(6, 10);
    mm.accountLocked(4, 10);
    expect(mm.lockedVm).toBe(10);
    expect(codeOf(() => mm.accountLocked(1, 10))).toBe('ENOMEM');
    expect(mm.lockedVm).toBe(10);
    mm.unaccountLocked(3);
    expect(mm.lockedVm).toBe(7);
  });

  test('no limit (CAP_IPC_LOCK) still counts', () => {
    const { mm } = world();
    mm.accountLocked(1000, undefined);
    expect(mm.lockedVm).toBe(1000);
    // The count is shared: a limited charge afterwards sees it.
    expect(codeOf(() => mm.accountLocked(1, 1000))).toBe('ENOMEM');
  });

  test('returning more than was charged is a simulator bug', () => {
    const { mm } = world();
    mm.accountLocked(2, undefined);
    expect(() => mm.unaccountLocked(3)).toThrow(SimBugError);
    expect(mm.lockedVm).toBe(2);
  });

  test('after exit, unaccounting does nothing and charging is ENODEV', () => {
    const { mm } = world();
    mm.accountLocked(5, undefined);
    mm.destroy();
    mm.unaccountLocked(5);
    mm.unaccountLocked(500);
    expect(codeOf(() => mm.accountLocked(1, undefined))).toBe('ENODEV');
  });
});

describe('pinning takes references while scanning', () => {
  test('a fault-in that runs out of memory mid-scan gives back every reference it took, and hands nothing over', () => {
    // 16 frames of anonymous memory: the 17th page cannot be faulted in.
    const phys = new PhysMemory({ anonBytes: 16n * 4096n });
    const mm = new AddressSpace(phys, new FaultInjector());
    const vpfn = mm.mmap(32, 0, PROT_READ | PROT_WRITE, 'anon');
    let visited = 0;
    expect(() => mm.pin(vpfn, 32, true, (runs) => void (visited += runs.pages))).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    expect(visited).toBe(0);
    expect(phys.stats().pinnedPages).toBe(0);
    // The 16 faulted pages stay mapped (one reference each), none is pinned any more.
    for (let p = 0; p < 16; p++) expect(phys.refCount(mm.resolve(vpfn + p, false))).toBe(1);
  });

  test('each pinned page holds exactly one more reference than its mapping, for 4 KiB and hugetlb VMAs alike', () => {
    const phys = new PhysMemory();
    const mm = new AddressSpace(phys, new FaultInjector());
    const small = mm.mmap(8, 0, PROT_READ | PROT_WRITE, 'anon');
    const huge = mm.mmap(512, 9, PROT_READ | PROT_WRITE, 'hugetlb');
    mm.pin(small, 8, true, () => undefined);
    mm.pin(huge, 512, true, () => undefined);
    for (let p = 0; p < 8; p++) expect(phys.refCount(mm.resolve(small + p, false))).toBe(2);
    // A folio's count is one for the mapping plus one per pinned 4 KiB page.
    expect(phys.refCount(mm.resolve(huge, false))).toBe(1 + 512);
    expect(phys.stats().pinnedPages).toBe(8 + 512);
  });
});
