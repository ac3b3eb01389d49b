/**
 * The example IOMMU type of examples/huge-only-backend.ts, registered through the public plug-in call and
 * negotiated by VFIO_SET_IOMMU like the built-in types.
 */
import { Kernel, VfioContainer, VfioGroup, registerIommuBackend, uapi } from '../../index';
import { HUGE_ONLY_BACKEND, VFIO_HUGE_ONLY_IOMMU } from '../../examples/huge-only-backend';

const MiB = 1n << 20n;

function world(register: boolean): { kernel: Kernel; proc: ReturnType<Kernel['spawn']>; container: VfioContainer } {
  const kernel = new Kernel({ devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
  if (register) registerIommuBackend(kernel, HUGE_ONLY_BACKEND);
  const proc = kernel.spawn({ memlockLimit: 1n << 32n });
  const container = VfioContainer.open(proc);
  VfioGroup.open(proc, 26).setContainer(container);
  return { kernel, proc, container };
}

test('without the backend the type is unknown: CHECK_EXTENSION 0, SET_IOMMU ENODEV', () => {
  const { container } = world(false);
  expect(container.checkExtension(VFIO_HUGE_ONLY_IOMMU)).toBe(0);
  expect(() => container.setIommu(VFIO_HUGE_ONLY_IOMMU)).toThrow(expect.objectContaining({ code: 'ENODEV' }));
});

test('registered, it is negotiated and maps 2 MiB hugepages as 2M leaves only', () => {
  const { kernel, proc, container } = world(true);
  expect(container.checkExtension(VFIO_HUGE_ONLY_IOMMU)).toBe(1);
  container.setIommu(VFIO_HUGE_ONLY_IOMMU);
  const ram = proc.mmap(8n * MiB, { pageSize: '2M' });
  container.mapDma({ vaddr: ram, iova: 0n, size: 8n * MiB });
  const c = kernel.iommus[0]!.counters();
  expect([c['leafWritten2M'], c['leafWritten4K']]).toEqual([4, 0]);
  kernel.device('0000:06:0d.0').dmaWrite(3n * MiB, Uint8Array.of(5));
  expect(proc.readMemory(ram + 3n * MiB, 1)).toEqual(Uint8Array.of(5));
  expect(container.unmapDma(0n, 8n * MiB)).toBe(8n * MiB);
  expect(kernel.phys.stats().pinnedPages).toBe(0);
});

test('it refuses what it cannot map with 2M leaves, leaving nothing pinned', () => {
  const { kernel, proc, container } = world(true);
  container.setIommu(VFIO_HUGE_ONLY_IOMMU);
  const scattered = proc.mmap(4n * MiB);
  const expectCode = (fn: () => void, code: string): void => expect(fn).toThrow(expect.objectContaining({ code }));
  expectCode(() => container.mapDma({ vaddr: scattered, iova: 0n, size: 4n * MiB }), 'EFAULT');
  const ram = proc.mmap(4n * MiB, { pageSize: '2M' });
  expectCode(() => container.mapDma({ vaddr: ram, iova: 0x1000n, size: 2n * MiB }), 'EINVAL');
  expectCode(() => proc.ioctl(container.fd, uapi.VFIO_IOMMU_DIRTY_PAGES, new Uint8Array(8)), 'ENOTTY');
  expect([kernel.phys.stats().pinnedPages, proc.mm.lockedVm]).toEqual([0, 0]);
});
