/**
 * MSI banks on the windowed (type2) backend (reference/pamu-windowed.md §3.3–§3.5, §4a; the rules of
 * containers/backends/type2/msi-bank-ioctls.ts): GET_MSI_BANK_COUNT, MAP_MSI_BANK and UNMAP_MSI_BANK with
 * every argument rule and errno (the SDK returned 0 whatever happened), what a bank window is (one
 * 4 KiB MSIIR page at the base of a window, cut out of GET_INFO's IOVA ranges, blocking RAM and layout
 * changes), and bank isolation between containers: one container per bank (EBUSY for a second) unless
 * allow_unsafe_interrupts, released when the first container unmaps it or closes; with MSI-X enabled
 * through VFIO_DEVICE_SET_IRQS, each container's device signals through its own bank, cannot reach the
 * other's, and faults (raising nothing) once its bank window is unmapped.
 *
 * Unless a test says otherwise: fsl-p4080 (3 banks, MSIIR at page offset 0x140), one vfio-pci device
 * (0000:01:00.0, group 1, LIODN 0x100), an aperture of 1 MiB at IOVA 0 in 16 windows of 64 KiB.
 */
import { VfioContainer, VfioGroup, uapi, type PciDeviceSpec } from '../../index';
import { BDF, GROUP, KiB, LIODN, MiB, RW, dmaOutcome, outcome, type2World, type Outcome, type Type2World, type Type2WorldOptions } from '../helpers/type2-world';

const WIN = 64n * KiB;
const APERTURE = 16n * WIN;
const R = uapi.VFIO_DMA_MAP_FLAG_READ;
const W = uapi.VFIO_DMA_MAP_FLAG_WRITE;
/** CCSR 0xF_FE00_0000 + the P4080 MSIIR alias pages 0x44000, 0x45000, 0x46000, as frame numbers. */
const P4080_BANK_PFNS = [0xffe044, 0xffe045, 0xffe046];
const MSIIR = 0x140n;

function windowed(options: Type2WorldOptions = {}): Type2World {
  const w = type2World(options);
  w.layout(0n, APERTURE, 16);
  return w;
}

/** VFIO_DEVICE_SET_IRQS on MSI-X vectors 0 … n − 1, DATA_EVENTFD | ACTION_TRIGGER: the ioctl's value. @throws SysError */
function setIrqs(w: Type2World, deviceFd: number, eventfds: number[]): number {
  const buf = new Uint8Array(20 + 4 * eventfds.length);
  const flags = uapi.VFIO_IRQ_SET_DATA_EVENTFD | uapi.VFIO_IRQ_SET_ACTION_TRIGGER;
  uapi.VfioIrqSet.encode({ argsz: buf.length, flags, index: uapi.VFIO_PCI_MSIX_IRQ_INDEX, start: 0, count: eventfds.length }, buf);
  eventfds.forEach((fd, i) => uapi.writeU32(buf, 20 + 4 * i, fd));
  return w.proc.ioctl(deviceFd, uapi.VFIO_DEVICE_SET_IRQS, buf);
}

/** An eventfd read that reports EAGAIN as a value. */
function readOrCode(w: Type2World, efd: number): bigint | string {
  let count: bigint | undefined;
  const result = outcome(() => (count = w.proc.eventfdRead(efd)));
  return result === 'ok' ? count! : result;
}

const huge = (w: Type2World, windows: bigint): bigint => w.proc.mmap(windows * WIN, { pageSize: WIN });

/** Runs `change`, requires `expected`, and when it failed, that nothing changed. */
function expectClean(w: Type2World, change: () => Outcome, expected: Outcome): void {
  const before = w.snapshot();
  expect(change()).toBe(expected);
  if (expected !== 'ok') expect(w.snapshot()).toEqual(before);
}

describe('GET_MSI_BANK_COUNT: the machine-wide bank count as the ioctl value', () => {
  test.each([
    ['fsl-p4080', 3],
    ['fsl-t4240', 4],
  ] as const)('%s → %i, whatever the argument', (machine, banks) => {
    const w = type2World({ machine });
    expect(w.proc.ioctl(w.container, uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT)).toBe(banks);
    expect(w.proc.ioctl(w.container, uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT, 12345)).toBe(banks);
    expect(w.proc.ioctl(w.container, uapi.VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT, new Uint8Array(4))).toBe(banks);
  });
});

describe('MAP_MSI_BANK: the argument', () => {
  const map = (argsz: number, flags: number, index: number, iova: bigint): Uint8Array =>
    uapi.VfioPamuMsiBankMap.encode({ argsz, flags, msi_bank_index: index, iova });

  test.each([
    ['a buffer of 23 bytes', map(24, RW, 0, 4n * WIN).subarray(0, 23), 'EFAULT'],
    ['argsz 0', map(0, RW, 0, 4n * WIN), 'EINVAL'],
    ['argsz 23', map(23, RW, 0, 4n * WIN), 'EINVAL'],
    ['flags 0 (no permission)', map(24, 0, 0, 4n * WIN), 'EINVAL'],
    ['an unknown flag (VADDR, 0x4)', map(24, RW | 0x4, 0, 4n * WIN), 'EINVAL'],
    ['an unknown flag (0x80000000)', map(24, RW | 0x80000000, 0, 4n * WIN), 'EINVAL'],
    ['bank 3 (P4080 has 0–2)', map(24, RW, 3, 4n * WIN), 'ENODEV'],
    ['bank 0xffffffff', map(24, RW, 0xffffffff, 4n * WIN), 'ENODEV'],
    ['an iova inside a window (0x41000)', map(24, RW, 0, 4n * WIN + 0x1000n), 'EINVAL'],
    ['the MSIIR address itself as iova (0x40140)', map(24, RW, 0, 4n * WIN + MSIIR), 'EINVAL'],
    ['the end of the aperture', map(24, RW, 0, APERTURE), 'EINVAL'],
    ['4 GiB', map(24, RW, 0, 4n << 30n), 'EINVAL'],
  ])('%s → %s, nothing mapped or claimed', (_what, bytes, code) => {
    const w = windowed();
    expectClean(w, () => w.ioctl(uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, bytes.slice()), code as Outcome);
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
  });

  test('before WINDOWS (with or without GEOMETRY) → EINVAL; an unknown bank is ENODEV first', () => {
    const w = type2World();
    expect(w.mapBank(0, 0n)).toBe('EINVAL');
    expect(w.mapBank(3, 0n)).toBe('ENODEV');
    w.setAttr({ attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: APERTURE - 1n });
    expectClean(w, () => w.mapBank(0, 0n), 'EINVAL');
  });

  test('below an aperture that starts at 1 MiB → EINVAL', () => {
    const w = type2World();
    w.layout(MiB, APERTURE, 16);
    expectClean(w, () => w.mapBank(0, 0n), 'EINVAL');
    expect(w.mapBank(0, MiB)).toBe('ok');
  });

  test.each([
    ['READ', R],
    ['WRITE', W],
    ['READ|WRITE', RW],
  ])('flags %s: the window maps the bank page with that permission', (_name, flags) => {
    const w = windowed();
    expect(w.mapBank(1, 4n * WIN, flags)).toBe('ok');
    expect(w.domain().windows.window(4)).toEqual({ pfn: P4080_BANK_PFNS[1], pageCount: 1, prot: flags });
  });
});

describe('MAP_MSI_BANK: what the window then is', () => {
  test('one 4 KiB page at the base of the window; the domain is enabled with no RAM mapped; nothing pinned', () => {
    const w = windowed();
    expect(w.mapBank(0, 7n * WIN)).toBe('ok');
    const s = w.snapshot();
    expect(s.validWindows).toEqual([{ index: 7, pfn: P4080_BANK_PFNS[0], pageCount: 1, prot: RW }]);
    expect(s).toMatchObject({ enabled: true, pinnedPages: 0, lockedVm: 0 });
  });

  test('GET_INFO cuts the bank windows out of the IOVA ranges', () => {
    const w = windowed();
    expect(w.mapBank(0, 0n)).toBe('ok');
    expect(w.mapBank(2, 7n * WIN)).toBe('ok');
    expect(w.mapBank(1, 15n * WIN)).toBe('ok');
    expect(w.vfio.iommuInfo()).toMatchObject({
      iovaPgsizes: WIN,
      iovaRanges: [
        { start: WIN, last: 7n * WIN - 1n },
        { start: 8n * WIN, last: 15n * WIN - 1n },
      ],
    });
    expect(w.unmapBank(7n * WIN)).toBe('ok');
    expect(w.vfio.iommuInfo().iovaRanges).toEqual([{ start: WIN, last: 15n * WIN - 1n }]);
  });

  test.each([
    ['the whole bank window', 4n * WIN, WIN, 'EEXIST'],
    ['4 KiB at the base of the bank window', 4n * WIN, 4n * KiB, 'EEXIST'],
    ['three windows over the bank window', 3n * WIN, 3n * WIN, 'EEXIST'],
    ['the window after it', 5n * WIN, WIN, 'ok'],
  ])('MAP_DMA over a bank window: %s → %s', (_what, iova, size, expected) => {
    const w = windowed();
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
    expectClean(w, () => w.map(iova, size, huge(w, 4n)), expected as Outcome);
  });

  test('a bank where RAM is, a bank where another bank is, or a bank mapped twice → EEXIST', () => {
    const w = windowed();
    expect(w.map(0n, 2n * WIN, huge(w, 2n))).toBe('ok');
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
    expectClean(w, () => w.mapBank(1, WIN), 'EEXIST');
    expectClean(w, () => w.mapBank(1, 4n * WIN), 'EEXIST');
    expectClean(w, () => w.mapBank(0, 5n * WIN), 'EEXIST');
  });

  test('GEOMETRY and WINDOWS cannot change while a bank is mapped (EBUSY); after UNMAP_MSI_BANK they can', () => {
    const w = windowed();
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
    expectClean(w, () => w.setAttr({ attribute: uapi.VFIO_ATTR_WINDOWS, windows: 8 }), 'EBUSY');
    expectClean(w, () => w.setAttr({ attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: 2n * APERTURE - 1n }), 'EBUSY');
    expect(w.unmapBank(4n * WIN)).toBe('ok');
    expect(w.setAttr({ attribute: uapi.VFIO_ATTR_WINDOWS, windows: 8 })).toBe('ok');
  });

  test('UNMAP_DMA, even with FLAG_ALL, leaves bank windows alone and reports only RAM', () => {
    const w = windowed();
    expect(w.map(0n, WIN, huge(w, 1n))).toBe('ok');
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
    expect(w.unmap(0n, 0n, uapi.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ size: WIN });
    expect(w.unmap(4n * WIN, WIN)).toEqual({ size: 0n });
    const s = w.snapshot();
    expect(s.validWindows.map((v) => v.index)).toEqual([4]);
    // The bank keeps the domain enabled: the MSI window must keep working (the SDK disabled it with the last RAM).
    expect(s.enabled).toBe(true);
  });

  test('device accesses: the MSIIR page answers at the window base (reads as zeros, writes reach the doorbell, not RAM); beyond it the slot faults', () => {
    const w = windowed();
    const ram = huge(w, 1n);
    expect(w.map(0n, WIN, ram)).toBe('ok');
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
    const pinned = w.snapshot().pinnedPages;
    expect(w.device.dmaRead(4n * WIN + MSIIR, 4)).toEqual(new Uint8Array(4));
    expect(dmaOutcome(() => w.device.dmaWrite(4n * WIN + MSIIR, Uint8Array.of(5, 0, 0, 0)))).toBe(true);
    // No byte of guest RAM changed (the offset of the first non-zero byte, if any).
    expect(w.proc.readMemory(ram, Number(WIN)).findIndex((b) => b !== 0)).toBe(-1);
    expect(w.kernel.dmaFaults()).toEqual([]);
    expect(dmaOutcome(() => w.device.dmaWrite(4n * WIN + 0x1000n, Uint8Array.of(1, 0, 0, 0)))).toBe('unmapped');
    expect(w.pamu.faults().at(-1)).toMatchObject({ address: 4n * WIN + 0x1000n, liodn: LIODN, kind: 'beyond-window' });
    expect(w.snapshot().pinnedPages).toBe(pinned);
  });

  test('a READ-only bank window refuses the MSI write (permission)', () => {
    const w = windowed();
    expect(w.mapBank(0, 4n * WIN, R)).toBe('ok');
    expect(dmaOutcome(() => w.device.dmaWrite(4n * WIN + MSIIR, Uint8Array.of(5, 0, 0, 0)))).toBe('permission');
  });
});

describe('UNMAP_MSI_BANK', () => {
  const unmap = (argsz: number, flags: number, iova: bigint): Uint8Array => uapi.VfioPamuMsiBankUnmap.encode({ argsz, flags, iova });

  test.each([
    ['a buffer of 15 bytes', unmap(16, 0, 4n * WIN).subarray(0, 15), 'EFAULT'],
    ['argsz 0', unmap(0, 0, 4n * WIN), 'EINVAL'],
    ['argsz 15', unmap(15, 0, 4n * WIN), 'EINVAL'],
    ['flags 1', unmap(16, 1, 4n * WIN), 'EINVAL'],
    ['flags READ|WRITE', unmap(16, RW, 4n * WIN), 'EINVAL'],
    ['an iova with no bank (window 5)', unmap(16, 0, 5n * WIN), 'EINVAL'],
    ['the MSIIR address inside the bank window', unmap(16, 0, 4n * WIN + MSIIR), 'EINVAL'],
    ['a page further in the bank window', unmap(16, 0, 4n * WIN + 0x1000n), 'EINVAL'],
    ['the iova of a RAM mapping', unmap(16, 0, 0n), 'EINVAL'],
  ])('%s → %s, the bank stays mapped', (_what, bytes, code) => {
    const w = windowed();
    expect(w.map(0n, WIN, huge(w, 1n))).toBe('ok');
    expect(w.mapBank(0, 4n * WIN)).toBe('ok');
    expectClean(w, () => w.ioctl(uapi.VFIO_IOMMU_PAMU_UNMAP_MSI_BANK, bytes.slice()), code as Outcome);
  });

  test('the exact iova unmaps: window disabled, bank given back; a second UNMAP → EINVAL; the last window disables the domain', () => {
    const w = windowed();
    expect(w.mapBank(2, 9n * WIN)).toBe('ok');
    expect(w.unmapBank(9n * WIN)).toBe('ok');
    expect(w.snapshot()).toMatchObject({ validWindows: [], enabled: false });
    expect(w.unmapBank(9n * WIN)).toBe('EINVAL');
    expect(dmaOutcome(() => w.device.dmaWrite(9n * WIN + MSIIR, Uint8Array.of(1, 0, 0, 0)))).toBe('blocked');
    // The bank can be mapped again, elsewhere.
    expect(w.mapBank(2, 3n * WIN)).toBe('ok');
  });
});

describe('isolation: an MSI bank is mapped by one container at a time (the 2013 thread)', () => {
  /** Two containers in one kernel: A holds group 1 (LIODN 0x100), B holds group 2 (LIODN 0x101). */
  function twoContainers(allowUnsafeInterrupts = false): { a: Type2World; b: Type2World & { groupFd: VfioGroup } } {
    const devices: PciDeviceSpec[] = [
      { bdf: BDF, group: GROUP, driver: 'vfio-pci', msixVectors: 2 },
      { bdf: '0001:01:00.0', group: 2, driver: 'vfio-pci', msixVectors: 2 },
    ];
    const a = windowed({ devices, allowUnsafeInterrupts });
    const vfio = VfioContainer.open(a.proc);
    const groupFd = VfioGroup.open(a.proc, 2);
    groupFd.setContainer(vfio);
    vfio.setIommu(uapi.VFIO_TYPE2_IOMMU);
    const ioctl = (request: number, arg: Uint8Array): Outcome => {
      try {
        a.proc.ioctl(vfio.fd, request, arg);
        return 'ok';
      } catch (err) {
        return (err as { code: Outcome }).code;
      }
    };
    const b: Type2World & { groupFd: VfioGroup } = {
      ...a,
      vfio,
      container: vfio.fd,
      group: groupFd,
      groupFd,
      device: a.kernel.device('0001:01:00.0'),
      domain: () => {
        const d = a.kernel.group(2).domain;
        return d as ReturnType<Type2World['domain']>;
      },
      setAttr: (value) => ioctl(uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, ...value })),
      mapBank: (index, iova, flags = RW) =>
        ioctl(uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags, msi_bank_index: index, iova })),
      unmapBank: (iova) => ioctl(uapi.VFIO_IOMMU_PAMU_UNMAP_MSI_BANK, uapi.VfioPamuMsiBankUnmap.encode({ argsz: 16, flags: 0, iova })),
    };
    expect(b.setAttr({ attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: APERTURE - 1n })).toBe('ok');
    expect(b.setAttr({ attribute: uapi.VFIO_ATTR_WINDOWS, windows: 16 })).toBe('ok');
    return { a, b };
  }

  test('a second container mapping the same bank → EBUSY, and nothing changes in it; another bank is fine', () => {
    const { a, b } = twoContainers();
    expect(a.mapBank(0, 4n * WIN)).toBe('ok');
    const windowsBefore = b.domain().windows.window(4);
    expect(b.mapBank(0, 4n * WIN)).toBe('EBUSY');
    expect(b.domain().windows.window(4)).toEqual(windowsBefore);
    expect(b.domain().windows.isEnabled()).toBe(false);
    expect(b.mapBank(1, 4n * WIN)).toBe('ok');
    expect(a.mapBank(1, 5n * WIN)).toBe('EBUSY');
  });

  test("the bank is free again when the first container unmaps it", () => {
    const { a, b } = twoContainers();
    expect(a.mapBank(0, 4n * WIN)).toBe('ok');
    expect(b.mapBank(0, 4n * WIN)).toBe('EBUSY');
    expect(a.unmapBank(4n * WIN)).toBe('ok');
    expect(b.mapBank(0, 6n * WIN)).toBe('ok');
    expect(a.mapBank(0, 4n * WIN)).toBe('EBUSY');
  });

  test('the bank is free again when the first container goes (its last group fd and container fd closed)', () => {
    const { a, b } = twoContainers();
    expect(a.mapBank(0, 4n * WIN)).toBe('ok');
    a.vfio.close();
    expect(b.mapBank(0, 4n * WIN)).toBe('EBUSY');
    a.group.close();
    expect(b.mapBank(0, 4n * WIN)).toBe('ok');
  });

  test('with allow_unsafe_interrupts both containers may map the same bank, and each gives it back on its own', () => {
    const { a, b } = twoContainers(true);
    expect(a.mapBank(0, 4n * WIN)).toBe('ok');
    expect(b.mapBank(0, 4n * WIN)).toBe('ok');
    // Both devices reach the same MSIIR page: either can raise any of the bank's interrupts.
    expect(dmaOutcome(() => a.device.dmaWrite(4n * WIN + MSIIR, Uint8Array.of(1, 0, 0, 0)))).toBe(true);
    expect(dmaOutcome(() => b.device.dmaWrite(4n * WIN + MSIIR, Uint8Array.of(1, 0, 0, 0)))).toBe(true);
    expect(a.unmapBank(4n * WIN)).toBe('ok');
    expect(b.domain().windows.window(4)).toMatchObject({ pfn: P4080_BANK_PFNS[0] });
    expect(b.unmapBank(4n * WIN)).toBe('ok');
  });

  test("each container's device gets its MSI through its own bank; a device cannot reach the other container's bank", () => {
    const { a, b } = twoContainers();
    expect(a.mapBank(0, 4n * WIN)).toBe('ok');
    expect(b.mapBank(1, 6n * WIN)).toBe('ok');
    const [ea, eb] = [a.proc.eventfd(), a.proc.eventfd()];
    expect(setIrqs(a, a.group.device(BDF).fd, [ea])).toBe(0);
    expect(setIrqs(a, b.groupFd.device('0001:01:00.0').fd, [eb])).toBe(0);
    expect(a.device.msiVector(0)).toEqual({ address: 4n * WIN + MSIIR, data: 0, enabled: true });
    expect(b.device.msiVector(0)).toEqual({ address: 6n * WIN + MSIIR, data: 0, enabled: true });
    expect(a.device.raiseMsi(0)).toBe(true);
    expect(b.device.raiseMsi(0)).toBe(true);
    expect([a.proc.eventfdRead(ea), a.proc.eventfdRead(eb)]).toEqual([1n, 1n]);
    // Device A writes B's message: in A's domain that IOVA is a window A never mapped, so it faults.
    expect(dmaOutcome(() => a.device.dmaWrite(6n * WIN + MSIIR, Uint8Array.of(0, 0, 0, 0)))).toBe('unmapped');
    expect(readOrCode(a, eb)).toBe('EAGAIN');
  });

  test('with allow_unsafe_interrupts a shared bank lets one device raise the other container\'s interrupt', () => {
    const { a, b } = twoContainers(true);
    expect(a.mapBank(0, 4n * WIN)).toBe('ok');
    expect(b.mapBank(0, 4n * WIN)).toBe('ok');
    const eb = a.proc.eventfd();
    expect(setIrqs(a, b.groupFd.device('0001:01:00.0').fd, [eb])).toBe(0);
    const { address, data } = b.device.msiVector(0)!;
    const message = new Uint8Array(4);
    uapi.writeU32(message, 0, data);
    a.device.dmaWrite(address, message);
    expect(a.proc.eventfdRead(eb)).toBe(1n);
  });

  test('UNMAP_MSI_BANK while MSI is enabled: the next MSI write faults and raises nothing', () => {
    const w = windowed({ devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci', msixVectors: 1 }] });
    expect(w.mapBank(2, 4n * WIN)).toBe('ok');
    const efd = w.proc.eventfd();
    expect(setIrqs(w, w.group.device(BDF).fd, [efd])).toBe(0);
    expect(w.device.raiseMsi(0)).toBe(true);
    expect(w.unmapBank(4n * WIN)).toBe('ok');
    expect(w.device.raiseMsi(0)).toBe(false);
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ iova: 4n * WIN + MSIIR, access: 'write', liodn: LIODN });
    expect(w.proc.eventfdRead(efd)).toBe(1n);
    expect(readOrCode(w, efd)).toBe('EAGAIN');
  });

  test('a container maps all of its machine\'s banks; fsl-t4240 has a fourth (MSIIR1 alias page 0x47000)', () => {
    const w = windowed({ machine: 'fsl-t4240' });
    for (let i = 0; i < 4; i++) expect(w.mapBank(i, BigInt(8 + i) * WIN)).toBe('ok');
    expect(w.mapBank(4, 12n * WIN)).toBe('ENODEV');
    expect(w.domain().windows.window(11)).toEqual({ pfn: 0xffe047, pageCount: 1, prot: RW });
  });
});
