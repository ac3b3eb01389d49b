/**
 * The documented VFIO usage example (Documentation/driver-api/vfio.rst) run against the simulator, one
 * line per step with what the kernel answered. The same flow is pinned byte for byte by
 * test/conformance/vfio-rst-flow.test.ts; this is its narrated version.
 */
import { Kernel, SysError, VfioContainer, VfioGroup, uapi } from '../index';

/** One step of the flow and its outcome. */
export interface FlowStep {
  step: string;
  result: string;
}

export function runVfioRstFlow(): FlowStep[] {
  const kernel = new Kernel({
    machine: 'x86-vtd',
    devices: [
      { bdf: '0000:06:0d.0', group: 26 },
      { bdf: '0000:06:0d.1', group: 26 },
      { bdf: '0000:00:1e.0', group: 26, kind: 'bridge' },
    ],
  });
  const steps: FlowStep[] = [];
  const note = (step: string, result: string): void => void steps.push({ step, result });
  kernel.bindDriver('0000:06:0d.0', 'vfio-pci');
  kernel.bindDriver('0000:06:0d.1', 'vfio-pci');
  note('bind 0000:06:0d.0 and 0000:06:0d.1 to vfio-pci', '/dev/vfio/26 appears');
  const proc = kernel.spawn({ memlockLimit: 1n << 30n });
  const container = VfioContainer.open(proc);
  note("open('/dev/vfio/vfio')", `fd ${container.fd}`);
  note('VFIO_GET_API_VERSION', String(container.apiVersion()));
  note('VFIO_CHECK_EXTENSION(VFIO_TYPE1_IOMMU)', String(container.checkExtension(uapi.VFIO_TYPE1_IOMMU)));
  const group = VfioGroup.open(proc, 26);
  note("open('/dev/vfio/26')", `fd ${group.fd}`);
  note('VFIO_GROUP_GET_STATUS', `flags ${group.statusFlags()} (VIABLE)`);
  group.setContainer(container);
  note('VFIO_GROUP_SET_CONTAINER', `0; flags now ${group.statusFlags()} (VIABLE|CONTAINER_SET)`);
  container.setIommu(uapi.VFIO_TYPE1_IOMMU);
  note('VFIO_SET_IOMMU(VFIO_TYPE1_IOMMU)', '0');
  const info = uapi.VfioIommuType1Info.encode({ argsz: uapi.VfioIommuType1Info.size });
  proc.ioctl(container.fd, uapi.VFIO_IOMMU_GET_INFO, info);
  const decoded = uapi.VfioIommuType1Info.decode(info);
  note('VFIO_IOMMU_GET_INFO (argsz 24)', `flags ${decoded.flags}, iova_pgsizes 0x${decoded.iova_pgsizes.toString(16)}, argsz → ${decoded.argsz}, cap_offset ${decoded.cap_offset}`);
  const ranges = container.iommuInfo().iovaRanges.map((r) => `[0x${r.start.toString(16)}, 0x${r.last.toString(16)}]`);
  note('VFIO_IOMMU_GET_INFO (full argsz)', `IOVA ranges ${ranges.join(' ')}`);
  const vaddr = proc.mmap(1 << 20);
  container.mapDma({ vaddr, iova: 0n, size: 0x100000n });
  note('VFIO_IOMMU_MAP_DMA 1 MiB at IOVA 0', '0');
  const device = group.device('0000:06:0d.0');
  note("VFIO_GROUP_GET_DEVICE_FD('0000:06:0d.0')", `fd ${device.fd}`);
  const dinfo = device.info();
  note('VFIO_DEVICE_GET_INFO', `flags ${dinfo.flags} (PCI|RESET), ${dinfo.num_regions} regions, ${dinfo.num_irqs} irqs`);
  for (let i = 0; i < dinfo.num_regions; i++) {
    try {
      const r = device.regionInfo(i);
      note(`VFIO_DEVICE_GET_REGION_INFO(${i})`, `size 0x${r.size.toString(16)}, offset 0x${r.offset.toString(16)}, flags ${r.flags}`);
    } catch (err) {
      note(`VFIO_DEVICE_GET_REGION_INFO(${i})`, err instanceof SysError ? err.code : String(err));
    }
  }
  for (let i = 0; i < dinfo.num_irqs; i++) {
    try {
      const r = device.irqInfo(i);
      note(`VFIO_DEVICE_GET_IRQ_INFO(${i})`, `count ${r.count}, flags ${r.flags}`);
    } catch (err) {
      note(`VFIO_DEVICE_GET_IRQ_INFO(${i})`, err instanceof SysError ? err.code : String(err));
    }
  }
  device.reset();
  note('VFIO_DEVICE_RESET', '0');
  const bytes = new TextEncoder().encode('hello from the device');
  kernel.device('0000:06:0d.0').dmaWrite(0x1000n, bytes);
  note('device DMA write at IOVA 0x1000', `process reads "${new TextDecoder().decode(proc.readMemory(vaddr + 0x1000n, bytes.length))}"`);
  proc.exit();
  kernel.shutdown();
  note('exit', 'every fd closed; no pin, locked_vm or domain left (checked)');
  return steps;
}
