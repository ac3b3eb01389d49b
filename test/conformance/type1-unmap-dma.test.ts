/**
 * VFIO_IOMMU_UNMAP_DMA (reference/vfio-uapi.md §6) and VFIO_IOMMU_DIRTY_PAGES (§13) on type1: the v1/v2
 * semantics table row by row, the argument checks in the kernel's order, the write-back of `size` only
 * on success, the end of the 64-bit space, and the dirty bitmaps written into process memory.
 */
import { uapi } from '../../index';
import { PAGE, dmaReadOutcome, type1World, type Type1World, type UnmapOutcome } from '../helpers/type1-world';

const ALL = uapi.VFIO_DMA_UNMAP_FLAG_ALL;
const VADDR = uapi.VFIO_DMA_UNMAP_FLAG_VADDR;
const BITMAP = uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
const START = uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
const STOP = uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
const GET_BITMAP = uapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
const TOP_PAGE = (1n << 64n) - PAGE;

type Version = 'v1' | 'v2';

/** A world with the given mappings, each backed by its own fresh buffer. */
function worldWith(type: Version, mappings: [bigint, bigint][]): Type1World {
  const w = type1World({ type });
  for (const [iova, size] of mappings) expect(w.map(iova, size, w.mmap(size))).toBe('ok');
  return w;
}

const isMapped = (w: Type1World, iova: bigint): boolean => dmaReadOutcome(w.device, iova) === true;

describe('the v1/v2 semantics table, M = [0x1000, 0x3000)', () => {
  const M: [bigint, bigint] = [0x1000n, 0x2000n];
  type Row = [string, bigint, bigint, number, UnmapOutcome, UnmapOutcome];
  const rows: Row[] = [
    ['(0x1000, 0x2000) exactly M', 0x1000n, 0x2000n, 0, { size: 0x2000n }, { size: 0x2000n }],
    ['(0x1000, 0x1000) covers the start of M only', 0x1000n, 0x1000n, 0, { size: 0x2000n }, { code: 'EINVAL' }],
    ['(0x2000, 0x1000) starts inside M', 0x2000n, 0x1000n, 0, { size: 0n }, { code: 'EINVAL' }],
    ['(0x0, 0x2000) starts before M, ends inside', 0x0n, 0x2000n, 0, { size: 0x2000n }, { code: 'EINVAL' }],
    ['(0x0, 0x4000) covers M plus holes', 0x0n, 0x4000n, 0, { size: 0x2000n }, { size: 0x2000n }],
    ['(0x5000, 0x1000) empty', 0x5000n, 0x1000n, 0, { size: 0n }, { size: 0n }],
    ['ALL with iova 0, size 0', 0n, 0n, ALL, { size: 0x2000n }, { size: 0x2000n }],
    ['ALL with iova 0x1000', 0x1000n, 0n, ALL, { code: 'EINVAL' }, { code: 'EINVAL' }],
    ['ALL with size 0x2000', 0n, 0x2000n, ALL, { code: 'EINVAL' }, { code: 'EINVAL' }],
  ];
  const cases = rows.flatMap(([name, iova, size, flags, v1, v2]) => [
    { name, version: 'v1' as const, iova, size, flags, expected: v1 },
    { name, version: 'v2' as const, iova, size, flags, expected: v2 },
  ]);
  test.each(cases)('$version: $name', ({ version, iova, size, flags, expected }) => {
    const w = worldWith(version, [M]);
    const before = w.state();
    expect(w.unmap(iova, size, flags)).toEqual(expected);
    const removed = 'size' in expected && expected.size !== 0n;
    // Whole mappings go or stay: never a part of M.
    expect(isMapped(w, 0x1000n)).toBe(!removed);
    expect(isMapped(w, 0x2000n)).toBe(!removed);
    expect(w.state()).toEqual(removed ? { pinnedPages: 0, lockedVm: 0, dmaAvail: 65535 } : before);
  });
});

describe('v1 walks from the lowest overlapping mapping and stops at one that starts below the request', () => {
  const A: [bigint, bigint] = [0x1000n, 0x2000n];
  const B: [bigint, bigint] = [0x3000n, 0x1000n];

  test('A = [0x1000, 0x3000), B = [0x3000, 0x4000), request (0x2000, 0x2000): nothing unmapped, B stays', () => {
    const w = worldWith('v1', [A, B]);
    expect(w.unmap(0x2000n, 0x2000n)).toEqual({ size: 0n });
    expect(isMapped(w, 0x1000n)).toBe(true);
    expect(isMapped(w, 0x3000n)).toBe(true);
    expect(w.state().pinnedPages).toBe(3);
  });

  test('v2 refuses the same request: it starts inside A', () => {
    const w = worldWith('v2', [A, B]);
    expect(w.unmap(0x2000n, 0x2000n)).toEqual({ code: 'EINVAL' });
    expect(isMapped(w, 0x3000n)).toBe(true);
  });

  test('v1 (0x1000, 0x1000) removes all of A and leaves B', () => {
    const w = worldWith('v1', [A, B]);
    expect(w.unmap(0x1000n, 0x1000n)).toEqual({ size: 0x2000n });
    expect(isMapped(w, 0x2000n)).toBe(false);
    expect(isMapped(w, 0x3000n)).toBe(true);
  });

  test('v2: a range that is exact at A and ends inside a later mapping is EINVAL and removes nothing', () => {
    const w = worldWith('v2', [A, [0x3000n, 0x2000n]]);
    expect(w.unmap(0x1000n, 0x3000n)).toEqual({ code: 'EINVAL' });
    expect(isMapped(w, 0x1000n)).toBe(true);
    expect(isMapped(w, 0x4000n)).toBe(true);
  });
});

describe('ranges with holes', () => {
  const mappings: [bigint, bigint][] = [
    [0x10000n, PAGE],
    [0x12000n, 2n * PAGE],
    [0x20000n, 4n * PAGE],
  ];
  test.each(['v1', 'v2'] as const)('%s: a range covering several mappings and holes returns their total', (version) => {
    const w = worldWith(version, mappings);
    expect(w.unmap(0n, 0x100000n)).toEqual({ size: 7n * PAGE });
    expect(w.state()).toEqual({ pinnedPages: 0, lockedVm: 0, dmaAvail: 65535 });
  });

  test.each(['v1', 'v2'] as const)('%s: a range made only of holes returns 0 and changes nothing', (version) => {
    const w = worldWith(version, mappings);
    const before = w.state();
    expect(w.unmap(0x11000n, PAGE)).toEqual({ size: 0n });
    expect(w.unmap(0x14000n, 0xc000n)).toEqual({ size: 0n });
    expect(w.state()).toEqual(before);
  });

  test.each(['v1', 'v2'] as const)('%s: ALL returns the total of every mapping', (version) => {
    const w = worldWith(version, [...mappings, [0xfef00000n, 8n * PAGE]]);
    expect(w.unmap(0n, 0n, ALL)).toEqual({ size: 15n * PAGE });
    expect(w.unmap(0n, 0n, ALL)).toEqual({ size: 0n });
  });

  test('a range that exactly spans two adjacent mappings removes both on v2', () => {
    const w = worldWith('v2', [
      [0x10000n, PAGE],
      [0x11000n, 3n * PAGE],
    ]);
    expect(w.unmap(0x10000n, 4n * PAGE)).toEqual({ size: 4n * PAGE });
  });
});

/** Unmap bytes with a vfio_bitmap after the 24-byte struct. */
function unmapWithBitmap(fields: { argsz?: number; flags?: number; iova: bigint; size: bigint }, bitmap: { pgsize?: bigint; size?: bigint; data: bigint }): Uint8Array {
  const bytes = new Uint8Array(48);
  uapi.VfioIommuType1DmaUnmap.encode({ argsz: 48, flags: BITMAP, ...fields }, bytes);
  uapi.VfioBitmap.encode({ pgsize: PAGE, size: 8n, ...bitmap }, bytes, 24);
  return bytes;
}

describe('UNMAP_DMA argument checks, in order', () => {
  const M: [bigint, bigint] = [0x100000n, 4n * PAGE];

  /** A v2 world with M mapped, dirty tracking on, and an 8-byte bitmap buffer. */
  function setup(): { w: Type1World; bitmap: bigint } {
    const w = worldWith('v2', [M]);
    expect(w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: START }))).toBe('ok');
    return { w, bitmap: w.mmap(PAGE) };
  }
  const plain = (fields: { argsz?: number; flags?: number; iova: bigint; size: bigint }): Uint8Array =>
    uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: 0, ...fields });

  type Row = [string, (bitmap: bigint) => Uint8Array, uapi.ErrnoCode];
  const rows: Row[] = [
    ['a buffer of 23 bytes', () => plain({ iova: M[0], size: M[1] }).slice(0, 23), 'EFAULT'],
    ['argsz 23', () => plain({ argsz: 23, iova: M[0], size: M[1] }), 'EINVAL'],
    ['argsz 0', () => plain({ argsz: 0, iova: M[0], size: M[1] }), 'EINVAL'],
    ['unknown flag bit 3', () => plain({ flags: 1 << 3, iova: M[0], size: M[1] }), 'EINVAL'],
    ['unknown flag bit 31', () => plain({ flags: 1 << 31, iova: M[0], size: M[1] }), 'EINVAL'],
    ['GET_DIRTY_BITMAP with ALL', (b) => unmapWithBitmap({ flags: BITMAP | ALL, iova: 0n, size: 0n }, { data: b }), 'EINVAL'],
    ['GET_DIRTY_BITMAP with VADDR', (b) => unmapWithBitmap({ flags: BITMAP | VADDR, iova: M[0], size: M[1] }, { data: b }), 'EINVAL'],
    ['GET_DIRTY_BITMAP with argsz 47', (b) => unmapWithBitmap({ argsz: 47, iova: M[0], size: M[1] }, { data: b }), 'EINVAL'],
    ['GET_DIRTY_BITMAP with argsz 48 in a 40-byte buffer', (b) => unmapWithBitmap({ iova: M[0], size: M[1] }, { data: b }).slice(0, 40), 'EFAULT'],
    ['a bitmap above user space', () => unmapWithBitmap({ iova: M[0], size: M[1] }, { data: 1n << 47n }), 'EINVAL'],
    ['a bitmap of 0 bytes', (b) => unmapWithBitmap({ iova: M[0], size: M[1] }, { data: b, size: 0n }), 'EINVAL'],
    ['a bitmap larger than 256 MiB', (b) => unmapWithBitmap({ iova: M[0], size: M[1] }, { data: b, size: 0x10000008n }), 'EINVAL'],
    ['a bitmap too small for the range', (b) => unmapWithBitmap({ iova: 0n, size: 65n * PAGE }, { data: b, size: 8n }), 'EINVAL'],
    ['a bitmap pgsize other than 4 KiB', (b) => unmapWithBitmap({ iova: M[0], size: M[1] }, { data: b, pgsize: 0x2000n }), 'EINVAL'],
    ['iova not 4K aligned', () => plain({ iova: M[0] + 0x800n, size: M[1] }), 'EINVAL'],
    ['size not 4K aligned', () => plain({ iova: M[0], size: M[1] - 0x800n }), 'EINVAL'],
    ['size 0', () => plain({ iova: M[0], size: 0n }), 'EINVAL'],
    ['iova + size - 1 wraps past 2^64', () => plain({ iova: TOP_PAGE, size: 2n * PAGE }), 'EOVERFLOW'],
    ['v2: a range that starts inside M', () => plain({ iova: M[0] + PAGE, size: M[1] }), 'EINVAL'],
    // Order: when two checks fail, the earlier one answers.
    ['a short buffer beats argsz 0 and unknown flags', () => plain({ argsz: 0, flags: 1 << 7, iova: 1n, size: 0n }).slice(0, 8), 'EFAULT'],
    ['an unknown flag beats a wrapping range', () => plain({ flags: 1 << 3, iova: TOP_PAGE, size: 2n * PAGE }), 'EINVAL'],
    ['GET_DIRTY_BITMAP|ALL beats a short argsz for the bitmap', (b) => unmapWithBitmap({ argsz: 24, flags: BITMAP | ALL, iova: 0n, size: 0n }, { data: b }), 'EINVAL'],
    ['a misaligned iova beats a wrapping range', () => plain({ iova: TOP_PAGE + 0x800n, size: 2n * PAGE }), 'EINVAL'],
    ['a misaligned size beats a wrapping range', () => plain({ iova: TOP_PAGE, size: 0x1800n }), 'EINVAL'],
    ['ALL with a misaligned iova', () => plain({ flags: ALL, iova: 0x800n, size: 0n }), 'EINVAL'],
    ['a wrapping range beats cutting M (v2)', () => plain({ iova: M[0] + PAGE, size: TOP_PAGE }), 'EOVERFLOW'],
  ];
  test.each(rows.map(([name, build, code]) => ({ name, build, code })))('$name → $code', ({ build, code }) => {
    const { w, bitmap } = setup();
    const before = w.state();
    const bytes = build(bitmap);
    const sizeBefore = bytes.length >= 24 ? uapi.VfioIommuType1DmaUnmap.read(bytes, 'size') : undefined;
    expect(w.unmapRaw(bytes)).toEqual({ code });
    // On failure the kernel writes nothing back: `size` still holds the request.
    if (sizeBefore !== undefined) expect(uapi.VfioIommuType1DmaUnmap.read(bytes, 'size')).toBe(sizeBefore);
    expect(w.state()).toEqual(before);
    expect(isMapped(w, M[0])).toBe(true);
    expect(w.proc.readMemory(bitmap, 8)).toEqual(new Uint8Array(8));
  });

  test('on success only the 24 bytes of the struct are written: size = bytes unmapped, the rest untouched', () => {
    const w = worldWith('v2', [M]);
    const bytes = new Uint8Array(32).fill(0xa5);
    uapi.VfioIommuType1DmaUnmap.encode({ argsz: 32, flags: 0, iova: 0n, size: 0x200000n }, bytes);
    expect(w.unmapRaw(bytes)).toEqual({ size: M[1] });
    expect(uapi.VfioIommuType1DmaUnmap.decode(bytes)).toEqual({ argsz: 32, flags: 0, iova: 0n, size: M[1] });
    expect(bytes.subarray(24)).toEqual(new Uint8Array(8).fill(0xa5));
  });
});

describe('the end of the 64-bit IOVA space', () => {
  test('a range ending exactly at 2^64 - 1 is not an overflow', () => {
    const w = worldWith('v2', [[0x1000n, PAGE]]);
    expect(w.unmap(TOP_PAGE, PAGE)).toEqual({ size: 0n });
    expect(w.unmap(1n << 63n, 1n << 63n)).toEqual({ size: 0n });
    expect(w.unmap(PAGE, TOP_PAGE)).toEqual({ size: PAGE });
  });

  test('one page more is EOVERFLOW', () => {
    const w = worldWith('v2', []);
    expect(w.unmap(TOP_PAGE, 2n * PAGE)).toEqual({ code: 'EOVERFLOW' });
    expect(w.unmap(2n * PAGE, TOP_PAGE)).toEqual({ code: 'EOVERFLOW' });
  });

  test.each(['v1', 'v2'] as const)('%s: a mapping on the last page of the aperture unmaps with a range to 2^64 - 1', (version) => {
    const last = 0xfffffffff000n;
    const w = worldWith(version, [[last, PAGE]]);
    expect(w.unmap(last, (1n << 64n) - last)).toEqual({ size: PAGE });
    expect(isMapped(w, last)).toBe(false);
  });

  test('the last page of the aperture with ALL', () => {
    const w = worldWith('v2', [[0xfffffffff000n, PAGE]]);
    expect(w.unmap(0n, 0n, ALL)).toEqual({ size: PAGE });
  });
});

// ---- VFIO_IOMMU_DIRTY_PAGES ---------------------------------------------------------------------

const dirtyFlags = (w: Type1World, flags: number, argsz = 8): string =>
  w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, uapi.VfioIommuType1DirtyBitmap.encode({ argsz, flags }));

interface GetBitmapFields {
  argsz?: number;
  iova: bigint;
  size: bigint;
  pgsize?: bigint;
  bitmapSize?: bigint;
  data: bigint;
}

function getBitmapBytes(f: GetBitmapFields): Uint8Array {
  const bytes = new Uint8Array(48);
  uapi.VfioIommuType1DirtyBitmap.encode({ argsz: f.argsz ?? 48, flags: GET_BITMAP }, bytes);
  uapi.VfioIommuType1DirtyBitmapGet.encode(
    { iova: f.iova, size: f.size, bitmap_pgsize: f.pgsize ?? PAGE, bitmap_size: f.bitmapSize ?? 8n, bitmap_data: f.data },
    bytes,
    8,
  );
  return bytes;
}

/** A = [0x100000, +4 pages), hole of 2 pages, B = [0x106000, +2 pages). */
const A: [bigint, bigint] = [0x100000n, 4n * PAGE];
const B: [bigint, bigint] = [0x106000n, 2n * PAGE];

function dirtyWorld(tracking = true): { w: Type1World; bitmap: bigint } {
  const w = worldWith('v2', [A, B]);
  if (tracking) expect(dirtyFlags(w, START)).toBe('ok');
  return { w, bitmap: w.mmap(PAGE) };
}

describe('VFIO_IOMMU_DIRTY_PAGES flags', () => {
  test('a v1 container gets EACCES, before any other check', () => {
    const w = worldWith('v1', []);
    expect(dirtyFlags(w, START)).toBe('EACCES');
    expect(dirtyFlags(w, 0, 0)).toBe('EACCES');
    expect(w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, new Uint8Array(2))).toBe('EACCES');
  });

  const rows: [string, () => Uint8Array, uapi.ErrnoCode][] = [
    ['a buffer of 7 bytes', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: START }).slice(0, 7), 'EFAULT'],
    ['argsz 7', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 7, flags: START }), 'EINVAL'],
    ['no flag', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: 0 }), 'EINVAL'],
    ['an unknown flag', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: 1 << 3 }), 'EINVAL'],
    ['START with an unknown flag', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: START | (1 << 5) }), 'EINVAL'],
    ['START and STOP', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: START | STOP }), 'EINVAL'],
    ['START and GET_BITMAP', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: START | GET_BITMAP }), 'EINVAL'],
    ['STOP and GET_BITMAP', () => uapi.VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: STOP | GET_BITMAP }), 'EINVAL'],
  ];
  test.each(rows)('%s → %s', (_name, build, code) => {
    const w = worldWith('v2', []);
    expect(w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, build())).toBe(code);
  });

  test('START and STOP can be repeated; GET_BITMAP works only while tracking', () => {
    const { w, bitmap } = dirtyWorld(false);
    const get = (): string => w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, getBitmapBytes({ iova: A[0], size: A[1], data: bitmap }));
    expect(get()).toBe('EINVAL');
    expect(dirtyFlags(w, STOP)).toBe('ok');
    expect(dirtyFlags(w, START)).toBe('ok');
    expect(dirtyFlags(w, START)).toBe('ok');
    expect(get()).toBe('ok');
    expect(dirtyFlags(w, STOP)).toBe('ok');
    expect(dirtyFlags(w, STOP)).toBe('ok');
    expect(get()).toBe('EINVAL');
  });
});

describe('VFIO_IOMMU_DIRTY_PAGES GET_BITMAP errors', () => {
  type Row = [string, (data: bigint) => Uint8Array, uapi.ErrnoCode, boolean?];
  const range = { iova: 0x100000n, size: 0x10000n };
  const rows: Row[] = [
    ['argsz 47 (no room for the range)', (data) => getBitmapBytes({ ...range, data, argsz: 47 }), 'EINVAL'],
    ['argsz 48 in a 40-byte buffer', (data) => getBitmapBytes({ ...range, data }).slice(0, 40), 'EFAULT'],
    ['size 0', (data) => getBitmapBytes({ iova: range.iova, size: 0n, data }), 'EINVAL'],
    ['iova + size wraps past 2^64', (data) => getBitmapBytes({ iova: TOP_PAGE, size: 2n * PAGE, data }), 'EOVERFLOW'],
    ['a bitmap above user space', () => getBitmapBytes({ ...range, data: 1n << 47n }), 'EINVAL'],
    ['a bitmap of 0 bytes', (data) => getBitmapBytes({ ...range, data, bitmapSize: 0n }), 'EINVAL'],
    ['a bitmap smaller than the range needs (7 of 8 bytes)', (data) => getBitmapBytes({ ...range, data, bitmapSize: 7n }), 'EINVAL'],
    ['a bitmap larger than 256 MiB', (data) => getBitmapBytes({ ...range, data, bitmapSize: 0x10000008n }), 'EINVAL'],
    ['a bitmap pgsize of 8 KiB', (data) => getBitmapBytes({ ...range, data, pgsize: 0x2000n }), 'EINVAL'],
    ['a bitmap pgsize of 2 MiB', (data) => getBitmapBytes({ iova: 0n, size: 0x40000000n, data, pgsize: 0x200000n, bitmapSize: 64n }), 'EINVAL'],
    ['iova not 4K aligned', (data) => getBitmapBytes({ iova: range.iova + 0x800n, size: range.size, data }), 'EINVAL'],
    ['size not 4K aligned', (data) => getBitmapBytes({ iova: range.iova, size: range.size - 0x800n, data }), 'EINVAL'],
    ['tracking not started', (data) => getBitmapBytes({ ...range, data }), 'EINVAL', false],
    ['a range that starts inside A', (data) => getBitmapBytes({ iova: A[0] + PAGE, size: range.size, data }), 'EINVAL'],
    ['a range that ends inside B', (data) => getBitmapBytes({ iova: A[0], size: B[0] + PAGE - A[0], data }), 'EINVAL'],
  ];
  test.each(rows.map(([name, build, code, tracking]) => ({ name, build, code, tracking: tracking !== false })))(
    '$name → $code',
    ({ build, code, tracking }) => {
      const { w, bitmap } = dirtyWorld(tracking);
      const before = w.state();
      expect(w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, build(bitmap))).toBe(code);
      expect(w.state()).toEqual(before);
      expect(w.proc.readMemory(bitmap, 8)).toEqual(new Uint8Array(8));
    },
  );

  test('a bitmap in read-only memory → EFAULT', () => {
    const { w } = dirtyWorld();
    const readOnly = w.mmap(PAGE, { prot: 'r' });
    expect(w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, getBitmapBytes({ ...range, data: readOnly }))).toBe('EFAULT');
  });
});

describe('VFIO_IOMMU_DIRTY_PAGES GET_BITMAP results', () => {
  const get = (w: Type1World, f: GetBitmapFields): string => w.ioctl(uapi.VFIO_IOMMU_DIRTY_PAGES, getBitmapBytes(f));

  test('every mapped page is reported dirty (an IOMMU-backed group cannot tell), holes are 0', () => {
    const { w, bitmap } = dirtyWorld();
    expect(get(w, { iova: 0x100000n, size: 0x10000n, data: bitmap })).toBe('ok');
    // Pages 0-3 (A) and 6-7 (B): 0b11001111.
    expect(w.proc.readMemory(bitmap, 8)).toEqual(new Uint8Array([0xcf, 0, 0, 0, 0, 0, 0, 0]));
  });

  test('bit 0 is the page at the range start', () => {
    const { w, bitmap } = dirtyWorld();
    expect(get(w, { iova: B[0], size: B[1], data: bitmap })).toBe('ok');
    expect(w.proc.readMemory(bitmap, 8)).toEqual(new Uint8Array([0x03, 0, 0, 0, 0, 0, 0, 0]));
  });

  test('a range of holes only reports nothing', () => {
    const { w, bitmap } = dirtyWorld();
    expect(get(w, { iova: 0x104000n, size: 0x2000n, data: bitmap })).toBe('ok');
    expect(get(w, { iova: 0x200000n, size: 0x40000n, data: bitmap })).toBe('ok');
    expect(w.proc.readMemory(bitmap, 8)).toEqual(new Uint8Array(8));
  });

  test('reading again reports the same pages again', () => {
    const { w, bitmap } = dirtyWorld();
    expect(get(w, { iova: 0x100000n, size: 0x10000n, data: bitmap })).toBe('ok');
    w.proc.writeMemory(bitmap, new Uint8Array(8));
    expect(get(w, { iova: 0x100000n, size: 0x10000n, data: bitmap })).toBe('ok');
    expect(w.proc.readMemory(bitmap, 2)).toEqual(new Uint8Array([0xcf, 0]));
  });

  test('a range wider than 64 pages spreads over several bytes', () => {
    const w = worldWith('v2', [
      [0x100000n, PAGE],
      [0x100000n + 70n * PAGE, 3n * PAGE],
    ]);
    expect(dirtyFlags(w, START)).toBe('ok');
    const bitmap = w.mmap(PAGE);
    expect(get(w, { iova: 0x100000n, size: 128n * PAGE, data: bitmap, bitmapSize: 16n })).toBe('ok');
    const expected = new Uint8Array(16);
    expected[0] = 0x01;
    expected[8] = 0b11000000; // pages 70, 71
    expected[9] = 0b00000001; // page 72
    expect(w.proc.readMemory(bitmap, 16)).toEqual(expected);
  });
});

describe('UNMAP_DMA with GET_DIRTY_BITMAP', () => {
  test('with tracking on, the bits of the unmapped mappings are written and the mappings go', () => {
    const { w, bitmap } = dirtyWorld();
    const bytes = unmapWithBitmap({ iova: 0x100000n, size: 0x10000n }, { data: bitmap });
    expect(w.unmapRaw(bytes)).toEqual({ size: 6n * PAGE });
    expect(w.proc.readMemory(bitmap, 8)).toEqual(new Uint8Array([0xcf, 0, 0, 0, 0, 0, 0, 0]));
    expect(w.state()).toEqual({ pinnedPages: 0, lockedVm: 0, dmaAvail: 65535 });
    expect(isMapped(w, A[0])).toBe(false);
    expect(isMapped(w, B[0])).toBe(false);
  });

  test('bits are placed relative to the requested iova', () => {
    const { w, bitmap } = dirtyWorld();
    expect(w.unmapRaw(unmapWithBitmap({ iova: 0x104000n, size: 0x4000n }, { data: bitmap }))).toEqual({ size: 2n * PAGE });
    expect(w.proc.readMemory(bitmap, 1)).toEqual(new Uint8Array([0x0c]));
    expect(isMapped(w, A[0])).toBe(true);
  });

  test('a bitmap that runs into unmapped memory is EFAULT before anything is unmapped or written', () => {
    const { w } = dirtyWorld();
    // Byte 0 of the bitmap is the last byte of a writable page, byte 1 the first of an unmapped one.
    const twoPages = w.mmap(2n * PAGE);
    w.proc.munmap(twoPages + PAGE, PAGE);
    const data = twoPages + PAGE - 1n;
    const before = w.state();
    // From 0xfe000: A's bits are 2–5 (byte 0), B's bits 8–9 (byte 1, unreachable).
    expect(w.unmapRaw(unmapWithBitmap({ iova: 0xfe000n, size: 0x10000n }, { data }))).toEqual({ code: 'EFAULT' });
    expect(w.state()).toEqual(before);
    expect([isMapped(w, A[0]), isMapped(w, B[0])]).toEqual([true, true]);
    expect(w.proc.readMemory(data, 1)).toEqual(new Uint8Array([0]));
  });

  test('with tracking off it is EINVAL and nothing is unmapped', () => {
    const { w, bitmap } = dirtyWorld(false);
    const before = w.state();
    expect(w.unmapRaw(unmapWithBitmap({ iova: 0x100000n, size: 0x10000n }, { data: bitmap }))).toEqual({ code: 'EINVAL' });
    expect(w.state()).toEqual(before);
    expect(isMapped(w, A[0])).toBe(true);
  });

  test('a v1 container, which cannot track, gets EINVAL', () => {
    const w = worldWith('v1', [A]);
    const bitmap = w.mmap(PAGE);
    expect(w.unmapRaw(unmapWithBitmap({ iova: A[0], size: A[1] }, { data: bitmap }))).toEqual({ code: 'EINVAL' });
    expect(isMapped(w, A[0])).toBe(true);
  });

  test('after STOP it is EINVAL again', () => {
    const { w, bitmap } = dirtyWorld();
    expect(dirtyFlags(w, STOP)).toBe('ok');
    expect(w.unmapRaw(unmapWithBitmap({ iova: 0x100000n, size: 0x10000n }, { data: bitmap }))).toEqual({ code: 'EINVAL' });
  });
});
