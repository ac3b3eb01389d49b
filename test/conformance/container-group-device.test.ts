/**
 * The VFIO core against reference/vfio-uapi.md §7 (container, group and device files: opening,
 * viability, SET_CONTAINER, SET_IOMMU, UNSET_CONTAINER, GET_DEVICE_FD, lifetimes, type1 attach/detach),
 * §2 (CHECK_EXTENSION) and §9 (interrupt isolation, reserved regions), through the raw ioctls.
 *
 * Every test leaves its Kernel to the after-each harness, which shuts it down and fails on any leak.
 */
import {
  DmaFault,
  Kernel,
  MACHINE_PRESETS,
  SysError,
  registerIommuBackend,
  uapi,
  type IommuUnitSpec,
  type KernelOptions,
  type MachineSpec,
  type PciDeviceSpec,
  type Process,
  type VfioIommuBackend,
  type VfioIommuBackendInstance,
} from '../../index';
import { codeOf } from '../helpers/expect-sys-error';

const A = '0000:06:0d.0';
const A1 = '0000:06:0d.1';
const BRIDGE = '0000:00:1e.0';
const B = '0000:07:00.0';
const C = '0000:08:00.0';
const MiB = 1n << 20n;
const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
const VIABLE = uapi.VFIO_GROUP_FLAGS_VIABLE;
const VIABLE_SET = uapi.VFIO_GROUP_FLAGS_VIABLE | uapi.VFIO_GROUP_FLAGS_CONTAINER_SET;

const VTD_UNIT: IommuUnitSpec = MACHINE_PRESETS['x86-vtd'].iommus[0];
/** The x86 preset's two IOVA ranges: the 48-bit aperture minus the MSI window 0xFEE00000–0xFEEFFFFF. */
const X86_RANGES = [
  { start: 0n, last: 0xfedfffffn },
  { start: 0xfef00000n, last: 0xffffffffffffn },
];

/** An x86-vtd machine whose second IOMMU unit is `second` (a VT-d unit with changes). */
function twoUnitMachine(second: Partial<IommuUnitSpec>): MachineSpec {
  return { ...MACHINE_PRESETS['x86-vtd'], name: 'x86-two-units', iommus: [VTD_UNIT, { ...VTD_UNIT, name: 'intel-vtd-1', ...second } as IommuUnitSpec] };
}

/** SET_CONTAINER's argument: a pointer to the int fd. */
function fdArg(fd: number): Uint8Array {
  const bytes = new Uint8Array(4);
  uapi.writeU32(bytes, 0, fd >>> 0);
  return bytes;
}

function setContainer(proc: Process, group: number, container: number): number {
  return proc.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, fdArg(container));
}

function statusFlags(proc: Process, group: number): number {
  const buf = uapi.VfioGroupStatus.encode({ argsz: 8 });
  proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, buf);
  return uapi.VfioGroupStatus.read(buf, 'flags');
}

function mapDma(proc: Process, container: number, vaddr: bigint, iova: bigint, size: bigint): number {
  return proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: RW, vaddr, iova, size }));
}

/** GET_INFO asked twice, as userspace does: iova_pgsizes and the IOVA_RANGE capability's ranges. */
function iommuInfo(proc: Process, container: number): { pgsizes: bigint; ranges: { start: bigint; last: bigint }[] } {
  const probe = uapi.VfioIommuType1Info.encode({ argsz: 24 });
  proc.ioctl(container, uapi.VFIO_IOMMU_GET_INFO, probe);
  const buf = new Uint8Array(uapi.VfioIommuType1Info.read(probe, 'argsz'));
  uapi.VfioIommuType1Info.encode({ argsz: buf.length }, buf);
  proc.ioctl(container, uapi.VFIO_IOMMU_GET_INFO, buf);
  const info = uapi.VfioIommuType1Info.decode(buf);
  const ranges: { start: bigint; last: bigint }[] = [];
  for (let at = info.cap_offset; at !== 0; at = uapi.VfioInfoCapHeader.read(buf, 'next', at)) {
    if (uapi.VfioInfoCapHeader.read(buf, 'id', at) !== uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) continue;
    const count = uapi.VfioIommuType1InfoCapIovaRange.read(buf, 'nr_iovas', at);
    for (let i = 0; i < count; i++) {
      const range = uapi.VfioIovaRange.decode(buf, at + 16 + 16 * i);
      ranges.push({ start: range.start, last: range.end });
    }
  }
  return { pgsizes: info.iova_pgsizes, ranges };
}

/** Whether `bdf` can DMA-read what the process wrote at `vaddr` through IOVA `iova`. */
function dmaReadsBack(kernel: Kernel, proc: Process, bdf: string, vaddr: bigint, iova: bigint): boolean {
  const pattern = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
  proc.writeMemory(vaddr, pattern);
  try {
    return kernel.device(bdf).dmaRead(iova, 4).every((byte, i) => byte === pattern[i]);
  } catch (err) {
    if (err instanceof DmaFault) return false;
    throw err;
  }
}

/** Whether a device DMA write at `iova` goes through (DmaFault means it does not). */
function dmaWriteWorks(kernel: Kernel, bdf: string, iova: bigint): boolean {
  try {
    kernel.device(bdf).dmaWrite(iova, new Uint8Array([1, 2, 3, 4]));
    return true;
  } catch (err) {
    if (err instanceof DmaFault) return false;
    throw err;
  }
}

interface Setup {
  kernel: Kernel;
  proc: Process;
  container: number;
  group: number;
  device: number;
  vaddr: bigint;
}

/**
 * A kernel with `devices` (group 26 holds A, bound to vfio-pci), a process with container + group 26 +
 * type1v2 + 1 MiB mapped at IOVA 0 + A's device fd.
 */
function fullSetup(options: KernelOptions = {}): Setup {
  const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }], ...options });
  const proc = kernel.spawn({ memlockLimit: 1n << 30n });
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open('/dev/vfio/26');
  setContainer(proc, group, container);
  proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
  const vaddr = proc.mmap(MiB);
  mapDma(proc, container, vaddr, 0n, MiB);
  const device = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
  return { kernel, proc, container, group, device, vaddr };
}

// ---------------------------------------------------------------------------------------------------
// §7.1 Opening the files
// ---------------------------------------------------------------------------------------------------

describe('opening /dev/vfio files (§7.1)', () => {
  test('/dev/vfio/vfio can be opened any number of times, each open a new empty container', () => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const fds = [0, 1, 2, 3, 4].map(() => proc.open('/dev/vfio/vfio'));
    expect(new Set(fds).size).toBe(5);
    // Each one is a fresh container: none has an IOMMU, so backend ioctls are EINVAL.
    for (const fd of fds) {
      expect(proc.ioctl(fd, uapi.VFIO_GET_API_VERSION)).toBe(0);
      expect(codeOf(() => proc.ioctl(fd, uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })))).toBe('EINVAL');
    }
    // A group joins one of them only.
    const group = proc.open('/dev/vfio/26');
    setContainer(proc, group, fds[2]!);
    expect(codeOf(() => proc.ioctl(fds[1]!, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(proc.ioctl(fds[2]!, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  });

  test('/dev/vfio/N does not exist while no device of group N is bound to vfio-pci', () => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26 }, { bdf: A1, group: 26, driver: 'none' }] });
    const proc = kernel.spawn();
    expect(kernel.device(A).driverName).toBe('host');
    expect(codeOf(() => proc.open('/dev/vfio/26'))).toBe('ENOENT');
    kernel.bindDriver(A, 'pci-stub');
    expect(codeOf(() => proc.open('/dev/vfio/26'))).toBe('ENOENT');
    expect(codeOf(() => proc.open('/dev/vfio/27'))).toBe('ENOENT');
  });

  test('/dev/vfio/N appears with the first vfio-pci device and goes after the last one is unbound', () => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26 }, { bdf: A1, group: 26 }] });
    const proc = kernel.spawn();
    kernel.bindDriver(A, 'vfio-pci');
    expect(kernel.devfs.has('/dev/vfio/26')).toBe(true);
    kernel.bindDriver(A1, 'vfio-pci');
    kernel.bindDriver(A, 'none');
    // A1 is still bound: the node stays and opens.
    const group = proc.open('/dev/vfio/26');
    proc.close(group);
    kernel.bindDriver(A1, 'host');
    expect(kernel.devfs.has('/dev/vfio/26')).toBe(false);
    expect(codeOf(() => proc.open('/dev/vfio/26'))).toBe('ENOENT');
    // Binding again brings it back.
    kernel.bindDriver(A1, 'vfio-pci');
    expect(statusFlags(proc, proc.open('/dev/vfio/26'))).toBe(VIABLE);
  });

  test('unbinding the last VFIO device of an open group removes the node at once and leaves the fd without its IOMMU group', () => {
    // vfio_device_remove_group: the last driver going deletes the cdev, detaches the container and
    // clears group->iommu_group, whether or not the group file is open.
    const s = fullSetup();
    s.proc.close(s.device);
    s.kernel.bindDriver(A, 'none');
    expect(s.kernel.devfs.has('/dev/vfio/26')).toBe(false);
    expect(codeOf(() => s.proc.open('/dev/vfio/26'))).toBe('ENOENT');
    // The container lost its only group: mappings, pins and the domain are gone.
    expect(s.kernel.phys.stats().pinnedPages).toBe(0);
    expect(s.proc.mm.lockedVm).toBe(0);
    expect(s.kernel.iommus[0]!.domainCount()).toBe(0);
    expect(s.kernel.group(26).userOwner).toBeUndefined();
    expect(() => s.kernel.device(A).dmaRead(0n, 4)).toThrow(DmaFault);
    expect(codeOf(() => s.proc.ioctl(s.container, uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })))).toBe('EINVAL');
    // The stale group fd: GET_STATUS and SET_CONTAINER are ENODEV, UNSET_CONTAINER is EINVAL.
    expect(codeOf(() => statusFlags(s.proc, s.group))).toBe('ENODEV');
    expect(codeOf(() => s.proc.ioctl(s.group, uapi.VFIO_GROUP_GET_STATUS, uapi.VfioGroupStatus.encode({ argsz: 4 })))).toBe('EINVAL');
    expect(codeOf(() => setContainer(s.proc, s.group, s.container))).toBe('ENODEV');
    expect(codeOf(() => s.proc.ioctl(s.group, uapi.VFIO_GROUP_UNSET_CONTAINER))).toBe('EINVAL');
    expect(codeOf(() => s.proc.ioctl(s.group, uapi.VFIO_GROUP_GET_DEVICE_FD, A))).toBe('ENODEV');
    // A host driver may take the device now; binding vfio-pci again makes a new group node, which
    // opens even while the stale fd is still open.
    s.kernel.bindDriver(A, 'host');
    s.kernel.bindDriver(A, 'vfio-pci');
    const fresh = s.proc.open('/dev/vfio/26');
    expect(statusFlags(s.proc, fresh)).toBe(VIABLE);
    expect(setContainer(s.proc, fresh, s.container)).toBe(0);
    s.proc.close(s.group);
    expect(statusFlags(s.proc, fresh)).toBe(VIABLE_SET);
  });

  test('a group can be open once at a time: a second open is EBUSY, an open after close works', () => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const other = kernel.spawn();
    const group = proc.open('/dev/vfio/26');
    expect(codeOf(() => proc.open('/dev/vfio/26'))).toBe('EBUSY');
    expect(codeOf(() => other.open('/dev/vfio/26'))).toBe('EBUSY');
    proc.close(group);
    const again = other.open('/dev/vfio/26');
    expect(statusFlags(other, again)).toBe(VIABLE);
  });
});

// ---------------------------------------------------------------------------------------------------
// §7.2 Viability (VFIO_GROUP_GET_STATUS)
// ---------------------------------------------------------------------------------------------------

describe('group viability and GET_STATUS (§7.2)', () => {
  /** Group 26: A on vfio-pci, A1 with `sibling` driver, and a bridge without a driver. */
  function group26(sibling: string): { kernel: Kernel; proc: Process; group: number; container: number } {
    const kernel = new Kernel({
      devices: [
        { bdf: A, group: 26, driver: 'vfio-pci' },
        { bdf: A1, group: 26, driver: sibling },
        { bdf: BRIDGE, group: 26, kind: 'bridge' },
      ],
    });
    const proc = kernel.spawn();
    return { kernel, proc, group: proc.open('/dev/vfio/26'), container: proc.open('/dev/vfio/vfio') };
  }

  test('a sibling bound to a host driver makes the group not viable (flags 0) and SET_CONTAINER is EPERM', () => {
    const { kernel, proc, group, container } = group26('host');
    expect(statusFlags(proc, group)).toBe(0);
    expect(codeOf(() => setContainer(proc, group, container))).toBe('EPERM');
    expect(statusFlags(proc, group)).toBe(0);
    expect(kernel.group(26).userOwner).toBeUndefined();
    // Unbinding the host driver makes it viable; the same container then accepts the group.
    kernel.bindDriver(A1, 'none');
    expect(statusFlags(proc, group)).toBe(VIABLE);
    expect(setContainer(proc, group, container)).toBe(0);
    expect(statusFlags(proc, group)).toBe(VIABLE_SET);
  });

  test.each([
    ['an unbound sibling', 'none'],
    ['a sibling on pci-stub', 'pci-stub'],
    ['a sibling on vfio-pci', 'vfio-pci'],
  ])('%s and a bridge without a driver keep the group viable', (_name, sibling) => {
    const { kernel, proc, group, container } = group26(sibling);
    expect(kernel.device(BRIDGE).driverName).toBe('none');
    expect(statusFlags(proc, group)).toBe(VIABLE);
    expect(setContainer(proc, group, container)).toBe(0);
    expect(statusFlags(proc, group)).toBe(VIABLE_SET);
  });

  test('viability follows driver binding while the group is open but not in a container', () => {
    const { kernel, proc, group } = group26('none');
    expect(statusFlags(proc, group)).toBe(VIABLE);
    kernel.bindDriver(BRIDGE, 'host');
    expect(statusFlags(proc, group)).toBe(0);
    kernel.bindDriver(BRIDGE, 'none');
    expect(statusFlags(proc, group)).toBe(VIABLE);
  });

  test.each([
    ['a sibling on vfio-pci', A1],
    ['an unbound bridge', BRIDGE],
  ])('binding a host driver to %s of a group owned by a container is EBUSY and changes nothing', (_name, bdf) => {
    const { kernel, proc, group, container } = group26('vfio-pci');
    setContainer(proc, group, container);
    const before = kernel.device(bdf).driverName;
    expect(codeOf(() => kernel.bindDriver(bdf, 'host'))).toBe('EBUSY');
    expect(kernel.device(bdf).driverName).toBe(before);
    expect(statusFlags(proc, group)).toBe(VIABLE_SET);
    // A driver that manages DMA itself may still bind.
    kernel.bindDriver(BRIDGE, 'pci-stub');
    expect(kernel.device(BRIDGE).driverName).toBe('pci-stub');
  });

  test('a host driver may bind again once the group left its container', () => {
    const { kernel, proc, group, container } = group26('none');
    setContainer(proc, group, container);
    expect(codeOf(() => kernel.bindDriver(A1, 'host'))).toBe('EBUSY');
    proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER);
    kernel.bindDriver(A1, 'host');
    expect(statusFlags(proc, group)).toBe(0);
  });

  test('GET_STATUS: argsz < 8 is EINVAL, a buffer shorter than 8 bytes is EFAULT, extra argsz is fine', () => {
    const { proc, group } = group26('none');
    for (const argsz of [0, 4, 7]) {
      const buf = uapi.VfioGroupStatus.encode({ argsz, flags: 0xff });
      expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, buf))).toBe('EINVAL');
      expect(uapi.VfioGroupStatus.read(buf, 'flags')).toBe(0xff);
    }
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, new Uint8Array([8, 0, 0, 0])))).toBe('EFAULT');
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, 8))).toBe('EFAULT');
    // argsz larger than the struct: 8 bytes written, the rest untouched.
    const big = new Uint8Array(16).fill(0xaa);
    uapi.writeU32(big, 0, 16);
    expect(proc.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, big)).toBe(0);
    expect(Array.from(big)).toEqual([16, 0, 0, 0, 1, 0, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
  });

  test('GET_STATUS flags are 1 before SET_CONTAINER, 3 after it, 1 again after UNSET_CONTAINER', () => {
    const { proc, group, container } = group26('none');
    expect(statusFlags(proc, group)).toBe(1);
    setContainer(proc, group, container);
    expect(statusFlags(proc, group)).toBe(3);
    proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(statusFlags(proc, group)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// §7.3 SET_CONTAINER and §7.7 GET_DEVICE_FD
// ---------------------------------------------------------------------------------------------------

describe('SET_CONTAINER (§7.3)', () => {
  function twoGroups(): { kernel: Kernel; proc: Process; g26: number; g27: number; container: number } {
    const kernel = new Kernel({
      devices: [
        { bdf: A, group: 26, driver: 'vfio-pci' },
        { bdf: B, group: 27, driver: 'vfio-pci' },
      ],
    });
    const proc = kernel.spawn();
    return { kernel, proc, g26: proc.open('/dev/vfio/26'), g27: proc.open('/dev/vfio/27'), container: proc.open('/dev/vfio/vfio') };
  }

  test('an fd that is not open is EBADF', () => {
    const { proc, g26 } = twoGroups();
    expect(codeOf(() => setContainer(proc, g26, 99))).toBe('EBADF');
    expect(codeOf(() => setContainer(proc, g26, -1))).toBe('EBADF');
    expect(statusFlags(proc, g26)).toBe(VIABLE);
  });

  test('a pointer to fewer than 4 bytes is EFAULT', () => {
    const { proc, g26, container } = twoGroups();
    expect(codeOf(() => proc.ioctl(g26, uapi.VFIO_GROUP_SET_CONTAINER, new Uint8Array([container, 0])))).toBe('EFAULT');
    expect(codeOf(() => proc.ioctl(g26, uapi.VFIO_GROUP_SET_CONTAINER, container))).toBe('EFAULT');
  });

  test('an open fd that is not a container (a group fd, its own fd, a device fd) is EBADFD', () => {
    const s = fullSetup({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, driver: 'vfio-pci' }] });
    const g27 = s.proc.open('/dev/vfio/27');
    expect(codeOf(() => setContainer(s.proc, g27, s.group))).toBe('EBADFD');
    expect(codeOf(() => setContainer(s.proc, g27, g27))).toBe('EBADFD');
    expect(codeOf(() => setContainer(s.proc, g27, s.device))).toBe('EBADFD');
    expect(statusFlags(s.proc, g27)).toBe(VIABLE);
  });

  test('a group that already has a container gets EINVAL, for the same container or another one', () => {
    const { proc, g26, container } = twoGroups();
    const other = proc.open('/dev/vfio/vfio');
    setContainer(proc, g26, container);
    expect(codeOf(() => setContainer(proc, g26, container))).toBe('EINVAL');
    expect(codeOf(() => setContainer(proc, g26, other))).toBe('EINVAL');
    // The check comes before the fd-type check, and after the EBADF one.
    expect(codeOf(() => setContainer(proc, g26, g26))).toBe('EINVAL');
    expect(codeOf(() => setContainer(proc, g26, 99))).toBe('EBADF');
    // The other container never got the group: it still has none.
    expect(codeOf(() => proc.ioctl(other, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  });

  test('a second group may join before and after SET_IOMMU', () => {
    const kernel = new Kernel({
      devices: [
        { bdf: A, group: 26, driver: 'vfio-pci' },
        { bdf: B, group: 27, driver: 'vfio-pci' },
        { bdf: C, group: 28, driver: 'vfio-pci' },
      ],
    });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    const groups = [26, 27, 28].map((id) => proc.open(`/dev/vfio/${id}`));
    expect(setContainer(proc, groups[0]!, container)).toBe(0);
    expect(setContainer(proc, groups[1]!, container)).toBe(0);
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(setContainer(proc, groups[2]!, container)).toBe(0);
    expect(groups.map((g) => statusFlags(proc, g))).toEqual([3, 3, 3]);
    expect(kernel.group(26).domain).toBeDefined();
    expect(kernel.group(28).domain).toBe(kernel.group(26).domain);
  });
});

describe('GET_DEVICE_FD (§7.7)', () => {
  function group26(): { kernel: Kernel; proc: Process; group: number; container: number } {
    const kernel = new Kernel({
      devices: [
        { bdf: A, group: 26, driver: 'vfio-pci' },
        { bdf: A1, group: 26, driver: 'none' },
        { bdf: BRIDGE, group: 26, kind: 'bridge' },
        { bdf: B, group: 27, driver: 'vfio-pci' },
      ],
    });
    const proc = kernel.spawn();
    return { kernel, proc, group: proc.open('/dev/vfio/26'), container: proc.open('/dev/vfio/vfio') };
  }

  test('before SET_CONTAINER it is EINVAL, before SET_IOMMU it is EINVAL, after both it returns an fd', () => {
    const { proc, group, container } = group26();
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A))).toBe('EINVAL');
    setContainer(proc, group, container);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A))).toBe('EINVAL');
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU);
    const device = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
    expect(device).toBe(2);
  });

  test.each([
    ['an unknown name', '0000:99:00.0'],
    ['a device of the IOMMU group that is not bound to VFIO', A1],
    ['a bridge of the IOMMU group without a driver', BRIDGE],
    ['a VFIO device of another group', B],
    ['a name with junk after the address', `${A}x`],
    ['an empty name', ''],
  ])('%s is ENODEV, even before SET_CONTAINER', (_name, name) => {
    const { proc, group, container } = group26();
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, name))).toBe('ENODEV');
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, name))).toBe('ENODEV');
  });

  test('"BDF vf_token=UUID" on a device that is neither PF nor VF is EINVAL (vfio_pci_validate_vf_token)', () => {
    const { proc, group, container } = group26();
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, `${A} vf_token=2ab74924-c335-45f4-9b16-8569e5b08258`))).toBe('EINVAL');
    expect(proc.openFds()).toEqual([0, 1]);
  });

  test('the name may be NUL-terminated bytes; no NUL inside the buffer is EFAULT; a name of a page or more is EINVAL', () => {
    const { proc, group, container } = group26();
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    const name = new TextEncoder().encode(`${A}\0garbage`);
    expect(proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, name)).toBe(2);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(A)))).toBe('EFAULT');
    // strndup_user(arg, PAGE_SIZE): 4095 characters and the NUL fit, 4096 characters do not.
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, 'a'.repeat(4095)))).toBe('ENODEV');
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, 'a'.repeat(4096)))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, new Uint8Array(5000).fill(0x61)))).toBe('EINVAL');
  });

  test('the same device can be opened twice: two fds, each works, each holds the group', () => {
    const { kernel, proc, group, container } = group26();
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    const first = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
    const second = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
    expect(second).not.toBe(first);
    for (const fd of [first, second]) {
      const info = uapi.VfioDeviceInfo.encode({ argsz: 24 });
      expect(proc.ioctl(fd, uapi.VFIO_DEVICE_GET_INFO, info)).toBe(0);
      expect(uapi.VfioDeviceInfo.read(info, 'num_regions')).toBe(9);
    }
    proc.close(first);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER))).toBe('EBUSY');
    proc.close(second);
    expect(proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(kernel.group(26).domain).toBeUndefined();
  });

  test('a sibling bound to vfio-pci after the group joined a container can be opened', () => {
    const { kernel, proc, group, container } = group26();
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A1))).toBe('ENODEV');
    kernel.bindDriver(A1, 'vfio-pci');
    expect(proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A1)).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------------
// §2 CHECK_EXTENSION, §7.4 SET_IOMMU
// ---------------------------------------------------------------------------------------------------

describe('CHECK_EXTENSION (§2)', () => {
  const ALL_IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x100, 1000];
  /** What type1 answers with iommu == NULL: TYPE1, TYPE1v2, UNMAP_ALL. */
  const UNBOUND: Record<number, number> = { 1: 1, 3: 1, 9: 1 };
  /** Bound to type1 with IOMMU domains that all enforce coherency: also UPDATE_VADDR and DMA_CC. */
  const BOUND: Record<number, number> = { 1: 1, 3: 1, 4: 1, 9: 1, 10: 1 };

  test('before SET_IOMMU every registered backend is asked without a container: TYPE1, TYPE1v2, UNMAP_ALL', () => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    const answers = (): number[] => ALL_IDS.map((id) => proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, id));
    expect(answers()).toEqual(ALL_IDS.map((id) => UNBOUND[id] ?? 0));
    // A group in the container changes nothing until SET_IOMMU.
    setContainer(proc, proc.open('/dev/vfio/26'), container);
    expect(answers()).toEqual(ALL_IDS.map((id) => UNBOUND[id] ?? 0));
    expect(proc.ioctl(container, uapi.VFIO_GET_API_VERSION)).toBe(uapi.VFIO_API_VERSION);
  });

  test.each([
    ['TYPE1', uapi.VFIO_TYPE1_IOMMU],
    ['TYPE1v2', uapi.VFIO_TYPE1v2_IOMMU],
  ])('after SET_IOMMU(%s) the bound type1 answers, with both types, UPDATE_VADDR and DMA_CC', (_name, type) => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    setContainer(proc, proc.open('/dev/vfio/26'), container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, type);
    expect(ALL_IDS.map((id) => proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, id))).toEqual(ALL_IDS.map((id) => BOUND[id] ?? 0));
    expect(proc.ioctl(container, uapi.VFIO_GET_API_VERSION)).toBe(0);
  });

  test('DMA_CC_IOMMU is 0 while any domain does not enforce cache coherency, and 1 again once it leaves', () => {
    const kernel = new Kernel({
      machine: twoUnitMachine({ enforceCacheCoherency: false }),
      devices: [
        { bdf: A, group: 26, driver: 'vfio-pci' },
        { bdf: B, group: 27, iommu: 1, driver: 'vfio-pci' },
      ],
    });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    setContainer(proc, proc.open('/dev/vfio/26'), container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_DMA_CC_IOMMU)).toBe(1);
    const g27 = proc.open('/dev/vfio/27');
    setContainer(proc, g27, container);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_DMA_CC_IOMMU)).toBe(0);
    proc.ioctl(g27, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_DMA_CC_IOMMU)).toBe(1);
  });
});

describe('SET_IOMMU (§7.4)', () => {
  function withGroup(): { kernel: Kernel; proc: Process; group: number; container: number } {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn({ memlockLimit: 1n << 30n });
    return { kernel, proc, group: proc.open('/dev/vfio/26'), container: proc.open('/dev/vfio/vfio') };
  }

  test('a container without a group is EINVAL, for any type', () => {
    const { proc, container } = withGroup();
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, 12345))).toBe('EINVAL');
  });

  test.each([
    ['SPAPR_TCE', uapi.VFIO_SPAPR_TCE_IOMMU],
    ['DMA_CC (not a type)', uapi.VFIO_DMA_CC_IOMMU],
    ['the reserved NESTING id, which CHECK_EXTENSION denies', uapi.__VFIO_RESERVED_TYPE1_NESTING_IOMMU],
    ['NOIOMMU (noiommu mode off)', uapi.VFIO_NOIOMMU_IOMMU],
    ['an unknown id', 77],
    ['0', 0],
  ])('%s is ENODEV, and the container can still be set afterwards', (_name, type) => {
    const { proc, group, container } = withGroup();
    setContainer(proc, group, container);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, type))).toBe('ENODEV');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })))).toBe('EINVAL');
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  });

  test('a second SET_IOMMU is EINVAL, whatever the type', () => {
    const { proc, group, container } = withGroup();
    setContainer(proc, group, container);
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU)).toBe(0);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, 77))).toBe('EINVAL');
  });

  test('before SET_IOMMU backend ioctls are EINVAL; after it an ioctl type1 does not know is ENOTTY', () => {
    const { proc, group, container } = withGroup();
    setContainer(proc, group, container);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_IOMMU_ENABLE))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_GROUP_GET_STATUS, new Uint8Array(8)))).toBe('EINVAL');
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_IOMMU_ENABLE))).toBe('ENOTTY');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_GROUP_GET_STATUS, new Uint8Array(8)))).toBe('ENOTTY');
  });

  test('after the last group leaves, the container has no IOMMU again: GET_INFO is EINVAL, SET_IOMMU works after a rejoin', () => {
    const { kernel, proc, group, container } = withGroup();
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU);
    expect(iommuInfo(proc, container).pgsizes).toBe(0x40201000n);
    proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, new Uint8Array(32)))).toBe('EINVAL');
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_UPDATE_VADDR)).toBe(0);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EINVAL');
    expect(kernel.iommus[0]!.domainCount()).toBe(0);
    // Rejoin: SET_IOMMU is needed (and allowed) again, with another type this time.
    setContainer(proc, group, container);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A))).toBe('EINVAL');
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(iommuInfo(proc, container)).toEqual({ pgsizes: 0x40201000n, ranges: X86_RANGES });
    expect(proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A)).toBe(2);
  });

  test('a failing attach during SET_IOMMU unwinds the groups already attached and leaves no domain', () => {
    const kernel = new Kernel({
      machine: twoUnitMachine({ isolatedMsi: false }),
      devices: [
        { bdf: A, group: 26, driver: 'vfio-pci' },
        { bdf: B, group: 27, iommu: 1, driver: 'vfio-pci' },
      ],
    });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    const g26 = proc.open('/dev/vfio/26');
    const g27 = proc.open('/dev/vfio/27');
    setContainer(proc, g26, container);
    setContainer(proc, g27, container);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EPERM');
    expect(kernel.iommus.map((hw) => hw.domainCount())).toEqual([0, 0]);
    expect(kernel.group(26).domain).toBeUndefined();
    expect([statusFlags(proc, g26), statusFlags(proc, g27)]).toEqual([3, 3]);
    // Without the offending group the same container negotiates.
    proc.ioctl(g27, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(kernel.iommus.map((hw) => hw.domainCount())).toEqual([1, 0]);
  });
});

describe('SET_IOMMU negotiates over the registered backends in order (§7.4 step 2-3)', () => {
  /** A backend that supports `types`, records what VFIO asks of it, and fails where told to. */
  function fakeBackend(types: number[], fail: { open?: boolean; attachGroup?: number; code?: 'EBUSY' | 'EPERM' } = {}): { backend: VfioIommuBackend; calls: string[] } {
    const calls: string[] = [];
    const code = fail.code ?? 'EBUSY';
    const backend: VfioIommuBackend = {
      name: 'fake-iommu',
      checkExtension: (ext) => (types.includes(ext) ? 1 : 0),
      open(type): VfioIommuBackendInstance {
        calls.push(`open ${type}`);
        if (fail.open === true) throw new SysError(code);
        return {
          checkExtension: (ext) => (ext === 0x5eed ? 7 : 0),
          attachGroup(group) {
            calls.push(`attach ${group.id}`);
            if (group.id === fail.attachGroup) throw new SysError(code);
          },
          detachGroup: (group) => void calls.push(`detach ${group.id}`),
          ioctl(request) {
            if (request === 0x3b7f) return 42;
            throw new SysError('ENOTTY');
          },
          release: () => void calls.push('release'),
          pinnedPages: () => 0,
          lockedVm: () => 0,
        };
      },
    };
    return { backend, calls };
  }

  function twoGroupContainer(): { kernel: Kernel; proc: Process; container: number; groups: number[] } {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    const groups = [26, 27].map((id) => proc.open(`/dev/vfio/${id}`));
    for (const g of groups) setContainer(proc, g, container);
    return { kernel, proc, container, groups };
  }

  test('a backend registered after type1 is not asked for a type type1 supports', () => {
    const { kernel, proc, container } = twoGroupContainer();
    const fake = fakeBackend([uapi.VFIO_TYPE1v2_IOMMU]);
    registerIommuBackend(kernel, fake.backend);
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(fake.calls).toEqual([]);
    expect(kernel.iommus[0]!.domainCount()).toBe(1);
  });

  test('a backend registered first is bound when it attaches every group; it then answers CHECK_EXTENSION and ioctls', () => {
    const { kernel, proc, container } = twoGroupContainer();
    const fake = fakeBackend([uapi.VFIO_TYPE1v2_IOMMU]);
    registerIommuBackend(kernel, fake.backend, { first: true });
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(fake.calls).toEqual(['open 3', 'attach 26', 'attach 27']);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, 0x5eed)).toBe(7);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(proc.ioctl(container, 0x3b7f)).toBe(42);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_IOMMU_MAP_DMA, new Uint8Array(32)))).toBe('ENOTTY');
    expect(kernel.iommus[0]!.domainCount()).toBe(0);
    proc.exit();
    expect(fake.calls.slice(3)).toEqual(['detach 26', 'detach 27', 'release']);
  });

  test('when the first backend fails to attach a group, the groups it attached are detached, it is released, and the next backend is tried', () => {
    const { kernel, proc, container } = twoGroupContainer();
    const fake = fakeBackend([uapi.VFIO_TYPE1v2_IOMMU], { attachGroup: 27 });
    registerIommuBackend(kernel, fake.backend, { first: true });
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(fake.calls).toEqual(['open 3', 'attach 26', 'attach 27', 'detach 26', 'release']);
    expect(kernel.iommus[0]!.domainCount()).toBe(1);
    expect(proc.ioctl(container, uapi.VFIO_CHECK_EXTENSION, uapi.VFIO_UPDATE_VADDR)).toBe(1);
  });

  test.each([
    ['its open fails', { open: true, code: 'EBUSY' as const }, 'EBUSY', ['open 512']],
    ['it cannot attach a group', { attachGroup: 26, code: 'EPERM' as const }, 'EPERM', ['open 512', 'attach 26', 'release']],
  ])('a type only one backend supports fails with that backend\'s error when %s', (_name, fail, code, calls) => {
    const { kernel, proc, container } = twoGroupContainer();
    const fake = fakeBackend([0x200], fail);
    registerIommuBackend(kernel, fake.backend);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, 0x200))).toBe(code);
    expect(fake.calls).toEqual(calls);
    // Still no IOMMU: type1 can be chosen now.
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// §7.6 UNSET_CONTAINER
// ---------------------------------------------------------------------------------------------------

describe('UNSET_CONTAINER (§7.6)', () => {
  test('without a container it is EINVAL', () => {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const group = proc.open('/dev/vfio/26');
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER))).toBe('EINVAL');
    setContainer(proc, group, proc.open('/dev/vfio/vfio'));
    expect(proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_UNSET_CONTAINER))).toBe('EINVAL');
  });

  test('with a device fd open it is EBUSY and changes nothing; after closing the fd it succeeds', () => {
    const s = fullSetup();
    expect(codeOf(() => s.proc.ioctl(s.group, uapi.VFIO_GROUP_UNSET_CONTAINER))).toBe('EBUSY');
    expect(statusFlags(s.proc, s.group)).toBe(VIABLE_SET);
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    s.proc.close(s.device);
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    expect(s.proc.ioctl(s.group, uapi.VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(statusFlags(s.proc, s.group)).toBe(VIABLE);
  });

  test('unsetting the last group unmaps and unpins everything: no pins, no locked_vm, device DMA faults', () => {
    const s = fullSetup();
    expect(s.kernel.phys.stats().pinnedPages).toBe(256);
    expect(s.proc.mm.lockedVm).toBe(256);
    s.proc.close(s.device);
    s.proc.ioctl(s.group, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(s.kernel.phys.stats().pinnedPages).toBe(0);
    expect(s.proc.mm.lockedVm).toBe(0);
    expect(s.kernel.iommus[0]!.domainCount()).toBe(0);
    expect(() => s.kernel.device(A).dmaRead(0n, 4)).toThrow(DmaFault);
    expect(s.kernel.dmaFaults().at(-1)).toEqual({ bdf: A, group: 26, iova: 0n, access: 'read', reason: 'no-domain' });
    s.kernel.checkInvariants();
    // Rejoining gives an empty container: the old mapping is gone for good.
    setContainer(s.proc, s.group, s.container);
    s.proc.ioctl(s.container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(() => s.kernel.device(A).dmaRead(0n, 4)).toThrow(DmaFault);
    expect(s.kernel.dmaFaults().at(-1)?.reason).toBe('unmapped');
    expect(mapDma(s.proc, s.container, s.vaddr, 0n, MiB)).toBe(0);
  });

  test('unsetting one of two groups sharing a domain keeps the mappings for the other', () => {
    const s = fullSetup({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, driver: 'vfio-pci' }] });
    const g27 = s.proc.open('/dev/vfio/27');
    setContainer(s.proc, g27, s.container);
    expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr, 0n)).toBe(true);
    s.proc.ioctl(g27, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr, 0n)).toBe(false);
    expect(s.kernel.dmaFaults().at(-1)?.reason).toBe('no-domain');
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    expect(s.kernel.phys.stats().pinnedPages).toBe(256);
    expect(s.kernel.iommus[0]!.domainCount()).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// §7.8 Lifetimes and close order
// ---------------------------------------------------------------------------------------------------

describe('closing container, group and device fds in any order (§7.8)', () => {
  type Which = 'container' | 'group' | 'device';
  const ORDERS: Which[][] = [
    ['container', 'group', 'device'],
    ['container', 'device', 'group'],
    ['group', 'container', 'device'],
    ['group', 'device', 'container'],
    ['device', 'container', 'group'],
    ['device', 'group', 'container'],
  ];

  test.each(ORDERS)('closing %s, %s, %s: DMA works exactly while the group or a device fd is open, nothing leaks', (...order) => {
    const s = fullSetup();
    const open = new Set<Which>(['container', 'group', 'device']);
    const fds: Record<Which, number> = { container: s.container, group: s.group, device: s.device };
    for (const which of order) {
      s.proc.close(fds[which]);
      open.delete(which);
      // The group file lives while its fd or a device fd (which holds a reference on it) is open; the
      // container and its mappings live while the group is attached, whether or not its fd is open.
      const alive = open.has('group') || open.has('device');
      expect({ after: which, dma: dmaReadsBack(s.kernel, s.proc, A, s.vaddr + 0x1000n, 0x1000n) }).toEqual({ after: which, dma: alive });
      expect({ after: which, write: dmaWriteWorks(s.kernel, A, 0xff000n) }).toEqual({ after: which, write: alive });
      expect(s.kernel.phys.stats().pinnedPages).toBe(alive ? 256 : 0);
      expect(s.proc.mm.lockedVm).toBe(alive ? 256 : 0);
      expect(s.kernel.iommus[0]!.domainCount()).toBe(alive ? 1 : 0);
      expect(s.kernel.group(26).userOwner === undefined).toBe(!alive);
      s.kernel.checkInvariants();
    }
    expect(s.proc.openFds()).toEqual([]);
    // The group can be opened again and is viable, with no container.
    const group = s.proc.open('/dev/vfio/26');
    expect(statusFlags(s.proc, group)).toBe(VIABLE);
  });

  test('a closed container fd cannot be reached, but its group keeps it: UNSET_CONTAINER then tears it down', () => {
    const s = fullSetup();
    s.proc.close(s.container);
    expect(codeOf(() => s.proc.ioctl(s.container, uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })))).toBe('EBADF');
    expect(statusFlags(s.proc, s.group)).toBe(VIABLE_SET);
    // More devices can still be opened through the group: the container still has its IOMMU.
    const second = s.proc.ioctl(s.group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    s.proc.close(s.device);
    s.proc.close(second);
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    s.proc.ioctl(s.group, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(false);
    expect(s.kernel.phys.stats().pinnedPages).toBe(0);
    expect(s.proc.mm.lockedVm).toBe(0);
  });

  test('a device fd keeps the group after the group fd is closed; the group cannot be reopened until it goes', () => {
    const s = fullSetup();
    s.proc.close(s.group);
    expect(codeOf(() => s.proc.open('/dev/vfio/26'))).toBe('EBUSY');
    expect(s.proc.ioctl(s.device, uapi.VFIO_DEVICE_RESET)).toBe(0);
    s.proc.close(s.device);
    expect(statusFlags(s.proc, s.proc.open('/dev/vfio/26'))).toBe(VIABLE);
    // The container fd is still open, but the container has lost its only group and its IOMMU.
    expect(codeOf(() => s.proc.ioctl(s.container, uapi.VFIO_IOMMU_GET_INFO, uapi.VfioIommuType1Info.encode({ argsz: 24 })))).toBe('EINVAL');
  });

  test('process exit with container, group, device and mapping open releases everything', () => {
    const s = fullSetup();
    s.proc.exit();
    expect(s.proc.hasExited).toBe(true);
    expect(s.kernel.phys.stats()).toMatchObject({ pinnedPages: 0, anonFramesInUse: 0 });
    expect(s.kernel.iommus[0]!.domainCount()).toBe(0);
    expect(s.kernel.group(26).userOwner).toBeUndefined();
    expect(() => s.kernel.device(A).dmaRead(0n, 4)).toThrow(DmaFault);
    s.kernel.checkInvariants();
    // Another process can take the group over.
    const next = s.kernel.spawn();
    const group = next.open('/dev/vfio/26');
    expect(statusFlags(next, group)).toBe(VIABLE);
    expect(setContainer(next, group, next.open('/dev/vfio/vfio'))).toBe(0);
  });

  test('process exit with two groups in one container and a closed container fd releases everything', () => {
    const s = fullSetup({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, driver: 'vfio-pci' }] });
    const g27 = s.proc.open('/dev/vfio/27');
    setContainer(s.proc, g27, s.container);
    s.proc.ioctl(g27, uapi.VFIO_GROUP_GET_DEVICE_FD, B);
    s.proc.close(s.container);
    s.proc.exit();
    expect(s.kernel.phys.stats().pinnedPages).toBe(0);
    expect(s.kernel.iommus[0]!.domainCount()).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// §7.5 type1 attach/detach: domain sharing, replay, page sizes; §9 reserved regions and MSI isolation
// ---------------------------------------------------------------------------------------------------

describe('type1 attach and detach (§7.5, §7.6)', () => {
  test('two groups behind the same IOMMU share one domain: one allocation, no replay', () => {
    const s = fullSetup({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, driver: 'vfio-pci' }] });
    const leavesBefore = s.kernel.iommus[0]!.counters().leafWritten;
    const g27 = s.proc.open('/dev/vfio/27');
    setContainer(s.proc, g27, s.container);
    expect(s.kernel.group(27).domain).toBeDefined();
    expect(s.kernel.group(27).domain).toBe(s.kernel.group(26).domain);
    expect(s.kernel.iommus[0]!.counters()).toMatchObject({ domainsAllocated: 1, domainsFreed: 0, leafWritten: leavesBefore });
    expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr, 0n)).toBe(true);
    // Pages are pinned and charged once, not per group.
    expect(s.kernel.phys.stats().pinnedPages).toBe(256);
    expect(s.proc.mm.lockedVm).toBe(256);
  });

  describe('a group behind a second IOMMU unit (pgsizeBitmap 0x201000)', () => {
    function twoUnits(): Setup & { g27: number } {
      const s = fullSetup({
        machine: twoUnitMachine({ pgsizeBitmap: 0x201000n }),
        devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, iommu: 1, driver: 'vfio-pci' }],
      });
      return { ...s, g27: s.proc.open('/dev/vfio/27') };
    }

    test('gets its own domain with the existing mappings replayed: its DMA works right after SET_CONTAINER', () => {
      const s = twoUnits();
      expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr, 0n)).toBe(false);
      expect(s.kernel.dmaFaults().at(-1)?.reason).toBe('no-domain');
      setContainer(s.proc, s.g27, s.container);
      const d26 = s.kernel.group(26).domain;
      const d27 = s.kernel.group(27).domain;
      expect(d27).toBeDefined();
      expect(d27).not.toBe(d26);
      expect(d27!.hardware).toBe(s.kernel.iommus[1]);
      expect(d27!.mappedPages()).toBe(256);
      expect(s.kernel.iommus.map((hw) => hw.counters().domainsAllocated)).toEqual([1, 1]);
      for (const offset of [0n, 0x1000n, 0x7f000n, 0xff000n]) {
        expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr + offset, offset)).toBe(true);
      }
      // A device write through one domain is seen through the other (same pinned pages).
      s.kernel.device(B).dmaWrite(0x42000n, new Uint8Array([7, 7]));
      expect(s.kernel.device(A).dmaRead(0x42000n, 2)).toEqual(new Uint8Array([7, 7]));
      // Replay pins nothing more.
      expect(s.kernel.phys.stats().pinnedPages).toBe(256);
      expect(s.proc.mm.lockedVm).toBe(256);
    });

    test('new mappings go into both domains', () => {
      const s = twoUnits();
      setContainer(s.proc, s.g27, s.container);
      const vaddr = s.proc.mmap(MiB);
      mapDma(s.proc, s.container, vaddr, 0x10000000n, MiB);
      expect(dmaReadsBack(s.kernel, s.proc, A, vaddr + 0x3000n, 0x10003000n)).toBe(true);
      expect(dmaReadsBack(s.kernel, s.proc, B, vaddr + 0x5000n, 0x10005000n)).toBe(true);
    });

    test('iova_pgsizes becomes the intersection 0x201000 while it is attached, 0x40201000 after it leaves', () => {
      const s = twoUnits();
      expect(iommuInfo(s.proc, s.container).pgsizes).toBe(0x40201000n);
      setContainer(s.proc, s.g27, s.container);
      expect(iommuInfo(s.proc, s.container).pgsizes).toBe(0x201000n);
      s.proc.ioctl(s.g27, uapi.VFIO_GROUP_UNSET_CONTAINER);
      expect(iommuInfo(s.proc, s.container).pgsizes).toBe(0x40201000n);
      expect(s.kernel.iommus.map((hw) => hw.domainCount())).toEqual([1, 0]);
      expect(s.kernel.group(27).domain).toBeUndefined();
      expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    });

    test('when the first group leaves, the other domain keeps every mapping', () => {
      const s = twoUnits();
      setContainer(s.proc, s.g27, s.container);
      s.proc.close(s.device);
      s.proc.ioctl(s.group, uapi.VFIO_GROUP_UNSET_CONTAINER);
      expect(s.kernel.iommus.map((hw) => hw.domainCount())).toEqual([0, 1]);
      expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr + 0x9000n, 0x9000n)).toBe(true);
      expect(s.kernel.phys.stats().pinnedPages).toBe(256);
      expect(iommuInfo(s.proc, s.container).pgsizes).toBe(0x201000n);
      // The mapping can still be unmapped (the remaining domain is now the record of the pages).
      const unmap = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, iova: 0n, size: MiB });
      expect(s.proc.ioctl(s.container, uapi.VFIO_IOMMU_UNMAP_DMA, unmap)).toBe(0);
      expect(uapi.VfioIommuType1DmaUnmap.read(unmap, 'size')).toBe(MiB);
      expect(s.kernel.phys.stats().pinnedPages).toBe(0);
    });
  });

  test('while a vaddr is invalidated (UNMAP with FLAG_VADDR) no group can join: EBUSY', () => {
    const s = fullSetup({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, driver: 'vfio-pci' }] });
    const unmap = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: uapi.VFIO_DMA_UNMAP_FLAG_VADDR, iova: 0n, size: MiB });
    s.proc.ioctl(s.container, uapi.VFIO_IOMMU_UNMAP_DMA, unmap);
    const g27 = s.proc.open('/dev/vfio/27');
    expect(codeOf(() => setContainer(s.proc, g27, s.container))).toBe('EBUSY');
    expect(statusFlags(s.proc, g27)).toBe(VIABLE);
    // Restoring the vaddr lets it join.
    const remap = uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: uapi.VFIO_DMA_MAP_FLAG_VADDR, vaddr: s.vaddr, iova: 0n, size: MiB });
    s.proc.ioctl(s.container, uapi.VFIO_IOMMU_MAP_DMA, remap);
    expect(setContainer(s.proc, g27, s.container)).toBe(0);
  });
});

describe('reserved regions and apertures (§7.5 steps 5-7, §9)', () => {
  test.each([
    ['x86-vtd', X86_RANGES],
    ['arm-smmuv3', [{ start: 0n, last: 0x7ffffffn }, { start: 0x8100000n, last: 0xffffffffffffn }]],
  ] as const)('%s: the IOVA ranges are the aperture minus the MSI window, and MAP into the window is EINVAL', (machine, ranges) => {
    const kernel = new Kernel({ machine, devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn({ memlockLimit: 1n << 30n });
    const container = proc.open('/dev/vfio/vfio');
    setContainer(proc, proc.open('/dev/vfio/26'), container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    expect(iommuInfo(proc, container)).toEqual({ pgsizes: 0x40201000n, ranges });
    const vaddr = proc.mmap(MiB);
    const hole = ranges[0]!.last + 1n;
    expect(codeOf(() => mapDma(proc, container, vaddr, hole, 0x1000n))).toBe('EINVAL');
    // A mapping that starts in the first range and crosses into the hole is EINVAL too.
    expect(codeOf(() => mapDma(proc, container, vaddr, hole - 0x1000n, 0x2000n))).toBe('EINVAL');
    expect(mapDma(proc, container, vaddr, hole - 0x1000n, 0x1000n)).toBe(0);
    expect(kernel.phys.stats().pinnedPages).toBe(1);
  });

  /** group 26 (unit 0) in a container with 1 MiB mapped at `iova`; group 27 behind unit 1 described by `second`. */
  function withSecondUnit(second: Partial<IommuUnitSpec>, iova = 0n): Setup & { g27: number } {
    const kernel = new Kernel({
      machine: twoUnitMachine(second),
      devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, iommu: 1, driver: 'vfio-pci' }],
    });
    const proc = kernel.spawn({ memlockLimit: 1n << 30n });
    const container = proc.open('/dev/vfio/vfio');
    const group = proc.open('/dev/vfio/26');
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    const vaddr = proc.mmap(MiB);
    mapDma(proc, container, vaddr, iova, MiB);
    const device = proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
    return { kernel, proc, container, group, device, vaddr, g27: proc.open('/dev/vfio/27') };
  }

  test.each(['direct', 'reserved', 'msi', 'sw-msi'] as const)(
    'a group whose %s region overlaps an existing mapping cannot join (EINVAL) and stays viable for a new container',
    (type) => {
      const s = withSecondUnit({ reservedRegions: [...VTD_UNIT.reservedRegions, { start: 0x80000n, last: 0x80fffn, type }] });
      expect(codeOf(() => setContainer(s.proc, s.g27, s.container))).toBe('EINVAL');
      expect(statusFlags(s.proc, s.g27)).toBe(VIABLE);
      expect(s.kernel.iommus.map((hw) => hw.domainCount())).toEqual([1, 0]);
      expect(s.kernel.group(27).userOwner).toBeUndefined();
      expect(iommuInfo(s.proc, s.container)).toEqual({ pgsizes: 0x40201000n, ranges: X86_RANGES });
      expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
      // "A new empty container will need to be used instead."
      const fresh = s.proc.open('/dev/vfio/vfio');
      expect(setContainer(s.proc, s.g27, fresh)).toBe(0);
      expect(s.proc.ioctl(fresh, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(iommuInfo(s.proc, fresh).ranges).toEqual([
        { start: 0n, last: 0x7ffffn },
        { start: 0x81000n, last: 0xfedfffffn },
        { start: 0xfef00000n, last: 0xffffffffffffn },
      ]);
    },
  );

  test('a direct-relaxable region over a mapping does not block the join and is not cut out', () => {
    const s = withSecondUnit({ reservedRegions: [...VTD_UNIT.reservedRegions, { start: 0x80000n, last: 0x80fffn, type: 'direct-relaxable' }] });
    expect(setContainer(s.proc, s.g27, s.container)).toBe(0);
    expect(iommuInfo(s.proc, s.container).ranges).toEqual(X86_RANGES);
    expect(dmaReadsBack(s.kernel, s.proc, B, s.vaddr + 0x80000n, 0x80000n)).toBe(true);
  });

  test('after a join the IOVA ranges are the intersection (smaller aperture, extra reserved region); they grow back on detach', () => {
    const s = withSecondUnit({ ias: 39, reservedRegions: [...VTD_UNIT.reservedRegions, { start: 0x40000000n, last: 0x4fffffffn, type: 'reserved' }] });
    expect(setContainer(s.proc, s.g27, s.container)).toBe(0);
    expect(iommuInfo(s.proc, s.container).ranges).toEqual([
      { start: 0n, last: 0x3fffffffn },
      { start: 0x50000000n, last: 0xfedfffffn },
      { start: 0xfef00000n, last: 0x7fffffffffn },
    ]);
    // MAP follows the new ranges: into the new hole or past the new aperture is EINVAL.
    const vaddr = s.proc.mmap(MiB);
    expect(codeOf(() => mapDma(s.proc, s.container, vaddr, 0x40000000n, MiB))).toBe('EINVAL');
    expect(codeOf(() => mapDma(s.proc, s.container, vaddr, 0x8000000000n, MiB))).toBe('EINVAL');
    expect(mapDma(s.proc, s.container, vaddr, 0x7ffff00000n, MiB)).toBe(0);
    expect(dmaReadsBack(s.kernel, s.proc, B, vaddr, 0x7ffff00000n)).toBe(true);
    s.proc.ioctl(s.container, uapi.VFIO_IOMMU_UNMAP_DMA, uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, iova: 0x7ffff00000n, size: MiB }));
    s.proc.ioctl(s.g27, uapi.VFIO_GROUP_UNSET_CONTAINER);
    expect(iommuInfo(s.proc, s.container).ranges).toEqual(X86_RANGES);
    expect(mapDma(s.proc, s.container, vaddr, 0x40000000n, MiB)).toBe(0);
  });

  test('a group whose aperture does not cover an existing mapping cannot join (EINVAL)', () => {
    const s = withSecondUnit({ ias: 39 }, 0x8000000000n);
    expect(codeOf(() => setContainer(s.proc, s.g27, s.container))).toBe('EINVAL');
    expect(statusFlags(s.proc, s.g27)).toBe(VIABLE);
    expect(s.kernel.iommus.map((hw) => hw.domainCount())).toEqual([1, 0]);
    expect(iommuInfo(s.proc, s.container).ranges).toEqual(X86_RANGES);
  });
});

describe('interrupt isolation and allow_unsafe_interrupts (§7.5 step 8, §9)', () => {
  test('on x86-vtd-no-ir SET_IOMMU is EPERM; with the module parameter set the same container succeeds', () => {
    const kernel = new Kernel({ machine: 'x86-vtd-no-ir', devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn({ memlockLimit: 1n << 30n });
    const container = proc.open('/dev/vfio/vfio');
    const group = proc.open('/dev/vfio/26');
    setContainer(proc, group, container);
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EPERM');
    expect(codeOf(() => proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1_IOMMU))).toBe('EPERM');
    expect(kernel.iommus[0]!.domainCount()).toBe(0);
    // The group is still in the container, which still has no IOMMU.
    expect(statusFlags(proc, group)).toBe(VIABLE_SET);
    expect(codeOf(() => proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A))).toBe('EINVAL');
    // echo 1 > /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts
    kernel.params.allowUnsafeInterrupts = true;
    expect(proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
    const vaddr = proc.mmap(MiB);
    mapDma(proc, container, vaddr, 0n, MiB);
    proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A);
    expect(dmaReadsBack(kernel, proc, A, vaddr, 0n)).toBe(true);
  });

  test('the allowUnsafeInterrupts kernel option lets x86-vtd-no-ir groups attach from the start', () => {
    const s = fullSetup({ machine: 'x86-vtd-no-ir', allowUnsafeInterrupts: true });
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
  });

  test('SET_CONTAINER of a group without MSI isolation into a set-up container is EPERM; the group stays viable without container', () => {
    const s = fullSetup({
      machine: twoUnitMachine({ isolatedMsi: false }),
      devices: [{ bdf: A, group: 26, driver: 'vfio-pci' }, { bdf: B, group: 27, iommu: 1, driver: 'vfio-pci' }],
    });
    const g27 = s.proc.open('/dev/vfio/27');
    expect(codeOf(() => setContainer(s.proc, g27, s.container))).toBe('EPERM');
    expect(statusFlags(s.proc, g27)).toBe(VIABLE);
    expect(s.kernel.group(27).userOwner).toBeUndefined();
    expect(s.kernel.iommus.map((hw) => hw.domainCount())).toEqual([1, 0]);
    expect(dmaReadsBack(s.kernel, s.proc, A, s.vaddr, 0n)).toBe(true);
    // It can join another container, and SET_IOMMU there fails the same way until the parameter is set.
    const other = s.proc.open('/dev/vfio/vfio');
    expect(setContainer(s.proc, g27, other)).toBe(0);
    expect(codeOf(() => s.proc.ioctl(other, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU))).toBe('EPERM');
    s.kernel.params.allowUnsafeInterrupts = true;
    expect(s.proc.ioctl(other, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// Device fd ioctls (§10 vfio-pci details, §4.1 argsz rules, §4.2 capability chains)
// ---------------------------------------------------------------------------------------------------

describe('device fd ioctls', () => {
  /** A device fd of `spec` (group 26, bound to vfio-pci) in a type1v2 container. */
  function deviceFd(spec: Partial<PciDeviceSpec> = {}): { kernel: Kernel; proc: Process; device: number; group: number } {
    const kernel = new Kernel({ devices: [{ bdf: A, group: 26, driver: 'vfio-pci', ...spec }] });
    const proc = kernel.spawn();
    const container = proc.open('/dev/vfio/vfio');
    const group = proc.open('/dev/vfio/26');
    setContainer(proc, group, container);
    proc.ioctl(container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU);
    return { kernel, proc, device: proc.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, A), group };
  }

  function regionInfo(proc: Process, device: number, index: number, argsz = 32, length = argsz): Uint8Array {
    const buf = new Uint8Array(length);
    uapi.VfioRegionInfo.encode({ argsz, index }, buf);
    proc.ioctl(device, uapi.VFIO_DEVICE_GET_REGION_INFO, buf);
    return buf;
  }

  test('GET_INFO: argsz < 16 is EINVAL; argsz 16 writes exactly 16 bytes; argsz 24 writes 24', () => {
    const { proc, device } = deviceFd();
    for (const argsz of [0, 8, 15]) {
      expect(codeOf(() => proc.ioctl(device, uapi.VFIO_DEVICE_GET_INFO, uapi.VfioDeviceInfo.encode({ argsz })))).toBe('EINVAL');
    }
    expect(codeOf(() => proc.ioctl(device, uapi.VFIO_DEVICE_GET_INFO, new Uint8Array([24, 0, 0, 0, 0, 0, 0, 0])))).toBe('EFAULT');
    const flags = uapi.VFIO_DEVICE_FLAGS_PCI | uapi.VFIO_DEVICE_FLAGS_RESET;
    const small = new Uint8Array(32).fill(0xaa);
    uapi.writeU32(small, 0, 16);
    expect(proc.ioctl(device, uapi.VFIO_DEVICE_GET_INFO, small)).toBe(0);
    expect(Array.from(small.subarray(0, 16))).toEqual([16, 0, 0, 0, flags, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0]);
    expect(small.subarray(16).every((b) => b === 0xaa)).toBe(true);
    const full = new Uint8Array(32).fill(0xaa);
    uapi.writeU32(full, 0, 32);
    expect(proc.ioctl(device, uapi.VFIO_DEVICE_GET_INFO, full)).toBe(0);
    expect(uapi.VfioDeviceInfo.decode(full)).toEqual({ argsz: 32, flags, num_regions: 9, num_irqs: 5, cap_offset: 0, pad: 0 });
    expect(full.subarray(24).every((b) => b === 0xaa)).toBe(true);
  });

  test('GET_INFO without a working reset has no RESET flag, and DEVICE_RESET is EINVAL', () => {
    const { kernel, proc, device } = deviceFd({ resetWorks: false });
    const info = uapi.VfioDeviceInfo.encode({ argsz: 24 });
    proc.ioctl(device, uapi.VFIO_DEVICE_GET_INFO, info);
    expect(uapi.VfioDeviceInfo.read(info, 'flags')).toBe(uapi.VFIO_DEVICE_FLAGS_PCI);
    expect(codeOf(() => proc.ioctl(device, uapi.VFIO_DEVICE_RESET))).toBe('EINVAL');
    expect(kernel.device(A).resetCount).toBe(0);
  });

  test('REGION_INFO: argsz < 32 is EINVAL, index 9 and above is EINVAL, VGA on a non-VGA device is EINVAL', () => {
    const { proc, device } = deviceFd();
    for (const argsz of [0, 16, 31]) expect(codeOf(() => regionInfo(proc, device, 0, argsz, 32))).toBe('EINVAL');
    for (const index of [8, 9, 10, 0xffffffff]) expect(codeOf(() => regionInfo(proc, device, index))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(device, uapi.VFIO_DEVICE_GET_REGION_INFO, new Uint8Array(16)))).toBe('EFAULT');
  });

  test('a VGA device has region 8: READ|WRITE, size 0xc0000, at offset 8 << 40', () => {
    const { proc, device } = deviceFd({ vga: true });
    expect(uapi.VfioRegionInfo.decode(regionInfo(proc, device, 8))).toEqual({
      argsz: 32,
      flags: uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE,
      index: 8,
      cap_offset: 0,
      size: 0xc0000n,
      offset: 0x80000000000n,
    });
    expect(codeOf(() => regionInfo(proc, device, 9))).toBe('EINVAL');
  });

  describe('the MSI-X table BAR carries the MSIX_MAPPABLE capability', () => {
    const msix = { msixVectors: 16, msixBar: 2, bars: [{ size: 0x4000n, kind: 'mem64' as const }, {}, { size: 0x2000n, kind: 'mem32' as const }] };
    const flags = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE | uapi.VFIO_REGION_INFO_FLAG_MMAP;

    test('argsz 32: CAPS is set, argsz is rewritten to 40, cap_offset is 0 and nothing past 32 bytes is written', () => {
      const { proc, device } = deviceFd(msix);
      const buf = new Uint8Array(48).fill(0xaa);
      uapi.VfioRegionInfo.encode({ argsz: 32, index: 2 }, buf);
      proc.ioctl(device, uapi.VFIO_DEVICE_GET_REGION_INFO, buf);
      expect(uapi.VfioRegionInfo.decode(buf)).toEqual({
        argsz: 40,
        flags: flags | uapi.VFIO_REGION_INFO_FLAG_CAPS,
        index: 2,
        cap_offset: 0,
        size: 0x2000n,
        offset: 2n << 40n,
      });
      expect(buf.subarray(32).every((b) => b === 0xaa)).toBe(true);
    });

    test('argsz 40: the capability is at 32 with id 3, version 1, next 0', () => {
      const { proc, device } = deviceFd(msix);
      const buf = regionInfo(proc, device, 2, 40);
      expect(uapi.VfioRegionInfo.decode(buf)).toMatchObject({ argsz: 40, flags: flags | uapi.VFIO_REGION_INFO_FLAG_CAPS, cap_offset: 32 });
      expect(uapi.VfioInfoCapHeader.decode(buf, 32)).toEqual({ id: uapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, version: 1, next: 0 });
      // argsz promising 40 bytes in a 32-byte buffer faults when the cap is copied out.
      expect(codeOf(() => regionInfo(proc, device, 2, 40, 32))).toBe('EFAULT');
    });

    test('other BARs have no capability', () => {
      const { proc, device } = deviceFd(msix);
      expect(uapi.VfioRegionInfo.decode(regionInfo(proc, device, 0, 40))).toEqual({ argsz: 40, flags, index: 0, cap_offset: 0, size: 0x4000n, offset: 0n });
      expect(uapi.VfioRegionInfo.decode(regionInfo(proc, device, 1))).toMatchObject({ flags: 0, size: 0n });
    });
  });

  test('IRQ_INFO: argsz < 16 and index 5 are EINVAL; a PCIe device has ERR with count 1', () => {
    const { proc, device } = deviceFd({ pcie: true, msixVectors: 8 });
    const irq = (index: number, argsz = 16): ReturnType<typeof uapi.VfioIrqInfo.decode> => {
      const buf = uapi.VfioIrqInfo.encode({ argsz, index });
      proc.ioctl(device, uapi.VFIO_DEVICE_GET_IRQ_INFO, buf);
      return uapi.VfioIrqInfo.decode(buf);
    };
    expect(codeOf(() => irq(0, 15))).toBe('EINVAL');
    expect(codeOf(() => irq(5))).toBe('EINVAL');
    expect(codeOf(() => irq(0xffffffff))).toBe('EINVAL');
    expect(codeOf(() => proc.ioctl(device, uapi.VFIO_DEVICE_GET_IRQ_INFO, new Uint8Array(12)))).toBe('EFAULT');
    const noresize = uapi.VFIO_IRQ_INFO_EVENTFD | uapi.VFIO_IRQ_INFO_NORESIZE;
    expect(irq(uapi.VFIO_PCI_ERR_IRQ_INDEX)).toEqual({ argsz: 16, flags: noresize, index: 3, count: 1 });
    expect(irq(uapi.VFIO_PCI_MSIX_IRQ_INDEX)).toEqual({ argsz: 16, flags: noresize, index: 2, count: 8 });
    // PCI Express: 4 KiB of config space.
    expect(uapi.VfioRegionInfo.decode(regionInfo(proc, device, 7)).size).toBe(4096n);
  });

  test('an ioctl the device does not know is ENOTTY; so is one the group does not know', () => {
    const { proc, device, group } = deviceFd();
    for (const request of [uapi.VFIO_GET_API_VERSION, uapi.VFIO_GROUP_GET_STATUS, uapi.VFIO_SET_IOMMU, 0x3b00, 0x3bff]) {
      expect(codeOf(() => proc.ioctl(device, request, new Uint8Array(32)))).toBe('ENOTTY');
    }
    for (const request of [uapi.VFIO_GET_API_VERSION, uapi.VFIO_DEVICE_GET_INFO, uapi.VFIO_IOMMU_MAP_DMA, 0x3b00, 0x3bff]) {
      expect(codeOf(() => proc.ioctl(group, request, new Uint8Array(32)))).toBe('ENOTTY');
    }
  });
});
