/**
 * MSI raise-to-delivery on every machine: a vfio-pci device with MSI vector 0 wired to an eventfd by
 * VFIO_DEVICE_SET_IRQS; each operation is `raiseMsi(0)` — the device's MSI write translated by the IOMMU
 * (or caught by interrupt remapping on x86), delivered by the MSI controller, counted on the eventfd.
 * The count read back at the end must equal the interrupts raised.
 */
import { Kernel, VfioContainer, VfioGroup, uapi, type MachineName } from '../index';
import { throughput } from './harness';
import type { ScenarioResult } from './type1-scenarios';

interface MsiWorld {
  raise: () => boolean;
  drain: () => bigint;
  kernel: Kernel;
}

function msiWorld(machine: MachineName): MsiWorld {
  const windowed = machine.startsWith('fsl-');
  const bdf = windowed ? '0000:01:00.0' : '0000:06:0d.0';
  const kernel = new Kernel({ machine, allowUnsafeInterrupts: machine === 'x86-vtd-no-ir', devices: [{ bdf, group: 1, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: 1n << 34n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 1);
  group.setContainer(container);
  container.setIommu(windowed ? uapi.VFIO_TYPE2_IOMMU : uapi.VFIO_TYPE1v2_IOMMU);
  if (windowed) {
    // The vendor's flow: geometry, windows, then an MSI bank in a window of its own.
    const set = (value: Parameters<typeof uapi.VfioPamuAttr.encode>[0]): void =>
      void proc.ioctl(container.fd, uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, ...value }));
    set({ attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: (1n << 31n) - 1n });
    set({ attribute: uapi.VFIO_ATTR_WINDOWS, windows: 8 });
    proc.ioctl(container.fd, uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags: 3, msi_bank_index: 0, iova: 1n << 30n }));
  }
  const device = group.device(bdf);
  const efd = proc.eventfd();
  const irqSet = new Uint8Array(24);
  uapi.VfioIrqSet.encode(
    { argsz: 24, flags: uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER, index: uapi.VFIO_PCI_MSI_IRQ_INDEX, start: 0, count: 1 },
    irqSet,
  );
  uapi.writeU32(irqSet, 20, efd);
  proc.ioctl(device.fd, uapi.VFIO_DEVICE_SET_IRQS, irqSet);
  const pci = kernel.device(bdf);
  return { raise: () => pci.raiseMsi(0), drain: () => proc.eventfdRead(efd), kernel };
}

export function msiDelivery(smoke: boolean): ScenarioResult[] {
  const machines: MachineName[] = ['x86-vtd', 'x86-vtd-no-ir', 'arm-smmuv3', 'fsl-p4080', 'fsl-t4240'];
  return machines.map((machine) => {
    const w = msiWorld(machine);
    let raised = 0;
    let delivered = 0;
    const t = throughput(`msi ${machine}`, () => {
      if (w.raise()) delivered++;
      raised++;
    }, smoke ? 0.1 : 2);
    const counted = Number(w.drain());
    w.kernel.shutdown();
    return {
      name: `msi-${machine}`,
      what: `raiseMsi → eventfd on ${machine}`,
      value: t.hz,
      unit: 'interrupts/s',
      ...(smoke ? {} : { target: '≥ 500,000 interrupts/s', met: t.hz >= 500_000 && counted === raised }),
      details: { raised, delivered, eventfdCount: counted, meanPerSecond: Math.round(t.meanHz), rmePercent: Math.round(t.rmePercent * 100) / 100 },
    };
  });
}
