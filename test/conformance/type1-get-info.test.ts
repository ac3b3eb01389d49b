/**
 * VFIO_IOMMU_GET_INFO on type1 (reference/vfio-uapi.md §4.2) for every argsz from the minimum to past the
 * full size, the capability chain byte by byte on x86-vtd and arm-smmuv3, the userspace helper's view of
 * it, and VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU / unknown container ioctls before and after SET_IOMMU (§1, §2).
 */
import { uapi } from '../../index';
import { PAGE, type1World, type Type1World } from '../helpers/type1-world';

/** 24 + MIGRATION 32 + DMA_AVAIL 16 + IOVA_RANGE (16 + 2 × 16). */
const FULL = 120;
const PGSIZES = 0x40201000n;
const FLAGS = uapi.VFIO_IOMMU_INFO_PGSIZES | uapi.VFIO_IOMMU_INFO_CAPS;
const FILL = 0xa5;

/** GET_INFO into a buffer of `length` bytes pre-filled with 0xA5, with `argsz` in its first field. */
function getInfo(w: Type1World, argsz: number, length = 160): { outcome: string; buf: Uint8Array } {
  const buf = new Uint8Array(length).fill(FILL);
  uapi.writeU32(buf, 0, argsz);
  return { outcome: w.ioctl(uapi.VFIO_IOMMU_GET_INFO, buf), buf };
}

const u16 = (buf: Uint8Array, at: number): number => uapi.readU16(buf, at);
const u32 = (buf: Uint8Array, at: number): number => uapi.readU32(buf, at);
const u64 = (buf: Uint8Array, at: number): bigint => uapi.readU64(buf, at);

describe('GET_INFO for every argsz (x86-vtd, two IOVA ranges)', () => {
  const sizes = Array.from({ length: FULL + 8 - 16 + 1 }, (_, i) => 16 + i);

  test.each(sizes)('argsz %i: fixed fields, write-back and nothing written past argsz', (argsz) => {
    const w = type1World();
    const { outcome, buf } = getInfo(w, argsz);
    expect(outcome).toBe('ok');
    // The kernel writes min(argsz, 24) bytes of the struct, the chain only when it fits, and never past argsz.
    expect(buf.subarray(argsz)).toEqual(new Uint8Array(buf.length - argsz).fill(FILL));
    expect(u32(buf, 0)).toBe(argsz < FULL ? FULL : argsz);
    expect(u32(buf, 4)).toBe(FLAGS);
    expect(u64(buf, 8)).toBe(PGSIZES);
    const fixed = Math.min(argsz, 24);
    const expectedTail = new Uint8Array(fixed - 16); // cap_offset and pad, as far as argsz reaches
    if (argsz >= FULL) expectedTail[0] = 24;
    expect(buf.subarray(16, fixed)).toEqual(expectedTail);
    if (argsz < FULL) {
      // No cap copied: the bytes between the struct and argsz are the caller's.
      expect(buf.subarray(fixed, argsz)).toEqual(new Uint8Array(Math.max(0, argsz - fixed)).fill(FILL));
    }
  });

  test.each([0, 1, 8, 15])('argsz %i → EINVAL, nothing written', (argsz) => {
    const w = type1World();
    const { outcome, buf } = getInfo(w, argsz);
    expect(outcome).toBe('EINVAL');
    expect(u32(buf, 0)).toBe(argsz);
    expect(buf.subarray(4)).toEqual(new Uint8Array(buf.length - 4).fill(FILL));
  });

  test('a buffer shorter than the 16 bytes the kernel reads → EFAULT', () => {
    const w = type1World();
    const { outcome } = getInfo(w, 16, 15);
    expect(outcome).toBe('EFAULT');
  });

  test.each([
    [FULL, 24],
    [FULL, 100],
    [FULL, FULL - 1],
    [24, 20],
    [20, 16],
  ])('argsz %i in a buffer of %i bytes → EFAULT', (argsz, length) => {
    const w = type1World();
    expect(getInfo(w, argsz, length).outcome).toBe('EFAULT');
  });

  test('a buffer exactly as long as argsz is enough, at every size', () => {
    const w = type1World();
    for (let argsz = 16; argsz <= FULL; argsz++) expect(getInfo(w, argsz, argsz).outcome).toBe('ok');
  });
});

describe('the capability chain at full size', () => {
  test('x86-vtd: MIGRATION @24, DMA_AVAIL @56, IOVA_RANGE @72, byte by byte', () => {
    const w = type1World();
    const { outcome, buf } = getInfo(w, FULL);
    expect(outcome).toBe('ok');
    expect(uapi.VfioIommuType1Info.decode(buf)).toEqual({ argsz: FULL, flags: FLAGS, iova_pgsizes: PGSIZES, cap_offset: 24, pad: 0 });

    // MIGRATION: id 2, version 1, next 56; flags 0, 4 bytes of padding, pgsize_bitmap, max_dirty_bitmap_size.
    expect([u16(buf, 24), u16(buf, 26), u32(buf, 28)]).toEqual([2, 1, 56]);
    expect(u32(buf, 32)).toBe(0);
    expect(u32(buf, 36)).toBe(0);
    expect(u64(buf, 40)).toBe(0x1000n);
    expect(u64(buf, 48)).toBe(0x10000000n);

    // DMA_AVAIL: id 3, version 1, next 72; avail, then 4 zero bytes of padding to 8.
    expect([u16(buf, 56), u16(buf, 58), u32(buf, 60)]).toEqual([3, 1, 72]);
    expect(u32(buf, 64)).toBe(65535);
    expect(u32(buf, 68)).toBe(0);

    // IOVA_RANGE: id 1, version 1, next 0; nr_iovas 2, reserved 0, inclusive ranges.
    expect([u16(buf, 72), u16(buf, 74), u32(buf, 76)]).toEqual([1, 1, 0]);
    expect([u32(buf, 80), u32(buf, 84)]).toEqual([2, 0]);
    expect([u64(buf, 88), u64(buf, 96)]).toEqual([0n, 0xfedfffffn]);
    expect([u64(buf, 104), u64(buf, 112)]).toEqual([0xfef00000n, 0xffffffffffffn]);

    expect(buf.subarray(FULL)).toEqual(new Uint8Array(buf.length - FULL).fill(FILL));
  });

  test('a larger argsz is kept as given, and the chain is the same', () => {
    const w = type1World();
    const { buf } = getInfo(w, 200, 200);
    const { buf: exact } = getInfo(w, FULL);
    expect(u32(buf, 0)).toBe(200);
    expect(buf.subarray(4, FULL)).toEqual(exact.subarray(4, FULL));
    expect(buf.subarray(FULL)).toEqual(new Uint8Array(200 - FULL).fill(FILL));
  });

  test('arm-smmuv3: the SW_MSI window splits the ranges into [0, 0x7FFFFFF] and [0x8100000, 0xFFFFFFFFFFFF]', () => {
    const w = type1World({ machine: 'arm-smmuv3' });
    const { outcome, buf } = getInfo(w, FULL);
    expect(outcome).toBe('ok');
    expect(u64(buf, 8)).toBe(PGSIZES);
    expect([u16(buf, 72), u32(buf, 76), u32(buf, 80)]).toEqual([1, 0, 2]);
    expect([u64(buf, 88), u64(buf, 96)]).toEqual([0n, 0x7ffffffn]);
    expect([u64(buf, 104), u64(buf, 112)]).toEqual([0x8100000n, 0xffffffffffffn]);
  });

  test('DMA_AVAIL is dma_entry_limit minus the mappings, and comes back on unmap', () => {
    const w = type1World({ dmaEntryLimit: 10 });
    const avail = (): number => u32(getInfo(w, FULL).buf, 64);
    expect(avail()).toBe(10);
    const vaddr = w.mmap(4n * PAGE);
    for (let i = 0n; i < 3n; i++) expect(w.map(i * 0x10000n, PAGE, vaddr + i * PAGE)).toBe('ok');
    expect(avail()).toBe(7);
    expect(w.map(0x100000n, PAGE, 0x10000n)).toBe('EFAULT'); // a failed MAP takes no entry
    expect(avail()).toBe(7);
    expect(w.unmap(0n, 0x20000n)).toEqual({ size: 2n * PAGE });
    expect(avail()).toBe(9);
  });
});

describe('VfioContainer.iommuInfo() reads the same facts', () => {
  test('x86-vtd', () => {
    const w = type1World({ dmaEntryLimit: 4 });
    expect(w.map(0n, PAGE, w.mmap(PAGE))).toBe('ok');
    expect(w.vfio.iommuInfo()).toEqual({
      flags: FLAGS,
      iovaPgsizes: PGSIZES,
      iovaRanges: [
        { start: 0n, last: 0xfedfffffn },
        { start: 0xfef00000n, last: 0xffffffffffffn },
      ],
      dmaAvail: 3,
      migration: { pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x10000000n },
    });
  });

  test('arm-smmuv3', () => {
    const w = type1World({ machine: 'arm-smmuv3' });
    expect(w.vfio.iommuInfo().iovaRanges).toEqual([
      { start: 0n, last: 0x7ffffffn },
      { start: 0x8100000n, last: 0xffffffffffffn },
    ]);
  });

  test('v1 containers report the same', () => {
    const w = type1World({ type: 'v1' });
    expect(w.vfio.iommuInfo()).toEqual(type1World().vfio.iommuInfo());
  });
});

describe('VFIO_CHECK_EXTENSION before and after SET_IOMMU', () => {
  const answers: [string, number, number, number][] = [
    ['VFIO_TYPE1_IOMMU', uapi.VFIO_TYPE1_IOMMU, 1, 1],
    ['VFIO_TYPE1v2_IOMMU', uapi.VFIO_TYPE1v2_IOMMU, 1, 1],
    ['VFIO_UNMAP_ALL', uapi.VFIO_UNMAP_ALL, 1, 1],
    ['VFIO_UPDATE_VADDR', uapi.VFIO_UPDATE_VADDR, 0, 1],
    ['VFIO_DMA_CC_IOMMU', uapi.VFIO_DMA_CC_IOMMU, 0, 1],
    ['the reserved nesting type (6)', uapi.__VFIO_RESERVED_TYPE1_NESTING_IOMMU, 0, 0],
    ['VFIO_SPAPR_TCE_IOMMU', uapi.VFIO_SPAPR_TCE_IOMMU, 0, 0],
    ['VFIO_EEH', uapi.VFIO_EEH, 0, 0],
    ['VFIO_SPAPR_TCE_v2_IOMMU', uapi.VFIO_SPAPR_TCE_v2_IOMMU, 0, 0],
    ['VFIO_NOIOMMU_IOMMU', uapi.VFIO_NOIOMMU_IOMMU, 0, 0],
    ['an unknown extension (11)', 11, 0, 0],
  ];
  test.each(answers)('%s: %i, then %i', (_name, extension, before, after) => {
    const w = type1World({ type: 'none' });
    expect(w.vfio.checkExtension(extension)).toBe(before);
    w.vfio.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
    expect(w.vfio.checkExtension(extension)).toBe(after);
  });

  test('an empty container answers as one with a group but no IOMMU', () => {
    const w = type1World({ type: 'none' });
    const empty = w.proc.open('/dev/vfio/vfio');
    for (const [, extension, before] of answers) expect(w.proc.ioctl(empty, uapi.VFIO_CHECK_EXTENSION, extension)).toBe(before);
  });

  test('DMA_CC_IOMMU is 0 after SET_IOMMU when the domain does not enforce cache coherency', () => {
    const w = type1World({ iommuOverrides: { enforceCacheCoherency: false } });
    expect(w.vfio.checkExtension(uapi.VFIO_DMA_CC_IOMMU)).toBe(0);
  });

  test('after SET_IOMMU(TYPE1) both TYPE1 and TYPE1v2 answer 1', () => {
    const w = type1World({ type: 'v1' });
    expect(w.vfio.checkExtension(uapi.VFIO_TYPE1_IOMMU)).toBe(1);
    expect(w.vfio.checkExtension(uapi.VFIO_TYPE1v2_IOMMU)).toBe(1);
  });
});

describe('VFIO_SET_IOMMU and container ioctls around it', () => {
  test.each([
    ['the reserved nesting type (6)', uapi.__VFIO_RESERVED_TYPE1_NESTING_IOMMU],
    ['VFIO_SPAPR_TCE_IOMMU (2)', uapi.VFIO_SPAPR_TCE_IOMMU],
    ['VFIO_NOIOMMU_IOMMU (8)', uapi.VFIO_NOIOMMU_IOMMU],
    ['an unknown type (42)', 42],
  ])('SET_IOMMU(%s) → ENODEV, and the container can still take TYPE1v2', (_name, type) => {
    const w = type1World({ type: 'none' });
    expect(w.ioctl(uapi.VFIO_SET_IOMMU, type)).toBe('ENODEV');
    expect(w.ioctl(uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 }))).toBe('EINVAL');
    expect(w.ioctl(uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe('ok');
  });

  test('a second SET_IOMMU → EINVAL', () => {
    const w = type1World();
    expect(w.ioctl(uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe('EINVAL');
    expect(w.ioctl(uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU)).toBe('EINVAL');
  });

  test('SET_IOMMU on a container without a group → EINVAL', () => {
    const w = type1World({ type: 'none' });
    const empty = w.proc.open('/dev/vfio/vfio');
    expect(w.proc.ioctlRaw(empty, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(-22);
  });

  const unknown = 0x3b64 + 30;
  const backendIoctls: [string, number, Uint8Array | undefined][] = [
    ['VFIO_IOMMU_GET_INFO', uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })],
    ['VFIO_IOMMU_MAP_DMA', uapi.VFIO_IOMMU_MAP_DMA, new Uint8Array(32)],
    ['VFIO_IOMMU_UNMAP_DMA', uapi.VFIO_IOMMU_UNMAP_DMA, new Uint8Array(24)],
    ['VFIO_IOMMU_DIRTY_PAGES', uapi.VFIO_IOMMU_DIRTY_PAGES, new Uint8Array(8)],
    ['VFIO_IOMMU_ENABLE', uapi.VFIO_IOMMU_ENABLE, undefined],
    ['an unknown number', unknown, undefined],
  ];
  test.each(backendIoctls)('before SET_IOMMU, %s → EINVAL (no driver to pass it to)', (_name, request, arg) => {
    const w = type1World({ type: 'none' });
    expect(w.ioctl(request, arg)).toBe('EINVAL');
  });

  test.each([
    ['VFIO_IOMMU_ENABLE', uapi.VFIO_IOMMU_ENABLE],
    ['VFIO_IOMMU_DISABLE', uapi.VFIO_IOMMU_DISABLE],
    ['VFIO_IOMMU_SPAPR_TCE_CREATE', uapi.VFIO_IOMMU_SPAPR_TCE_CREATE],
    ['an unknown number', unknown],
    ['a group ioctl (GET_STATUS)', uapi.VFIO_GROUP_GET_STATUS],
  ])('after SET_IOMMU, %s → ENOTTY (type1 does not know it)', (_name, request) => {
    for (const type of ['v1', 'v2'] as const) {
      const w = type1World({ type });
      expect(w.ioctl(request, new Uint8Array(64))).toBe('ENOTTY');
    }
  });

  test('GET_API_VERSION is 0 before and after SET_IOMMU', () => {
    const w = type1World({ type: 'none' });
    expect(w.vfio.apiVersion()).toBe(0);
    w.vfio.setIommu(uapi.VFIO_TYPE1_IOMMU);
    expect(w.vfio.apiVersion()).toBe(0);
  });
});
