/**
 * A small world for windowed (type2) conformance tests: a PAMU machine (fsl-p4080 unless told otherwise)
 * with one vfio-pci device alone in IOMMU group 1 behind PCIe controller 0000 (LIODN 0x100), a process,
 * and a container holding that group with VFIO_SET_IOMMU(VFIO_TYPE2_IOMMU) done.
 *
 * The closures speak in raw ioctl terms and report outcomes as values, so that tables of cases read as
 * the kernel's answers: 'ok' or the errno code; `unmap(...)` gives `{ size }` or `{ code }`. `snapshot()`
 * gathers everything a failed ioctl must leave as it was: pins, locked_vm, GET_INFO, the attributes, and
 * what the hardware holds (valid windows, enable state, table entries).
 *
 * Ranges: `end` is exclusive, `last` is inclusive.
 */
import {
  DmaFault,
  Kernel,
  SysError,
  VfioContainer,
  VfioGroup,
  uapi,
  type DmaFaultReason,
  type IoctlArg,
  type IommuInfo,
  type KernelOptions,
  type PciDevice,
  type PciDeviceSpec,
  type Process,
  type SpawnOptions,
} from '../../index';
import { isWindowedDomain, type WindowedDomain } from '../../kernel-sim/iommu/windowed-domain';
import type { WindowedIommu } from '../../kernel-sim/iommu/windowed/windowed-iommu';

export const BDF = '0000:01:00.0';
export const GROUP = 1;
/** The LIODN of PCIe controller 0000 in the simulator's convention (0x100 + PCI domain). */
export const LIODN = 0x100;
export const RW = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
export const KiB = 1024n;
export const MiB = 1024n * KiB;
export const GiB = 1024n * MiB;

export type Outcome = 'ok' | uapi.ErrnoCode;
export type UnmapOutcome = { size: bigint } | { code: uapi.ErrnoCode };

/** The attribute values a vfio_pamu_attr can carry (the union's members, by attribute). */
export type AttrValue =
  | { attribute: typeof uapi.VFIO_ATTR_GEOMETRY; aperture_start: bigint; aperture_end: bigint }
  | { attribute: typeof uapi.VFIO_ATTR_WINDOWS; windows: number }
  | { attribute: typeof uapi.VFIO_ATTR_PAMU_STASH; stash_cpu: number; stash_cache: number };

export interface Type2WorldOptions extends Omit<KernelOptions, 'devices'> {
  /** The machine's devices; default one vfio-pci device, BDF in group 1. */
  devices?: PciDeviceSpec[];
  /** The group put in the container; default 1. */
  group?: number;
  /** Whether SET_IOMMU(VFIO_TYPE2_IOMMU) is done; default true. */
  setIommu?: boolean;
  /** RLIMIT_MEMLOCK and capabilities of the process. Default: a 1 TiB limit, no capability. */
  spawn?: SpawnOptions;
}

/** What a failed ioctl must leave unchanged. */
export interface Type2Snapshot {
  pinnedPages: number;
  lockedVm: number;
  info: IommuInfo;
  geometry: { start: bigint; last: bigint };
  windows: number;
  /** Indexes of the valid windows of the container's domain, with what each maps. */
  validWindows: { index: number; pfn: number; pageCount: number; prot: number }[];
  enabled: boolean;
  primaryHeld: number;
  secondaryHeld: number;
}

export interface Type2World {
  kernel: Kernel;
  proc: Process;
  device: PciDevice;
  vfio: VfioContainer;
  group: VfioGroup;
  /** The container fd. */
  container: number;
  /** The machine's windowed IOMMU unit. */
  pamu: WindowedIommu;
  /** The container's windowed domain (after SET_IOMMU). */
  domain(): WindowedDomain;
  /** VFIO_IOMMU_PAMU_SET_ATTR with argsz 32. */
  setAttr(value: AttrValue): Outcome;
  /** VFIO_IOMMU_PAMU_GET_ATTR with argsz 32: the decoded struct, or the errno code. */
  getAttr(attribute: number): ReturnType<typeof uapi.VfioPamuAttr.decode> | uapi.ErrnoCode;
  /** SET_ATTR GEOMETRY [start, start + size - 1] then WINDOWS `windows`; both must succeed. */
  layout(start: bigint, size: bigint, windows: number): void;
  /** VFIO_IOMMU_MAP_DMA with argsz 32. */
  map(iova: bigint, size: bigint, vaddr: bigint, flags?: number): Outcome;
  /** VFIO_IOMMU_UNMAP_DMA with argsz 24. */
  unmap(iova: bigint, size: bigint, flags?: number): UnmapOutcome;
  /** VFIO_IOMMU_PAMU_MAP_MSI_BANK with argsz 24. */
  mapBank(index: number, iova: bigint, flags?: number): Outcome;
  /** VFIO_IOMMU_PAMU_UNMAP_MSI_BANK with argsz 16. */
  unmapBank(iova: bigint, flags?: number): Outcome;
  /** Any ioctl on the container: 'ok' (result ignored) or the errno code. */
  ioctl(request: number, arg?: IoctlArg): Outcome;
  snapshot(): Type2Snapshot;
}

/** 'ok' or the SysError's code; anything else propagates. */
export function outcome(run: () => unknown): Outcome {
  try {
    run();
    return 'ok';
  } catch (err) {
    if (err instanceof SysError) return err.code;
    throw err;
  }
}

/** Whether a device access is translated (true) or faults (the reason). */
export function dmaOutcome(run: () => unknown): true | DmaFaultReason {
  try {
    run();
    return true;
  } catch (err) {
    if (err instanceof DmaFault) return err.reason;
    throw err;
  }
}

/** The container's windowed domain as the group sees it. @throws Error when it has none */
export function windowedDomainOf(kernel: Kernel, group: number): WindowedDomain {
  const domain = kernel.group(group).domain;
  if (domain === undefined || !isWindowedDomain(domain)) throw new Error(`group ${group} has no windowed domain`);
  return domain;
}

/** VFIO_IOMMU_PAMU_SET_ATTR bytes for `value` (argsz 32). */
export function attrBytes(value: AttrValue): Uint8Array {
  return uapi.VfioPamuAttr.encode({ argsz: 32, ...value });
}

/** Snapshot of a container's state; see Type2Snapshot. */
export function snapshotOf(kernel: Kernel, proc: Process, vfio: VfioContainer, group: number): Type2Snapshot {
  const domain = windowedDomainOf(kernel, group);
  const pamu = domain.hardware as WindowedIommu;
  const ops = domain.windows;
  const count = ops.windowBytes() === 0n ? 0 : ops.windowCount();
  const validWindows: Type2Snapshot['validWindows'] = [];
  for (let index = 0; index < count; index++) {
    const w = ops.window(index);
    if (w !== undefined) validWindows.push({ index, ...w });
  }
  const attr = (attribute: number): ReturnType<typeof uapi.VfioPamuAttr.decode> => {
    const buf = uapi.VfioPamuAttr.encode({ argsz: 32, attribute });
    proc.ioctl(vfio.fd, uapi.VFIO_IOMMU_PAMU_GET_ATTR, buf);
    return uapi.VfioPamuAttr.decode(buf);
  };
  const geometry = attr(uapi.VFIO_ATTR_GEOMETRY);
  const counters = pamu.counters();
  return {
    pinnedPages: kernel.phys.stats().pinnedPages,
    lockedVm: proc.mm.lockedVm,
    info: vfio.iommuInfo(),
    geometry: { start: geometry.aperture_start, last: geometry.aperture_end },
    windows: attr(uapi.VFIO_ATTR_WINDOWS).windows,
    validWindows,
    enabled: ops.isEnabled(),
    primaryHeld: counters.primaryHeld,
    secondaryHeld: counters.secondaryHeld,
  };
}

/** Builds the world; see the file header. */
export function type2World(options: Type2WorldOptions = {}): Type2World {
  const { devices, group: groupId = GROUP, setIommu = true, spawn, machine = 'fsl-p4080', ...kernelOptions } = options;
  const kernel = new Kernel({ ...kernelOptions, machine, devices: devices ?? [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }] });
  const proc = kernel.spawn({ memlockLimit: 1n << 40n, ...spawn });
  const vfio = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, groupId);
  group.setContainer(vfio);
  if (setIommu) vfio.setIommu(uapi.VFIO_TYPE2_IOMMU);
  const container = vfio.fd;
  const ioctl = (request: number, arg?: IoctlArg): Outcome => outcome(() => proc.ioctl(container, request, arg));

  const world: Type2World = {
    kernel,
    proc,
    device: kernel.group(groupId).devices[0]!,
    vfio,
    group,
    container,
    pamu: kernel.iommus[0] as WindowedIommu,
    domain: () => windowedDomainOf(kernel, groupId),
    setAttr: (value) => ioctl(uapi.VFIO_IOMMU_PAMU_SET_ATTR, attrBytes(value)),
    getAttr: (attribute) => {
      const buf = uapi.VfioPamuAttr.encode({ argsz: 32, attribute });
      const result = ioctl(uapi.VFIO_IOMMU_PAMU_GET_ATTR, buf);
      return result === 'ok' ? uapi.VfioPamuAttr.decode(buf) : result;
    },
    layout: (start, size, windows) => {
      expect(world.setAttr({ attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: start, aperture_end: start + size - 1n })).toBe('ok');
      expect(world.setAttr({ attribute: uapi.VFIO_ATTR_WINDOWS, windows })).toBe('ok');
    },
    map: (iova, size, vaddr, flags = RW) =>
      ioctl(uapi.VFIO_IOMMU_MAP_DMA, uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags, vaddr, iova, size })),
    unmap: (iova, size, flags = 0) => {
      const buf = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags, iova, size });
      const result = ioctl(uapi.VFIO_IOMMU_UNMAP_DMA, buf);
      return result === 'ok' ? { size: uapi.VfioIommuType1DmaUnmap.read(buf, 'size') } : { code: result };
    },
    mapBank: (index, iova, flags = RW) =>
      ioctl(uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags, msi_bank_index: index, iova })),
    unmapBank: (iova, flags = 0) => ioctl(uapi.VFIO_IOMMU_PAMU_UNMAP_MSI_BANK, uapi.VfioPamuMsiBankUnmap.encode({ argsz: 16, flags, iova })),
    ioctl,
    snapshot: () => snapshotOf(kernel, proc, vfio, groupId),
  };
  return world;
}
