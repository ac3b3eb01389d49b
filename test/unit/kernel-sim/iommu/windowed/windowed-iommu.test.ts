import { SimBugError } from '../../../../../kernel-sim/errors';
import { IOMMU_READ, IOMMU_WRITE, TRANSLATE_NO_MAPPING, type IommuHardware } from '../../../../../kernel-sim/iommu/iommu-domain';
import {
  PAMU_PARAMS,
  WindowedIommu,
  type WindowedIommuCounters,
} from '../../../../../kernel-sim/iommu/windowed/windowed-iommu';
import type { WindowedIommuDomain } from '../../../../../kernel-sim/iommu/windowed/windowed-iommu-domain';
import { expectSysError } from '../../../../helpers/expect-sys-error';

const RW = IOMMU_READ | IOMMU_WRITE;
const GiB = 1n << 30n;


const ZERO_COUNTERS: WindowedIommuCounters = {
  primaryProgrammed: 0,
  secondaryProgrammed: 0,
  primaryHeld: 0,
  secondaryHeld: 0,
  windowsEnabled: 0,
  windowsDisabled: 0,
  geometrySets: 0,
  windowCountSets: 0,
  violations: 0,
  domainsAllocated: 0,
  domainsFreed: 0,
  tableBytes: 0,
};

/** A domain with a 64 GiB aperture split into `count` windows. */
function windowedDomain(hw: WindowedIommu, count: number): WindowedIommuDomain {
  const d = hw.allocDomain();
  d.windows.setGeometry(0n, 64n * GiB - 1n);
  d.windows.setWindowCount(count);
  return d;
}

describe('WindowedIommu', () => {
  it('defaults to the PAMU parameter set, a 64 GiB forced aperture, a 4 KiB bitmap and coherency', () => {
    const hw: IommuHardware = new WindowedIommu();
    expect(hw.name).toBe('fsl-pamu');
    expect((hw as WindowedIommu).params).toEqual({
      maxWindows: 256,
      minWindowBytes: 4096n,
      maxApertureLast: 0xf_ffff_ffffn,
      requireNaturalAlignment: true,
      primaryEntries: 1280,
      secondaryEntries: 2048,
    });
    expect(PAMU_PARAMS).toEqual((hw as WindowedIommu).params);
    expect(hw.geometry).toEqual({ apertureStart: 0n, apertureLast: 0xf_ffff_ffffn, forceAperture: true });
    expect(hw.pgsizeBitmap).toBe(0x1000n);
    expect(hw.enforceCacheCoherency).toBe(true);
  });

  it('takes a name and parameter changes, reporting minWindowBytes as its bitmap', () => {
    const hw = new WindowedIommu({ name: 'other-windowed', params: { maxWindows: 16, minWindowBytes: 0x10000n, maxApertureLast: 0xffff_ffffn } });
    expect([hw.name, hw.params.maxWindows, hw.pgsizeBitmap, hw.geometry.apertureLast]).toEqual(['other-windowed', 16, 0x10000n, 0xffff_ffffn]);
    expect(hw.params.primaryEntries).toBe(1280);
  });

  it.each([
    ['maxWindows not a power of two', { params: { maxWindows: 48 } }],
    ['maxWindows 0', { params: { maxWindows: 0 } }],
    ['minWindowBytes below 4 KiB', { params: { minWindowBytes: 2048n } }],
    ['minWindowBytes not a power of two', { params: { minWindowBytes: 0x3000n } }],
    ['maxApertureLast below one minimum window', { params: { maxApertureLast: 0xffen } }],
    ['maxApertureLast above 2^64 - 1', { params: { maxApertureLast: 1n << 64n } }],
    ['no primary entry', { params: { primaryEntries: 0 } }],
    ['a fractional secondary pool', { params: { secondaryEntries: 1.5 } }],
    ['a negative fault log', { faultLogEntries: -1 }],
  ])('refuses %s with EINVAL', (_what, options) => {
    expectSysError(() => new WindowedIommu(options), 'EINVAL');
  });

  it('starts with every counter at zero, under stable keys', () => {
    const counters = new WindowedIommu().counters();
    expect(counters).toEqual(ZERO_COUNTERS);
    expect(Object.keys(counters)).toEqual(Object.keys(ZERO_COUNTERS));
  });

  it('allocates domains with ids 1, 2, 3, counts them, and forgets freed ones', () => {
    const hw = new WindowedIommu();
    const ds = [hw.allocDomain(), hw.allocDomain(), hw.allocDomain()];
    expect(ds.map((d) => d.id)).toEqual([1, 2, 3]);
    expect(ds.every((d) => d.hardware === hw && d.enforceCacheCoherency)).toBe(true);
    ds[1]!.free();
    expect(hw.domainCount()).toBe(2);
    expect(hw.allocDomain().id).toBe(4);
    expect(hw.counters()).toMatchObject({ domainsAllocated: 4, domainsFreed: 1 });
  });

  describe('entry accounting', () => {
    it('charges one PPAACE per LIODN before windows are set and with one window', () => {
      const hw = new WindowedIommu();
      const d = hw.allocDomain();
      d.attachLiodns([1, 2, 3]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 3, secondaryHeld: 0, tableBytes: 192 });
      d.windows.setGeometry(0n, GiB - 1n);
      d.windows.setWindowCount(1);
      expect(hw.counters()).toMatchObject({ primaryHeld: 3, secondaryHeld: 0, tableBytes: 192 });
      expect(d.tableBytes()).toBe(192);
    });

    it('charges 1 + (N - 1) entries per LIODN, not per domain', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 64);
      d.attachLiodns([7, 9]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 2, secondaryHeld: 126, tableBytes: 128 * 64 });
      expect(d.tableBytes()).toBe(128 * 64);
      expect(hw.liodnState(7)).toEqual({ domainId: d.id, disabled: false, secondaryBase: 0, secondaryCount: 63 });
      expect(hw.liodnState(9)).toEqual({ domainId: d.id, disabled: false, secondaryBase: 63, secondaryCount: 63 });
      expect(hw.liodnState(8)).toEqual({ domainId: undefined, disabled: false, secondaryBase: -1, secondaryCount: 0 });
    });

    it('fits 8 LIODNs with 256 windows (2040 SPAACEs) and refuses a 9th with ENOSPC, changing nothing', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 256);
      d.attachLiodns([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 8, secondaryHeld: 2040 });
      expect(hw.secondaryPool()).toEqual({ free: 8, largestRun: 8 });
      const before = hw.counters();
      expectSysError(() => d.attachLiodns([8]), 'ENOSPC');
      expect(hw.counters()).toEqual(before);
      expect(d.liodns()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(hw.liodnState(8)!.domainId).toBeUndefined();
    });

    it('attaches a list all or nothing: ENOSPC for the last LIODN leaves the earlier ones unattached', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 256);
      d.attachLiodns([0, 1, 2, 3, 4, 5]);
      expectSysError(() => d.attachLiodns([10, 11, 12]), 'ENOSPC');
      expect(d.liodns()).toEqual([0, 1, 2, 3, 4, 5]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 6, secondaryHeld: 1530 });
      d.attachLiodns([10, 11]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 8, secondaryHeld: 2040 });
    });

    it('shares the pool between domains: 8 domains of one LIODN fit, a 9th domain cannot attach', () => {
      const hw = new WindowedIommu();
      const ds = Array.from({ length: 9 }, () => windowedDomain(hw, 256));
      ds.slice(0, 8).forEach((d, i) => d.attachLiodns([0x100 + i]));
      expectSysError(() => ds[8]!.attachLiodns([0x108]), 'ENOSPC');
      ds[3]!.free();
      ds[8]!.attachLiodns([0x108]);
      expect(hw.liodnState(0x108)).toMatchObject({ domainId: ds[8]!.id, secondaryBase: 3 * 255 });
    });

    it('refuses a window count the pool cannot supply with ENOSPC, keeping the old count and entries', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 1);
      d.attachLiodns([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      d.windows.enableWindow(0, 0, 16, RW);
      const before = hw.counters();
      expectSysError(() => d.windows.setWindowCount(256), 'ENOSPC');
      expect(hw.counters()).toEqual(before);
      expect([d.windows.windowCount(), d.windows.window(0)]).toEqual([1, { pfn: 0, pageCount: 16, prot: RW }]);
      d.windows.setWindowCount(128);
      expect(hw.counters()).toMatchObject({ primaryHeld: 9, secondaryHeld: 9 * 127 });
    });

    it('frees the old SPAACEs when WINDOWS is set again (the driver leaked them)', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 256);
      d.attachLiodns([0, 1, 2, 3, 4, 5, 6, 7]);
      for (let i = 0; i < 3; i++) d.windows.setWindowCount(256);
      d.windows.setWindowCount(2);
      expect(hw.counters()).toMatchObject({ primaryHeld: 8, secondaryHeld: 8 });
      expect(hw.secondaryPool()).toEqual({ free: 2040, largestRun: 2040 });
    });

    it('refuses a run that only fragmented free entries could supply', () => {
      const hw = new WindowedIommu({ params: { secondaryEntries: 10 } });
      const ds = [1, 2, 3].map((liodn) => {
        const d = windowedDomain(hw, 4);
        d.attachLiodns([liodn]);
        return d;
      });
      ds[1]!.free();
      expect(hw.secondaryPool()).toEqual({ free: 4, largestRun: 3 });
      const big = windowedDomain(hw, 8);
      expectSysError(() => big.attachLiodns([4]), 'ENOSPC');
      const small = windowedDomain(hw, 4);
      small.attachLiodns([4]);
      expect(hw.liodnState(4)!.secondaryBase).toBe(3);
    });

    it('returns every entry on detach and on free', () => {
      const hw = new WindowedIommu();
      const a = windowedDomain(hw, 256);
      const b = windowedDomain(hw, 16);
      a.attachLiodns([1, 2]);
      b.attachLiodns([3]);
      a.detachLiodns([2]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 2, secondaryHeld: 255 + 15 });
      a.free();
      b.free();
      expect(hw.counters()).toMatchObject({ primaryHeld: 0, secondaryHeld: 0, tableBytes: 0, domainsFreed: 2 });
      expect(hw.secondaryPool()).toEqual({ free: 2048, largestRun: 2048 });
      expect([1, 2, 3].map((l) => hw.liodnState(l)!.domainId)).toEqual([undefined, undefined, undefined]);
    });

    it.each([
      ['0x500, the first LIODN beyond the PPAACT', 0x500],
      ['a negative LIODN', -1],
      ['a fractional LIODN', 2.5],
    ])('refuses %s with EINVAL and attaches nothing of the list', (_what, liodn) => {
      const hw = new WindowedIommu();
      const d = hw.allocDomain();
      expectSysError(() => d.attachLiodns([5, liodn]), 'EINVAL');
      expect(d.liodns()).toEqual([]);
      expect(hw.counters()).toEqual({ ...ZERO_COUNTERS, domainsAllocated: 1 });
      d.attachLiodns([0x4ff]);
      expect(hw.liodnState(0x4ff)!.domainId).toBe(d.id);
      expect(hw.liodnState(0x500)).toBeUndefined();
    });

    it('refuses a LIODN another domain holds with EBUSY (the driver silently moved it)', () => {
      const hw = new WindowedIommu();
      const a = windowedDomain(hw, 4);
      const b = windowedDomain(hw, 4);
      a.attachLiodns([0x100]);
      const before = hw.counters();
      expectSysError(() => b.attachLiodns([0x101, 0x100]), 'EBUSY');
      expect(hw.counters()).toEqual(before);
      expect(b.liodns()).toEqual([]);
    });

    it('counts attachments per LIODN: two groups behind one controller share its entries', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 4);
      d.attachLiodns([0x100]);
      d.attachLiodns([0x100, 0x100]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 3 });
      d.detachLiodns([0x100, 0x100]);
      expect(d.liodns()).toEqual([0x100]);
      d.detachLiodns([0x100]);
      expect(d.liodns()).toEqual([]);
      expect(hw.counters()).toMatchObject({ primaryHeld: 0, secondaryHeld: 0 });
    });

    it('treats detaching a LIODN more often than attached as a simulator bug, changing nothing', () => {
      const hw = new WindowedIommu();
      const d = windowedDomain(hw, 4);
      d.attachLiodns([1, 2]);
      expect(() => d.detachLiodns([2, 2])).toThrow(SimBugError);
      expect(() => d.detachLiodns([3])).toThrow(SimBugError);
      expect(d.liodns()).toEqual([1, 2]);
      expect(hw.counters().primaryHeld).toBe(2);
    });
  });

  describe('violation log', () => {
    it('keeps the last faultLogEntries records while counting every violation', () => {
      const hw = new WindowedIommu({ faultLogEntries: 2 });
      const d = windowedDomain(hw, 4);
      d.attachLiodns([5]);
      const req = { bdf: '0000:01:00.0', liodn: 5 };
      for (const page of [1, 2, 3]) expect(d.translate(page, IOMMU_READ, req)).toBeLessThan(0);
      expect(hw.faults().map((f) => f.address)).toEqual([0x2000n, 0x3000n]);
      expect(hw.counters().violations).toBe(3);
      expect(d.iovaToPfn(1)).toBe(TRANSLATE_NO_MAPPING);
    });
  });

  it('zeroes the counters except the levels it holds; the violation log stays', () => {
    const hw = new WindowedIommu();
    const d = windowedDomain(hw, 8);
    d.attachLiodns([1]);
    d.translate(0, IOMMU_WRITE, { bdf: '0000:01:00.0', liodn: 1 });
    hw.resetCounters();
    expect(hw.counters()).toEqual({ ...ZERO_COUNTERS, primaryHeld: 1, secondaryHeld: 7, tableBytes: 512 });
    expect(hw.faults()).toHaveLength(1);
  });
});
