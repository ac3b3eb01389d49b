/**
 * MSI end to end on every machine: VFIO_DEVICE_SET_IRQS composes the message through the machine's MSI
 * controller, the device's MSI is a DMA write of the message data to the message address through the
 * IOMMU, and the controller turns it into an eventfd signal (reference/vfio-uapi.md §9,
 * reference/pamu-windowed.md §3.4–§3.5, §4a).
 */
import { DmaFault, MSI_MODULE_NAME, uapi, type MsiModule } from '../../index';
import { IOMMU_WRITE } from '../../kernel-sim/iommu/iommu-domain';
import type { EventFd } from '../../kernel-sim/fs/eventfd';
import { EVENTFD_TRIGGER, irqWorld, readOrCode, type IrqWorld } from '../helpers/irq-world';

const { VFIO_PCI_MSI_IRQ_INDEX: MSI, VFIO_PCI_MSIX_IRQ_INDEX: MSIX } = uapi;
const OTHER = '0000:06:0e.0';

function msi(w: IrqWorld): MsiModule {
  return w.kernel.module<MsiModule>(MSI_MODULE_NAME);
}

/** A 4-byte little-endian buffer holding `value`. */
function dword(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  uapi.writeU32(bytes, 0, value);
  return bytes;
}

describe('x86-vtd: interrupt remapping', () => {
  test('raiseMsi reaches the eventfd: 1n, then 2n after two more', () => {
    const w = irqWorld({ machine: 'x86-vtd' });
    const [efd] = w.eventfds(1);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] })).toBe(0);
    expect(w.pci.raiseMsi(0)).toBe(true);
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
    w.pci.raiseMsi(0);
    w.pci.raiseMsi(0);
    expect(w.proc.eventfdRead(efd!)).toBe(2n);
    expect(msi(w).counters()).toMatchObject({ composed: 1, delivered: 3, dropped: 0, forged: 0 });
  });

  test('messages are in remappable format: MSI vectors share an IRTE block (data = sub-handle), MSI-X vectors get one IRTE each', () => {
    const w = irqWorld({ machine: 'x86-vtd', more: [{ bdf: OTHER, group: 26, msixVectors: 4, driver: 'vfio-pci' }] });
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: w.eventfds(3) })).toBe(0);
    // Block of 4 IRTEs at index 0: address 0xFEE00000 | 0 << 5 | format (1 << 4) | SHV (1 << 3).
    expect([0, 1, 2].map((v) => w.pci.msiVector(v))).toEqual([0, 1, 2].map((data) => ({ address: 0xfee00018n, data, enabled: true })));
    const other = w.deviceFd(OTHER);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, data: w.eventfds(2) }, other)).toBe(0);
    // IRTEs 4 and 5: handle << 5.
    expect([0, 1].map((v) => w.kernel.device(OTHER).msiVector(v)?.address)).toEqual([0xfee00098n, 0xfee000b8n]);
  });

  test('the interrupt range is intercepted before translation: no IOMMU mapping is needed, nothing faults', () => {
    const w = irqWorld({ machine: 'x86-vtd' });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    expect(w.kernel.group(26).domain!.mappedPages()).toBe(0);
    w.pci.raiseMsi(0);
    expect(w.kernel.dmaFaults()).toEqual([]);
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
  });

  test('another device writing the message is refused by the IRTE source-id check: nothing delivered', () => {
    const w = irqWorld({ machine: 'x86-vtd', more: [{ bdf: OTHER, group: 26, driver: 'vfio-pci' }] });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    const { address, data } = w.pci.msiVector(0)!;
    w.kernel.device(OTHER).dmaWrite(address, dword(data));
    expect(readOrCode(w.proc, efd!)).toBe('EAGAIN');
    expect(msi(w).counters()).toMatchObject({ delivered: 0, dropped: 1, forged: 0 });
  });

  test('a compatibility-format message is blocked while remapping is on', () => {
    const w = irqWorld({ machine: 'x86-vtd' });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    w.pci.dmaWrite(0xfee00000n, dword(0x21));
    expect(readOrCode(w.proc, efd!)).toBe('EAGAIN');
    expect(msi(w).counters().dropped).toBe(1);
  });

  test('a write to the interrupt range that is not one aligned DWORD is a malformed request: it faults', () => {
    const w = irqWorld({ machine: 'x86-vtd' });
    expect(() => w.pci.dmaWrite(0xfee00018n, new Uint8Array(2))).toThrow(DmaFault);
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ iova: 0xfee00018n, access: 'write', reason: 'unmapped' });
  });
});

describe('x86-vtd-no-ir: compatibility format, allow_unsafe_interrupts', () => {
  test('without allow_unsafe_interrupts the group cannot be used (SET_IOMMU → EPERM)', () => {
    expect(() => irqWorld({ machine: 'x86-vtd-no-ir' })).toThrow(expect.objectContaining({ code: 'EPERM' }));
  });

  test('with it, MSI is delivered; the message names the APIC and the vector', () => {
    const w = irqWorld({ machine: 'x86-vtd-no-ir', allowUnsafeInterrupts: true });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    expect(w.pci.msiVector(0)).toEqual({ address: 0xfee00000n, data: 0x21, enabled: true });
    w.pci.raiseMsi(0);
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
  });

  test('any device can forge another device\'s vector: it is delivered and counted as forged', () => {
    const w = irqWorld({ machine: 'x86-vtd-no-ir', allowUnsafeInterrupts: true, more: [{ bdf: OTHER, group: 26, driver: 'vfio-pci' }] });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    const { address, data } = w.pci.msiVector(0)!;
    w.kernel.device(OTHER).dmaWrite(address, dword(data));
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
    expect(msi(w).counters()).toMatchObject({ delivered: 1, forged: 1 });
  });

  test('more than one MSI vector is refused with the ioctl returning 1 and nothing enabled (no multi-message MSI)', () => {
    const w = irqWorld({ machine: 'x86-vtd-no-ir', allowUnsafeInterrupts: true });
    const efds = w.eventfds(2);
    const before = w.state();
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: efds })).toBe(1);
    expect(w.state()).toEqual(before);
    expect(w.pci.msiMode).toBe('none');
  });
});

describe('arm-smmuv3: the ITS doorbell behind the SW_MSI cookie', () => {
  test('type1 maps the GITS_TRANSLATER page at 0x8000000; the message is that IOVA + 0x40, data = EventID', () => {
    const w = irqWorld({ machine: 'arm-smmuv3' });
    const domain = w.kernel.group(26).domain!;
    expect(domain.iovaToPfn(0x8000)).toBe(0x8090);
    expect(domain.mappedPages()).toBe(1);
    const efds = w.eventfds(2);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, data: efds })).toBe(0);
    expect([0, 1].map((v) => w.pci.msiVector(v))).toEqual([
      { address: 0x8000040n, data: 0, enabled: true },
      { address: 0x8000040n, data: 1, enabled: true },
    ]);
    w.pci.raiseMsi(1);
    expect(w.proc.eventfdRead(efds[1]!)).toBe(1n);
    expect(readOrCode(w.proc, efds[0]!)).toBe('EAGAIN');
  });

  test('the doorbell page is not userspace IOVA: MAP_DMA over 0x8000000 is EINVAL', () => {
    const w = irqWorld({ machine: 'arm-smmuv3' });
    const vaddr = w.proc.mmap(0x1000);
    const map = uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: 3, vaddr, iova: 0x8000000n, size: 0x1000n });
    expect(w.proc.ioctlRaw(w.container, uapi.VFIO_IOMMU_MAP_DMA, map)).toBe(-uapi.ERRNO.EINVAL);
  });

  test('an unmapped doorbell faults in the SMMU and no interrupt arrives', () => {
    const w = irqWorld({ machine: 'arm-smmuv3' });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    const domain = w.kernel.group(26).domain!;
    domain.unmap(0x8000, 1);
    expect(w.pci.raiseMsi(0)).toBe(false);
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ bdf: w.pci.bdf, iova: 0x8000040n, access: 'write', reason: 'unmapped' });
    expect(readOrCode(w.proc, efd!)).toBe('EAGAIN');
    domain.map(0x8000, 0x8090, 1, IOMMU_WRITE);
    expect(w.pci.raiseMsi(0)).toBe(true);
    expect(w.proc.eventfdRead(efd!)).toBe(1n);
  });

  test('a device whose group has no domain gets no interrupt: its write faults', () => {
    const w = irqWorld({ machine: 'arm-smmuv3', more: [{ bdf: OTHER, group: 27, driver: 'vfio-pci' }] });
    const lone = w.kernel.device(OTHER);
    const [efd] = w.eventfds(1);
    // No VFIO path can enable MSI on a device outside a container; drive the MSI layer directly.
    expect(msi(w).allocVectors(lone, 'msi', 1)).toBe(1);
    expect(lone.msiVector(0)?.address).toBe(0x08090040n);
    msi(w).setTrigger(lone, 0, w.proc.fileOf(efd!)!.data as EventFd);
    expect(lone.raiseMsi(0)).toBe(false);
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ bdf: OTHER, reason: 'no-domain' });
    expect(readOrCode(w.proc, efd!)).toBe('EAGAIN');
    msi(w).freeVectors(lone);
  });

  test('a device cannot raise another device\'s event: the ITS takes the DeviceID from the requester', () => {
    const w = irqWorld({ machine: 'arm-smmuv3', more: [{ bdf: OTHER, group: 26, driver: 'vfio-pci' }] });
    const [efd] = w.eventfds(1);
    w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: [efd!] });
    w.kernel.device(OTHER).dmaWrite(0x8000040n, dword(0));
    expect(readOrCode(w.proc, efd!)).toBe('EAGAIN');
    expect(msi(w).counters()).toMatchObject({ delivered: 0, dropped: 1 });
  });

  test('the cookie page goes with the domain when the container is torn down', () => {
    const w = irqWorld({ machine: 'arm-smmuv3' });
    w.proc.close(w.fd);
    w.proc.close(w.group);
    expect(msi(w).counters().cookies).toBe(0);
    expect(w.kernel.iommus[0]!.domainCount()).toBe(0);
  });
});

describe('fsl-p4080: MPIC MSI banks behind PAMU windows (type2)', () => {
  function pamuWorld(): IrqWorld {
    const w = irqWorld({ machine: 'fsl-p4080', iommuType: uapi.VFIO_TYPE2_IOMMU });
    const set = (value: Parameters<typeof uapi.VfioPamuAttr.encode>[0]): void => {
      w.proc.ioctl(w.container, uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, ...value }));
    };
    set({ attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: (1n << 31n) - 1n });
    set({ attribute: uapi.VFIO_ATTR_WINDOWS, windows: 8 });
    return w;
  }
  const mapBank = (w: IrqWorld, index: number, iova: bigint): number =>
    w.proc.ioctlRaw(w.container, uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags: 3, msi_bank_index: index, iova }));

  test('with no bank mapped, enabling MSI fails with EINVAL ("fail setting MSI") and nothing stays enabled', () => {
    const w = pamuWorld();
    const efds = w.eventfds(1);
    const before = w.state();
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: efds })).toBe('EINVAL');
    expect(w.state()).toEqual(before);
    expect(msi(w).counters().vectors).toBe(0);
  });

  test('with bank 1 mapped at 1 GiB, the message is the window IOVA + 0x140 and data the hwirq; raiseMsi delivers', () => {
    const w = pamuWorld();
    expect(mapBank(w, 1, 1n << 30n)).toBe(0);
    const efds = w.eventfds(2);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSIX, data: efds })).toBe(0);
    expect([0, 1].map((v) => w.pci.msiVector(v))).toEqual([
      { address: 0x40000140n, data: 0, enabled: true },
      { address: 0x40000140n, data: 1, enabled: true },
    ]);
    w.pci.raiseMsi(1);
    w.pci.raiseMsi(1);
    expect(w.proc.eventfdRead(efds[1]!)).toBe(2n);
    expect(readOrCode(w.proc, efds[0]!)).toBe('EAGAIN');
  });

  test('more than one MSI vector: the ioctl returns 1 (the MPIC has no multi-message MSI)', () => {
    const w = pamuWorld();
    mapBank(w, 0, 1n << 30n);
    expect(w.setIrqs({ flags: EVENTFD_TRIGGER, index: MSI, data: w.eventfds(2) })).toBe(1);
    expect(w.pci.msiMode).toBe('none');
  });

  test('a bank is held by one container: mapping it from a second container is EBUSY', () => {
    const w = irqWorld({ machine: 'fsl-p4080', iommuType: uapi.VFIO_TYPE2_IOMMU, more: [{ bdf: '0001:01:00.0', group: 2, driver: 'vfio-pci' }] });
    const attr = (container: number, value: Parameters<typeof uapi.VfioPamuAttr.encode>[0]): void => {
      w.proc.ioctl(container, uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, ...value }));
    };
    const second = w.proc.open('/dev/vfio/vfio');
    const group2 = w.proc.open('/dev/vfio/2');
    const fdBytes = new Uint8Array(4);
    uapi.writeU32(fdBytes, 0, second);
    w.proc.ioctl(group2, uapi.VFIO_GROUP_SET_CONTAINER, fdBytes);
    w.proc.ioctl(second, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE2_IOMMU);
    for (const c of [w.container, second]) {
      attr(c, { attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: 0n, aperture_end: (1n << 31n) - 1n });
      attr(c, { attribute: uapi.VFIO_ATTR_WINDOWS, windows: 8 });
    }
    expect(mapBank(w, 0, 1n << 30n)).toBe(0);
    const map = uapi.VfioPamuMsiBankMap.encode({ argsz: 24, flags: 3, msi_bank_index: 0, iova: 1n << 30n });
    expect(w.proc.ioctlRaw(second, uapi.VFIO_IOMMU_PAMU_MAP_MSI_BANK, map)).toBe(-uapi.ERRNO.EBUSY);
    expect(msi(w).bank(0).owners).toHaveLength(1);
  });
});
