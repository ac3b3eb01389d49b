import { IOMMU_READ, IOMMU_WRITE, type IommuHardware } from '../../../../../kernel-sim/iommu/iommu-domain';
import { PagedIommu } from '../../../../../kernel-sim/iommu/paged/paged-iommu';
import { expectSysError } from '../../../../helpers/expect-sys-error';

const RW = IOMMU_READ | IOMMU_WRITE;


const ZERO_COUNTERS = {
  domainsAllocated: 0,
  domainsFreed: 0,
  tablesAllocated: 0,
  tablesFreed: 0,
  tableBytes: 0,
  leafWritten: 0,
  leafWritten4K: 0,
  leafWritten2M: 0,
  leafWritten1G: 0,
  leafCleared: 0,
  leafCleared4K: 0,
  leafCleared2M: 0,
  leafCleared1G: 0,
  iotlbLookups: 0,
  iotlbHits: 0,
  iotlbMisses: 0,
  iotlbFills: 0,
  iotlbEvictions: 0,
  iotlbInvalidations: 0,
  iotlbEntriesInvalidated: 0,
  walks: 0,
  walkReads: 0,
};

describe('PagedIommu', () => {
  it('defaults to 4K|2M|1G, a 48-bit forced aperture, 64 IOTLB entries and cache coherency', () => {
    const hw: IommuHardware = new PagedIommu({ name: 'intel-vtd' });
    expect(hw.name).toBe('intel-vtd');
    expect(hw.pgsizeBitmap).toBe(0x40201000n);
    expect(hw.geometry).toEqual({ apertureStart: 0n, apertureLast: 0xffff_ffff_ffffn, forceAperture: true });
    expect(hw.enforceCacheCoherency).toBe(true);
    expect((hw as PagedIommu).iotlbEntries).toBe(64);
  });

  it('takes its options, restricting the bitmap to the sizes the table format has', () => {
    const hw = new PagedIommu({
      name: 'amd-like', pgsizeBitmap: 0xffff_f000n, ias: 39, oas: 40, iotlbEntries: 0, enforceCacheCoherency: false,
    });
    expect([hw.pgsizeBitmap, hw.ias, hw.oas, hw.iotlbEntries, hw.enforceCacheCoherency])
      .toEqual([0x40201000n, 39, 40, 0, false]);
    expect(hw.geometry.apertureLast).toBe((1n << 39n) - 1n);
  });

  it('refuses impossible options with EINVAL', () => {
    expectSysError(() => new PagedIommu({ name: 'x', pgsizeBitmap: 0x200000n }), 'EINVAL');
    expectSysError(() => new PagedIommu({ name: 'x', ias: 64 }), 'EINVAL');
    expectSysError(() => new PagedIommu({ name: 'x', oas: 60 }), 'EINVAL');
    expectSysError(() => new PagedIommu({ name: 'x', iotlbEntries: -1 }), 'EINVAL');
  });

  it('starts with every counter at zero, under stable keys', () => {
    expect(new PagedIommu({ name: 'x' }).counters()).toEqual(ZERO_COUNTERS);
    expect(Object.keys(new PagedIommu({ name: 'x' }).counters())).toEqual(Object.keys(ZERO_COUNTERS));
  });

  it('allocates domains with ids 1, 2, 3 that share its geometry, bitmap and coherency', () => {
    const hw = new PagedIommu({ name: 'x', pgsizeBitmap: 0x1000n });
    const ds = [hw.allocDomain(), hw.allocDomain(), hw.allocDomain()];
    expect(ds.map((d) => d.id)).toEqual([1, 2, 3]);
    expect(ds.every((d) => d.hardware === hw && d.geometry === hw.geometry && d.pgsizeBitmap === 0x1000n)).toBe(true);
    expect(ds[0]!.enforceCacheCoherency).toBe(true);
    expect(hw.domainCount()).toBe(3);
    expect(hw.counters()).toMatchObject({ domainsAllocated: 3, tablesAllocated: 3, tableBytes: 3 * 4096 });
  });

  it('sums its counters over all domains, freed ones included; tableBytes counts live domains only', () => {
    const hw = new PagedIommu({ name: 'x' });
    const a = hw.allocDomain();
    const b = hw.allocDomain();
    a.map(0, 0, 1, RW);
    b.map(0, 0, 512, RW);
    a.free();
    expect(hw.counters()).toMatchObject({
      domainsAllocated: 2, domainsFreed: 1, leafWritten4K: 1, leafWritten2M: 1,
      tablesAllocated: 4 + 3, tablesFreed: 4, tableBytes: 3 * 4096,
    });
    expect(hw.domainCount()).toBe(1);
  });

  it('resets every counter but tableBytes', () => {
    const hw = new PagedIommu({ name: 'x' });
    const d = hw.allocDomain();
    d.map(0, 0, 1, RW);
    d.translate(0, IOMMU_READ);
    d.unmap(0, 1);
    d.map(5, 5, 1, RW);
    hw.resetCounters();
    expect(hw.counters()).toEqual({ ...ZERO_COUNTERS, tableBytes: 4 * 4096 });
  });
});
