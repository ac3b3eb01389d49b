/**
 * The virtio-iommu part of the main job: a guest driver (modelled on Linux's virtio-iommu driver and DMA
 * API) runs a NIC-like workload — per 1500-byte packet: dma_map, the device writes the packet, dma_unmap —
 * through the paravirtual IOMMU, with an emulated endpoint (the VMM translates its DMA itself) and with a
 * VFIO type1 endpoint (every MAP/UNMAP becomes a container ioctl), in strict and lazy invalidation modes.
 * A last DMA to an unmapped IOVA shows the fault arriving on the eventq.
 */
import {
  CostModel,
  GuestMemory,
  Kernel,
  VirtioIommuDevice,
  VirtioIommuDriver,
  type EndpointSpec,
  type InvalidationMode,
} from '../index';

/** One line of the virtio-iommu table. */
export interface ViommuRow {
  endpoint: string;
  mode: InvalidationMode;
  packets: number;
  requests: number;
  kicks: number;
  eventqFaults: number;
  simUsPerPacket: number;
  modelledUsPerPacket: number;
}

const RAM = 16 << 20;
const cost = new CostModel();

/** Runs `packets` packets through a guest driver in `mode` with one endpoint of `kind`. */
export function viommuNicRun(kind: 'emulated' | 'vfio', mode: InvalidationMode, packets: number): ViommuRow {
  const bdf = '0000:06:0d.0';
  const kernel = new Kernel({ machine: 'x86-vtd', devices: kind === 'vfio' ? [{ bdf, group: 26, driver: 'vfio-pci' }] : [] });
  const vmm = kernel.spawn({ memlockLimit: 1n << 34n });
  const hva = vmm.mmap(RAM, { populate: true });
  const id = kind === 'vfio' ? 0x668 : 0x10;
  const endpoint: EndpointSpec = kind === 'vfio' ? { id, kind: 'vfio', bdf } : { id, kind: 'emulated' };
  const device = new VirtioIommuDevice(vmm, { guestRam: { hva, size: BigInt(RAM) }, endpoints: [endpoint], options: { bootBypass: false } });
  const guest = new VirtioIommuDriver(device, new GuestMemory(vmm, hva, BigInt(RAM)), { base: 1 << 20, mode });
  guest.init();
  const domain = guest.createDomain();
  guest.attach(domain, id);
  const dma = kind === 'vfio' ? kernel.device(bdf) : device.endpointDma(id);
  const packet = new Uint8Array(1500).fill(0x5a);
  const before = { ...guest.stats };
  const t0 = process.hrtime.bigint();
  let lastIova = 0n;
  for (let i = 0; i < packets; i++) {
    const gpa = 0x40_0000n + BigInt((i & 255) * 2048);
    const iova = guest.dmaMap(domain, gpa, 1500, 'from-device');
    dma.dmaWrite(iova, packet);
    guest.dmaUnmap(domain, iova, 1500);
    lastIova = iova;
  }
  guest.sync();
  const simNs = Number(process.hrtime.bigint() - t0);
  const requests = guest.stats.requests - before.requests;
  const kicks = guest.stats.kicks - before.kicks;
  // After the flush the last packet's IOVA is unmapped: a DMA there faults and reaches the eventq.
  guest.flush(domain);
  try {
    dma.dmaWrite(lastIova, packet);
  } catch {
    // DmaFault: expected; the record is what we count.
  }
  device.notify(0);
  const eventqFaults = guest.pollFaults().length;
  // Each request is decoded by the VMM; for a VFIO endpoint each MAP/UNMAP is also one container ioctl.
  const modelled = cost.modelled({ kicks, requests, ioctls: kind === 'vfio' ? requests : 0 });
  vmm.exit();
  kernel.shutdown();
  return {
    endpoint: kind === 'vfio' ? 'VFIO type1 (x86-vtd)' : 'emulated',
    mode,
    packets,
    requests,
    kicks,
    eventqFaults,
    simUsPerPacket: simNs / packets / 1000,
    modelledUsPerPacket: modelled.totalNs / packets / 1000,
  };
}
