/**
 * The README's library examples, as written there, so they keep working.
 */
import { DmaFault, GuestMemory, Kernel, VfioContainer, VfioGroup, VirtioIommuDevice, VirtioIommuDriver, uapi } from '../../index';

test('the type1 example of the README maps, DMAs, unmaps and then faults', () => {
  const kernel = new Kernel({ machine: 'x86-vtd', devices: [{ bdf: '0000:06:0d.0', group: 26 }] });
  kernel.bindDriver('0000:06:0d.0', 'vfio-pci');
  const proc = kernel.spawn({ memlockLimit: 1n << 30n });
  const container = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, 26);
  group.setContainer(container);
  container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
  const ram = proc.mmap(2 << 20, { pageSize: '2M' });
  container.mapDma({ vaddr: ram, iova: 0n, size: 2n << 20n });
  kernel.device('0000:06:0d.0').dmaWrite(0x10n, new Uint8Array([1, 2, 3]));
  expect(proc.readMemory(ram + 0x10n, 3)).toEqual(new Uint8Array([1, 2, 3]));
  expect(container.unmapDma(0n, 2n << 20n)).toBe(2097152n);
  expect(() => kernel.device('0000:06:0d.0').dmaRead(0x10n, 3)).toThrow(DmaFault);
});

test('the virtio-iommu example of the README lands a device write in guest RAM', () => {
  const kernel = new Kernel({ devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
  const vmm = kernel.spawn({ memlockLimit: 1n << 34n });
  const ram = vmm.mmap(64 << 20);
  const viommu = new VirtioIommuDevice(vmm, {
    guestRam: { hva: ram, size: 64n << 20n },
    endpoints: [{ id: 0x668, kind: 'vfio', bdf: '0000:06:0d.0' }, { id: 0x10, kind: 'emulated' }],
  });
  const guest = new VirtioIommuDriver(viommu, new GuestMemory(vmm, ram, 64n << 20n), { base: 1 << 20, mode: 'lazy' });
  guest.init();
  const domain = guest.createDomain();
  guest.attach(domain, 0x668);
  const iova = guest.dmaMap(domain, 0x40_0000n, 1500, 'from-device');
  kernel.device('0000:06:0d.0').dmaWrite(iova, new Uint8Array(1500).fill(7));
  expect(vmm.readMemory(ram + 0x40_0000n, 4)).toEqual(new Uint8Array([7, 7, 7, 7]));
});
