/**
 * The PAMU machine presets: the windowed unit they build, the LIODN every PCI device gets, and a device's
 * DMA through a windowed domain on the kernel's DMA path.
 */
import { DmaFault, Kernel } from '../../../../../index';
import { IOMMU_READ, IOMMU_WRITE } from '../../../../../kernel-sim/iommu/iommu-domain';
import { PAMU_PARAMS, WindowedIommu } from '../../../../../kernel-sim/iommu/windowed/windowed-iommu';
import { MACHINE_PRESETS, pciControllerLiodn } from '../../../../../kernel-sim/machines';

const RW = IOMMU_READ | IOMMU_WRITE;
/** 4 KiB pages in 256 MiB. */
const P256M = 65536;

describe('PAMU machine presets', () => {
  it.each(['fsl-p4080', 'fsl-t4240'] as const)('%s builds one fsl-pamu unit with the PAMU parameters, no reserved region and isolated MSIs', (machine) => {
    const kernel = new Kernel({ machine, devices: [{ bdf: '0000:01:00.0', group: 1 }] });
    expect(kernel.machine.name).toBe(machine);
    expect(kernel.iommus).toHaveLength(1);
    const hw = kernel.iommus[0]!;
    expect(hw).toBeInstanceOf(WindowedIommu);
    expect([hw.name, (hw as WindowedIommu).params]).toEqual(['fsl-pamu', PAMU_PARAMS]);
    expect(kernel.group(1).reservedRegions()).toEqual([]);
    expect(kernel.group(1).hasIsolatedMsi()).toBe(true);
  });

  it('describes both machines', () => {
    expect(MACHINE_PRESETS['fsl-p4080'].description).toMatch(/P4080.*PAMU/);
    expect(MACHINE_PRESETS['fsl-t4240'].description).toMatch(/T4240.*PAMU/);
  });

  it('gives every device without a liodn its controller LIODN: 0x100 + PCI domain', () => {
    const kernel = new Kernel({
      machine: 'fsl-p4080',
      devices: [
        { bdf: '0000:01:00.0', group: 1 },
        { bdf: '0000:01:00.1', group: 2 },
        { bdf: '0000:02:00.0', group: 3 },
        { bdf: '0001:01:00.0', group: 4 },
        { bdf: '0002:05:00.0', group: 5, liodn: 0x42 },
      ],
    });
    expect(kernel.devices().map((d) => [d.bdf, d.liodn])).toEqual([
      ['0000:01:00.0', 0x100],
      ['0000:01:00.1', 0x100],
      ['0000:02:00.0', 0x100],
      ['0001:01:00.0', 0x101],
      ['0002:05:00.0', 0x42],
    ]);
    expect(pciControllerLiodn('000a:00:00.0')).toBe(0x10a);
  });

  it('gives no LIODN to devices on page-table machines', () => {
    const kernel = new Kernel({ machine: 'x86-vtd', devices: [{ bdf: '0000:01:00.0', group: 1 }] });
    expect(kernel.device('0000:01:00.0').liodn).toBeUndefined();
  });

  it('applies iommuOverrides to the windowed unit', () => {
    const kernel = new Kernel({ machine: 'fsl-t4240', iommuOverrides: { params: { ...PAMU_PARAMS, maxWindows: 64 } } });
    expect((kernel.iommus[0] as WindowedIommu).params.maxWindows).toBe(64);
  });

  it('translates device DMA through windows, and one violation blocks every device behind the controller', () => {
    const kernel = new Kernel({
      machine: 'fsl-p4080',
      devices: [
        { bdf: '0000:01:00.0', group: 1, driver: 'none' },
        { bdf: '0000:01:00.1', group: 2, driver: 'none' },
      ],
    });
    const hw = kernel.iommus[0] as WindowedIommu;
    const [a, b] = [kernel.device('0000:01:00.0'), kernel.device('0000:01:00.1')];
    const owner = {};
    const groups = [kernel.group(1), kernel.group(2)];
    const folio = kernel.phys.allocHuge(16);
    const domain = hw.allocDomain();
    domain.windows.setGeometry(0n, (1n << 30n) - 1n);
    domain.windows.setWindowCount(4);
    domain.windows.enableWindow(1, folio, P256M, RW);
    domain.windows.setEnabled(true);
    for (const group of groups) {
      group.claimDmaOwner(owner);
      group.attachDomain(domain);
      domain.attachLiodns(group.devices.map((d) => d.liodn!));
    }
    expect(hw.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 3 });

    a.dmaWrite(0x1000_0010n, new Uint8Array([1, 2, 3]));
    expect([...b.dmaRead(0x1000_0010n, 3)]).toEqual([1, 2, 3]);
    expect(() => a.dmaRead(0x2000_0000n, 4)).toThrow(DmaFault);
    expect(() => b.dmaRead(0x1000_0010n, 3)).toThrow(DmaFault);
    expect(kernel.dmaFaults().map((f) => [f.bdf, f.liodn, f.reason])).toEqual([
      ['0000:01:00.0', 0x100, 'unmapped'],
      ['0000:01:00.1', 0x100, 'blocked'],
    ]);
    expect(hw.faults().map((f) => [f.address, f.liodn, f.kind])).toEqual([
      [0x2000_0000n, 0x100, 'window-invalid'],
      [0x1000_0000n, 0x100, 'liodn-disabled'],
    ]);
    domain.windows.reenableRequester(0x100);
    expect([...b.dmaRead(0x1000_0010n, 3)]).toEqual([1, 2, 3]);

    for (const group of groups) {
      domain.detachLiodns(group.devices.map((d) => d.liodn!));
      group.detachDomain(domain);
      group.releaseDmaOwner(owner);
    }
    domain.free();
    kernel.phys.release(folio);
    expect(hw.counters()).toMatchObject({ primaryHeld: 0, secondaryHeld: 0, domainsFreed: 1 });
  });
});
