import { SimBugError } from '../../../../../kernel-sim/errors';
import {
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  TRANSLATE_BLOCKED,
  TRANSLATE_NO_MAPPING,
  TRANSLATE_NO_PERMISSION,
  type DmaRequester,
} from '../../../../../kernel-sim/iommu/iommu-domain';
import { isWindowedDomain } from '../../../../../kernel-sim/iommu/windowed-domain';
import { WindowedIommu, type WindowedIommuCounters } from '../../../../../kernel-sim/iommu/windowed/windowed-iommu';
import type { WindowedIommuDomain } from '../../../../../kernel-sim/iommu/windowed/windowed-iommu-domain';
import { expectSysError } from '../../../../helpers/expect-sys-error';

const RW = IOMMU_READ | IOMMU_WRITE;
const KiB = 1n << 10n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;
/** 4 KiB pages in 1 MiB / 256 MiB. */
const P1M = 256;
const P256M = 65536;

type Run = [iovaPfn: number, pfn: number, pageCount: number, prot: number];


function requester(liodn: number | undefined): DmaRequester {
  return { bdf: '0000:01:00.0', liodn };
}

function setup(params?: ConstructorParameters<typeof WindowedIommu>[0]): { hw: WindowedIommu; d: WindowedIommuDomain } {
  const hw = new WindowedIommu(params);
  return { hw, d: hw.allocDomain() };
}

/** A 1 GiB aperture at 0 in `count` windows, LIODN 1 attached. */
function configured(count = 4): { hw: WindowedIommu; d: WindowedIommuDomain } {
  const { hw, d } = setup();
  d.attachLiodns([1]);
  d.windows.setGeometry(0n, GiB - 1n);
  d.windows.setWindowCount(count);
  return { hw, d };
}

/** Everything observable about a domain and its unit, to prove a refused call changed nothing. */
function observe(hw: WindowedIommu, d: WindowedIommuDomain): unknown {
  const w = d.windows;
  const count = w.geometry() === undefined ? 0 : w.windowCount();
  return {
    geometry: d.geometry,
    range: w.geometry(),
    count: w.windowCount(),
    bytes: w.windowBytes(),
    bitmap: d.pgsizeBitmap,
    enabled: w.isEnabled(),
    windows: Array.from({ length: count }, (_, i) => w.window(i)),
    mapped: d.mappedPages(),
    table: d.tableBytes(),
    liodns: d.liodns(),
    counters: hw.counters(),
    faults: hw.faults().length,
  };
}

function runs(d: WindowedIommuDomain, iovaPfn: number, pageCount: number): Run[] {
  const out: Run[] = [];
  d.walk(iovaPfn, pageCount, (i, p, n, prot) => out.push([i, p, n, prot]));
  return out;
}

function pick<K extends keyof WindowedIommuCounters>(hw: WindowedIommu, ...keys: K[]): Pick<WindowedIommuCounters, K> {
  const c = hw.counters();
  const out = {} as Pick<WindowedIommuCounters, K>;
  for (const k of keys) out[k] = c[k];
  return out;
}

describe('WindowedIommuDomain before any attribute is set', () => {
  it('offers windows, reports the unit aperture, a 4 KiB bitmap, the maximum count and no geometry', () => {
    const { hw, d } = setup();
    expect(isWindowedDomain(d)).toBe(true);
    expect(d.geometry).toEqual({ apertureStart: 0n, apertureLast: 0xf_ffff_ffffn, forceAperture: true });
    expect(d.pgsizeBitmap).toBe(0x1000n);
    expect(d.windows.params).toBe(hw.params);
    expect(d.windows.geometry()).toBeUndefined();
    expect(d.windows.windowCount()).toBe(256);
    expect(d.windows.windowBytes()).toBe(0n);
    expect(d.windows.isEnabled()).toBe(false);
    expect(d.windows.window(0)).toBeUndefined();
    expect([d.mappedPages(), d.tableBytes()]).toEqual([0, 0]);
  });
});

describe('set GEOMETRY (§2.3)', () => {
  it('sets a naturally aligned power-of-two aperture, reported as the domain geometry', () => {
    const { hw, d } = setup();
    d.windows.setGeometry(2n * GiB, 4n * GiB - 1n);
    expect(d.windows.geometry()).toEqual({ start: 2n * GiB, last: 4n * GiB - 1n });
    expect(d.geometry).toEqual({ apertureStart: 2n * GiB, apertureLast: 4n * GiB - 1n, forceAperture: true });
    expect(pick(hw, 'geometrySets', 'primaryProgrammed')).toEqual({ geometrySets: 1, primaryProgrammed: 0 });
  });

  it('accepts the smallest (4 KiB) and the largest (the whole 64 GiB) aperture', () => {
    const { d } = setup();
    d.windows.setGeometry(0xf_ffff_f000n, 0xf_ffff_ffffn);
    d.windows.setGeometry(0n, 0xf_ffff_ffffn);
    expect(d.windows.geometry()).toEqual({ start: 0n, last: 0xf_ffff_ffffn });
  });

  it.each([
    ['size not a power of two (12 KiB)', 0n, 0x2fffn],
    ['size below 4 KiB', 0n, 0x7ffn],
    ['start not aligned to the size', 0x1000n, 0x2fffn],
    ['start aligned to 4 KiB only, 1 GiB size', 0x4000_0000n + 0x1000n, 0x8000_0fffn],
    ['last beyond 2^36 - 1', 0n, (1n << 37n) - 1n],
    ['last below start', 0x2000n, 0xfffn],
    ['a negative start', -0x1000n, 0xfffn],
  ])('refuses %s with EINVAL, changing nothing', (_what, start, last) => {
    const { hw, d } = configured();
    d.windows.enableWindow(1, P256M, P256M, RW);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setGeometry(start, last), 'EINVAL');
    expect(observe(hw, d)).toEqual(before);
  });

  it('refuses any change with EBUSY while the domain is enabled, after the EINVAL checks', () => {
    const { hw, d } = configured();
    d.windows.enableWindow(0, 0, P256M, RW);
    d.windows.setEnabled(true);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setGeometry(0n, 2n * GiB - 1n), 'EBUSY');
    expectSysError(() => d.windows.setGeometry(0n, 0x2fffn), 'EINVAL');
    expect(observe(hw, d)).toEqual(before);
  });

  it('keeps the window count and the valid windows when set again, reprogramming each PPAACE', () => {
    const { hw, d } = configured(4);
    d.attachLiodns([2]);
    d.windows.enableWindow(1, 3 * P256M, P256M, IOMMU_READ);
    const before = pick(hw, 'primaryProgrammed', 'secondaryProgrammed');
    d.windows.setGeometry(2n * GiB, 4n * GiB - 1n);
    expect([d.windows.windowCount(), d.windows.windowBytes(), d.pgsizeBitmap]).toEqual([4, 512n * MiB, 512n * MiB]);
    expect(d.windows.window(1)).toEqual({ pfn: 3 * P256M, pageCount: P256M, prot: IOMMU_READ });
    expect(d.iovaToPfn(Number((2n * GiB + 512n * MiB) >> 12n))).toBe(3 * P256M);
    expect(pick(hw, 'primaryProgrammed', 'secondaryProgrammed')).toEqual({
      primaryProgrammed: before.primaryProgrammed + 2,
      secondaryProgrammed: before.secondaryProgrammed,
    });
  });

  it('refuses an aperture whose slots fall below 4 KiB with EINVAL, and one a valid window outgrows with EBUSY', () => {
    const { hw, d } = configured(256);
    d.windows.enableWindow(3, 0, P1M, RW);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setGeometry(0n, 512n * KiB - 1n), 'EINVAL');
    expectSysError(() => d.windows.setGeometry(0n, 128n * MiB - 1n), 'EBUSY');
    expect(observe(hw, d)).toEqual(before);
    d.windows.setGeometry(0n, 256n * MiB - 1n);
    expect(d.windows.windowBytes()).toBe(MiB);
  });
});

describe('set WINDOWS (§2.3)', () => {
  it('splits the aperture into equal slots; the count, size and bitmap follow', () => {
    const { hw, d } = configured(8);
    expect([d.windows.windowCount(), d.windows.windowBytes(), d.pgsizeBitmap]).toEqual([8, 128n * MiB, 128n * MiB]);
    expect(pick(hw, 'windowCountSets', 'primaryProgrammed', 'secondaryProgrammed')).toEqual({
      windowCountSets: 1,
      primaryProgrammed: 1,
      secondaryProgrammed: 7,
    });
  });

  it('refuses with EINVAL when the geometry was never set, changing nothing', () => {
    const { hw, d } = setup();
    d.attachLiodns([1]);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setWindowCount(4), 'EINVAL');
    expect(observe(hw, d)).toEqual(before);
  });

  it.each([
    ['above the maximum', 512],
    ['not a power of two', 3],
    ['0', 0],
    ['negative', -4],
    ['fractional', 2.5],
  ])('refuses a count %s with EINVAL, changing nothing', (_what, count) => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(2, 0, P1M, RW);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setWindowCount(count), 'EINVAL');
    expect(observe(hw, d)).toEqual(before);
  });

  it('refuses a count whose slots fall below 4 KiB with EINVAL', () => {
    const { d } = setup();
    d.windows.setGeometry(0n, 64n * KiB - 1n);
    expectSysError(() => d.windows.setWindowCount(32), 'EINVAL');
    d.windows.setWindowCount(16);
    expect(d.windows.windowBytes()).toBe(4096n);
  });

  it('refuses with EBUSY while the domain is enabled, before checking the count', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    d.windows.setEnabled(true);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setWindowCount(8), 'EBUSY');
    expectSysError(() => d.windows.setWindowCount(3), 'EBUSY');
    expect(observe(hw, d)).toEqual(before);
  });

  it('discards every window on success, even with the same count', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    d.windows.enableWindow(3, P256M, P256M, RW);
    d.windows.setWindowCount(4);
    expect([0, 1, 2, 3].map((i) => d.windows.window(i))).toEqual([undefined, undefined, undefined, undefined]);
    expect(d.mappedPages()).toBe(0);
    expect(pick(hw, 'windowsDisabled', 'windowCountSets')).toEqual({ windowsDisabled: 0, windowCountSets: 2 });
    expectSysError(() => d.windows.setEnabled(true), 'ENODEV');
  });
});

describe('window enable (§2.3)', () => {
  it('refuses with ENODEV while WINDOWS was never set, even with a geometry', () => {
    const { hw, d } = setup();
    d.windows.setGeometry(0n, GiB - 1n);
    const before = observe(hw, d);
    expectSysError(() => d.windows.enableWindow(0, 0, 1, RW), 'ENODEV');
    expect(observe(hw, d)).toEqual(before);
  });

  it.each([
    ['an index equal to the count', 4, 0, P1M],
    ['a negative index', -1, 0, P1M],
    ['a fractional index', 0.5, 0, P1M],
    ['a size above the slot', 0, 0, 2 * P256M],
    ['a size not a power of two', 1, 0, 3],
    ['a size of 0', 1, 0, 0],
    ['a backing not aligned to the size', 1, P1M + 1, P1M],
    ['a backing aligned to 4 KiB only', 1, P256M + P1M, P256M],
  ])('refuses %s with EINVAL, changing nothing', (_what, index, pfn, pageCount) => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(2, 0, 1, RW);
    const before = observe(hw, d);
    expectSysError(() => d.windows.enableWindow(index, pfn, pageCount, RW), 'EINVAL');
    expect(observe(hw, d)).toEqual(before);
  });

  it('refuses a size below minWindowBytes with EINVAL', () => {
    const { d } = setup({ params: { minWindowBytes: 64n * KiB } });
    d.windows.setGeometry(0n, GiB - 1n);
    d.windows.setWindowCount(4);
    expectSysError(() => d.windows.enableWindow(0, 0, 8, RW), 'EINVAL');
    d.windows.enableWindow(0, 0, 16, RW);
    expect(d.windows.window(0)).toEqual({ pfn: 0, pageCount: 16, prot: RW });
  });

  it('refuses a window without IOMMU_READ or IOMMU_WRITE with EINVAL; IOMMU_CACHE is accepted and dropped', () => {
    const { d } = configured(4);
    expectSysError(() => d.windows.enableWindow(0, 0, P1M, IOMMU_CACHE), 'EINVAL');
    d.windows.enableWindow(0, 0, P1M, IOMMU_READ | IOMMU_CACHE);
    expect(d.windows.window(0)).toEqual({ pfn: 0, pageCount: P1M, prot: IOMMU_READ });
  });

  it('accepts an unaligned backing when the unit does not require natural alignment', () => {
    const { d } = setup({ params: { requireNaturalAlignment: false } });
    d.windows.setGeometry(0n, GiB - 1n);
    d.windows.setWindowCount(4);
    d.windows.enableWindow(1, P1M + 1, P1M, RW);
    expect(d.iovaToPfn(P256M + 5)).toBe(P1M + 6);
  });

  it('refuses a valid window with EBUSY before checking the new size ("disable the window before updating")', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(1, 0, P1M, RW);
    const before = observe(hw, d);
    expectSysError(() => d.windows.enableWindow(1, 2 * P1M, P1M, RW), 'EBUSY');
    expectSysError(() => d.windows.enableWindow(1, 0, 3, RW), 'EBUSY');
    expect(observe(hw, d)).toEqual(before);
    d.windows.disableWindow(1);
    d.windows.enableWindow(1, 2 * P1M, P1M, RW);
    expect(d.windows.window(1)).toEqual({ pfn: 2 * P1M, pageCount: P1M, prot: RW });
  });

  it('with one window: refuses with EBUSY while enabled, before the size check', () => {
    const { hw, d } = configured(1);
    d.windows.enableWindow(0, 0, P256M, RW);
    d.windows.setEnabled(true);
    const before = observe(hw, d);
    expectSysError(() => d.windows.enableWindow(0, 0, 3, RW), 'EBUSY');
    expect(observe(hw, d)).toEqual(before);
  });

  it('with one window: refuses a size that is not a power of two with EINVAL', () => {
    const { d } = configured(1);
    expectSysError(() => d.windows.enableWindow(0, 0, 3 * P256M, RW), 'EINVAL');
  });

  it('lets sub-windows be enabled while the domain is enabled (count > 1)', () => {
    const { d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    d.windows.setEnabled(true);
    d.windows.enableWindow(2, 4 * P256M, P256M, RW);
    expect(d.translate(2 * P256M + 7, IOMMU_WRITE, requester(1))).toBe(4 * P256M + 7);
  });

  it('records windows enabled before any LIODN attaches and programs them at attach', () => {
    const { hw, d } = setup();
    d.windows.setGeometry(0n, GiB - 1n);
    d.windows.setWindowCount(4);
    d.windows.enableWindow(1, 8 * P256M, P256M, RW);
    d.windows.setEnabled(true);
    expect(pick(hw, 'primaryProgrammed', 'secondaryProgrammed', 'windowsEnabled')).toEqual({
      primaryProgrammed: 0,
      secondaryProgrammed: 0,
      windowsEnabled: 1,
    });
    d.attachLiodns([0x20]);
    expect(pick(hw, 'primaryProgrammed', 'secondaryProgrammed')).toEqual({ primaryProgrammed: 1, secondaryProgrammed: 3 });
    expect(d.translate(P256M, IOMMU_READ, requester(0x20))).toBe(8 * P256M);
  });
});

describe('window disable (§2.3)', () => {
  it.each([
    ['an index beyond the count', 4],
    ['a negative index', -1],
    ['a window that is not valid', 2],
  ])('ignores %s', (_what, index) => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    const before = observe(hw, d);
    d.windows.disableWindow(index);
    expect(observe(hw, d)).toEqual(before);
  });

  it('ignores any index before WINDOWS is set', () => {
    const { hw, d } = setup();
    const before = observe(hw, d);
    d.windows.disableWindow(0);
    expect(observe(hw, d)).toEqual(before);
  });

  it('invalidates a sub-window; the domain stays enabled and the slot faults', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    d.windows.enableWindow(1, P256M, P1M, RW);
    d.windows.setEnabled(true);
    d.windows.disableWindow(1);
    expect([d.windows.window(1), d.mappedPages(), d.windows.isEnabled()]).toEqual([undefined, P1M, true]);
    expect(d.translate(P256M, IOMMU_READ, requester(1))).toBe(TRANSLATE_NO_MAPPING);
    expect(hw.faults().at(-1)?.kind).toBe('window-invalid');
  });

  it('with one window: disabling it disables the domain (the PPAACE V bit goes)', () => {
    const { d } = configured(1);
    d.windows.enableWindow(0, 0, P256M, RW);
    d.windows.setEnabled(true);
    d.windows.disableWindow(0);
    expect(d.windows.isEnabled()).toBe(false);
    expect(d.translate(0, IOMMU_READ, requester(1))).toBe(TRANSLATE_BLOCKED);
  });
});

describe('set ENABLE (§2.3)', () => {
  it('refuses ENABLE=1 with ENODEV when no window is valid, with or without windows set', () => {
    const { hw, d } = setup();
    expectSysError(() => d.windows.setEnabled(true), 'ENODEV');
    d.windows.setGeometry(0n, GiB - 1n);
    d.windows.setWindowCount(2);
    const before = observe(hw, d);
    expectSysError(() => d.windows.setEnabled(true), 'ENODEV');
    expect(observe(hw, d)).toEqual(before);
  });

  it('enables with one valid window and disables at any time', () => {
    const { d } = configured(2);
    d.windows.setEnabled(false);
    d.windows.enableWindow(1, 0, 1, RW);
    d.windows.setEnabled(true);
    expect(d.windows.isEnabled()).toBe(true);
    d.windows.setEnabled(false);
    expect(d.windows.isEnabled()).toBe(false);
  });
});

describe('translate', () => {
  function live(count = 4): { hw: WindowedIommu; d: WindowedIommuDomain } {
    const env = configured(count);
    const w = env.d.windows;
    w.enableWindow(0, 16 * P256M, P256M, RW);
    w.enableWindow(1, 3 * P1M, P1M, IOMMU_READ);
    w.enableWindow(2, 5 * P256M, P256M, IOMMU_WRITE);
    w.setEnabled(true);
    return env;
  }

  it('adds the offset inside the slot to the window backing', () => {
    const { hw, d } = live();
    const r = requester(1);
    expect(d.translate(0, IOMMU_READ, r)).toBe(16 * P256M);
    expect(d.translate(P256M - 1, IOMMU_WRITE, r)).toBe(17 * P256M - 1);
    expect(d.translate(P256M + 17, IOMMU_READ, r)).toBe(3 * P1M + 17);
    expect(d.translate(2 * P256M + 9, IOMMU_WRITE, r)).toBe(5 * P256M + 9);
    expect([hw.faults(), hw.counters().violations]).toEqual([[], 0]);
  });

  it('faults beyond the mapped size inside a valid slot (the driver software lookup wraps; hardware faults)', () => {
    const { hw, d } = live();
    expect(d.translate(P256M + P1M - 1, IOMMU_READ, requester(1))).toBe(3 * P1M + P1M - 1);
    expect(d.translate(P256M + P1M, IOMMU_READ, requester(1))).toBe(TRANSLATE_NO_MAPPING);
    expect(hw.faults()).toEqual([
      { address: BigInt(P256M + P1M) << 12n, liodn: 1, access: 'read', kind: 'beyond-window', domainId: d.id },
    ]);
    expect(d.iovaToPfn(P256M + P1M)).toBe(TRANSLATE_NO_MAPPING);
  });

  it.each([
    ['an invalid window', 3 * P256M, IOMMU_READ, TRANSLATE_NO_MAPPING, 'window-invalid'],
    ['an address above the aperture', 4 * P256M, IOMMU_READ, TRANSLATE_NO_MAPPING, 'outside-aperture'],
    ['a write to a read-only window', P256M, IOMMU_WRITE, TRANSLATE_NO_PERMISSION, 'permission'],
    ['a read of a write-only window', 2 * P256M, IOMMU_READ, TRANSLATE_NO_PERMISSION, 'permission'],
  ] as const)('refuses %s, logs it and disables the LIODN', (_what, page, access, result, kind) => {
    const { hw, d } = live();
    expect(d.translate(page, access, requester(1))).toBe(result);
    expect(hw.faults()).toEqual([
      { address: BigInt(page) << 12n, liodn: 1, access: access === IOMMU_WRITE ? 'write' : 'read', kind, domainId: d.id },
    ]);
    expect(hw.liodnState(1)!.disabled).toBe(true);
    expect(hw.counters().violations).toBe(1);
  });

  it('refuses an address below an aperture that does not start at 0', () => {
    const { hw, d } = setup();
    d.attachLiodns([3]);
    d.windows.setGeometry(GiB, 2n * GiB - 1n);
    d.windows.setWindowCount(1);
    d.windows.enableWindow(0, 0, 4 * P256M, RW);
    d.windows.setEnabled(true);
    expect(d.translate(4 * P256M + 1, IOMMU_READ, requester(3))).toBe(1);
    expect(d.translate(4 * P256M - 1, IOMMU_READ, requester(3))).toBe(TRANSLATE_NO_MAPPING);
    expect(hw.faults().map((f) => f.kind)).toEqual(['outside-aperture']);
  });

  it('blocks a later valid access from a disabled LIODN until it is re-enabled; other LIODNs go on', () => {
    const { hw, d } = live();
    d.attachLiodns([2]);
    d.translate(3 * P256M, IOMMU_READ, requester(1));
    expect(d.translate(0, IOMMU_READ, requester(1))).toBe(TRANSLATE_BLOCKED);
    expect(d.translate(0, IOMMU_READ, requester(2))).toBe(16 * P256M);
    expect(hw.faults().map((f) => [f.liodn, f.kind])).toEqual([
      [1, 'window-invalid'],
      [1, 'liodn-disabled'],
    ]);
    const programmed = hw.counters().primaryProgrammed;
    d.windows.reenableRequester(1);
    expect(hw.counters().primaryProgrammed).toBe(programmed + 1);
    expect(hw.liodnState(1)!.disabled).toBe(false);
    expect(d.translate(0, IOMMU_READ, requester(1))).toBe(16 * P256M);
    expect(hw.counters().violations).toBe(2);
  });

  it('blocks every device sharing the LIODN after one of them faults', () => {
    const { d } = live();
    d.translate(3 * P256M, IOMMU_READ, { bdf: '0000:01:00.0', liodn: 1 });
    expect(d.translate(0, IOMMU_READ, { bdf: '0000:01:00.1', liodn: 1 })).toBe(TRANSLATE_BLOCKED);
  });

  it('re-enables every disabled LIODN of the domain on ENABLE=1', () => {
    const { hw, d } = live();
    d.attachLiodns([2]);
    d.translate(3 * P256M, IOMMU_READ, requester(1));
    d.translate(3 * P256M, IOMMU_READ, requester(2));
    d.windows.setEnabled(true);
    expect([hw.liodnState(1)!.disabled, hw.liodnState(2)!.disabled]).toEqual([false, false]);
    expect(d.translate(0, IOMMU_READ, requester(2))).toBe(16 * P256M);
  });

  it('makes re-enabling a LIODN that is not disabled a no-op, and one not attached here EINVAL', () => {
    const { hw, d } = live();
    const before = hw.counters();
    d.windows.reenableRequester(1);
    expect(hw.counters()).toEqual(before);
    expectSysError(() => d.windows.reenableRequester(2), 'EINVAL');
  });

  it('blocks and logs an access while the domain is not enabled, disabling the LIODN until enable', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    expect(d.translate(0, IOMMU_READ, requester(1))).toBe(TRANSLATE_BLOCKED);
    expect(hw.faults().map((f) => f.kind)).toEqual(['domain-disabled']);
    expect(hw.liodnState(1)!.disabled).toBe(true);
    d.windows.setEnabled(true);
    expect(d.translate(0, IOMMU_READ, requester(1))).toBe(0);
  });

  it.each([
    ['no requester', undefined],
    ['a requester without a LIODN', requester(undefined)],
    ['a LIODN attached to no domain', requester(9)],
    ['a LIODN beyond the PPAACT', requester(5000)],
  ])('blocks %s without a violation', (_what, req) => {
    const { hw, d } = live();
    const before = hw.counters();
    expect(d.translate(0, IOMMU_READ, req)).toBe(TRANSLATE_BLOCKED);
    expect([hw.counters(), hw.faults()]).toEqual([before, []]);
  });

  it('blocks a LIODN held by another domain of the unit, without touching its state', () => {
    const { hw, d } = live();
    const other = hw.allocDomain();
    other.attachLiodns([7]);
    expect(d.translate(0, IOMMU_READ, requester(7))).toBe(TRANSLATE_BLOCKED);
    expect([hw.faults(), hw.liodnState(7)!.disabled]).toEqual([[], false]);
  });

  it('blocks a LIODN after it is detached', () => {
    const { d } = live();
    d.detachLiodns([1]);
    expect(d.translate(0, IOMMU_READ, requester(1))).toBe(TRANSLATE_BLOCKED);
  });

  it('with one window smaller than the aperture, faults beyond its mapped size', () => {
    const { hw, d } = configured(1);
    d.windows.enableWindow(0, 4 * P256M, P256M, RW);
    d.windows.setEnabled(true);
    expect(d.translate(P256M - 1, IOMMU_READ, requester(1))).toBe(5 * P256M - 1);
    expect(d.translate(P256M, IOMMU_READ, requester(1))).toBe(TRANSLATE_NO_MAPPING);
    expect(hw.faults().map((f) => f.kind)).toEqual(['beyond-window']);
  });

  it('treats an access that is neither read nor write as a simulator bug', () => {
    const { d } = live();
    expect(() => d.translate(0, RW as typeof IOMMU_READ, requester(1))).toThrow(SimBugError);
  });
});

describe('IommuDomain operations on a windowed domain', () => {
  it('answers map with ENODEV (iommu_map on PAMU)', () => {
    const { hw, d } = configured(4);
    const before = observe(hw, d);
    expectSysError(() => d.map(0, 0, 1, RW), 'ENODEV');
    expect(observe(hw, d)).toEqual(before);
  });

  it('unmaps nothing: returns 0, never calls the visitor and keeps the windows', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    const before = observe(hw, d);
    const visit = jest.fn();
    expect(d.unmap(0, 4 * P256M, visit)).toBe(0);
    expect(visit).not.toHaveBeenCalled();
    expect(observe(hw, d)).toEqual(before);
  });

  it('walks the valid windows as one run each, clipped to the range, skipping invalid ones', () => {
    const { d } = configured(4);
    d.windows.enableWindow(0, 16 * P256M, P256M, RW);
    d.windows.enableWindow(1, 17 * P256M, P256M, RW);
    d.windows.enableWindow(3, 3 * P1M, P1M, IOMMU_READ);
    expect(runs(d, 0, 4 * P256M)).toEqual([
      [0, 16 * P256M, P256M, RW],
      [P256M, 17 * P256M, P256M, RW],
      [3 * P256M, 3 * P1M, P1M, IOMMU_READ],
    ]);
    expect(runs(d, 100, P256M)).toEqual([
      [100, 16 * P256M + 100, P256M - 100, RW],
      [P256M, 17 * P256M, 100, RW],
    ]);
    expect(runs(d, 3 * P256M + P1M, P256M)).toEqual([]);
    expect(runs(d, 5 * P256M, 10)).toEqual([]);
  });

  it('walks nothing before WINDOWS is set', () => {
    const { d } = setup();
    expect(runs(d, 0, 2 ** 24)).toEqual([]);
  });

  it('resolves iovaToPfn through the windows with no side effects, whatever the enable state', () => {
    const { hw, d } = configured(4);
    d.windows.enableWindow(2, 5 * P256M, P1M, IOMMU_WRITE);
    const before = observe(hw, d);
    expect(d.iovaToPfn(2 * P256M + 3)).toBe(5 * P256M + 3);
    expect(d.iovaToPfn(0)).toBe(TRANSLATE_NO_MAPPING);
    expect(d.iovaToPfn(4 * P256M)).toBe(TRANSLATE_NO_MAPPING);
    expect(d.iovaToPfn(-1)).toBe(TRANSLATE_NO_MAPPING);
    expect(observe(hw, d)).toEqual(before);
  });

  it('counts the mapped size of each valid window, not its slot', () => {
    const { d } = configured(4);
    d.windows.enableWindow(0, 0, P1M, RW);
    d.windows.enableWindow(1, P256M, P256M, RW);
    expect(d.mappedPages()).toBe(P1M + P256M);
    d.windows.disableWindow(0);
    expect(d.mappedPages()).toBe(P256M);
  });

  it('treats every use after free, and a second free, as a simulator bug', () => {
    const { hw, d } = configured(4);
    d.free();
    expect(d.isFreed()).toBe(true);
    const r = requester(1);
    const uses: Array<() => unknown> = [
      () => d.map(0, 0, 1, RW),
      () => d.unmap(0, 1),
      () => d.walk(0, 1, () => undefined),
      () => d.iovaToPfn(0),
      () => d.translate(0, IOMMU_READ, r),
      () => d.tableBytes(),
      () => d.mappedPages(),
      () => d.attachLiodns([1]),
      () => d.detachLiodns([1]),
      () => d.liodns(),
      () => d.windows.geometry(),
      () => d.windows.setGeometry(0n, GiB - 1n),
      () => d.windows.windowCount(),
      () => d.windows.setWindowCount(2),
      () => d.windows.windowBytes(),
      () => d.windows.enableWindow(0, 0, 1, RW),
      () => d.windows.disableWindow(0),
      () => d.windows.window(0),
      () => d.windows.setEnabled(false),
      () => d.windows.isEnabled(),
      () => d.windows.reenableRequester(1),
      () => d.free(),
    ];
    for (const use of uses) expect(use).toThrow(SimBugError);
    expect(hw.domainCount()).toBe(0);
  });
});

describe('counters', () => {
  it('count every entry write, window change and violation of a scripted sequence exactly', () => {
    const hw = new WindowedIommu();
    const d = hw.allocDomain();
    const w = d.windows;
    d.attachLiodns([1, 2]); // windows not set: entries held, nothing programmed
    w.setGeometry(0n, GiB - 1n); // nothing programmed yet
    w.setWindowCount(4); // 2 PPAACE + 2 × 3 SPAACE
    w.enableWindow(0, 0, P1M, RW); // window 0 lives in the PPAACE: 2
    w.enableWindow(2, P256M, P256M, RW); // a SPAACE per LIODN: 2
    w.setEnabled(true); // V in each PPAACE: 2
    d.translate(3 * P256M, IOMMU_READ, requester(1)); // violation
    w.reenableRequester(1); // 1 PPAACE
    w.disableWindow(2); // 2 SPAACE
    w.disableWindow(3); // not valid: nothing
    w.setEnabled(false); // 2 PPAACE
    w.setGeometry(0n, 2n * GiB - 1n); // windows kept: 2 PPAACE
    d.attachLiodns([3]); // 1 PPAACE + 3 SPAACE
    expect(hw.counters()).toEqual({
      primaryProgrammed: 2 + 2 + 2 + 1 + 2 + 2 + 1,
      secondaryProgrammed: 6 + 2 + 2 + 3,
      primaryHeld: 3,
      secondaryHeld: 9,
      windowsEnabled: 2,
      windowsDisabled: 1,
      geometrySets: 2,
      windowCountSets: 1,
      violations: 1,
      domainsAllocated: 1,
      domainsFreed: 0,
      tableBytes: 12 * 64,
    });
    expect(d.tableBytes()).toBe(12 * 64);
    d.detachLiodns([3]);
    d.free();
    expect(pick(hw, 'primaryHeld', 'secondaryHeld', 'tableBytes', 'domainsFreed')).toEqual({
      primaryHeld: 0,
      secondaryHeld: 0,
      tableBytes: 0,
      domainsFreed: 1,
    });
  });
});

describe('the derived example of reference §5 (P4080, 1 GiB of guest RAM in 256 MiB hugepages)', () => {
  /** SDK QEMU's window count: RAM / W + banks, rounded up to a power of two (§3.6 step 4). */
  function qemuWindowCount(ramBytes: bigint, windowBytes: bigint, banks: number): number {
    const n = Number(ramBytes / windowBytes) + banks;
    return (n & (n - 1)) === 0 ? n : 2 * 2 ** Math.floor(Math.log2(n));
  }
  /** The 4 KiB page of each P4080 MSIIR alias (CCSR 0xf_fe00_0000 + 0x44140 / 0x45140 / 0x46140). */
  const MSIIR_PFNS = [0xffe044, 0xffe045, 0xffe046];

  it('needs 8 windows of 256 MiB in a 2 GiB aperture, banks in slots 4–6, slot 7 unused', () => {
    const hw = new WindowedIommu();
    const count = qemuWindowCount(GiB, 256n * MiB, 3);
    expect(count).toBe(8);
    const d = hw.allocDomain();
    const w = d.windows;
    w.setGeometry(0n, BigInt(count) * 256n * MiB - 1n);
    w.setWindowCount(count);
    expect([w.geometry(), w.windowBytes(), d.pgsizeBitmap]).toEqual([{ start: 0n, last: 2n * GiB - 1n }, 256n * MiB, 0x1000_0000n]);
    // Guest RAM: four naturally aligned 256 MiB hugepages, deliberately not physically adjacent.
    const hugepages = [40, 7, 12, 33].map((i) => i * P256M);
    hugepages.forEach((pfn, slot) => w.enableWindow(slot, pfn, P256M, RW));
    // MSI banks at IOVA 1 GiB, 1.25 GiB, 1.5 GiB: 4 KiB at the start of each slot.
    MSIIR_PFNS.forEach((pfn, bank) => w.enableWindow(4 + bank, pfn, 1, RW));
    w.setEnabled(true);
    d.attachLiodns([0x100]);
    const r = requester(0x100);
    expect(d.translate(Number(0x1234_5000n >> 12n), IOMMU_WRITE, r)).toBe(7 * P256M + 0x2345);
    expect(d.translate(Number((GiB + 0x140n) >> 12n), IOMMU_WRITE, r)).toBe(0xffe044);
    expect(d.translate(Number((GiB + 512n * MiB) >> 12n), IOMMU_WRITE, r)).toBe(0xffe046);
    expect(d.mappedPages()).toBe(4 * P256M + 3);
    expect(hw.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 7, tableBytes: 8 * 64, violations: 0 });
    // The rest of a bank slot, and slot 7, fault.
    expect(d.translate(Number((GiB + 0x1000n) >> 12n), IOMMU_WRITE, r)).toBe(TRANSLATE_NO_MAPPING);
    d.windows.reenableRequester(0x100);
    expect(d.translate(Number((7n * 256n * MiB) >> 12n), IOMMU_READ, r)).toBe(TRANSLATE_NO_MAPPING);
    expect(hw.faults().map((f) => [f.address, f.kind])).toEqual([
      [GiB + 0x1000n, 'beyond-window'],
      [7n * 256n * MiB, 'window-invalid'],
    ]);
  });

  it('cannot map more than about 1 MiB of RAM with 4 KiB pages: the count exceeds 256', () => {
    expect(qemuWindowCount(MiB, 4n * KiB, 3)).toBe(512);
    const { d } = setup();
    d.windows.setGeometry(0n, 2n * MiB - 1n);
    expectSysError(() => d.windows.setWindowCount(512), 'EINVAL');
  });
});
