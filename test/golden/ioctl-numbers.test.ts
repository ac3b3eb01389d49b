/**
 * Golden ioctl numbers: every VFIO and vendor-PAMU request number pinned as a literal (never computed
 * from uapi/), the collisions across fd kinds that force per-fd-kind dispatch, the asm-generic encoding,
 * extension ids, and the per-fd-kind name tables.
 *
 * Source of the literals: reference/vfio-uapi.md §1–2, reference/pamu-windowed.md §3.1.
 */
import * as uapi from '../../uapi';

const exported = uapi as unknown as Record<string, unknown>;

/** name → [request number, n in `_IO(VFIO_TYPE, VFIO_BASE + n)`] */
const IOCTLS: Readonly<Record<string, readonly [number, number]>> = {
  // container fd, VFIO core
  VFIO_GET_API_VERSION: [0x3b64, 0],
  VFIO_CHECK_EXTENSION: [0x3b65, 1],
  VFIO_SET_IOMMU: [0x3b66, 2],
  // group fd
  VFIO_GROUP_GET_STATUS: [0x3b67, 3],
  VFIO_GROUP_SET_CONTAINER: [0x3b68, 4],
  VFIO_GROUP_UNSET_CONTAINER: [0x3b69, 5],
  VFIO_GROUP_GET_DEVICE_FD: [0x3b6a, 6],
  // device fd
  VFIO_DEVICE_GET_INFO: [0x3b6b, 7],
  VFIO_DEVICE_GET_REGION_INFO: [0x3b6c, 8],
  VFIO_DEVICE_GET_IRQ_INFO: [0x3b6d, 9],
  VFIO_DEVICE_SET_IRQS: [0x3b6e, 10],
  VFIO_DEVICE_RESET: [0x3b6f, 11],
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: [0x3b70, 12],
  VFIO_DEVICE_PCI_HOT_RESET: [0x3b71, 13],
  VFIO_DEVICE_QUERY_GFX_PLANE: [0x3b72, 14],
  VFIO_DEVICE_GET_GFX_DMABUF: [0x3b73, 15],
  VFIO_DEVICE_IOEVENTFD: [0x3b74, 16],
  VFIO_DEVICE_FEATURE: [0x3b75, 17],
  VFIO_DEVICE_BIND_IOMMUFD: [0x3b76, 18],
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: [0x3b77, 19],
  VFIO_DEVICE_DETACH_IOMMUFD_PT: [0x3b78, 20],
  VFIO_MIG_GET_PRECOPY_INFO: [0x3b79, 21],
  // container fd, type1
  VFIO_IOMMU_GET_INFO: [0x3b70, 12],
  VFIO_IOMMU_MAP_DMA: [0x3b71, 13],
  VFIO_IOMMU_UNMAP_DMA: [0x3b72, 14],
  VFIO_IOMMU_DIRTY_PAGES: [0x3b75, 17],
  // container fd, sPAPR
  VFIO_IOMMU_SPAPR_TCE_GET_INFO: [0x3b70, 12],
  VFIO_IOMMU_ENABLE: [0x3b73, 15],
  VFIO_IOMMU_DISABLE: [0x3b74, 16],
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY: [0x3b75, 17],
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: [0x3b76, 18],
  VFIO_IOMMU_SPAPR_TCE_CREATE: [0x3b77, 19],
  VFIO_IOMMU_SPAPR_TCE_REMOVE: [0x3b78, 20],
  VFIO_EEH_PE_OP: [0x3b79, 21],
  // container fd, vendor PAMU (type2)
  VFIO_IOMMU_PAMU_GET_ATTR: [0x3b73, 15],
  VFIO_IOMMU_PAMU_SET_ATTR: [0x3b74, 16],
  VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT: [0x3b75, 17],
  VFIO_IOMMU_PAMU_MAP_MSI_BANK: [0x3b76, 18],
  VFIO_IOMMU_PAMU_UNMAP_MSI_BANK: [0x3b77, 19],
};

describe('VFIO ioctl request numbers', () => {
  test('the ioctl base is type 0x3B (";"), number 100, API version 0', () => {
    expect(uapi.VFIO_TYPE).toBe(0x3b);
    expect(uapi.VFIO_TYPE).toBe(';'.charCodeAt(0));
    expect(uapi.VFIO_BASE).toBe(100);
    expect(uapi.VFIO_API_VERSION).toBe(0);
  });

  test.each(Object.entries(IOCTLS))('%s is pinned', (name, [value]) => {
    expect(exported[name]).toBe(value);
  });

  test.each(Object.entries(IOCTLS))('%s is _IO(VFIO_TYPE, VFIO_BASE + n)', (name, [value, n]) => {
    expect(uapi._IO(uapi.VFIO_TYPE, uapi.VFIO_BASE + n)).toBe(value);
    expect(uapi._IOC_TYPE(value)).toBe(0x3b);
    expect(uapi._IOC_NR(value)).toBe(100 + n);
    expect(uapi._IOC_SIZE(value)).toBe(0);
    expect(uapi._IOC_DIR(value)).toBe(uapi._IOC_NONE);
    expect(name).toMatch(/^VFIO_/);
  });

  test('every exported number in the VFIO ioctl range 0x3B64..0x3B79 is pinned here', () => {
    const inRange = Object.entries(exported)
      .filter(([, v]) => typeof v === 'number' && v >= 0x3b64 && v <= 0x3b79)
      .map(([k]) => k)
      .sort();
    expect(inRange).toEqual(Object.keys(IOCTLS).sort());
  });
});

describe('numbers are only unique per fd kind (the deliberate collisions)', () => {
  test('0x3B70: VFIO_IOMMU_GET_INFO (container) === VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (device) === VFIO_IOMMU_SPAPR_TCE_GET_INFO', () => {
    expect(uapi.VFIO_IOMMU_GET_INFO).toBe(0x3b70);
    expect(uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO).toBe(0x3b70);
    expect(uapi.VFIO_IOMMU_SPAPR_TCE_GET_INFO).toBe(0x3b70);
  });

  test('0x3B71: VFIO_IOMMU_MAP_DMA === VFIO_DEVICE_PCI_HOT_RESET', () => {
    expect(uapi.VFIO_IOMMU_MAP_DMA).toBe(0x3b71);
    expect(uapi.VFIO_DEVICE_PCI_HOT_RESET).toBe(0x3b71);
  });

  test('0x3B72: VFIO_IOMMU_UNMAP_DMA === VFIO_DEVICE_QUERY_GFX_PLANE', () => {
    expect(uapi.VFIO_IOMMU_UNMAP_DMA).toBe(0x3b72);
    expect(uapi.VFIO_DEVICE_QUERY_GFX_PLANE).toBe(0x3b72);
  });

  test('0x3B73: VFIO_IOMMU_ENABLE === VFIO_DEVICE_GET_GFX_DMABUF === VFIO_IOMMU_PAMU_GET_ATTR', () => {
    expect(uapi.VFIO_IOMMU_ENABLE).toBe(0x3b73);
    expect(uapi.VFIO_DEVICE_GET_GFX_DMABUF).toBe(0x3b73);
    expect(uapi.VFIO_IOMMU_PAMU_GET_ATTR).toBe(0x3b73);
  });

  test('0x3B74: VFIO_DEVICE_IOEVENTFD === VFIO_IOMMU_DISABLE === VFIO_IOMMU_PAMU_SET_ATTR (rust-vmm pins 15220)', () => {
    expect(uapi.VFIO_DEVICE_IOEVENTFD).toBe(0x3b74);
    expect(uapi.VFIO_IOMMU_DISABLE).toBe(0x3b74);
    expect(uapi.VFIO_IOMMU_PAMU_SET_ATTR).toBe(0x3b74);
    expect(uapi.VFIO_DEVICE_IOEVENTFD).toBe(15220);
  });

  test('0x3B75: VFIO_IOMMU_DIRTY_PAGES === VFIO_IOMMU_SPAPR_REGISTER_MEMORY === VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT === VFIO_DEVICE_FEATURE', () => {
    expect(uapi.VFIO_IOMMU_DIRTY_PAGES).toBe(0x3b75);
    expect(uapi.VFIO_IOMMU_SPAPR_REGISTER_MEMORY).toBe(0x3b75);
    expect(uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT).toBe(0x3b75);
    expect(uapi.VFIO_DEVICE_FEATURE).toBe(0x3b75);
  });

  test('0x3B76: VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY === VFIO_IOMMU_PAMU_MAP_MSI_BANK === VFIO_DEVICE_BIND_IOMMUFD', () => {
    expect(uapi.VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY).toBe(0x3b76);
    expect(uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK).toBe(0x3b76);
    expect(uapi.VFIO_DEVICE_BIND_IOMMUFD).toBe(0x3b76);
  });

  test('0x3B77: VFIO_IOMMU_SPAPR_TCE_CREATE === VFIO_IOMMU_PAMU_UNMAP_MSI_BANK === VFIO_DEVICE_ATTACH_IOMMUFD_PT', () => {
    expect(uapi.VFIO_IOMMU_SPAPR_TCE_CREATE).toBe(0x3b77);
    expect(uapi.VFIO_IOMMU_PAMU_UNMAP_MSI_BANK).toBe(0x3b77);
    expect(uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT).toBe(0x3b77);
  });

  test('0x3B78: VFIO_IOMMU_SPAPR_TCE_REMOVE === VFIO_DEVICE_DETACH_IOMMUFD_PT', () => {
    expect(uapi.VFIO_IOMMU_SPAPR_TCE_REMOVE).toBe(0x3b78);
    expect(uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT).toBe(0x3b78);
  });

  test('0x3B79: VFIO_EEH_PE_OP === VFIO_MIG_GET_PRECOPY_INFO', () => {
    expect(uapi.VFIO_EEH_PE_OP).toBe(0x3b79);
    expect(uapi.VFIO_MIG_GET_PRECOPY_INFO).toBe(0x3b79);
  });
});

describe('per-fd-kind name tables', () => {
  const CONTAINER: ReadonlyArray<readonly [number, string]> = [
    [0x3b64, 'VFIO_GET_API_VERSION'],
    [0x3b65, 'VFIO_CHECK_EXTENSION'],
    [0x3b66, 'VFIO_SET_IOMMU'],
    [0x3b70, 'VFIO_IOMMU_GET_INFO'],
    [0x3b71, 'VFIO_IOMMU_MAP_DMA'],
    [0x3b72, 'VFIO_IOMMU_UNMAP_DMA'],
    [0x3b73, 'VFIO_IOMMU_ENABLE'],
    [0x3b74, 'VFIO_IOMMU_DISABLE'],
    [0x3b75, 'VFIO_IOMMU_DIRTY_PAGES'],
    [0x3b76, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY'],
    [0x3b77, 'VFIO_IOMMU_SPAPR_TCE_CREATE'],
    [0x3b78, 'VFIO_IOMMU_SPAPR_TCE_REMOVE'],
    [0x3b79, 'VFIO_EEH_PE_OP'],
  ];
  const GROUP: ReadonlyArray<readonly [number, string]> = [
    [0x3b67, 'VFIO_GROUP_GET_STATUS'],
    [0x3b68, 'VFIO_GROUP_SET_CONTAINER'],
    [0x3b69, 'VFIO_GROUP_UNSET_CONTAINER'],
    [0x3b6a, 'VFIO_GROUP_GET_DEVICE_FD'],
  ];
  const DEVICE: ReadonlyArray<readonly [number, string]> = [
    [0x3b6b, 'VFIO_DEVICE_GET_INFO'],
    [0x3b6c, 'VFIO_DEVICE_GET_REGION_INFO'],
    [0x3b6d, 'VFIO_DEVICE_GET_IRQ_INFO'],
    [0x3b6e, 'VFIO_DEVICE_SET_IRQS'],
    [0x3b6f, 'VFIO_DEVICE_RESET'],
    [0x3b70, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'],
    [0x3b71, 'VFIO_DEVICE_PCI_HOT_RESET'],
    [0x3b72, 'VFIO_DEVICE_QUERY_GFX_PLANE'],
    [0x3b73, 'VFIO_DEVICE_GET_GFX_DMABUF'],
    [0x3b74, 'VFIO_DEVICE_IOEVENTFD'],
    [0x3b75, 'VFIO_DEVICE_FEATURE'],
    [0x3b76, 'VFIO_DEVICE_BIND_IOMMUFD'],
    [0x3b77, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
    [0x3b78, 'VFIO_DEVICE_DETACH_IOMMUFD_PT'],
  ];
  const PAMU: ReadonlyArray<readonly [number, string]> = [
    [0x3b73, 'VFIO_IOMMU_PAMU_GET_ATTR'],
    [0x3b74, 'VFIO_IOMMU_PAMU_SET_ATTR'],
    [0x3b75, 'VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT'],
    [0x3b76, 'VFIO_IOMMU_PAMU_MAP_MSI_BANK'],
    [0x3b77, 'VFIO_IOMMU_PAMU_UNMAP_MSI_BANK'],
  ];

  test.each([
    ['VFIO_CONTAINER_IOCTL_NAMES', uapi.VFIO_CONTAINER_IOCTL_NAMES, CONTAINER],
    ['VFIO_GROUP_IOCTL_NAMES', uapi.VFIO_GROUP_IOCTL_NAMES, GROUP],
    ['VFIO_DEVICE_IOCTL_NAMES', uapi.VFIO_DEVICE_IOCTL_NAMES, DEVICE],
    ['VFIO_PAMU_IOCTL_NAMES', uapi.VFIO_PAMU_IOCTL_NAMES, PAMU],
  ] as const)('%s holds exactly the pinned (number, name) pairs', (_label, table, expected) => {
    expect([...table.entries()]).toEqual(expected.map(([n, s]) => [n, s]));
  });

  test.each([
    ['container', uapi.VFIO_CONTAINER_IOCTL_NAMES],
    ['group', uapi.VFIO_GROUP_IOCTL_NAMES],
    ['device', uapi.VFIO_DEVICE_IOCTL_NAMES],
    ['pamu', uapi.VFIO_PAMU_IOCTL_NAMES],
  ] as const)('every %s table name is an exported constant with that number', (_label, table) => {
    for (const [n, name] of table) expect(exported[name]).toBe(n);
  });

  test('the same number has a different name on a container and on a device', () => {
    for (const n of [0x3b70, 0x3b71, 0x3b72, 0x3b73, 0x3b74, 0x3b75, 0x3b76, 0x3b77, 0x3b78]) {
      const c = uapi.VFIO_CONTAINER_IOCTL_NAMES.get(n);
      const d = uapi.VFIO_DEVICE_IOCTL_NAMES.get(n);
      expect(c).toBeDefined();
      expect(d).toBeDefined();
      expect(c).not.toBe(d);
    }
    expect(uapi.VFIO_CONTAINER_IOCTL_NAMES.get(0x3b70)).toBe('VFIO_IOMMU_GET_INFO');
    expect(uapi.VFIO_DEVICE_IOCTL_NAMES.get(0x3b70)).toBe('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO');
  });

  test('the container table uses the type1 names where type1 and sPAPR share a number', () => {
    expect(uapi.VFIO_CONTAINER_IOCTL_NAMES.get(0x3b70)).toBe('VFIO_IOMMU_GET_INFO');
    expect(uapi.VFIO_CONTAINER_IOCTL_NAMES.get(0x3b75)).toBe('VFIO_IOMMU_DIRTY_PAGES');
  });

  test('a PAMU container names 0x3B73..0x3B77 differently from a type1/sPAPR container', () => {
    for (const [n, name] of uapi.VFIO_PAMU_IOCTL_NAMES) {
      expect(uapi.VFIO_CONTAINER_IOCTL_NAMES.get(n)).toBeDefined();
      expect(uapi.VFIO_CONTAINER_IOCTL_NAMES.get(n)).not.toBe(name);
    }
  });

  test('group numbers are unknown on container and device fds, and container core numbers on group and device fds', () => {
    for (const n of uapi.VFIO_GROUP_IOCTL_NAMES.keys()) {
      expect(uapi.VFIO_CONTAINER_IOCTL_NAMES.has(n)).toBe(false);
      expect(uapi.VFIO_DEVICE_IOCTL_NAMES.has(n)).toBe(false);
    }
    for (const n of [0x3b64, 0x3b65, 0x3b66]) {
      expect(uapi.VFIO_GROUP_IOCTL_NAMES.has(n)).toBe(false);
      expect(uapi.VFIO_DEVICE_IOCTL_NAMES.has(n)).toBe(false);
    }
  });

  test('VFIO_MIG_GET_PRECOPY_INFO belongs to the migration data fd, not to the device table', () => {
    expect(uapi.VFIO_DEVICE_IOCTL_NAMES.has(0x3b79)).toBe(false);
  });
});

describe('extension ids', () => {
  const EXTENSIONS: Readonly<Record<string, number>> = {
    VFIO_TYPE1_IOMMU: 1,
    VFIO_SPAPR_TCE_IOMMU: 2,
    VFIO_TYPE1v2_IOMMU: 3,
    VFIO_DMA_CC_IOMMU: 4,
    VFIO_EEH: 5,
    __VFIO_RESERVED_TYPE1_NESTING_IOMMU: 6,
    VFIO_TYPE1_NESTING_IOMMU: 6,
    VFIO_SPAPR_TCE_v2_IOMMU: 7,
    VFIO_NOIOMMU_IOMMU: 8,
    VFIO_UNMAP_ALL: 9,
    VFIO_UPDATE_VADDR: 10,
    VFIO_TYPE2_IOMMU: 0x100,
    VFIO_FSL_PAMU_IOMMU_SDK: 1000,
  };

  test.each(Object.entries(EXTENSIONS))('%s === %d', (name, value) => {
    expect(exported[name]).toBe(value);
  });

  test('the type2 id is outside upstream 1..10 and the SDK ids 1000/1001', () => {
    expect(uapi.VFIO_TYPE2_IOMMU).toBeGreaterThan(10);
    expect([1000, 1001]).not.toContain(uapi.VFIO_TYPE2_IOMMU);
  });
});

describe('asm-generic ioctl encoding', () => {
  test('_IO leaves direction and size at 0', () => {
    expect(uapi._IO(0x3b, 100)).toBe(0x3b64);
    expect(uapi._IO(0x3b, 0x80)).toBe(0x3b80); // IOMMU_DESTROY, iommufd
    expect(uapi._IO(0xae, 0x01)).toBe(0xae01); // KVM_CREATE_VM
  });

  test('_IOW/_IOR/_IOWR put direction in bits 30-31 and size in bits 16-29 (KVM values)', () => {
    expect(uapi._IOW(0xae, 0x46, 32)).toBe(0x4020ae46); // KVM_SET_USER_MEMORY_REGION
    expect(uapi._IOR(0xae, 0x81, 144)).toBe(0x8090ae81); // KVM_GET_REGS
    expect(uapi._IOWR(0xae, 0x05, 8)).toBe(0xc008ae05); // KVM_GET_SUPPORTED_CPUID
  });

  test('encoded requests are unsigned 32-bit numbers and decode back', () => {
    const req = uapi._IOWR(0xae, 0x05, 8);
    expect(req).toBeGreaterThan(0);
    expect(uapi._IOC_DIR(req)).toBe(uapi._IOC_READ | uapi._IOC_WRITE);
    expect(uapi._IOC_TYPE(req)).toBe(0xae);
    expect(uapi._IOC_NR(req)).toBe(0x05);
    expect(uapi._IOC_SIZE(req)).toBe(8);
    expect(uapi._IOC(uapi._IOC_READ, 0xff, 0xff, 0x3fff)).toBe(0xbfffffff);
  });

  test('direction and field constants match asm-generic', () => {
    expect([uapi._IOC_NONE, uapi._IOC_WRITE, uapi._IOC_READ]).toEqual([0, 1, 2]);
    expect([uapi._IOC_NRSHIFT, uapi._IOC_TYPESHIFT, uapi._IOC_SIZESHIFT, uapi._IOC_DIRSHIFT]).toEqual([0, 8, 16, 30]);
    expect([uapi._IOC_NRBITS, uapi._IOC_TYPEBITS, uapi._IOC_SIZEBITS, uapi._IOC_DIRBITS]).toEqual([8, 8, 14, 2]);
  });

  test('fields that do not fit their bit width throw RangeError', () => {
    expect(() => uapi._IO(0x100, 0)).toThrow(RangeError);
    expect(() => uapi._IO(0x3b, 256)).toThrow(RangeError);
    expect(() => uapi._IO(0x3b, -1)).toThrow(RangeError);
    expect(() => uapi._IOR(0x3b, 0, 0x4000)).toThrow(RangeError);
    expect(() => uapi._IOC(4, 0x3b, 0, 0)).toThrow(RangeError);
    expect(() => uapi._IO(0x3b, 1.5)).toThrow(RangeError);
  });
});
