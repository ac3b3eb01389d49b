/**
 * The documented VFIO usage example (Documentation/driver-api/vfio.rst, reference/vfio-uapi.md §10),
 * step by step against the raw ioctls, with the exact values the kernel returns.
 */
import { Kernel, SysError, uapi } from '../../index';

function vfioRstKernel(): Kernel {
  const kernel = new Kernel({
    machine: 'x86-vtd',
    devices: [
      { bdf: '0000:06:0d.0', group: 26, vendor: 0x1102, device: 0x0002 },
      { bdf: '0000:06:0d.1', group: 26, vendor: 0x1102, device: 0x7002 },
      { bdf: '0000:00:1e.0', group: 26, kind: 'bridge' },
    ],
  });
  // Unbind from the host driver, bind to vfio-pci (new_id 1102 0002); the sibling function too.
  kernel.bindDriver('0000:06:0d.0', 'vfio-pci');
  kernel.bindDriver('0000:06:0d.1', 'vfio-pci');
  return kernel;
}

describe('vfio.rst usage example', () => {
  test('every step returns what the kernel returns', () => {
    const kernel = vfioRstKernel();
    const proc = kernel.spawn({ memlockLimit: 1n << 30n });

    // 1-3: open the container, check the API version and type1 support.
    const container = proc.open('/dev/vfio/vfio');
    expect(proc.ioctl(container, uapi.VFIO_GET_API_VERSION)).toBe(uapi.VFIO_API_VERSION);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_TYPE1_IOMMU)).toBe(1);

    // 4-5: open the group; it is viable and has no container.
    const group = proc.open('/dev/vfio/26');
    const status = uapi.VfioGroupStatus.encode({ argsz: 8 });
    expect(proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, status)).toBe(0);
    expect(uapi.VfioGroupStatus.read(status, 'flags')).toBe(uapi.VFIO_GROUP_FLAGS_VIABLE);

    // 6: add the group to the container.
    const fdBytes = new Uint8Array(4);
    uapi.writeU32(fdBytes, 0, container);
    expect(proc.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, fdBytes)).toBe(0);
    proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, status);
    expect(uapi.VfioGroupStatus.read(status, 'flags')).toBe(3);

    // 7: enable the IOMMU model.
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU)).toBe(0);

    // 8: GET_INFO with argsz = sizeof(info): caps do not fit, argsz grows, cap_offset stays 0.
    const info = uapi.VfioIommuType1Info.encode({ argsz: 24 });
    expect(proc.ioctl(container, uapi.VFIO_IOMMU_GET_INFO, info)).toBe(0);
    const decoded = uapi.VfioIommuType1Info.decode(info);
    expect(decoded.flags).toBe(uapi.VFIO_IOMMU_INFO_PGSIZES | uapi.VFIO_IOMMU_INFO_CAPS);
    expect(decoded.iova_pgsizes).toBe(0x40201000n);
    expect(decoded.cap_offset).toBe(0);
    // 24 + MIGRATION 32 + DMA_AVAIL 16 + IOVA_RANGE (16 + 2 ranges * 16) = 120.
    expect(decoded.argsz).toBe(120);

    // 9: map 1 MiB of anonymous memory at IOVA 0.
    const vaddr = proc.mmap(1 << 20);
    const map = uapi.VfioIommuType1DmaMap.encode({
      argsz: 32,
      flags: uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE,
      vaddr,
      iova: 0n,
      size: 0x100000n,
    });
    expect(proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, map)).toBe(0);

    // 10: get a device fd.
    const device = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, '0000:06:0d.0');
    expect(device).toBeGreaterThanOrEqual(0);

    // 11: device info.
    const devInfo = uapi.VfioDeviceInfo.encode({ argsz: uapi.VfioDeviceInfo.size });
    expect(proc.ioctl(device, uapi.VFIO_DEVICE_GET_INFO, devInfo)).toBe(0);
    expect(uapi.VfioDeviceInfo.decode(devInfo)).toEqual({
      argsz: 24,
      flags: uapi.VFIO_DEVICE_FLAGS_PCI | uapi.VFIO_DEVICE_FLAGS_RESET,
      num_regions: 9,
      num_irqs: 5,
      cap_offset: 0,
      pad: 0,
    });

    // 12: every region; VGA on a non-VGA device is EINVAL.
    const region = (index: number): ReturnType<typeof uapi.VfioRegionInfo.decode> => {
      const buf = uapi.VfioRegionInfo.encode({ argsz: 32, index });
      proc.ioctl(device, uapi.VFIO_DEVICE_GET_REGION_INFO, buf);
      return uapi.VfioRegionInfo.decode(buf);
    };
    const rw = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE;
    expect(region(0)).toEqual({ argsz: 32, flags: rw | uapi.VFIO_REGION_INFO_FLAG_MMAP, index: 0, cap_offset: 0, size: 0x10000n, offset: 0n });
    expect(region(1)).toEqual({ argsz: 32, flags: 0, index: 1, cap_offset: 0, size: 0n, offset: 1n << 40n });
    expect(region(6)).toEqual({ argsz: 32, flags: 0, index: 6, cap_offset: 0, size: 0n, offset: 6n << 40n });
    expect(region(7)).toEqual({ argsz: 32, flags: rw, index: 7, cap_offset: 0, size: 256n, offset: 0x70000000000n });
    expect(() => region(8)).toThrow(expect.objectContaining({ code: 'EINVAL' }));

    // 13: every IRQ index; ERR on a conventional PCI device is EINVAL.
    const irq = (index: number): ReturnType<typeof uapi.VfioIrqInfo.decode> => {
      const buf = uapi.VfioIrqInfo.encode({ argsz: 16, index });
      proc.ioctl(device, uapi.VFIO_DEVICE_GET_IRQ_INFO, buf);
      return uapi.VfioIrqInfo.decode(buf);
    };
    const ev = uapi.VFIO_IRQ_INFO_EVENTFD;
    expect(irq(0)).toEqual({ argsz: 16, flags: ev | uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED, index: 0, count: 1 });
    expect(irq(1)).toEqual({ argsz: 16, flags: ev | uapi.VFIO_IRQ_INFO_NORESIZE, index: 1, count: 1 });
    expect(irq(2)).toEqual({ argsz: 16, flags: ev | uapi.VFIO_IRQ_INFO_NORESIZE, index: 2, count: 0 });
    expect(() => irq(3)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(irq(4)).toEqual({ argsz: 16, flags: ev | uapi.VFIO_IRQ_INFO_NORESIZE, index: 4, count: 1 });

    // 14: reset.
    expect(proc.ioctl(device, uapi.VFIO_DEVICE_RESET)).toBe(0);
    expect(kernel.device('0000:06:0d.0').resetCount).toBe(1);

    // The mapping is live: the device's DMA lands in the process's memory.
    kernel.device('0000:06:0d.0').dmaWrite(0x1234n, new Uint8Array([1, 2, 3]));
    expect(proc.readMemory(vaddr + 0x1234n, 3)).toEqual(new Uint8Array([1, 2, 3]));
    kernel.checkInvariants();
  });

  test('errors carry the kernel errno in the Node SystemError shape', () => {
    const kernel = vfioRstKernel();
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    let caught: unknown;
    try {
      proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, new Uint8Array(32));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SysError);
    const err = caught as SysError;
    expect(err.code).toBe('EINVAL');
    expect(err.errno).toBe(-22);
    expect(err.syscall).toBe('ioctl');
    expect(err.path).toBe('/dev/vfio/vfio');
    expect(err.info.request).toBe('VFIO_IOMMU_MAP_DMA');
    expect(err.info.fd).toBe(container);
    expect(err.message).toBe("EINVAL: invalid argument, ioctl VFIO_IOMMU_MAP_DMA '/dev/vfio/vfio'");
  });
});
