/**
 * The vendor SDK's QEMU container flow (vfio_connect_container, reference/pamu-windowed.md §3.6) run
 * against the windowed (type2) backend on fsl-p4080, step by step with the values the kernel returns:
 * 1 GiB of guest RAM in 256 MiB hugepages gives n = 1 GiB / 256 MiB + 3 banks = 7 → 8 windows of 256 MiB,
 * an aperture of 2 GiB, the banks at 1 GiB, 1.25 GiB and 1.5 GiB (§5's derived example), RAM at IOVA 0,
 * device DMA landing in guest memory and an MSI-X interrupt delivered through a bank window (§3.4).
 * Then the same flow failing, each time at one step with one errno, and leaving the container exactly
 * as it was before that step: too many windows (4 KiB backing), scattered 4 KiB backing behind 256 MiB
 * windows, and an aperture that is not a naturally aligned power of two.
 */
import { Kernel, VfioContainer, VfioGroup, uapi, type Process } from '../../index';
import type { WindowedIommu } from '../../kernel-sim/iommu/windowed/windowed-iommu';
import { BDF, GiB, GROUP, KiB, LIODN, MiB, RW, snapshotOf, windowedDomainOf, type Type2Snapshot } from '../helpers/type2-world';

/** The guest and the choices the VMM makes; the defaults are SDK QEMU's. */
interface GuestSpec {
  ramBytes: bigint;
  /** Page size of the guest RAM backing: a hugetlbfs block size, or 4 KiB anonymous memory. */
  backing: bigint;
  /** W, the window size; QEMU takes the backing page size. */
  windowBytes?: bigint;
  /** QEMU puts the aperture at 0. */
  apertureStart?: bigint;
  /** QEMU rounds n up to a power of two (n = 2 × pow2floor(n)). */
  roundUp?: boolean;
  /** QEMU refuses n above the maximum GET_ATTR(WINDOWS) reported. */
  checkMax?: boolean;
}

type FlowStep =
  | 'CHECK_EXTENSION'
  | 'GROUP_SET_CONTAINER'
  | 'SET_IOMMU'
  | 'GET_MSI_BANK_COUNT'
  | 'GET_ATTR WINDOWS'
  | 'window count check'
  | 'SET_ATTR GEOMETRY'
  | 'SET_ATTR WINDOWS'
  | 'MAP_MSI_BANK'
  | 'MAP_DMA';

interface FlowResult {
  kernel: Kernel;
  proc: Process;
  vfio: VfioContainer;
  group: VfioGroup;
  /** Where the flow stopped: the step and its errno ('refused' for the flow's own check). */
  failed?: { step: FlowStep; code: string };
  /** The container as it was right before the failing step (undefined when it failed before SET_IOMMU). */
  before?: Type2Snapshot;
  /** What the kernel answered along the way. */
  extension: number;
  banks: number;
  maxWindows: number;
  windows: number;
  geometry?: { start: bigint; last: bigint };
  /** Where guest RAM lives in the process. */
  ram: bigint;
}

/** VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER, vectors 0 … n − 1 of `index`. */
function setIrqs(proc: Process, deviceFd: number, index: number, eventfds: number[]): number {
  const buf = new Uint8Array(20 + 4 * eventfds.length);
  const flags = uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;
  uapi.VfioIrqSet.encode({ argsz: buf.length, flags, index, start: 0, count: eventfds.length }, buf);
  eventfds.forEach((fd, i) => uapi.writeU32(buf, 20 + 4 * i, fd));
  return proc.ioctl(deviceFd, uapi.VFIO_DEVICE_SET_IRQS, buf);
}

const pow2floor = (n: bigint): bigint => 1n << BigInt(n.toString(2).length - 1);

/**
 * vfio_connect_container of the SDK QEMU (§3.6), with the guest RAM mmap the memory backend made and the
 * RAM MAP_DMA its memory listener makes afterwards (IOVA = guest physical address 0).
 */
function sdkFlow(spec: GuestSpec): FlowResult {
  const kernel = new Kernel({ machine: 'fsl-p4080', devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci', msixVectors: 4 }] });
  const proc = kernel.spawn({ memlockLimit: 4n * GiB });
  const ram = proc.mmap(spec.ramBytes, { pageSize: spec.backing });
  const vfio = VfioContainer.open(proc);
  const group = VfioGroup.open(proc, GROUP);
  const result: FlowResult = { kernel, proc, vfio, group, extension: 0, banks: 0, maxWindows: 0, windows: 0, ram };
  let setIommu = false;
  const step = <T>(name: FlowStep, run: () => T): T | undefined => {
    if (result.failed !== undefined) return undefined;
    const before = setIommu ? snapshotOf(kernel, proc, vfio, GROUP) : undefined;
    try {
      return run();
    } catch (err) {
      if (!(err instanceof Error && 'code' in err)) throw err;
      result.failed = { step: name, code: String(err.code) };
      result.before = before;
      return undefined;
    }
  };
  const attr = (request: number, value: Parameters<typeof uapi.VfioPamuAttr.encode>[0]): ReturnType<typeof uapi.VfioPamuAttr.decode> => {
    const buf = uapi.VfioPamuAttr.encode({ argsz: 32, ...value });
    proc.ioctl(vfio.fd, request, buf);
    return uapi.VfioPamuAttr.decode(buf);
  };

  // 1. VFIO_CHECK_EXTENSION, GROUP_SET_CONTAINER, SET_IOMMU.
  result.extension = step('CHECK_EXTENSION', () => vfio.checkExtension(uapi.VFIO_TYPE2_IOMMU)) ?? 0;
  step('GROUP_SET_CONTAINER', () => group.setContainer(vfio));
  step('SET_IOMMU', () => vfio.setIommu(uapi.VFIO_TYPE2_IOMMU));
  setIommu = result.failed === undefined;
  // 2. The bank count and the window maximum.
  result.banks = step('GET_MSI_BANK_COUNT', () => proc.ioctl(vfio.fd, uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT)) ?? 0;
  result.maxWindows = step('GET_ATTR WINDOWS', () => attr(uapi.VFIO_IOMMU_PAMU_GET_ATTR, { attribute: uapi.VFIO_ATTR_WINDOWS }).windows) ?? 0;
  // 3-4. W and n.
  const w = spec.windowBytes ?? spec.backing;
  let n = spec.ramBytes / w + BigInt(result.banks);
  if ((spec.roundUp ?? true) && (n & (n - 1n)) !== 0n) n = 2n * pow2floor(n);
  result.windows = Number(n);
  step('window count check', () => {
    if ((spec.checkMax ?? true) && n > BigInt(result.maxWindows)) {
      throw Object.assign(new Error(`Number of windows needed (${n}) more than h/w supported (${result.maxWindows})`), { code: 'refused' });
    }
  });
  // 5. GEOMETRY [start, start + W·n − 1], then WINDOWS n.
  const start = spec.apertureStart ?? 0n;
  step('SET_ATTR GEOMETRY', () =>
    attr(uapi.VFIO_IOMMU_PAMU_SET_ATTR, { attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: start, aperture_end: start + w * n - 1n }),
  );
  step('SET_ATTR WINDOWS', () => attr(uapi.VFIO_IOMMU_PAMU_SET_ATTR, { attribute: uapi.VFIO_ATTR_WINDOWS, windows: result.windows }));
  if (result.failed === undefined) {
    const geometry = attr(uapi.VFIO_IOMMU_PAMU_GET_ATTR, { attribute: uapi.VFIO_ATTR_GEOMETRY });
    result.geometry = { start: geometry.aperture_start, last: geometry.aperture_end };
  }
  // 6. One MSI bank window per bank, right after guest RAM.
  for (let i = 0; i < result.banks; i++) {
    const iova = start + spec.ramBytes + BigInt(i) * w;
    const map = uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags: RW, msi_bank_index: i, iova });
    step('MAP_MSI_BANK', () => proc.ioctl(vfio.fd, uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, map));
  }
  // 7. The memory listener maps guest RAM at its guest physical address.
  step('MAP_DMA', () => vfio.mapDma({ vaddr: ram, iova: start, size: spec.ramBytes }));
  return result;
}

const pamuOf = (flow: FlowResult): WindowedIommu => flow.kernel.iommus[0] as WindowedIommu;

const W = 256n * MiB;
const HUGE_256M = { ramBytes: 1n * GiB, backing: W };
const PAGES_256M = Number(W / 4096n);

describe('the SDK QEMU flow: 1 GiB of guest RAM in 256 MiB hugepages on fsl-p4080', () => {
  test('every step answers as the kernel does: 3 banks, 256 windows at most, 8 windows of 256 MiB', () => {
    const flow = sdkFlow(HUGE_256M);
    expect(flow.failed).toBeUndefined();
    expect(flow.extension).toBe(1);
    expect(flow.banks).toBe(3);
    expect(flow.maxWindows).toBe(256);
    // 1 GiB / 256 MiB + 3 = 7, not a power of two: 2 × 4 = 8.
    expect(flow.windows).toBe(8);
    expect(flow.geometry).toEqual({ start: 0n, last: 8n * W - 1n });
    const after = snapshotOf(flow.kernel, flow.proc, flow.vfio, GROUP);
    expect(after.windows).toBe(8);
    expect(after.enabled).toBe(true);
  });

  test('the windows: RAM in 0-3 (one 256 MiB hugepage each), one 4 KiB bank page at the base of 4, 5 and 6, 7 unused', () => {
    const flow = sdkFlow(HUGE_256M);
    const domain = windowedDomainOf(flow.kernel, GROUP);
    const rw = 3; // IOMMU_READ | IOMMU_WRITE
    const ram = [0, 1, 2, 3].map((i) => domain.windows.window(i));
    for (const w of ram) {
      expect(w).toMatchObject({ pageCount: PAGES_256M, prot: rw });
      // Each window's backing is one hugepage: naturally aligned to 256 MiB.
      expect(w!.pfn % PAGES_256M).toBe(0);
    }
    expect(new Set(ram.map((w) => w!.pfn)).size).toBe(4);
    for (const i of [4, 5, 6]) expect(domain.windows.window(i)).toMatchObject({ pageCount: 1, prot: rw });
    expect(domain.windows.window(7)).toBeUndefined();
    // The bank windows map the MSIIR alias pages of CCSR 0xF_FE44000, 0xF_FE45000, 0xF_FE46000.
    expect([4, 5, 6].map((i) => domain.windows.window(i)!.pfn)).toEqual([0xffe044, 0xffe045, 0xffe046]);
  });

  test('RAM is pinned and charged once per 4 KiB page; the bank pages are neither', () => {
    const flow = sdkFlow(HUGE_256M);
    const pages = Number(GiB / 4096n);
    expect(flow.kernel.phys.stats()).toMatchObject({ pinnedPages: pages, hugeFoliosInUse: 4, anonFramesInUse: 0 });
    expect(flow.proc.mm.lockedVm).toBe(pages);
  });

  test('the PAMU holds 1 PPAACE and 7 SPAACEs for LIODN 0x100: 512 bytes of tables', () => {
    const flow = sdkFlow(HUGE_256M);
    const pamu = pamuOf(flow);
    expect(pamu.counters()).toMatchObject({ primaryHeld: 1, secondaryHeld: 7, tableBytes: 512, windowsEnabled: 7, violations: 0 });
    expect(pamu.liodnState(LIODN)).toMatchObject({ disabled: false, secondaryCount: 7 });
  });

  test('device DMA lands in guest memory at the guest physical address, across window boundaries too', () => {
    const flow = sdkFlow(HUGE_256M);
    const device = flow.kernel.device(BDF);
    const writes: [bigint, number[]][] = [
      [0n, [0x11, 0x22]],
      [0x0ffffffen, [1, 2, 3, 4]], // the last 2 bytes of window 0 and the first 2 of window 1
      [0x23456789n, [0xaa, 0xbb, 0xcc]],
      [GiB - 4n, [9, 8, 7, 6]],
    ];
    for (const [gpa, bytes] of writes) device.dmaWrite(gpa, Uint8Array.from(bytes));
    for (const [gpa, bytes] of writes) expect(flow.proc.readMemory(flow.ram + gpa, bytes.length)).toEqual(Uint8Array.from(bytes));
    // And the device reads what the guest wrote.
    flow.proc.writeMemory(flow.ram + 0x30000000n, Uint8Array.of(0x5a, 0xa5));
    expect(device.dmaRead(0x30000000n, 2)).toEqual(Uint8Array.of(0x5a, 0xa5));
    expect(flow.kernel.dmaFaults()).toEqual([]);
  });

  test("an MSI-X interrupt goes through bank 0's window: message address 1 GiB + 0x140, data the hwirq, delivered to the eventfd", () => {
    const flow = sdkFlow(HUGE_256M);
    const device = flow.group.device(BDF);
    const efds = [flow.proc.eventfd(), flow.proc.eventfd()];
    expect(setIrqs(flow.proc, device.fd, uapi.VFIO_PCI_MSIX_IRQ_INDEX, efds)).toBe(0);
    const pci = flow.kernel.device(BDF);
    // The host kernel composed the messages through the first bank the device reaches (fsl_iommu_get_iova).
    expect([0, 1].map((v) => pci.msiVector(v))).toEqual([
      { address: GiB + 0x140n, data: 0, enabled: true },
      { address: GiB + 0x140n, data: 1, enabled: true },
    ]);
    expect(pci.raiseMsi(1)).toBe(true);
    expect(pci.raiseMsi(1)).toBe(true);
    expect(pci.raiseMsi(0)).toBe(true);
    expect([flow.proc.eventfdRead(efds[0]!), flow.proc.eventfdRead(efds[1]!)]).toEqual([1n, 2n]);
    // The MSI write reached the MSIIR, not guest RAM, and nothing faulted.
    expect(flow.kernel.dmaFaults()).toEqual([]);
    expect(flow.proc.readMemory(flow.ram, 0x1000).findIndex((b) => b !== 0)).toBe(-1);
  });

  test('GET_INFO: iova_pgsizes is the window size, the IOVA ranges are the aperture minus the bank windows', () => {
    const flow = sdkFlow(HUGE_256M);
    const buf = new Uint8Array(96).fill(0xa5);
    uapi.writeU32(buf, 0, 96);
    flow.proc.ioctl(flow.vfio.fd, uapi.VFIO_IOMMU_GET_INFO, buf);
    expect(uapi.VfioIommuType1Info.decode(buf)).toEqual({
      argsz: 96,
      flags: uapi.VFIO_IOMMU_INFO_PGSIZES | uapi.VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: 0x10000000n,
      cap_offset: 24,
      pad: 0,
    });
    // IOVA_RANGE: id 1, version 1, next 0, 2 ranges: [0, 1 GiB − 1] (RAM) and slot 7 [1.75 GiB, 2 GiB − 1].
    expect([uapi.readU16(buf, 24), uapi.readU16(buf, 26), uapi.readU32(buf, 28), uapi.readU32(buf, 32)]).toEqual([1, 1, 0, 2]);
    expect([uapi.readU64(buf, 40), uapi.readU64(buf, 48)]).toEqual([0n, GiB - 1n]);
    expect([uapi.readU64(buf, 56), uapi.readU64(buf, 64)]).toEqual([0x70000000n, 0x7fffffffn]);
    // 24 + 8 + 8 + 2 × 16 = 72 bytes; the rest is the caller's.
    expect(buf.subarray(72)).toEqual(new Uint8Array(24).fill(0xa5));
  });

  test('closing the container fd keeps everything while the group is attached; closing the group fd then releases it all', () => {
    const flow = sdkFlow(HUGE_256M);
    const pamu = pamuOf(flow);
    flow.vfio.close();
    expect(flow.kernel.phys.stats().pinnedPages).toBe(Number(GiB / 4096n));
    expect(pamu.domainCount()).toBe(1);
    flow.group.close();
    expectReleased(flow, pamu);
  });

  test('closing the group fd (the last group) releases everything at once, with the container fd still open', () => {
    const flow = sdkFlow(HUGE_256M);
    const pamu = pamuOf(flow);
    flow.group.close();
    expectReleased(flow, pamu);
    // The container is back to "no IOMMU set".
    expect(() => flow.proc.ioctl(flow.vfio.fd, uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

function expectReleased(flow: FlowResult, pamu: WindowedIommu): void {
  expect(flow.kernel.phys.stats().pinnedPages).toBe(0);
  expect(flow.proc.mm.lockedVm).toBe(0);
  expect(pamu.domainCount()).toBe(0);
  expect(pamu.counters()).toMatchObject({ primaryHeld: 0, secondaryHeld: 0, tableBytes: 0 });
  flow.kernel.checkInvariants();
}

describe('the flow with 4 KiB pages: W = 4 KiB, so only a guest of at most 253 pages fits in 256 windows', () => {
  test.each([
    [253, 256, 'fits'],
    [128, 256, 'fits'],
    [61, 64, 'fits'],
    [254, 512, 'refused'],
    [256 * 1024, 512 * 1024, 'refused'], // 1 GiB: 262144 + 3 → 524288 windows
  ])('%i pages of RAM → %i windows: %s', (ramPages, windows, verdict) => {
    const pages = BigInt(ramPages);
    const flow = sdkFlow({ ramBytes: pages * 4n * KiB, backing: 4n * KiB });
    expect(flow.windows).toBe(windows);
    if (verdict === 'fits') {
      expect(flow.failed).toBeUndefined();
      // 4 KiB windows are one page each, so scattered anonymous memory is contiguous enough.
      flow.kernel.device(BDF).dmaWrite((pages - 1n) * 4096n + 0xff0n, Uint8Array.of(7));
      expect(flow.proc.readMemory(flow.ram + (pages - 1n) * 4096n + 0xff0n, 1)).toEqual(Uint8Array.of(7));
      expect(snapshotOf(flow.kernel, flow.proc, flow.vfio, GROUP).info.iovaPgsizes).toBe(0x1000n);
    } else {
      expect(flow.failed).toEqual({ step: 'window count check', code: 'refused' });
    }
  });
});

describe('the flow failing cleanly: one step, one errno, and the container as it was before that step', () => {
  /** The container after the flow stopped equals the one before the failing step. */
  function expectUnchanged(flow: FlowResult): void {
    expect(flow.before).toBeDefined();
    expect(snapshotOf(flow.kernel, flow.proc, flow.vfio, GROUP)).toEqual(flow.before);
    flow.kernel.checkInvariants();
  }

  test("too many windows: the flow's own check refuses 2^19 windows, before any SET_ATTR", () => {
    const flow = sdkFlow({ ramBytes: GiB, backing: 4n * KiB });
    expect(flow.failed).toEqual({ step: 'window count check', code: 'refused' });
    expectUnchanged(flow);
    // Nothing was set: the defaults are still there.
    expect(flow.before).toMatchObject({ windows: 256, geometry: { start: 0n, last: (1n << 36n) - 1n }, pinnedPages: 0, validWindows: [] });
  });

  test('too many windows without that check: SET_ATTR WINDOWS 2^19 → EINVAL, after a GEOMETRY of 2 GiB', () => {
    const flow = sdkFlow({ ramBytes: GiB, backing: 4n * KiB, checkMax: false });
    expect(flow.failed).toEqual({ step: 'SET_ATTR WINDOWS', code: 'EINVAL' });
    expectUnchanged(flow);
    expect(flow.before).toMatchObject({ windows: 256, geometry: { start: 0n, last: 2n * GiB - 1n } });
    expect(flow.before!.info.iovaPgsizes).toBe(0x1000n);
  });

  test('scattered 4 KiB backing behind 256 MiB windows: MAP_DMA → EFAULT, nothing pinned, the banks stay', () => {
    const flow = sdkFlow({ ramBytes: GiB, backing: 4n * KiB, windowBytes: W });
    expect(flow.windows).toBe(8);
    expect(flow.failed).toEqual({ step: 'MAP_DMA', code: 'EFAULT' });
    expectUnchanged(flow);
    expect(flow.before).toMatchObject({ pinnedPages: 0, lockedVm: 0, enabled: true });
    expect(flow.before!.validWindows.map((w) => w.index)).toEqual([4, 5, 6]);
    // No RAM window: the device's DMA to guest RAM faults.
    expect(() => flow.kernel.device(BDF).dmaRead(0x1000n, 4)).toThrow(expect.objectContaining({ reason: 'unmapped' }));
  });

  test('2 MiB hugepages behind 256 MiB windows are not one contiguous run either: MAP_DMA → EFAULT', () => {
    const flow = sdkFlow({ ramBytes: GiB, backing: 2n * MiB, windowBytes: W });
    expect(flow.failed).toEqual({ step: 'MAP_DMA', code: 'EFAULT' });
    expectUnchanged(flow);
  });

  test.each([
    ['an aperture at 256 MiB (start not aligned to its 2 GiB size)', { ...HUGE_256M, apertureStart: W }],
    ['7 windows without rounding up (1.75 GiB is not a power of two)', { ...HUGE_256M, roundUp: false }],
  ])('%s: SET_ATTR GEOMETRY → EINVAL, nothing set', (_name, spec) => {
    const flow = sdkFlow(spec);
    expect(flow.failed).toEqual({ step: 'SET_ATTR GEOMETRY', code: 'EINVAL' });
    expectUnchanged(flow);
    expect(flow.before).toMatchObject({ windows: 256, geometry: { start: 0n, last: (1n << 36n) - 1n }, validWindows: [] });
  });
});

describe('VFIO_TYPE2_IOMMU elsewhere', () => {
  test('x86-vtd: CHECK_EXTENSION answers 0 and SET_IOMMU(0x100) → ENODEV, leaving the container usable for type1', () => {
    const kernel = new Kernel({ machine: 'x86-vtd', devices: [{ bdf: '0000:06:0d.0', group: 26, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const vfio = VfioContainer.open(proc);
    expect(vfio.checkExtension(uapi.VFIO_TYPE2_IOMMU)).toBe(0);
    VfioGroup.open(proc, 26).setContainer(vfio);
    expect(() => vfio.setIommu(uapi.VFIO_TYPE2_IOMMU)).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(vfio.checkExtension(uapi.VFIO_TYPE2_IOMMU)).toBe(0);
    vfio.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
    expect(vfio.iommuInfo().iovaPgsizes).toBe(0x40201000n);
  });

  test('type1 on fsl-p4080: SET_IOMMU is accepted, but MAP_DMA → ENODEV (a PAMU domain has no map op), nothing pinned', () => {
    const kernel = new Kernel({ machine: 'fsl-p4080', devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }] });
    const proc = kernel.spawn({ memlockLimit: GiB });
    const vfio = VfioContainer.open(proc);
    VfioGroup.open(proc, GROUP).setContainer(vfio);
    vfio.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
    const ram = proc.mmap(W, { pageSize: W });
    expect(() => vfio.mapDma({ vaddr: ram, iova: 0n, size: W })).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    expect(kernel.phys.stats().pinnedPages).toBe(0);
    expect(proc.mm.lockedVm).toBe(0);
  });

  test("the SDK's own extension ids are not accepted: SET_IOMMU(1000) → ENODEV on fsl-p4080", () => {
    const kernel = new Kernel({ machine: 'fsl-p4080', devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }] });
    const proc = kernel.spawn();
    const vfio = VfioContainer.open(proc);
    expect(vfio.checkExtension(uapi.VFIO_FSL_PAMU_IOMMU_SDK)).toBe(0);
    VfioGroup.open(proc, GROUP).setContainer(vfio);
    expect(() => vfio.setIommu(uapi.VFIO_FSL_PAMU_IOMMU_SDK)).toThrow(expect.objectContaining({ code: 'ENODEV' }));
  });
});
