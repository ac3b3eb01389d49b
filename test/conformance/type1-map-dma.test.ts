/**
 * VFIO_IOMMU_MAP_DMA on type1 (reference/vfio-uapi.md §5): every errno of vfio_dma_do_map in the
 * kernel's order (the ≥6.18 order, with EOVERFLOW for a wrapping range), overlap shapes, the entry
 * budget, reserved IOVA, pinning and RLIMIT_MEMLOCK, all-or-nothing on failure, the VADDR (live update)
 * flags, superpage selection, and device DMA through the mapping.
 */
import { DmaFault, VfioGroup, uapi } from '../../index';
import { BDF, GROUP, PAGE, RW, dmaReadOutcome, type1World, type Type1World } from '../helpers/type1-world';

const READ = uapi.VFIO_DMA_MAP_FLAG_READ;
const WRITE = uapi.VFIO_DMA_MAP_FLAG_WRITE;
const VADDR = uapi.VFIO_DMA_MAP_FLAG_VADDR;
const U64_MAX = (1n << 64n) - 1n;
/** The last 4 KiB page of the 64-bit space. */
const TOP_PAGE = (1n << 64n) - PAGE;
const MIB = 1n << 20n;
const GIB = 1n << 30n;

/** The existing mapping M of the ordering tables: 4 pages at 1 MiB. */
const M_IOVA = 0x100000n;
const M_SIZE = 0x4000n;

function mapBytes(fields: { argsz?: number; flags?: number; vaddr: bigint; iova: bigint; size: bigint }): Uint8Array {
  return uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: RW, ...fields });
}

interface MContext {
  w: Type1World;
  /** A fresh 16-page read-write buffer that nothing maps yet. */
  free: bigint;
}

/** A v2 world with dma_entry_limit 4, M mapped, and optionally every other entry used up. */
function worldWithM(exhausted = false): MContext {
  const w = type1World({ dmaEntryLimit: 4 });
  expect(w.map(M_IOVA, M_SIZE, w.mmap(M_SIZE))).toBe('ok');
  if (exhausted) {
    const buf = w.mmap(3n * PAGE);
    for (let i = 0n; i < 3n; i++) expect(w.map(0x200000n + i * PAGE, PAGE, buf + i * PAGE)).toBe('ok');
  }
  return { w, free: w.mmap(16n * PAGE) };
}

/** MAP with these fields must fail with `code` and leave pins, locked_vm, DMA_AVAIL and M as they were. */
function expectRefused(ctx: MContext, bytes: Uint8Array, code: uapi.ErrnoCode): void {
  const before = ctx.w.state();
  expect(ctx.w.mapRaw(bytes)).toBe(code);
  expect(ctx.w.state()).toEqual(before);
  expect(dmaReadOutcome(ctx.w.device, M_IOVA, Number(M_SIZE))).toBe(true);
}

describe('MAP_DMA errno rows, each the first check that fails (vfio_dma_do_map order)', () => {
  type Row = [string, (ctx: MContext) => Uint8Array, uapi.ErrnoCode, boolean?];
  const rows: Row[] = [
    ['a buffer of 31 bytes (copy_from_user of 32 fails)', (c) => mapBytes({ vaddr: c.free, iova: 0n, size: PAGE }).slice(0, 31), 'EFAULT'],
    ['argsz 31', (c) => mapBytes({ argsz: 31, vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['argsz 0', (c) => mapBytes({ argsz: 0, vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['unknown flag bit 3', (c) => mapBytes({ flags: RW | (1 << 3), vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['unknown flag bit 31', (c) => mapBytes({ flags: RW | (1 << 31), vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['size 0', (c) => mapBytes({ vaddr: c.free, iova: 0n, size: 0n }), 'EINVAL'],
    ['iova + size - 1 wraps past 2^64', (c) => mapBytes({ vaddr: c.free, iova: TOP_PAGE, size: 2n * PAGE }), 'EOVERFLOW'],
    ['vaddr + size - 1 wraps past 2^64', () => mapBytes({ vaddr: TOP_PAGE, iova: 0n, size: 2n * PAGE }), 'EOVERFLOW'],
    ['a size that wraps from any iova (2^64 - 4K at 8K)', (c) => mapBytes({ vaddr: c.free, iova: 0x2000n, size: TOP_PAGE }), 'EOVERFLOW'],
    ['neither READ nor WRITE', (c) => mapBytes({ flags: 0, vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['VADDR with READ', () => mapBytes({ flags: VADDR | READ, vaddr: 0n, iova: M_IOVA, size: M_SIZE }), 'EINVAL'],
    ['VADDR with WRITE', () => mapBytes({ flags: VADDR | WRITE, vaddr: 0n, iova: M_IOVA, size: M_SIZE }), 'EINVAL'],
    ['iova not 4K aligned', (c) => mapBytes({ vaddr: c.free, iova: 0x800n, size: PAGE }), 'EINVAL'],
    ['size not 4K aligned', (c) => mapBytes({ vaddr: c.free, iova: 0n, size: 0x1800n }), 'EINVAL'],
    ['vaddr not 4K aligned', (c) => mapBytes({ vaddr: c.free + 0x10n, iova: 0n, size: PAGE }), 'EINVAL'],
    ['VADDR where nothing is mapped', (c) => mapBytes({ flags: VADDR, vaddr: c.free, iova: 0n, size: PAGE }), 'ENOENT'],
    ['overlapping M', (c) => mapBytes({ vaddr: c.free, iova: M_IOVA, size: PAGE }), 'EEXIST'],
    ['no entry left (dma_entry_limit 4 used up)', (c) => mapBytes({ vaddr: c.free, iova: 0n, size: PAGE }), 'ENOSPC', true],
    ['inside the x86 MSI window', (c) => mapBytes({ vaddr: c.free, iova: 0xfee00000n, size: PAGE }), 'EINVAL'],
    ['vaddr not mapped in the process', () => mapBytes({ vaddr: 0x10000n, iova: 0n, size: PAGE }), 'EFAULT'],
  ];
  test.each(rows.map(([name, build, code, exhausted]) => ({ name, build, code, exhausted: exhausted === true })))(
    '$name → $code',
    ({ build, code, exhausted }) => {
      const ctx = worldWithM(exhausted);
      expectRefused(ctx, build(ctx), code);
    },
  );
});

describe('MAP_DMA check order: when two checks fail, the earlier one answers', () => {
  type Row = [string, (ctx: MContext) => Uint8Array, uapi.ErrnoCode, boolean?];
  const rows: Row[] = [
    ['short buffer beats argsz 0 and unknown flags', (c) => mapBytes({ argsz: 0, flags: 1 << 9, vaddr: c.free, iova: 0n, size: 0n }).slice(0, 24), 'EFAULT'],
    ['argsz < 32 beats a wrapping iova', (c) => mapBytes({ argsz: 16, vaddr: c.free, iova: TOP_PAGE, size: 2n * PAGE }), 'EINVAL'],
    ['an unknown flag beats a wrapping iova', (c) => mapBytes({ flags: RW | (1 << 4), vaddr: c.free, iova: TOP_PAGE, size: 2n * PAGE }), 'EINVAL'],
    ['an unknown flag beats an overlap', (c) => mapBytes({ flags: RW | (1 << 4), vaddr: c.free, iova: M_IOVA, size: PAGE }), 'EINVAL'],
    ['an unknown flag beats VADDR on nothing', (c) => mapBytes({ flags: VADDR | (1 << 4), vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['an unknown flag beats ENOSPC', (c) => mapBytes({ flags: RW | (1 << 4), vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL', true],
    ['size 0 beats VADDR on nothing', (c) => mapBytes({ flags: VADDR, vaddr: c.free, iova: 0n, size: 0n }), 'EINVAL'],
    ['size 0 with neither READ nor WRITE', (c) => mapBytes({ flags: 0, vaddr: c.free, iova: 0n, size: 0n }), 'EINVAL'],
    ['a wrapping iova beats a missing READ/WRITE', (c) => mapBytes({ flags: 0, vaddr: c.free, iova: TOP_PAGE, size: 2n * PAGE }), 'EOVERFLOW'],
    ['a wrapping iova beats misalignment', (c) => mapBytes({ vaddr: c.free, iova: U64_MAX - 0x7ffn, size: PAGE }), 'EOVERFLOW'],
    ['a wrapping vaddr beats VADDR|READ', () => mapBytes({ flags: VADDR | READ, vaddr: TOP_PAGE, iova: M_IOVA, size: 2n * PAGE }), 'EOVERFLOW'],
    ['a wrapping range beats ENOSPC', (c) => mapBytes({ vaddr: c.free, iova: TOP_PAGE, size: 2n * PAGE }), 'EOVERFLOW', true],
    ['a missing READ/WRITE beats an overlap', (c) => mapBytes({ flags: 0, vaddr: c.free, iova: M_IOVA, size: PAGE }), 'EINVAL'],
    ['VADDR|WRITE beats VADDR on nothing', (c) => mapBytes({ flags: VADDR | WRITE, vaddr: c.free, iova: 0n, size: PAGE }), 'EINVAL'],
    ['misalignment beats an overlap', (c) => mapBytes({ vaddr: c.free, iova: M_IOVA + 0x800n, size: PAGE }), 'EINVAL'],
    ['a misaligned vaddr beats an overlap', (c) => mapBytes({ vaddr: c.free + 0x200n, iova: M_IOVA, size: PAGE }), 'EINVAL'],
    ['misalignment beats VADDR on nothing', (c) => mapBytes({ flags: VADDR, vaddr: c.free, iova: 0x800n, size: PAGE }), 'EINVAL'],
    ['an overlap beats ENOSPC', (c) => mapBytes({ vaddr: c.free, iova: M_IOVA + PAGE, size: PAGE }), 'EEXIST', true],
    ['VADDR on nothing never reaches ENOSPC', (c) => mapBytes({ flags: VADDR, vaddr: c.free, iova: 0n, size: PAGE }), 'ENOENT', true],
    ['an overlap beats crossing the MSI window', (c) => mapBytes({ vaddr: c.free, iova: M_IOVA, size: 0xfef00000n - M_IOVA }), 'EEXIST'],
    ['ENOSPC beats the MSI window', (c) => mapBytes({ vaddr: c.free, iova: 0xfee00000n, size: PAGE }), 'ENOSPC', true],
    ['ENOSPC beats an unmapped vaddr', () => mapBytes({ vaddr: 0x10000n, iova: 0n, size: PAGE }), 'ENOSPC', true],
    ['the MSI window beats an unmapped vaddr', () => mapBytes({ vaddr: 0x10000n, iova: 0xfee00000n, size: PAGE }), 'EINVAL'],
    ['the aperture beats an unmapped vaddr', () => mapBytes({ vaddr: 0x10000n, iova: 1n << 48n, size: PAGE }), 'EINVAL'],
    ['a mapping ending exactly at 2^64 - 1 does not overflow; it is outside the IOVA ranges', (c) => mapBytes({ vaddr: c.free, iova: TOP_PAGE, size: PAGE }), 'EINVAL'],
    ['[0xFFFF000000000000, 2^64 - 1] does not overflow; it is outside the IOVA ranges', () => mapBytes({ vaddr: 0n, iova: 0xffff000000000000n, size: 1n << 48n }), 'EINVAL'],
    ['a vaddr range ending exactly at 2^64 - 1 does not overflow; pinning it faults', () => mapBytes({ vaddr: TOP_PAGE, iova: 0n, size: PAGE }), 'EFAULT'],
  ];
  test.each(rows.map(([name, build, code, exhausted]) => ({ name, build, code, exhausted: exhausted === true })))(
    '$name → $code',
    ({ build, code, exhausted }) => {
      const ctx = worldWithM(exhausted);
      expectRefused(ctx, build(ctx), code);
    },
  );
});

describe('MAP_DMA overlap with an existing mapping M = [0x100000, 0x104000)', () => {
  const shapes: [string, bigint, bigint][] = [
    ['exactly M', M_IOVA, M_SIZE],
    ['inside M', M_IOVA + PAGE, PAGE],
    ["M's first page", M_IOVA, PAGE],
    ["M's last page", M_IOVA + M_SIZE - PAGE, PAGE],
    ['around M', M_IOVA - PAGE, M_SIZE + 2n * PAGE],
    ['partly, from the left', M_IOVA - 2n * PAGE, 3n * PAGE],
    ['partly, to the right', M_IOVA + M_SIZE - PAGE, 3n * PAGE],
  ];
  test.each(shapes)('%s → EEXIST, nothing of the request is mapped', (_name, iova, size) => {
    const ctx = worldWithM();
    expectRefused(ctx, mapBytes({ vaddr: ctx.free, iova, size }), 'EEXIST');
    if (iova < M_IOVA) expect(dmaReadOutcome(ctx.w.device, iova)).toBe('unmapped');
    if (iova + size > M_IOVA + M_SIZE) expect(dmaReadOutcome(ctx.w.device, iova + size - PAGE)).toBe('unmapped');
  });

  test('mappings that only touch M (ending at its start, starting at its end) are fine', () => {
    const { w, free } = worldWithM();
    expect(w.map(M_IOVA - 4n * PAGE, 4n * PAGE, free)).toBe('ok');
    expect(w.map(M_IOVA + M_SIZE, 4n * PAGE, free + 4n * PAGE)).toBe('ok');
    expect(dmaReadOutcome(w.device, M_IOVA - 4n * PAGE, Number(M_SIZE) + 8 * 4096)).toBe(true);
  });
});

describe('dma_entry_limit (ENOSPC)', () => {
  test('with a limit of 4, the fifth mapping is ENOSPC, and an unmap gives the entry back', () => {
    const w = type1World({ dmaEntryLimit: 4 });
    const buf = w.mmap(8n * PAGE);
    expect(w.state().dmaAvail).toBe(4);
    for (let i = 0n; i < 4n; i++) {
      expect(w.map(i * 0x10000n, PAGE, buf + i * PAGE)).toBe('ok');
      expect(w.state().dmaAvail).toBe(3 - Number(i));
    }
    const before = w.state();
    expect(w.map(0x40000n, PAGE, buf + 4n * PAGE)).toBe('ENOSPC');
    expect(w.state()).toEqual(before);
    expect(dmaReadOutcome(w.device, 0x40000n)).toBe('unmapped');

    expect(w.unmap(0x10000n, PAGE)).toEqual({ size: PAGE });
    expect(w.state().dmaAvail).toBe(1);
    expect(w.map(0x40000n, PAGE, buf + 4n * PAGE)).toBe('ok');
    expect(w.state().dmaAvail).toBe(0);
    expect(w.map(0x50000n, PAGE, buf + 5n * PAGE)).toBe('ENOSPC');
  });

  test('each MAP takes one entry whatever its size, and a failed MAP takes none', () => {
    const w = type1World({ dmaEntryLimit: 2 });
    expect(w.map(0n, 64n * PAGE, w.mmap(64n * PAGE))).toBe('ok');
    expect(w.map(0x100000n, PAGE, 0x10000n)).toBe('EFAULT');
    expect(w.state().dmaAvail).toBe(1);
    expect(w.map(0x100000n, PAGE, w.mmap(PAGE))).toBe('ok');
    expect(w.state().dmaAvail).toBe(0);
  });
});

describe('usable IOVA ranges (x86-vtd: [0, 0xFEDFFFFF] and [0xFEF00000, 0xFFFFFFFFFFFF])', () => {
  const cases: [string, bigint, bigint, 'ok' | 'EINVAL'][] = [
    ['the last page below the MSI window', 0xfedff000n, PAGE, 'ok'],
    ['the first page of the MSI window', 0xfee00000n, PAGE, 'EINVAL'],
    ['the last page of the MSI window', 0xfeeff000n, PAGE, 'EINVAL'],
    ['the first page above the MSI window', 0xfef00000n, PAGE, 'ok'],
    ['a range across the MSI window', 0xfedff000n, 0x102000n, 'EINVAL'],
    ['a range ending in the MSI window', 0xfed00000n, 0x101000n, 'EINVAL'],
    ['a range starting in the MSI window', 0xfeeff000n, 0x2000n, 'EINVAL'],
    ['the last page of the 48-bit aperture', 0xfffffffff000n, PAGE, 'ok'],
    ['the first page above the aperture', 1n << 48n, PAGE, 'EINVAL'],
    ['a range across the top of the aperture', 0xfffffffff000n, 2n * PAGE, 'EINVAL'],
    ['far above the aperture', 1n << 60n, PAGE, 'EINVAL'],
  ];
  test.each(cases)('%s → %s', (_name, iova, size, expected) => {
    const w = type1World();
    const vaddr = w.mmap(size);
    const before = w.state();
    expect(w.map(iova, size, vaddr)).toBe(expected);
    if (expected === 'ok') {
      expect(dmaReadOutcome(w.device, iova, Number(size))).toBe(true);
    } else {
      expect(w.state()).toEqual(before);
    }
  });

  test('on arm-smmuv3 the SW_MSI window [0x8000000, 0x80FFFFF] is refused and its neighbours are not', () => {
    const w = type1World({ machine: 'arm-smmuv3' });
    const vaddr = w.mmap(4n * PAGE);
    expect(w.map(0x7fff000n, PAGE, vaddr)).toBe('ok');
    expect(w.map(0x8000000n, PAGE, vaddr + PAGE)).toBe('EINVAL');
    expect(w.map(0x80ff000n, PAGE, vaddr + PAGE)).toBe('EINVAL');
    expect(w.map(0x8100000n, PAGE, vaddr + 2n * PAGE)).toBe('ok');
  });
});

describe('pinning the process memory (EFAULT)', () => {
  test('a vaddr that is not mapped is EFAULT', () => {
    const w = type1World();
    expect(w.map(0n, PAGE, 0x10000n)).toBe('EFAULT');
  });

  test('a range that runs off the end of an mmap is EFAULT and leaves no pin behind', () => {
    const w = type1World();
    const vaddr = w.mmap(2n * PAGE);
    w.proc.munmap(vaddr + 2n * PAGE, 0x200000n - 2n * PAGE); // nothing else may follow the buffer
    const before = w.state();
    expect(w.map(0n, 3n * PAGE, vaddr)).toBe('EFAULT');
    expect(w.state()).toEqual(before);
    expect(dmaReadOutcome(w.device, 0n)).toBe('unmapped');
  });

  test('a hole punched into the middle of a buffer is EFAULT', () => {
    const w = type1World();
    const vaddr = w.mmap(8n * PAGE);
    w.proc.munmap(vaddr + 4n * PAGE, PAGE);
    expect(w.map(0n, 8n * PAGE, vaddr)).toBe('EFAULT');
    expect(w.state()).toEqual({ pinnedPages: 0, lockedVm: 0, dmaAvail: 65535 });
    expect(w.map(0n, 4n * PAGE, vaddr)).toBe('ok');
  });

  test('PROT_NONE memory is EFAULT, even for a READ-only mapping', () => {
    const w = type1World();
    const vaddr = w.mmap(PAGE, { prot: 'none' });
    expect(w.map(0n, PAGE, vaddr)).toBe('EFAULT');
    expect(w.map(0n, PAGE, vaddr, READ)).toBe('EFAULT');
  });

  test('WRITE on a read-only mmap is EFAULT (FOLL_WRITE), a READ-only mapping of it works', () => {
    const w = type1World();
    const vaddr = w.mmap(2n * PAGE, { prot: 'r' });
    expect(w.map(0n, 2n * PAGE, vaddr, RW)).toBe('EFAULT');
    expect(w.map(0n, 2n * PAGE, vaddr, WRITE)).toBe('EFAULT');
    expect(w.state()).toEqual({ pinnedPages: 0, lockedVm: 0, dmaAvail: 65535 });
    expect(w.map(0n, 2n * PAGE, vaddr, READ)).toBe('ok');
    expect(w.state()).toEqual({ pinnedPages: 2, lockedVm: 2, dmaAvail: 65534 });
    expect(w.device.dmaRead(0n, 8192)).toEqual(new Uint8Array(8192));
  });
});

describe('RLIMIT_MEMLOCK (ENOMEM)', () => {
  const LIMIT_PAGES = 16n;
  const limited = (): Type1World => type1World({ spawn: { memlockLimit: LIMIT_PAGES * PAGE } });

  test('with a limit of 16 pages, 16 pages map and the 17th is ENOMEM', () => {
    const w = limited();
    const vaddr = w.mmap(32n * PAGE);
    expect(w.map(0n, LIMIT_PAGES * PAGE, vaddr)).toBe('ok');
    expect(w.proc.mm.lockedVm).toBe(16);
    const before = w.state();
    expect(w.map(0x100000n, PAGE, vaddr + LIMIT_PAGES * PAGE)).toBe('ENOMEM');
    expect(w.state()).toEqual(before);
    expect(dmaReadOutcome(w.device, 0x100000n)).toBe('unmapped');
  });

  test('one MAP of 17 pages under a 16-page limit is ENOMEM and pins nothing', () => {
    const w = limited();
    expect(w.map(0n, (LIMIT_PAGES + 1n) * PAGE, w.mmap(32n * PAGE))).toBe('ENOMEM');
    expect(w.state()).toEqual({ pinnedPages: 0, lockedVm: 0, dmaAvail: 65535 });
    expect(dmaReadOutcome(w.device, 0n)).toBe('unmapped');
  });

  test('locked_vm is given back on unmap, so the budget can be used again', () => {
    const w = limited();
    const vaddr = w.mmap(32n * PAGE);
    expect(w.map(0n, LIMIT_PAGES * PAGE, vaddr)).toBe('ok');
    expect(w.unmap(0n, LIMIT_PAGES * PAGE)).toEqual({ size: LIMIT_PAGES * PAGE });
    expect(w.proc.mm.lockedVm).toBe(0);
    expect(w.map(0x100000n, LIMIT_PAGES * PAGE, vaddr + LIMIT_PAGES * PAGE)).toBe('ok');
  });

  test('the same buffer mapped at two IOVAs is pinned and charged twice (no deduplication)', () => {
    const w = type1World();
    const vaddr = w.mmap(8n * PAGE);
    expect(w.map(0n, 8n * PAGE, vaddr)).toBe('ok');
    expect(w.map(0x100000n, 8n * PAGE, vaddr)).toBe('ok');
    expect(w.state()).toEqual({ pinnedPages: 16, lockedVm: 16, dmaAvail: 65533 });
    // Both IOVAs reach the same memory.
    w.device.dmaWrite(0x10n, new Uint8Array([7, 8, 9]));
    expect(w.device.dmaRead(0x100010n, 3)).toEqual(new Uint8Array([7, 8, 9]));
  });

  test('so under a limit of 16 pages, an 8-page buffer fits twice and a 9-page one does not', () => {
    const w = limited();
    const eight = w.mmap(8n * PAGE);
    expect(w.map(0n, 8n * PAGE, eight)).toBe('ok');
    expect(w.map(0x100000n, 8n * PAGE, eight)).toBe('ok');
    expect(w.map(0x200000n, PAGE, eight)).toBe('ENOMEM');
    const x = limited();
    const nine = x.mmap(9n * PAGE);
    expect(x.map(0n, 9n * PAGE, nine)).toBe('ok');
    expect(x.map(0x100000n, 9n * PAGE, nine)).toBe('ENOMEM');
    expect(x.proc.mm.lockedVm).toBe(9);
  });

  test('CAP_IPC_LOCK bypasses the limit, but the pages are still charged to locked_vm', () => {
    const w = type1World({ spawn: { memlockLimit: 0n, capabilities: ['CAP_IPC_LOCK'] } });
    const vaddr = w.mmap(64n * PAGE);
    expect(w.map(0n, 64n * PAGE, vaddr)).toBe('ok');
    expect(w.proc.mm.lockedVm).toBe(64);
    expect(w.unmap(0n, 64n * PAGE)).toEqual({ size: 64n * PAGE });
    expect(w.proc.mm.lockedVm).toBe(0);
  });

  test('a limit of 0 without CAP_IPC_LOCK refuses even one page', () => {
    const w = type1World({ spawn: { memlockLimit: 0n } });
    expect(w.map(0n, PAGE, w.mmap(PAGE))).toBe('ENOMEM');
  });
});

describe('a pin failure in the middle of a MAP undoes everything (all or nothing)', () => {
  /** After the failure: nothing pinned, charged or mapped, and the range is free for the same MAP. */
  function expectNothingLeft(w: Type1World, before: ReturnType<Type1World['state']>, iova: bigint, size: bigint, vaddr: bigint): void {
    expect(w.state()).toEqual(before);
    expect(w.unmap(iova, size)).toEqual({ size: 0n });
    for (let at = iova; at < iova + size; at += PAGE) expect(dmaReadOutcome(w.device, at)).toBe('unmapped');
    expect(w.map(iova, size, vaddr)).toBe('ok');
    expect(w.state().pinnedPages).toBe(before.pinnedPages + Number(size / PAGE));
  }

  test.each(Array.from({ length: 16 }, (_, k) => k))('16 anonymous pages, pin fails after %i pages → EFAULT', (k) => {
    const w = type1World();
    const vaddr = w.mmap(16n * PAGE, { populate: true });
    expect(w.map(0x800000n, PAGE, w.mmap(PAGE))).toBe('ok'); // something already there, to see it is kept
    const before = w.state();
    w.kernel.faultInjector.failPinAfter(k);
    expect(w.map(0x100000n, 16n * PAGE, vaddr)).toBe('EFAULT');
    expectNothingLeft(w, before, 0x100000n, 16n * PAGE, vaddr);
    expect(dmaReadOutcome(w.device, 0x800000n)).toBe(true);
  });

  test.each(Array.from({ length: 9 }, (_, k) => k))('9 pages spanning hugetlb and anonymous memory, pin fails after %i pages → EFAULT', (k) => {
    const w = type1World();
    const huge = w.mmap(2n * MIB, { pageSize: '2M' });
    const anon = w.mmap(2n * MIB);
    expect(anon).toBe(huge + 2n * MIB); // mmap places them back to back
    const vaddr = anon - 4n * PAGE;
    const before = w.state();
    w.kernel.faultInjector.failPinAfter(k);
    expect(w.map(0x200000n, 9n * PAGE, vaddr)).toBe('EFAULT');
    expectNothingLeft(w, before, 0x200000n, 9n * PAGE, vaddr);
  });
});

describe('VFIO_DMA_MAP_FLAG_VADDR / VFIO_DMA_UNMAP_FLAG_VADDR (live update)', () => {
  const A = { iova: 0x100000n, size: 4n * PAGE };
  const B = { iova: 0x200000n, size: 2n * PAGE };

  function twoMappings(): { w: Type1World; a: bigint; b: bigint } {
    const w = type1World({ extraDevices: [{ bdf: '0000:07:00.0', group: 27, driver: 'vfio-pci' }] });
    const a = w.mmap(A.size);
    const b = w.mmap(B.size);
    expect(w.map(A.iova, A.size, a)).toBe('ok');
    expect(w.map(B.iova, B.size, b)).toBe('ok');
    w.proc.writeMemory(a, new Uint8Array([0xa1]));
    w.proc.writeMemory(b, new Uint8Array([0xb1]));
    return { w, a, b };
  }

  const vaddrMap = (w: Type1World, m: { iova: bigint; size: bigint }, vaddr: bigint, size = m.size): string => w.map(m.iova, size, vaddr, VADDR);
  const addGroup27 = (w: Type1World): void => VfioGroup.open(w.proc, 27).setContainer(w.vfio);

  test('CHECK_EXTENSION(VFIO_UPDATE_VADDR) is 0 before SET_IOMMU and 1 after', () => {
    const w = type1World({ type: 'none' });
    expect(w.vfio.checkExtension(uapi.VFIO_UPDATE_VADDR)).toBe(0);
    w.vfio.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
    expect(w.vfio.checkExtension(uapi.VFIO_UPDATE_VADDR)).toBe(1);
  });

  test('UNMAP with VADDR marks every mapping in the range and returns the sum of their sizes; DMA goes on', () => {
    const { w } = twoMappings();
    const before = w.state();
    expect(w.unmap(0n, 0x400000n, uapi.VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ size: A.size + B.size });
    expect(w.state()).toEqual(before); // nothing unpinned, unaccounted or given back
    expect(w.device.dmaRead(A.iova, 1)).toEqual(new Uint8Array([0xa1]));
    w.device.dmaWrite(B.iova + 1n, new Uint8Array([0xb2]));
    expect(w.device.dmaRead(B.iova, 2)).toEqual(new Uint8Array([0xb1, 0xb2]));
  });

  test('UNMAP with VADDR and ALL marks everything', () => {
    const { w, a, b } = twoMappings();
    expect(w.unmap(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_VADDR | uapi.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ size: A.size + B.size });
    expect(vaddrMap(w, A, a)).toBe('ok');
    expect(vaddrMap(w, B, b)).toBe('ok');
  });

  test('marking a mapping that is already marked is EINVAL, and the marks of that call are undone', () => {
    const { w, a, b } = twoMappings();
    expect(w.unmap(B.iova, B.size, uapi.VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ size: B.size });
    // The walk marks A, then meets B already marked: A's mark is taken back.
    const bytes = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: uapi.VFIO_DMA_UNMAP_FLAG_VADDR, iova: 0n, size: 0x400000n });
    expect(w.unmapRaw(bytes)).toEqual({ code: 'EINVAL' });
    expect(uapi.VfioIommuType1DmaUnmap.read(bytes, 'size')).toBe(0x400000n);
    expect(vaddrMap(w, A, a)).toBe('EINVAL'); // A's vaddr is valid: nothing to update
    expect(vaddrMap(w, B, b)).toBe('ok');
    addGroup27(w); // no vaddr is invalid any more
  });

  test('MAP with VADDR where nothing is mapped is ENOENT', () => {
    const { w, a } = twoMappings();
    w.unmap(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_VADDR | uapi.VFIO_DMA_UNMAP_FLAG_ALL);
    expect(w.map(0x300000n, A.size, a, VADDR)).toBe('ENOENT');
  });

  test('MAP with VADDR must name exactly the invalidated mapping: a wrong size or start is EINVAL', () => {
    const { w, a } = twoMappings();
    w.unmap(A.iova, A.size, uapi.VFIO_DMA_UNMAP_FLAG_VADDR);
    expect(vaddrMap(w, A, a, A.size - PAGE)).toBe('EINVAL');
    expect(vaddrMap(w, A, a, A.size + PAGE)).toBe('EINVAL');
    expect(w.map(A.iova + PAGE, PAGE, a, VADDR)).toBe('EINVAL');
    expect(w.map(A.iova - PAGE, A.size + 2n * PAGE, a, VADDR)).toBe('EINVAL');
    expect(vaddrMap(w, A, a)).toBe('ok');
    // Once updated it is valid again: a second update is EINVAL.
    expect(vaddrMap(w, A, a)).toBe('EINVAL');
  });

  test('the update takes no entry, pin or locked_vm, and DMA works before, during and after', () => {
    const { w, a } = twoMappings();
    const before = w.state();
    w.unmap(A.iova, A.size, uapi.VFIO_DMA_UNMAP_FLAG_VADDR);
    w.device.dmaWrite(A.iova + 0x1000n, new Uint8Array([1, 2]));
    const fresh = w.mmap(A.size);
    expect(vaddrMap(w, A, fresh)).toBe('ok');
    expect(w.state()).toEqual(before);
    // The IOMMU still points at the pages pinned by the first MAP.
    expect(w.device.dmaRead(A.iova, 1)).toEqual(new Uint8Array([0xa1]));
    expect(w.proc.readMemory(a + 0x1000n, 2)).toEqual(new Uint8Array([1, 2]));
    w.device.dmaWrite(A.iova + 0x3fffn, new Uint8Array([3]));
    expect(w.proc.readMemory(a + 0x3fffn, 1)).toEqual(new Uint8Array([3]));
  });

  test('adding a group while a vaddr is invalid is EBUSY; after the update it works', () => {
    const { w, a } = twoMappings();
    w.unmap(A.iova, A.size, uapi.VFIO_DMA_UNMAP_FLAG_VADDR);
    const g27 = VfioGroup.open(w.proc, 27);
    expect(() => g27.setContainer(w.vfio)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(g27.hasContainer).toBe(false);
    expect(vaddrMap(w, A, a)).toBe('ok');
    g27.setContainer(w.vfio);
    expect(g27.hasContainer).toBe(true);
  });

  test('unmapping an invalidated mapping for good also lifts the EBUSY', () => {
    const { w } = twoMappings();
    w.unmap(A.iova, A.size, uapi.VFIO_DMA_UNMAP_FLAG_VADDR);
    expect(w.unmap(A.iova, A.size)).toEqual({ size: A.size });
    expect(dmaReadOutcome(w.device, A.iova)).toBe('unmapped');
    addGroup27(w);
  });

  test('v2 range rules apply to marking: a range that cuts a mapping is EINVAL and marks nothing', () => {
    const { w, a } = twoMappings();
    expect(w.unmap(A.iova + PAGE, PAGE, uapi.VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ code: 'EINVAL' });
    expect(vaddrMap(w, A, a)).toBe('EINVAL');
    addGroup27(w);
  });
});

describe('superpages: the IOMMU gets the largest leaf that alignment and contiguity allow', () => {
  type Counters = Record<string, number>;
  function leavesWritten(w: Type1World, run: () => void): { '4K': number; '2M': number; '1G': number } {
    const before = w.kernel.iommus[0]!.counters() as Counters;
    run();
    const after = w.kernel.iommus[0]!.counters() as Counters;
    const delta = (key: string): number => after[key]! - before[key]!;
    return { '4K': delta('leafWritten4K'), '2M': delta('leafWritten2M'), '1G': delta('leafWritten1G') };
  }

  test('1 GiB of 2 MiB hugetlb pages at a 2 MiB-aligned IOVA writes exactly 512 2M leaves', () => {
    const w = type1World();
    const vaddr = w.mmap(GIB, { pageSize: '2M' });
    expect(leavesWritten(w, () => expect(w.map(0x200000n, GIB, vaddr)).toBe('ok'))).toEqual({ '4K': 0, '2M': 512, '1G': 0 });
  });

  test('one 1 GiB hugetlb page at a 1 GiB-aligned IOVA writes one 1G leaf', () => {
    const w = type1World();
    const vaddr = w.mmap(GIB, { pageSize: '1G' });
    expect(leavesWritten(w, () => expect(w.map(GIB, GIB, vaddr)).toBe('ok'))).toEqual({ '4K': 0, '2M': 0, '1G': 1 });
  });

  test('the same 1 GiB page at an IOVA 4 KiB off alignment gets only 4K leaves', () => {
    const w = type1World();
    const vaddr = w.mmap(GIB, { pageSize: '1G' });
    expect(leavesWritten(w, () => expect(w.map(GIB + PAGE, GIB, vaddr)).toBe('ok'))).toEqual({ '4K': 262144, '2M': 0, '1G': 0 });
  });

  test('2 MiB hugetlb pages at an IOVA 4 KiB off alignment get only 4K leaves', () => {
    const w = type1World();
    const vaddr = w.mmap(4n * MIB, { pageSize: '2M' });
    expect(leavesWritten(w, () => expect(w.map(0x201000n, 4n * MIB, vaddr)).toBe('ok'))).toEqual({ '4K': 1024, '2M': 0, '1G': 0 });
  });

  test('disableHugepages: 2 MiB hugetlb pages at a 2 MiB-aligned IOVA get only 4K leaves', () => {
    const w = type1World({ disableHugepages: true });
    const vaddr = w.mmap(4n * MIB, { pageSize: '2M' });
    expect(leavesWritten(w, () => expect(w.map(0x200000n, 4n * MIB, vaddr)).toBe('ok'))).toEqual({ '4K': 1024, '2M': 0, '1G': 0 });
  });

  test('disableHugepages: a 1 GiB page at a 1 GiB-aligned IOVA gets only 4K leaves', () => {
    const w = type1World({ disableHugepages: true });
    const vaddr = w.mmap(GIB, { pageSize: '1G' });
    expect(leavesWritten(w, () => expect(w.map(GIB, GIB, vaddr)).toBe('ok'))).toEqual({ '4K': 262144, '2M': 0, '1G': 0 });
  });

  test('scattered 4 KiB anonymous pages at a 2 MiB-aligned IOVA get only 4K leaves', () => {
    const w = type1World();
    const vaddr = w.mmap(4n * MIB);
    expect(leavesWritten(w, () => expect(w.map(0x200000n, 4n * MIB, vaddr)).toBe('ok'))).toEqual({ '4K': 1024, '2M': 0, '1G': 0 });
  });

  test('GET_INFO reports 4K|2M|1G with or without disableHugepages (the parameter limits runs, not the bitmap)', () => {
    expect(type1World().vfio.iommuInfo().iovaPgsizes).toBe(0x40201000n);
    expect(type1World({ disableHugepages: true }).vfio.iommuInfo().iovaPgsizes).toBe(0x40201000n);
  });
});

describe('device DMA through a mapping', () => {
  test('bytes the process writes are what the device reads, and the other way round, across page boundaries', () => {
    const w = type1World();
    const vaddr = w.mmap(4n * PAGE);
    expect(w.map(0x100000n, 4n * PAGE, vaddr)).toBe('ok');
    const pattern = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
    w.proc.writeMemory(vaddr + 0xfe0n, pattern);
    expect(w.device.dmaRead(0x100fe0n, 64)).toEqual(pattern);
    const reply = Uint8Array.from({ length: 4100 }, (_, i) => (i * 7) & 0xff);
    w.device.dmaWrite(0x101ffen, reply);
    expect(w.proc.readMemory(vaddr + 0x1ffen, 4100)).toEqual(reply);
  });

  test('on hugetlb memory, across a 2 MiB page boundary', () => {
    const w = type1World();
    const vaddr = w.mmap(4n * MIB, { pageSize: '2M' });
    expect(w.map(0x40000000n, 4n * MIB, vaddr)).toBe('ok');
    const pattern = Uint8Array.from({ length: 32 }, (_, i) => 0xf0 - i);
    w.proc.writeMemory(vaddr + 2n * MIB - 16n, pattern);
    expect(w.device.dmaRead(0x40000000n + 2n * MIB - 16n, 32)).toEqual(pattern);
    w.device.dmaWrite(0x40000000n + 4n * MIB - 3n, new Uint8Array([1, 2, 3]));
    expect(w.proc.readMemory(vaddr + 4n * MIB - 3n, 3)).toEqual(new Uint8Array([1, 2, 3]));
  });

  test('a READ-only mapping refuses device writes: permission fault, nothing written, logged', () => {
    const w = type1World();
    const vaddr = w.mmap(2n * PAGE);
    w.proc.writeMemory(vaddr, new Uint8Array([5, 6, 7, 8]));
    expect(w.map(0x100000n, 2n * PAGE, vaddr, READ)).toBe('ok');
    expect(w.device.dmaRead(0x100000n, 4)).toEqual(new Uint8Array([5, 6, 7, 8]));
    let caught: unknown;
    try {
      w.device.dmaWrite(0x100000n, new Uint8Array([9, 9, 9, 9]));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DmaFault);
    expect((caught as DmaFault).reason).toBe('permission');
    expect(w.proc.readMemory(vaddr, 4)).toEqual(new Uint8Array([5, 6, 7, 8]));
    expect(w.kernel.dmaFaults().at(-1)).toEqual({ bdf: BDF, group: GROUP, iova: 0x100000n, access: 'write', reason: 'permission' });
  });

  test('a device write that runs past the end of a mapping writes nothing at all', () => {
    const w = type1World();
    const vaddr = w.mmap(PAGE);
    expect(w.map(0x100000n, PAGE, vaddr)).toBe('ok');
    expect(() => w.device.dmaWrite(0x100ffen, new Uint8Array([1, 2, 3, 4]))).toThrow(DmaFault);
    expect(w.proc.readMemory(vaddr + 0xffen, 2)).toEqual(new Uint8Array([0, 0]));
    expect(w.kernel.dmaFaults().at(-1)).toEqual({ bdf: BDF, group: GROUP, iova: 0x101000n, access: 'write', reason: 'unmapped' });
  });

  test('after UNMAP the device faults: unmapped', () => {
    const w = type1World();
    const vaddr = w.mmap(2n * PAGE);
    expect(w.map(0x100000n, 2n * PAGE, vaddr)).toBe('ok');
    expect(w.unmap(0x100000n, 2n * PAGE)).toEqual({ size: 2n * PAGE });
    expect(() => w.device.dmaRead(0x101000n, 1)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
    expect(w.kernel.dmaFaults().at(-1)).toEqual({ bdf: BDF, group: GROUP, iova: 0x101000n, access: 'read', reason: 'unmapped' });
    expect(dmaReadOutcome(w.device, 0x100000n)).toBe('unmapped');
  });
});
