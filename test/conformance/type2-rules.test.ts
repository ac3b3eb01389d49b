/**
 * The windowed (type2) backend's rules as userspace sees them through the ioctls: the kernel window API
 * (reference/pamu-windowed.md §2.3, every row that VFIO can reach), the VFIO rules of the type2 backend
 * (issue 3 item 2: attributes, MAP_DMA of whole windows or one power-of-two region, contiguity and
 * natural alignment of the backing, overlap, RLIMIT_MEMLOCK, all or nothing, whole-mapping UNMAP_DMA,
 * GET_INFO), group attach and detach by LIODN, and the hardware's answer to a bad DMA (§1.6, §7): a
 * fault with the address and the LIODN, and the LIODN disabled.
 *
 * Unless a test says otherwise: fsl-p4080, one vfio-pci device (0000:01:00.0, group 1, LIODN 0x100), an
 * aperture of 1 MiB at IOVA 0 split into 16 windows of 64 KiB, backed by 64 KiB hugetlb pages (each one
 * physically contiguous and naturally aligned). Every failed ioctl must leave the container as it was:
 * pins, locked_vm, GET_INFO, the attributes and the hardware's windows (`snapshot()`).
 *
 * Ranges: `end` is exclusive, `last` is inclusive.
 */
import { Kernel, MACHINE_PRESETS, VfioContainer, VfioGroup, uapi, type PciDeviceSpec } from '../../index';
import { WindowedIommu } from '../../kernel-sim/iommu/windowed/windowed-iommu';
import {
  BDF,
  GROUP,
  GiB,
  KiB,
  LIODN,
  MiB,
  RW,
  attrBytes,
  dmaOutcome,
  outcome,
  type2World,
  type Type2World,
  type Type2WorldOptions,
} from '../helpers/type2-world';

const WIN = 64n * KiB;
const WIN_PAGES = Number(WIN / 4096n);
const APERTURE = 16n * WIN;
const R = uapi.VFIO_DMA_MAP_FLAG_READ;
const W = uapi.VFIO_DMA_MAP_FLAG_WRITE;
const GEOMETRY = uapi.VFIO_ATTR_GEOMETRY;
const WINDOWS = uapi.VFIO_ATTR_WINDOWS;
const STASH = uapi.VFIO_ATTR_PAMU_STASH;
const HW_APERTURE_LAST = (1n << 36n) - 1n;
const FILL = 0xa5;
const hex = (n: bigint): string => `0x${n.toString(16)}`;

/** The default world: 1 MiB at 0 in 16 windows of 64 KiB. */
function windowed(options: Type2WorldOptions = {}): Type2World {
  const w = type2World(options);
  w.layout(0n, APERTURE, 16);
  return w;
}

/** `windows` windows' worth of 64 KiB hugetlb pages. */
const huge = (w: Type2World, windows: number | bigint): bigint => w.proc.mmap(BigInt(windows) * WIN, { pageSize: WIN });

const geometry = (start: bigint, last: bigint) => ({ attribute: GEOMETRY, aperture_start: start, aperture_end: last }) as const;
const windowsAttr = (windows: number) => ({ attribute: WINDOWS, windows }) as const;
const stash = (cpu: number, cache: number) => ({ attribute: STASH, stash_cpu: cpu, stash_cache: cache }) as const;

/** Runs `change`, requires `expected`, and when it failed, that nothing changed. */
function expectClean(w: Type2World, change: () => unknown, expected: unknown): void {
  const before = w.snapshot();
  expect(change()).toEqual(expected);
  if (expected !== 'ok' && !(typeof expected === 'object' && expected !== null && 'size' in expected)) {
    expect(w.snapshot()).toEqual(before);
  }
}

// ---- attributes ----------------------------------------------------------------------------------

describe('GET_ATTR / SET_ATTR: the vfio_pamu_attr argument', () => {
  const requests = [
    ['GET_ATTR', uapi.VFIO_IOMMU_PAMU_GET_ATTR],
    ['SET_ATTR', uapi.VFIO_IOMMU_PAMU_SET_ATTR],
  ] as const;

  const bad: [string, Uint8Array, string][] = [
    ['a buffer of 31 bytes', attrBytes(windowsAttr(16)).subarray(0, 31), 'EFAULT'],
    ['argsz 0', uapi.VfioPamuAttr.encode({ argsz: 0, attribute: WINDOWS, windows: 16 }), 'EINVAL'],
    ['argsz 16', uapi.VfioPamuAttr.encode({ argsz: 16, attribute: WINDOWS, windows: 16 }), 'EINVAL'],
    ['argsz 31', uapi.VfioPamuAttr.encode({ argsz: 31, attribute: WINDOWS, windows: 16 }), 'EINVAL'],
    ['flags 1', uapi.VfioPamuAttr.encode({ argsz: 32, flags: 1, attribute: WINDOWS, windows: 16 }), 'EINVAL'],
    ['flags 0x80000000', uapi.VfioPamuAttr.encode({ argsz: 32, flags: 0x80000000, attribute: WINDOWS, windows: 16 }), 'EINVAL'],
    ['attribute 3 (unknown)', uapi.VfioPamuAttr.encode({ argsz: 32, attribute: 3, windows: 16 }), 'EINVAL'],
    ['attribute 0xffffffff', uapi.VfioPamuAttr.encode({ argsz: 32, attribute: 0xffffffff, windows: 16 }), 'EINVAL'],
  ];
  const cases = requests.flatMap(([name, request]) => bad.map(([what, bytes, code]) => ({ name, request, what, bytes, code })));

  test.each(cases)('$name with $what → $code, nothing written or changed', ({ request, bytes, code }) => {
    const w = type2World();
    w.setAttr(geometry(0n, APERTURE - 1n));
    const arg = bytes.slice();
    expectClean(w, () => w.ioctl(request, arg), code);
    expect(arg).toEqual(bytes);
  });

  test('argsz above 32 is accepted; GET writes the 32-byte struct and nothing past it', () => {
    const w = windowed();
    const buf = new Uint8Array(48).fill(FILL);
    uapi.VfioPamuAttr.encode({ argsz: 48, attribute: WINDOWS }, buf.subarray(0, 32));
    expect(w.ioctl(uapi.VFIO_IOMMU_PAMU_GET_ATTR, buf)).toBe('ok');
    expect(uapi.VfioPamuAttr.read(buf, 'windows')).toBe(16);
    expect([uapi.readU32(buf, 0), uapi.readU32(buf, 4), uapi.readU32(buf, 8)]).toEqual([48, 0, WINDOWS]);
    expect(buf.subarray(32)).toEqual(new Uint8Array(16).fill(FILL));
    const set = new Uint8Array(48).fill(FILL);
    uapi.VfioPamuAttr.encode({ argsz: 48, attribute: WINDOWS, windows: 8 }, set.subarray(0, 32));
    expect(w.ioctl(uapi.VFIO_IOMMU_PAMU_SET_ATTR, set)).toBe('ok');
    expect(w.getAttr(WINDOWS)).toMatchObject({ windows: 8 });
  });

  test('GET_ATTR GEOMETRY writes aperture_start and aperture_end, leaving argsz, flags and attribute', () => {
    const w = windowed();
    const buf = new Uint8Array(32).fill(FILL);
    uapi.VfioPamuAttr.encode({ argsz: 32, attribute: GEOMETRY }, buf);
    uapi.writeU32(buf, 12, 0xa5a5a5a5);
    expect(w.ioctl(uapi.VFIO_IOMMU_PAMU_GET_ATTR, buf)).toBe('ok');
    expect(uapi.VfioPamuAttr.decode(buf)).toMatchObject({ argsz: 32, flags: 0, attribute: GEOMETRY, aperture_start: 0n, aperture_end: APERTURE - 1n });
  });

  test('the PAMU ioctls before SET_IOMMU → EINVAL (no IOMMU set on the container)', () => {
    const w = type2World({ setIommu: false });
    expect(w.ioctl(uapi.VFIO_IOMMU_PAMU_GET_ATTR, attrBytes(windowsAttr(0)))).toBe('EINVAL');
    expect(w.ioctl(uapi.VFIO_IOMMU_PAMU_SET_ATTR, attrBytes(geometry(0n, APERTURE - 1n)))).toBe('EINVAL');
    expect(w.ioctl(uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT)).toBe('EINVAL');
  });
});

describe('VFIO_CHECK_EXTENSION on a type2 container', () => {
  test.each([
    ['VFIO_TYPE2_IOMMU', uapi.VFIO_TYPE2_IOMMU, 1],
    ['VFIO_UNMAP_ALL (UNMAP_DMA takes FLAG_ALL)', uapi.VFIO_UNMAP_ALL, 1],
    ['VFIO_UPDATE_VADDR (FLAG_VADDR is refused)', uapi.VFIO_UPDATE_VADDR, 0],
    ['VFIO_TYPE1v2_IOMMU', uapi.VFIO_TYPE1v2_IOMMU, 0],
    ['VFIO_TYPE1_IOMMU', uapi.VFIO_TYPE1_IOMMU, 0],
  ])('after SET_IOMMU: %s → %i', (_name, extension, expected) => {
    const w = type2World();
    expect(w.vfio.checkExtension(extension)).toBe(expected);
  });
});

describe('GEOMETRY (§2.3 set GEOMETRY, §1.4 aperture)', () => {
  test('before any SET: the hardware default [0, 2^36 − 1] and the window maximum 256', () => {
    const w = type2World();
    expect(w.getAttr(GEOMETRY)).toMatchObject({ aperture_start: 0n, aperture_end: HW_APERTURE_LAST });
    expect(w.getAttr(WINDOWS)).toMatchObject({ windows: 256 });
    // Before WINDOWS, GET_INFO reports the minimum window (4 KiB) and the whole default aperture.
    expect(w.vfio.iommuInfo()).toMatchObject({ iovaPgsizes: 0x1000n, iovaRanges: [{ start: 0n, last: HW_APERTURE_LAST }] });
  });

  test.each([
    ['size not a power of two (12 KiB)', 0n, 0x2fffn],
    ['size not a power of two (3 GiB)', 0n, 3n * GiB - 1n],
    ['size below 4 KiB (2 KiB)', 0n, 0x7ffn],
    ['size of one byte', 0n, 0n],
    ['start 4 KiB for 8 KiB (not aligned to its size)', 0x1000n, 0x2fffn],
    ['start 256 MiB for 512 MiB', 256n * MiB, 768n * MiB - 1n],
    ['start 1 MiB + 4 KiB for 1 MiB', MiB + 0x1000n, 2n * MiB + 0xfffn],
    ['end below start', 0x2000n, 0xfffn],
    ['beyond 2^36 − 1 (2^36, 2^36)', 1n << 36n, (1n << 37n) - 1n],
    ['128 GiB from 0', 0n, (1n << 37n) - 1n],
    ['up to 2^64 − 1', 0n, (1n << 64n) - 1n],
  ])('%s → EINVAL, nothing set', (_what, start, last) => {
    const w = type2World();
    expectClean(w, () => w.setAttr(geometry(start, last)), 'EINVAL');
  });

  test.each([
    ['4 KiB at 0 (the minimum)', 0n, 0xfffn],
    ['1 MiB at 1 MiB', MiB, 2n * MiB - 1n],
    ['32 GiB at 32 GiB (the top half)', 1n << 35n, HW_APERTURE_LAST],
    ['the whole 64 GiB', 0n, HW_APERTURE_LAST],
  ])('%s is accepted and read back', (_what, start, last) => {
    const w = type2World();
    expect(w.setAttr(geometry(start, last))).toBe('ok');
    expect(w.getAttr(GEOMETRY)).toMatchObject({ aperture_start: start, aperture_end: last });
  });

  test('changing the geometry while a mapping exists → EBUSY; after the unmap it is accepted', () => {
    const w = windowed();
    expect(w.map(0n, WIN, huge(w, 1))).toBe('ok');
    expectClean(w, () => w.setAttr(geometry(0n, 2n * APERTURE - 1n)), 'EBUSY');
    expectClean(w, () => w.setAttr(geometry(0n, APERTURE - 1n)), 'EBUSY');
    expect(w.unmap(0n, WIN)).toEqual({ size: WIN });
    expect(w.setAttr(geometry(0n, 2n * APERTURE - 1n))).toBe('ok');
  });

  test('a new geometry keeps the window count (derived row "does not reset windows"): 16 windows of 128 KiB', () => {
    const w = windowed();
    expect(w.setAttr(geometry(2n * MiB, 4n * MiB - 1n))).toBe('ok');
    expect(w.getAttr(WINDOWS)).toMatchObject({ windows: 16 });
    expect(w.vfio.iommuInfo()).toMatchObject({ iovaPgsizes: 128n * KiB, iovaRanges: [{ start: 2n * MiB, last: 4n * MiB - 1n }] });
    expect(w.map(2n * MiB + 128n * KiB, 128n * KiB, w.proc.mmap(128n * KiB, { pageSize: 128n * KiB }))).toBe('ok');
  });

  test('a geometry whose slots would fall below 4 KiB with the windows set → EINVAL', () => {
    const w = windowed();
    // 32 KiB / 16 windows = 2 KiB slots.
    expectClean(w, () => w.setAttr(geometry(0n, 32n * KiB - 1n)), 'EINVAL');
  });
});

describe('WINDOWS (§2.3 set/get WINDOWS)', () => {
  test('WINDOWS before GEOMETRY → EINVAL', () => {
    const w = type2World();
    expectClean(w, () => w.setAttr(windowsAttr(16)), 'EINVAL');
    expect(w.getAttr(WINDOWS)).toMatchObject({ windows: 256 });
  });

  test.each([0, 3, 6, 255, 257, 384, 512, 1024, 0x80000000, 0xffffffff])('%i windows → EINVAL, nothing set', (count) => {
    const w = type2World();
    w.setAttr(geometry(0n, APERTURE - 1n));
    expectClean(w, () => w.setAttr(windowsAttr(count)), 'EINVAL');
  });

  test.each([1, 2, 16, 128, 256])('%i windows over 1 MiB: read back, iova_pgsizes = 1 MiB / count, and 1 + (count − 1) PAACEs', (count) => {
    const w = type2World();
    w.layout(0n, MiB, count);
    expect(w.getAttr(WINDOWS)).toMatchObject({ windows: count });
    expect(w.vfio.iommuInfo().iovaPgsizes).toBe(MiB / BigInt(count));
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: count - 1 });
    expect(w.pamu.liodnState(LIODN)).toMatchObject({ secondaryCount: count - 1 });
  });

  test('one window: it maps the whole aperture or a power-of-two region at its start; unmapping it disables the domain', () => {
    const w = type2World();
    w.layout(MiB, MiB, 1);
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 0 });
    const page = w.proc.mmap(MiB, { pageSize: MiB });
    expect(w.map(MiB, MiB, page)).toBe('ok');
    w.device.dmaWrite(MiB + 0xfff00n, Uint8Array.of(3));
    expect(w.proc.readMemory(page + 0xfff00n, 1)).toEqual(Uint8Array.of(3));
    expect(w.unmap(MiB, MiB)).toEqual({ size: MiB });
    expect(w.snapshot()).toMatchObject({ validWindows: [], enabled: false });
    expect(w.map(MiB, WIN, page + WIN)).toBe('ok');
    expect(dmaOutcome(() => w.device.dmaRead(MiB + WIN, 1))).toBe('unmapped');
    expect(w.pamu.faults().at(-1)).toMatchObject({ kind: 'beyond-window' });
  });

  test('windows whose slots fall below 4 KiB (32 over 64 KiB) → EINVAL', () => {
    const w = type2World();
    w.setAttr(geometry(0n, 64n * KiB - 1n));
    expectClean(w, () => w.setAttr(windowsAttr(32)), 'EINVAL');
    expect(w.setAttr(windowsAttr(16))).toBe('ok');
  });

  test('changing the count while a mapping exists → EBUSY, even to the same count; after the unmap it is accepted', () => {
    const w = windowed();
    expect(w.map(3n * WIN, WIN, huge(w, 1))).toBe('ok');
    expectClean(w, () => w.setAttr(windowsAttr(8)), 'EBUSY');
    expectClean(w, () => w.setAttr(windowsAttr(16)), 'EBUSY');
    expect(w.unmap(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ size: WIN });
    expect(w.setAttr(windowsAttr(8))).toBe('ok');
    expect(w.pamu.counters().secondaryHeld).toBe(7);
  });

  test('the secondary pool is shared: 9 LIODNs cannot have 256 windows each (9 × 255 > 2048) → ENOSPC, nothing changes', () => {
    const devices: PciDeviceSpec[] = Array.from({ length: 9 }, (_, i) => ({ bdf: `000${i}:01:00.0`, group: i + 1, driver: 'vfio-pci' }));
    const w = type2World({ devices });
    for (let g = 2; g <= 9; g++) VfioGroup.open(w.proc, g).setContainer(w.vfio);
    w.layout(0n, 256n * MiB, 128);
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 9, secondaryHeld: 9 * 127 });
    expectClean(w, () => w.setAttr(windowsAttr(256)), 'ENOSPC');
    expect(w.getAttr(WINDOWS)).toMatchObject({ windows: 128 });
    expect(w.pamu.secondaryPool()).toEqual({ free: 2048 - 9 * 127, largestRun: 2048 - 9 * 127 });
  });
});

describe('PAMU_STASH (§1.5, §2.3 set STASH)', () => {
  test('STASH before WINDOWS → EINVAL', () => {
    const w = type2World();
    expectClean(w, () => w.setAttr(stash(0, 1)), 'EINVAL');
    w.setAttr(geometry(0n, APERTURE - 1n));
    expectClean(w, () => w.setAttr(stash(0, 1)), 'EINVAL');
  });

  test.each([
    ['cache 0', 0, 0],
    ['cache 4', 0, 4],
    ['cache 0xffffffff', 0, 0xffffffff],
    ['cpu 64 (no such CPU)', 64, 1],
  ])('%s → EINVAL, the previous stash stays', (_what, cpu, cache) => {
    const w = windowed();
    expect(w.setAttr(stash(3, 2))).toBe('ok');
    expectClean(w, () => w.setAttr(stash(cpu, cache)), 'EINVAL');
    expect(w.getAttr(STASH)).toMatchObject({ stash_cpu: 3, stash_cache: 2 });
  });

  test.each([
    [0, 1],
    [7, 2],
    [63, 3],
  ])('cpu %i, cache %i (L1/L2/L3) is accepted and read back; DMA is unchanged', (cpu, cache) => {
    const w = windowed();
    expect(w.getAttr(STASH)).toMatchObject({ stash_cpu: 0, stash_cache: 0 });
    const ram = huge(w, 1);
    expect(w.map(0n, WIN, ram)).toBe('ok');
    expect(w.setAttr(stash(cpu, cache))).toBe('ok');
    expect(w.getAttr(STASH)).toMatchObject({ stash_cpu: cpu, stash_cache: cache });
    w.device.dmaWrite(0x10n, Uint8Array.of(1));
    expect(w.proc.readMemory(ram + 0x10n, 1)).toEqual(Uint8Array.of(1));
  });
});

// ---- MAP_DMA -------------------------------------------------------------------------------------

describe('MAP_DMA: what a mapping may be (whole windows, or one power-of-two region at a window base)', () => {
  type Backing = 'huge' | 'anon' | 'none';
  const cases: [string, bigint, bigint, string, number?, Backing?][] = [
    ['one whole window at 0', 0n, WIN, 'ok'],
    ['three whole windows from window 1', WIN, 3n * WIN, 'ok'],
    ['all 16 windows', 0n, APERTURE, 'ok'],
    ['the last window', 15n * WIN, WIN, 'ok'],
    ['4 KiB at the base of window 2', 2n * WIN, 4n * KiB, 'ok'],
    ['32 KiB at the base of window 5', 5n * WIN, 32n * KiB, 'ok'],
    ['4 KiB of scattered anonymous memory (one page is always contiguous)', 0n, 4n * KiB, 'ok', RW, 'anon'],
    ['12 KiB (smaller than a window, not a power of two)', 0n, 12n * KiB, 'EINVAL'],
    ['48 KiB (smaller than a window, not a power of two)', 0n, 48n * KiB, 'EINVAL'],
    ['a window and 4 KiB (a remainder)', 0n, WIN + 4n * KiB, 'EINVAL'],
    ['two windows and 32 KiB (a remainder)', 0n, 2n * WIN + 32n * KiB, 'EINVAL'],
    ['4 KiB at 0x1000 (not a window base)', 0x1000n, 4n * KiB, 'EINVAL'],
    ['32 KiB at 0x8000 (not a window base)', 0x8000n, 32n * KiB, 'EINVAL'],
    ['a window at 0x10800 (not 4 KiB aligned)', WIN + 0x800n, WIN, 'EINVAL'],
    ['a window at the end of the aperture', APERTURE, WIN, 'EINVAL'],
    ['two windows from the last one (past the aperture)', 15n * WIN, 2n * WIN, 'EINVAL'],
    ['a window at 4 GiB', 4n * GiB, WIN, 'EINVAL'],
    ['size 0', 0n, 0n, 'EINVAL'],
    ['size 0x800', 0n, 0x800n, 'EINVAL'],
    ['a range wrapping past 2^64', (1n << 64n) - WIN, 2n * WIN, 'EOVERFLOW'],
    ['flags 0 (neither READ nor WRITE)', 0n, WIN, 'EINVAL', 0],
    ['FLAG_VADDR', 0n, WIN, 'EINVAL', uapi.VFIO_DMA_MAP_FLAG_VADDR],
    ['FLAG_VADDR with READ|WRITE', 0n, WIN, 'EINVAL', RW | uapi.VFIO_DMA_MAP_FLAG_VADDR],
    ['an unknown flag (0x8)', 0n, WIN, 'EINVAL', RW | 0x8],
    ['a window of scattered anonymous memory', 0n, WIN, 'EFAULT', RW, 'anon'],
    ['8 KiB of scattered anonymous memory', 0n, 8n * KiB, 'EFAULT', RW, 'anon'],
    ['a window with no memory behind it', 0n, WIN, 'EFAULT', RW, 'none'],
  ];

  const titled = cases.map(([what, iova, size, expected, flags, backing]) => [`${what} (iova ${hex(iova)}, size ${hex(size)})`, expected, iova, size, flags ?? RW, backing ?? 'huge'] as const);
  test.each(titled)('%s → %s', (_what, expected, iova, size, flags, backing) => {
    const w = windowed();
    const vaddr =
      backing === 'huge' ? huge(w, 16) : backing === 'anon' ? w.proc.mmap(APERTURE) : (() => {
        const v = huge(w, 1);
        w.proc.munmap(v, WIN);
        return v;
      })();
    expectClean(w, () => w.map(iova, size, vaddr, flags), expected);
    if (expected !== 'ok') return;
    const pages = Number(size / 4096n);
    const after = w.snapshot();
    expect(after).toMatchObject({ pinnedPages: pages, lockedVm: pages, enabled: true });
    // One valid window per whole window, or the one holding the region.
    const first = Number(iova / WIN);
    const count = size >= WIN ? Number(size / WIN) : 1;
    expect(after.validWindows.map((v) => [v.index, v.pageCount])).toEqual(
      Array.from({ length: count }, (_, i) => [first + i, Math.min(pages, WIN_PAGES)]),
    );
  });

  test('a region smaller than its window: DMA inside it works, DMA beyond it in the same slot faults', () => {
    const w = windowed();
    const ram = huge(w, 1);
    expect(w.map(5n * WIN, 32n * KiB, ram)).toBe('ok');
    w.device.dmaWrite(5n * WIN + 32n * KiB - 1n, Uint8Array.of(0x42));
    expect(w.proc.readMemory(ram + 32n * KiB - 1n, 1)).toEqual(Uint8Array.of(0x42));
    expect(dmaOutcome(() => w.device.dmaRead(5n * WIN + 32n * KiB, 1))).toBe('unmapped');
    expect(w.pamu.faults().at(-1)).toMatchObject({ address: 5n * WIN + 32n * KiB, liodn: LIODN, kind: 'beyond-window' });
  });

  test('MAP_DMA before WINDOWS (with or without GEOMETRY) → EINVAL', () => {
    const w = type2World();
    const ram = huge(w, 1);
    expectClean(w, () => w.map(0n, WIN, ram), 'EINVAL');
    w.setAttr(geometry(0n, APERTURE - 1n));
    expectClean(w, () => w.map(0n, WIN, ram), 'EINVAL');
  });

  test('MAP_DMA argsz below 32 → EINVAL, a buffer below 32 bytes → EFAULT', () => {
    const w = windowed();
    const ram = huge(w, 1);
    const map = uapi.VfioIommuType1DmaMap.encode({ argsz: 31, flags: RW, vaddr: ram, iova: 0n, size: WIN });
    expectClean(w, () => w.ioctl(uapi.VFIO_IOMMU_MAP_DMA, map), 'EINVAL');
    uapi.VfioIommuType1DmaMap.write(map, 'argsz', 32);
    expectClean(w, () => w.ioctl(uapi.VFIO_IOMMU_MAP_DMA, map.subarray(0, 31)), 'EFAULT');
  });

  test.each([
    { name: 'READ', flags: R, read: true, write: 'permission' },
    { name: 'WRITE', flags: W, read: 'permission', write: true },
    { name: 'READ|WRITE', flags: RW, read: true, write: true },
  ] as const)('a $name window: device read → $read, device write → $write', ({ flags, read, write }) => {
    const w = windowed();
    expect(w.map(0n, WIN, huge(w, 1), flags)).toBe('ok');
    const domain = w.domain();
    expect(domain.windows.window(0)?.prot).toBe(flags);
    expect(dmaOutcome(() => w.device.dmaRead(0x100n, 4))).toBe(read);
    // A permission fault disables the LIODN; re-enable it to try the other direction.
    domain.windows.reenableRequester(LIODN);
    expect(dmaOutcome(() => w.device.dmaWrite(0x200n, Uint8Array.of(1)))).toBe(write);
  });

  test('a read-only mmap can back a READ window but not a WRITE one (EFAULT)', () => {
    const w = windowed();
    const ro = w.proc.mmap(WIN, { pageSize: WIN, prot: 'r' });
    expectClean(w, () => w.map(0n, WIN, ro, RW), 'EFAULT');
    expect(w.map(0n, WIN, ro, R)).toBe('ok');
  });
});

describe('MAP_DMA: overlap → EEXIST (the SDK said EBUSY)', () => {
  test.each([
    ['the same window again', 'EEXIST', WIN, WIN],
    ['4 KiB at the base of a mapped window', 'EEXIST', 2n * WIN, 4n * KiB],
    ['two windows reaching into a mapped one', 'EEXIST', WIN * 2n, 2n * WIN],
    ['four windows over a mapped one', 'EEXIST', 0n, 4n * WIN],
    ['a whole window over a 4 KiB region (same slot)', 'EEXIST', 6n * WIN, WIN],
    ['the window right after the three-window mapping', 'ok', 4n * WIN, WIN],
    ['the window right before it', 'ok', 0n, WIN],
  ])('with windows 1–3 and a 4 KiB region in window 6 mapped: %s → %s', (_what, expected, iova, size) => {
    const w = windowed();
    const ram = huge(w, 16);
    expect(w.map(WIN, 3n * WIN, ram)).toBe('ok');
    expect(w.map(6n * WIN, 4n * KiB, ram + 3n * WIN)).toBe('ok');
    expectClean(w, () => w.map(iova, size, ram + 8n * WIN), expected);
  });
});

describe('MAP_DMA: the backing must be naturally aligned to the mapped size (EINVAL, documented, never checked by the SDK)', () => {
  test('a 16 MiB window mapped from 2 MiB into a 256 MiB hugepage → EINVAL; from 16 MiB into it → ok', () => {
    const w = type2World();
    w.layout(0n, 256n * MiB, 16);
    const page = w.proc.mmap(256n * MiB, { pageSize: 256n * MiB });
    expectClean(w, () => w.map(0n, 16n * MiB, page + 2n * MiB), 'EINVAL');
    expect(w.map(0n, 16n * MiB, page + 16n * MiB)).toBe('ok');
    w.device.dmaWrite(0x1234n, Uint8Array.of(9));
    expect(w.proc.readMemory(page + 16n * MiB + 0x1234n, 1)).toEqual(Uint8Array.of(9));
  });

  test.each([
    ['32 KiB from 16 KiB into a 64 KiB hugepage', 'EINVAL', 32n * KiB, 16n * KiB],
    ['32 KiB from 32 KiB into a 64 KiB hugepage', 'ok', 32n * KiB, 32n * KiB],
    ['8 KiB from 4 KiB into a 64 KiB hugepage', 'EINVAL', 8n * KiB, 4n * KiB],
    ['4 KiB from 60 KiB into a 64 KiB hugepage', 'ok', 4n * KiB, 60n * KiB],
  ])('%s → %s', (_what, expected, size, offset) => {
    const w = windowed();
    expectClean(w, () => w.map(0n, size, huge(w, 1) + offset), expected);
  });
});

describe('MAP_DMA: RLIMIT_MEMLOCK → ENOMEM, all or nothing', () => {
  test('a 2-window MAP that would pass a limit of 3 windows → ENOMEM, nothing pinned or charged', () => {
    const w = windowed({ spawn: { memlockLimit: 3n * WIN } });
    const ram = huge(w, 4);
    expect(w.map(0n, 2n * WIN, ram)).toBe('ok');
    // The first of the two new windows fits the limit, the second does not: both go.
    expectClean(w, () => w.map(2n * WIN, 2n * WIN, ram + 2n * WIN), 'ENOMEM');
    expect(w.snapshot()).toMatchObject({ pinnedPages: 2 * WIN_PAGES, lockedVm: 2 * WIN_PAGES });
    expect(w.map(2n * WIN, WIN, ram + 2n * WIN)).toBe('ok');
  });

  test('CAP_IPC_LOCK bypasses the limit but locked_vm still counts', () => {
    const w = windowed({ spawn: { memlockLimit: WIN, capabilities: ['CAP_IPC_LOCK'] } });
    expect(w.map(0n, 4n * WIN, huge(w, 4))).toBe('ok');
    expect(w.proc.mm.lockedVm).toBe(4 * WIN_PAGES);
  });
});

describe('MAP_DMA across several windows is all or nothing', () => {
  // 2 MiB windows, so that mmaps (placed 2 MiB-aligned, one after the other) can be made adjacent.
  const WIN2M = 2n * MiB;

  test.each([
    ['the 3rd window is scattered anonymous memory', 'EFAULT', 'anon'],
    ['the 3rd window is a hole', 'EFAULT', 'hole'],
    ['the 3rd window passes RLIMIT_MEMLOCK', 'ENOMEM', 'limit'],
  ])('4 windows where %s → %s: no window enabled, no pin, no locked_vm', (_what, code, third) => {
    const w = type2World({ spawn: { memlockLimit: third === 'limit' ? 5n * MiB : GiB } });
    w.layout(0n, 32n * MiB, 16);
    const first = w.proc.mmap(2n * WIN2M, { pageSize: '2M' });
    const middle = w.proc.mmap(WIN2M, { pageSize: third === 'anon' ? '4K' : '2M' });
    const last = w.proc.mmap(WIN2M, { pageSize: '2M' });
    expect([middle - first, last - middle]).toEqual([2n * WIN2M, WIN2M]);
    if (third === 'hole') w.proc.munmap(middle, WIN2M);
    const before = w.snapshot();
    const enabledBefore = w.pamu.counters().windowsEnabled;
    expect(w.map(WIN2M, 4n * WIN2M, first)).toBe(code);
    expect(w.snapshot()).toEqual(before);
    expect(before).toMatchObject({ pinnedPages: 0, lockedVm: 0, validWindows: [], enabled: false });
    // Two windows were enabled and disabled again on the way.
    expect(w.pamu.counters().windowsEnabled - enabledBefore).toBe(2);
    expect(w.pamu.counters().windowsDisabled).toBe(2);
  });
});

// ---- UNMAP_DMA -----------------------------------------------------------------------------------

describe('UNMAP_DMA: whole mappings only, bytes reported', () => {
  /** A = windows 0–1 (128 KiB), B = window 3, C = 32 KiB at the base of window 5. */
  function mapped(): Type2World {
    const w = windowed();
    const ram = huge(w, 8);
    expect(w.map(0n, 2n * WIN, ram)).toBe('ok');
    expect(w.map(3n * WIN, WIN, ram + 2n * WIN)).toBe('ok');
    expect(w.map(5n * WIN, 32n * KiB, ram + 3n * WIN)).toBe('ok');
    return w;
  }
  const ALL = uapi.VFIO_DMA_UNMAP_FLAG_ALL;

  test.each([
    ['exactly A', { size: 2n * WIN }, 0n, 2n * WIN, 0],
    ['exactly B', { size: WIN }, 3n * WIN, WIN, 0],
    ['C by its own size', { size: 32n * KiB }, 5n * WIN, 32n * KiB, 0],
    ["C's whole slot (the rest of the slot is a hole)", { size: 32n * KiB }, 5n * WIN, WIN, 0],
    ['A and the hole after it', { size: 2n * WIN }, 0n, 3n * WIN, 0],
    ['A, B and C with the holes between', { size: 3n * WIN + 32n * KiB }, 0n, 6n * WIN, 0],
    ['the whole aperture and beyond', { size: 3n * WIN + 32n * KiB }, 0n, 4n * GiB, 0],
    ['FLAG_ALL', { size: 3n * WIN + 32n * KiB }, 0n, 0n, ALL],
    ['nothing mapped there (window 8)', { size: 0n }, 8n * WIN, WIN, 0],
    ['past the aperture', { size: 0n }, 4n * GiB, WIN, 0],
    ["the hole after C inside its slot", { size: 0n }, 5n * WIN + 32n * KiB, 32n * KiB, 0],
    ['the first window of A (a split)', { code: 'EINVAL' }, 0n, WIN, 0],
    ['the second window of A (a split)', { code: 'EINVAL' }, WIN, WIN, 0],
    ['from inside A to the end of B', { code: 'EINVAL' }, WIN, 3n * WIN, 0],
    ['the first 4 KiB of B', { code: 'EINVAL' }, 3n * WIN, 4n * KiB, 0],
    ['the first 16 KiB of C', { code: 'EINVAL' }, 5n * WIN, 16n * KiB, 0],
    ['FLAG_ALL with iova 0x10000', { code: 'EINVAL' }, WIN, 0n, ALL],
    ['FLAG_ALL with a size', { code: 'EINVAL' }, 0n, WIN, ALL],
    ['FLAG_VADDR (not supported)', { code: 'EINVAL' }, 0n, 2n * WIN, uapi.VFIO_DMA_UNMAP_FLAG_VADDR],
    ['FLAG_GET_DIRTY_BITMAP (not supported)', { code: 'EINVAL' }, 0n, 2n * WIN, uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP],
    ['an unknown flag (0x8)', { code: 'EINVAL' }, 0n, 2n * WIN, 0x8],
    ['size 0', { code: 'EINVAL' }, 0n, 0n, 0],
    ['a misaligned iova', { code: 'EINVAL' }, 0x800n, 2n * WIN, 0],
    ['a misaligned size', { code: 'EINVAL' }, 0n, 0x800n, 0],
    ['a wrapping range', { code: 'EOVERFLOW' }, 3n * WIN, (1n << 64n) - WIN, 0],
  ])('%s → %o', (_what, expected, iova, size, flags) => {
    const w = mapped();
    const before = w.snapshot();
    const result = w.unmap(iova, size, flags);
    expect(result).toEqual(expected);
    const after = w.snapshot();
    if ('code' in expected) {
      expect(after).toEqual(before);
      return;
    }
    // Exactly the reported bytes were unpinned, uncharged and their windows disabled.
    const pages = Number(expected.size / 4096n);
    expect(before.pinnedPages - after.pinnedPages).toBe(pages);
    expect(before.lockedVm - after.lockedVm).toBe(pages);
    const gone = before.validWindows.filter((v) => !after.validWindows.some((a) => a.index === v.index));
    expect(gone.reduce((sum, v) => sum + v.pageCount, 0)).toBe(pages);
  });

  test('a failed UNMAP_DMA writes nothing back; a successful one writes only size', () => {
    const w = mapped();
    const bad = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: 0, iova: 0n, size: WIN });
    const sent = bad.slice();
    expect(w.ioctl(uapi.VFIO_IOMMU_UNMAP_DMA, bad)).toBe('EINVAL');
    expect(bad).toEqual(sent);
    const good = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: 0, iova: 0n, size: 4n * WIN });
    expect(w.ioctl(uapi.VFIO_IOMMU_UNMAP_DMA, good)).toBe('ok');
    expect(uapi.VfioIommuType1DmaUnmap.decode(good)).toEqual({ argsz: 24, flags: 0, iova: 0n, size: 3n * WIN });
  });

  test('UNMAP_DMA argsz below 24 → EINVAL, a buffer below 24 bytes → EFAULT', () => {
    const w = mapped();
    const unmap = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 23, flags: 0, iova: 0n, size: 2n * WIN });
    expectClean(w, () => w.ioctl(uapi.VFIO_IOMMU_UNMAP_DMA, unmap), 'EINVAL');
    uapi.VfioIommuType1DmaUnmap.write(unmap, 'argsz', 24);
    expectClean(w, () => w.ioctl(uapi.VFIO_IOMMU_UNMAP_DMA, unmap.subarray(0, 23)), 'EFAULT');
  });

  test('after the unmap the window faults, and the last unmap disables the domain', () => {
    const w = mapped();
    expect(w.unmap(3n * WIN, WIN)).toEqual({ size: WIN });
    expect(dmaOutcome(() => w.device.dmaRead(3n * WIN, 1))).toBe('unmapped');
    expect(w.pamu.faults().at(-1)).toMatchObject({ address: 3n * WIN, kind: 'window-invalid' });
    expect(w.unmap(0n, 0n, ALL)).toEqual({ size: 2n * WIN + 32n * KiB });
    expect(w.snapshot()).toMatchObject({ pinnedPages: 0, lockedVm: 0, validWindows: [], enabled: false });
    // A window can be mapped again after its unmap.
    expect(w.map(3n * WIN, WIN, huge(w, 1))).toBe('ok');
  });
});

// ---- GET_INFO ------------------------------------------------------------------------------------

describe('GET_INFO for every argsz (16 windows of 64 KiB, one IOVA range)', () => {
  /** 24 + IOVA_RANGE (8 header + 8 + 1 × 16). */
  const FULL = 56;
  const FLAGS = uapi.VFIO_IOMMU_INFO_PGSIZES | uapi.VFIO_IOMMU_INFO_CAPS;

  function getInfo(w: Type2World, argsz: number, length = 96): { result: string; buf: Uint8Array } {
    const buf = new Uint8Array(length).fill(FILL);
    uapi.writeU32(buf, 0, argsz);
    return { result: w.ioctl(uapi.VFIO_IOMMU_GET_INFO, buf), buf };
  }

  test.each(Array.from({ length: FULL + 8 - 16 + 1 }, (_, i) => 16 + i))('argsz %i: fixed fields, and nothing written past argsz', (argsz) => {
    const w = windowed();
    const { result, buf } = getInfo(w, argsz);
    expect(result).toBe('ok');
    expect(buf.subarray(argsz)).toEqual(new Uint8Array(buf.length - argsz).fill(FILL));
    expect(uapi.readU32(buf, 0)).toBe(argsz < FULL ? FULL : argsz);
    expect(uapi.readU32(buf, 4)).toBe(FLAGS);
    expect(uapi.readU64(buf, 8)).toBe(WIN);
    const fixed = Math.min(argsz, 24);
    const tail = new Uint8Array(fixed - 16);
    if (argsz >= FULL) tail[0] = 24;
    expect(buf.subarray(16, fixed)).toEqual(tail);
    if (argsz < FULL) {
      expect(buf.subarray(fixed, argsz)).toEqual(new Uint8Array(Math.max(0, argsz - fixed)).fill(FILL));
    } else {
      expect([uapi.readU16(buf, 24), uapi.readU16(buf, 26), uapi.readU32(buf, 28)]).toEqual([uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0]);
      expect([uapi.readU32(buf, 32), uapi.readU32(buf, 36)]).toEqual([1, 0]);
      expect([uapi.readU64(buf, 40), uapi.readU64(buf, 48)]).toEqual([0n, APERTURE - 1n]);
    }
  });

  test.each([0, 8, 15])('argsz %i → EINVAL, nothing written', (argsz) => {
    const w = windowed();
    const { result, buf } = getInfo(w, argsz);
    expect(result).toBe('EINVAL');
    expect(buf.subarray(4)).toEqual(new Uint8Array(buf.length - 4).fill(FILL));
  });

  test.each([
    [16, 15],
    [FULL, FULL - 1],
    [FULL, 24],
  ])('argsz %i in a buffer of %i bytes → EFAULT', (argsz, length) => {
    const w = windowed();
    expect(getInfo(w, argsz, length).result).toBe('EFAULT');
  });

  test('GET_INFO does not depend on what is mapped (only MSI bank windows are cut out)', () => {
    const w = windowed();
    const before = w.vfio.iommuInfo();
    expect(w.map(0n, 4n * WIN, huge(w, 4))).toBe('ok');
    expect(w.vfio.iommuInfo()).toEqual(before);
    expect(before).toMatchObject({ flags: FLAGS, iovaPgsizes: WIN, iovaRanges: [{ start: 0n, last: APERTURE - 1n }], dmaAvail: undefined });
  });
});

// ---- groups and LIODNs ---------------------------------------------------------------------------

describe('groups: one domain per container, LIODNs attached per group', () => {
  /** Group 1 behind controller 0000 (LIODN 0x100), group 2 behind 0001 (LIODN 0x101). */
  const TWO_DOMAINS: PciDeviceSpec[] = [
    { bdf: BDF, group: GROUP, driver: 'vfio-pci' },
    { bdf: '0001:01:00.0', group: 2, driver: 'vfio-pci' },
  ];

  test('two groups on different PCIe controllers share one domain and both DMA through it', () => {
    const w = windowed({ devices: TWO_DOMAINS });
    const ram = huge(w, 2);
    expect(w.map(0n, 2n * WIN, ram)).toBe('ok');
    const g2 = VfioGroup.open(w.proc, 2);
    // Attached after the windows and the mapping exist: programmed with them at once.
    g2.setContainer(w.vfio);
    expect(w.kernel.group(2).domain).toBe(w.kernel.group(GROUP).domain);
    const other = w.kernel.device('0001:01:00.0');
    expect(other.liodn).toBe(0x101);
    w.device.dmaWrite(0x10n, Uint8Array.of(1));
    other.dmaWrite(WIN + 0x10n, Uint8Array.of(2));
    expect([...w.proc.readMemory(ram + 0x10n, 1), ...w.proc.readMemory(ram + WIN + 0x10n, 1)]).toEqual([1, 2]);
    expect(other.dmaRead(0x10n, 1)).toEqual(Uint8Array.of(1));
    const domainId = w.pamu.liodnState(LIODN)!.domainId;
    expect(w.pamu.liodnState(0x101)).toEqual({ domainId, disabled: false, secondaryBase: expect.any(Number), secondaryCount: 15 });
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 2, secondaryHeld: 30, tableBytes: 32 * 64 });
  });

  test('the second group leaves (UNSET_CONTAINER): its LIODN is released and its DMA stops; the first keeps going', () => {
    const w = windowed({ devices: TWO_DOMAINS });
    expect(w.map(0n, WIN, huge(w, 1))).toBe('ok');
    const g2 = VfioGroup.open(w.proc, 2);
    g2.setContainer(w.vfio);
    g2.unsetContainer();
    expect(w.pamu.liodnState(0x101)).toMatchObject({ domainId: undefined, secondaryCount: 0 });
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 15 });
    expect(dmaOutcome(() => w.kernel.device('0001:01:00.0').dmaRead(0x10n, 1))).toBe('no-domain');
    expect(dmaOutcome(() => w.device.dmaRead(0x10n, 1))).toBe(true);
    expect(w.snapshot().pinnedPages).toBe(WIN_PAGES);
  });

  test('two groups behind one controller share its LIODN: one PPAACE, kept until the last of them leaves', () => {
    const devices: PciDeviceSpec[] = [
      { bdf: BDF, group: GROUP, driver: 'vfio-pci' },
      { bdf: '0000:02:00.0', group: 2, driver: 'vfio-pci' },
    ];
    const w = windowed({ devices });
    expect(w.map(0n, WIN, huge(w, 1))).toBe('ok');
    const g2 = VfioGroup.open(w.proc, 2);
    g2.setContainer(w.vfio);
    expect(w.kernel.device('0000:02:00.0').liodn).toBe(LIODN);
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 15 });
    g2.unsetContainer();
    expect(w.pamu.liodnState(LIODN)).toMatchObject({ secondaryCount: 15 });
    expect(dmaOutcome(() => w.device.dmaRead(0x10n, 1))).toBe(true);
  });

  test('a 9th LIODN cannot join 256 windows when the secondary pool is spent: ENOSPC, the group stays out; room comes back when a group leaves', () => {
    const devices: PciDeviceSpec[] = Array.from({ length: 9 }, (_, i) => ({ bdf: `000${i}:01:00.0`, group: i + 1, driver: 'vfio-pci' }));
    const w = type2World({ devices });
    w.layout(0n, GiB, 256);
    const groups = [2, 3, 4, 5, 6, 7, 8].map((g) => VfioGroup.open(w.proc, g));
    for (const g of groups) g.setContainer(w.vfio);
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 8, secondaryHeld: 8 * 255 });
    const before = w.snapshot();
    const ninth = VfioGroup.open(w.proc, 9);
    expect(outcome(() => ninth.setContainer(w.vfio))).toBe('ENOSPC');
    expect(w.snapshot()).toEqual(before);
    expect(ninth.hasContainer).toBe(false);
    expect(dmaOutcome(() => w.kernel.device('0008:01:00.0').dmaRead(0n, 1))).toBe('no-domain');
    groups[0]!.unsetContainer();
    expect(outcome(() => ninth.setContainer(w.vfio))).toBe('ok');
    expect(w.pamu.liodnState(0x108)).toMatchObject({ domainId: w.domain().id, secondaryCount: 255 });
  });

  test('a LIODN held by another container cannot be attached again (EBUSY, not silently moved)', () => {
    const devices: PciDeviceSpec[] = [
      { bdf: BDF, group: GROUP, driver: 'vfio-pci' },
      { bdf: '0000:02:00.0', group: 2, driver: 'vfio-pci' },
    ];
    const w = windowed({ devices });
    const other = VfioContainer.open(w.proc);
    VfioGroup.open(w.proc, 2).setContainer(other);
    expect(outcome(() => other.setIommu(uapi.VFIO_TYPE2_IOMMU))).toBe('EBUSY');
    expect(w.pamu.liodnState(LIODN)!.domainId).toBe(w.domain().id);
    expect(w.pamu.domainCount()).toBe(1);
  });

  test('a LIODN beyond the PPAACT (0x500) cannot attach: EINVAL, as SET_IOMMU and as a second group', () => {
    const devices: PciDeviceSpec[] = [
      { bdf: BDF, group: GROUP, driver: 'vfio-pci' },
      { bdf: '0001:01:00.0', group: 2, driver: 'vfio-pci', liodn: 0x500 },
    ];
    const w = windowed({ devices });
    const before = w.snapshot();
    expect(outcome(() => VfioGroup.open(w.proc, 2).setContainer(w.vfio))).toBe('EINVAL');
    expect(w.snapshot()).toEqual(before);
    const lone = type2World({ devices, group: 2, setIommu: false });
    expect(outcome(() => lone.vfio.setIommu(uapi.VFIO_TYPE2_IOMMU))).toBe('EINVAL');
    expect(lone.pamu.domainCount()).toBe(0);
  });

  test('a device with no LIODN cannot join (EINVAL), nor can a group behind a paged IOMMU', () => {
    const base = MACHINE_PRESETS['fsl-p4080'];
    // A second windowed unit the kernel gives no LIODNs to (a custom unit), and a VT-d unit.
    const noLiodnUnit = { model: 'custom' as const, name: 'pamu-no-liodn', create: () => new WindowedIommu(), reservedRegions: [], isolatedMsi: true };
    const machine = { ...base, iommus: [base.iommus[0]!, noLiodnUnit, MACHINE_PRESETS['x86-vtd'].iommus[0]!] };
    const devices: PciDeviceSpec[] = [
      { bdf: BDF, group: GROUP, driver: 'vfio-pci' },
      { bdf: '0001:01:00.0', group: 2, iommu: 1, driver: 'vfio-pci' },
      { bdf: '0002:01:00.0', group: 3, iommu: 2, driver: 'vfio-pci' },
    ];
    const w = type2World({ machine, devices });
    w.layout(0n, APERTURE, 16);
    expect(w.kernel.device('0001:01:00.0').liodn).toBeUndefined();
    const before = w.snapshot();
    for (const g of [2, 3]) {
      const group = VfioGroup.open(w.proc, g);
      expect(outcome(() => group.setContainer(w.vfio))).toBe('EINVAL');
      // Nor as the first group of a container of its own.
      const own = VfioContainer.open(w.proc);
      group.setContainer(own);
      expect(outcome(() => own.setIommu(uapi.VFIO_TYPE2_IOMMU))).toBe('EINVAL');
    }
    expect(w.snapshot()).toEqual(before);
    expect(w.pamu.domainCount()).toBe(1);
  });
});

describe('closing the fds in any order tears everything down', () => {
  const DEVICES: PciDeviceSpec[] = [
    { bdf: BDF, group: GROUP, driver: 'vfio-pci' },
    { bdf: '0001:01:00.0', group: 2, driver: 'vfio-pci' },
  ];
  const names = ['container', 'group 1', 'group 2', 'device'] as const;
  const permutations = (items: readonly string[]): string[][] =>
    items.length <= 1 ? [[...items]] : items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));

  test.each(permutations(names).map((order) => [order.join(', '), order]))('%s', (_title, order) => {
    const w = windowed({ devices: DEVICES });
    expect(w.map(0n, 4n * WIN, huge(w, 4))).toBe('ok');
    const g2 = VfioGroup.open(w.proc, 2);
    g2.setContainer(w.vfio);
    const device = w.group.device(BDF);
    const fds: Record<string, () => void> = {
      container: () => w.vfio.close(),
      'group 1': () => w.group.close(),
      'group 2': () => g2.close(),
      device: () => device.close(),
    };
    for (const name of order as string[]) {
      fds[name]!();
      w.kernel.checkInvariants();
    }
    expect(w.kernel.phys.stats().pinnedPages).toBe(0);
    expect(w.proc.mm.lockedVm).toBe(0);
    expect(w.pamu.domainCount()).toBe(0);
    expect(w.pamu.counters()).toMatchObject({ primaryHeld: 0, secondaryHeld: 0 });
  });
});

// ---- DMA faults ----------------------------------------------------------------------------------

describe('a bad DMA faults, is logged with its address and LIODN, and disables the LIODN (§1.6, §7)', () => {
  /** Aperture [1 MiB, 2 MiB), 16 windows; window 0 RW, window 1 READ, window 2 WRITE, window 3 mapped then unmapped, 32 KiB in window 4. */
  function faulting(): Type2World & { ram: bigint } {
    const w = type2World({ devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }, { bdf: '0000:02:00.0', group: 2, driver: 'vfio-pci' }] });
    VfioGroup.open(w.proc, 2).setContainer(w.vfio);
    w.layout(MiB, APERTURE, 16);
    const ram = huge(w, 5);
    expect(w.map(MiB, WIN, ram)).toBe('ok');
    expect(w.map(MiB + WIN, WIN, ram + WIN, R)).toBe('ok');
    expect(w.map(MiB + 2n * WIN, WIN, ram + 2n * WIN, W)).toBe('ok');
    expect(w.map(MiB + 3n * WIN, WIN, ram + 3n * WIN)).toBe('ok');
    expect(w.unmap(MiB + 3n * WIN, WIN)).toEqual({ size: WIN });
    expect(w.map(MiB + 4n * WIN, 32n * KiB, ram + 4n * WIN)).toBe('ok');
    return { ...w, ram };
  }

  test.each([
    ['a read below the aperture', 'unmapped', 'read', 0x1234n, 'outside-aperture'],
    ['a write above the aperture', 'unmapped', 'write', 2n * MiB + 0x10n, 'outside-aperture'],
    ['a read of a window never mapped', 'unmapped', 'read', MiB + 9n * WIN + 0x20n, 'window-invalid'],
    ['a write to a window unmapped (disabled)', 'unmapped', 'write', MiB + 3n * WIN, 'window-invalid'],
    ['a read beyond the mapped 32 KiB of a window', 'unmapped', 'read', MiB + 4n * WIN + 32n * KiB + 8n, 'beyond-window'],
    ['a write to a READ window', 'permission', 'write', MiB + WIN + 0x40n, 'permission'],
    ['a read of a WRITE window', 'permission', 'read', MiB + 2n * WIN + 0x80n, 'permission'],
  ] as const)('%s → %s; the LIODN is disabled until the enable attribute is set again', (_what, reason, access, iova, kind) => {
    const w = faulting();
    const sibling = w.kernel.device('0000:02:00.0');
    const violations = w.pamu.counters().violations;
    const dma = (): unknown => (access === 'read' ? w.device.dmaRead(iova, 4) : w.device.dmaWrite(iova, Uint8Array.of(1, 2, 3, 4)));
    expect(dmaOutcome(dma)).toBe(reason);
    // The kernel's log has the exact address; the PAMU's has the page (AVA) and the kind of violation.
    expect(w.kernel.dmaFaults().at(-1)).toEqual({ bdf: BDF, group: GROUP, iova, access, reason, liodn: LIODN });
    expect(w.pamu.faults().at(-1)).toEqual({ address: iova & ~0xfffn, liodn: LIODN, access, kind, domainId: w.domain().id });
    expect(w.pamu.counters().violations).toBe(violations + 1);
    expect(w.pamu.liodnState(LIODN)).toMatchObject({ disabled: true });
    // The whole LIODN is blocked: a valid DMA from the same device, or from another device behind the
    // same controller (same LIODN), is refused too.
    expect(dmaOutcome(() => w.device.dmaRead(MiB, 1))).toBe('blocked');
    expect(dmaOutcome(() => sibling.dmaWrite(MiB, Uint8Array.of(1)))).toBe('blocked');
    expect(w.pamu.faults().at(-1)).toMatchObject({ address: MiB, liodn: LIODN, kind: 'liodn-disabled' });
    // Nothing was written anywhere, nothing unmapped.
    expect(w.proc.readMemory(w.ram, Number(5n * WIN)).findIndex((b) => b !== 0)).toBe(-1);
    expect(w.snapshot()).toMatchObject({ pinnedPages: 4 * WIN_PAGES - WIN_PAGES / 2, enabled: true });
    // Disabling and enabling the domain (the PAMU enable attribute: last unmap, then a map) revives it.
    expect(w.unmap(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ size: 3n * WIN + 32n * KiB });
    expect(w.map(MiB, WIN, huge(w, 1))).toBe('ok');
    expect(w.pamu.liodnState(LIODN)).toMatchObject({ disabled: false });
    expect(dmaOutcome(() => w.device.dmaRead(MiB, 1))).toBe(true);
  });

  test('the next successful MAP sets the enable attribute again and revives a LIODN a fault disabled (as the SDK)', () => {
    const w = faulting();
    expect(dmaOutcome(() => w.device.dmaRead(0x1234n, 1))).toBe('unmapped');
    expect(dmaOutcome(() => w.device.dmaRead(MiB, 1))).toBe('blocked');
    // A failed MAP changes nothing: the LIODN stays disabled.
    expect(w.map(MiB, WIN, w.ram)).toBe('EEXIST');
    expect(w.pamu.liodnState(LIODN)).toMatchObject({ disabled: true });
    expect(w.map(MiB + 3n * WIN, WIN, w.ram + 3n * WIN)).toBe('ok');
    expect(w.pamu.liodnState(LIODN)).toMatchObject({ disabled: false });
    expect(dmaOutcome(() => w.device.dmaRead(MiB, 1))).toBe(true);
  });

  test('a fault on one LIODN leaves another LIODN of the same domain working', () => {
    const w = windowed({ devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }, { bdf: '0001:01:00.0', group: 2, driver: 'vfio-pci' }] });
    VfioGroup.open(w.proc, 2).setContainer(w.vfio);
    expect(w.map(0n, WIN, huge(w, 1))).toBe('ok');
    expect(dmaOutcome(() => w.device.dmaRead(APERTURE, 1))).toBe('unmapped');
    expect(dmaOutcome(() => w.device.dmaRead(0n, 1))).toBe('blocked');
    expect(dmaOutcome(() => w.kernel.device('0001:01:00.0').dmaRead(0n, 1))).toBe(true);
    expect(w.pamu.liodnState(0x101)).toMatchObject({ disabled: false });
  });

  test('DMA while nothing is mapped (domain not enabled) is blocked and logged as a violation', () => {
    const w = windowed();
    expect(dmaOutcome(() => w.device.dmaRead(0n, 1))).toBe('blocked');
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ iova: 0n, liodn: LIODN, reason: 'blocked' });
    expect(w.pamu.faults().at(-1)).toMatchObject({ address: 0n, liodn: LIODN, kind: 'domain-disabled' });
  });

  test('a DMA that crosses from a valid window into an invalid one is refused whole: nothing is written', () => {
    const w = windowed();
    const ram = huge(w, 1);
    expect(w.map(0n, WIN, ram)).toBe('ok');
    expect(dmaOutcome(() => w.device.dmaWrite(WIN - 2n, Uint8Array.of(1, 2, 3, 4)))).toBe('unmapped');
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ iova: WIN, liodn: LIODN });
    expect(w.proc.readMemory(ram + WIN - 2n, 2)).toEqual(new Uint8Array(2));
  });

  test('a device of a group with no container has no domain: no-domain, and the PAMU logs nothing', () => {
    const kernel = new Kernel({ machine: 'fsl-p4080', devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }] });
    expect(dmaOutcome(() => kernel.device(BDF).dmaRead(0n, 1))).toBe('no-domain');
    expect((kernel.iommus[0] as WindowedIommu).faults()).toEqual([]);
  });
});
