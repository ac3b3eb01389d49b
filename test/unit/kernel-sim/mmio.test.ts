/**
 * The MMIO doorbell map (kernel-sim/mmio.ts) and what device DMA does with it (kernel-sim/dma.ts), and
 * the device side of interrupts (PciDevice MSI capability, raiseMsi, INTx): tested on a bare kernel with
 * no modules loaded, with a paged domain attached by hand.
 */
import { DmaFault } from '../../../kernel-sim/dma';
import { SimBugError } from '../../../kernel-sim/errors';
import { IOMMU_READ, IOMMU_WRITE, type DmaRequester, type IommuDomain } from '../../../kernel-sim/iommu/iommu-domain';
import { Kernel } from '../../../kernel-sim/kernel';
import { Mmio } from '../../../kernel-sim/mmio';
import type { PciDevice } from '../../../kernel-sim/pci/pci-device';

const BDF = '0000:06:0d.0';
/** A frame outside RAM for a test doorbell (below the 4 GiB anonymous zone). */
const DOORBELL_PFN = 0x8090;
const RAM_PFN = 0x100123;

type Write = [offset: number, value: number, requester: DmaRequester];

function world(): { kernel: Kernel; device: PciDevice; domain: IommuDomain; writes: Write[]; detach: () => void } {
  const kernel = new Kernel({ machine: 'x86-vtd', devices: [{ bdf: BDF, group: 26, driver: 'none', msiVectors: 4, msixVectors: 8 }] });
  const device = kernel.device(BDF);
  const owner = {};
  device.group.claimDmaOwner(owner);
  const domain = kernel.iommus[0]!.allocDomain();
  device.group.attachDomain(domain);
  const writes: Write[] = [];
  kernel.mmio.register('test-doorbell', DOORBELL_PFN, 1, (offset, value, requester) => writes.push([offset, value, requester]));
  const detach = (): void => {
    device.group.detachDomain(domain);
    domain.free();
    device.group.releaseDmaOwner(owner);
  };
  return { kernel, device, domain, writes, detach };
}

describe('Mmio registry', () => {
  test('lookups find the range holding a frame; overlapping ranges are a simulator bug', () => {
    const mmio = new Mmio();
    const a = mmio.register('a', 10, 2, () => undefined);
    mmio.intercept('x', 10, 1, () => undefined);
    expect(mmio.doorbellAt(11)).toBe(a);
    expect(mmio.doorbellAt(12)).toBeUndefined();
    expect(mmio.interceptAt(10)?.name).toBe('x');
    expect(() => mmio.register('b', 11, 1, () => undefined)).toThrow(SimBugError);
    mmio.unregister(a);
    expect(mmio.doorbellAt(11)).toBeUndefined();
    expect(() => mmio.unregister(a)).toThrow(SimBugError);
  });

  test('overlapsRam names doorbells that sit on RAM frames', () => {
    const mmio = new Mmio([[0x100000, 0x1000]]);
    mmio.register('off-ram', 0x8090, 1, () => undefined);
    mmio.register('on-ram', 0x100800, 1, () => undefined);
    expect(mmio.overlapsRam().map((r) => r.name)).toEqual(['on-ram']);
  });
});

describe('raiseMsi: the MSI write of a vector', () => {
  test('a vector is sent only while the capability is enabled, the message programmed and the vector unmasked', () => {
    const { device, domain, writes, detach } = world();
    domain.map(0x40, DOORBELL_PFN, 1, IOMMU_WRITE);
    expect(device.raiseMsi(0)).toBe(false);
    device.enableMsi('msix', 2);
    expect(device.raiseMsi(0)).toBe(false);
    device.programMsiVector(0, 0x40044n, 0x1234);
    expect(device.msiVector(0)).toEqual({ address: 0x40044n, data: 0x1234, enabled: false });
    expect(device.raiseMsi(0)).toBe(false);
    device.maskMsiVector(0, false);
    expect(device.raiseMsi(0)).toBe(true);
    expect(device.raiseMsi(1)).toBe(false);
    expect(device.raiseMsi(2)).toBe(false);
    expect(writes).toEqual([[0x44, 0x1234, device]]);
    domain.unmap(0x40, 1);
    detach();
  });

  test('a message address in RAM writes the data there, little-endian', () => {
    const { kernel, device, domain, detach } = world();
    domain.map(0x50, RAM_PFN, 1, IOMMU_READ | IOMMU_WRITE);
    device.enableMsi('msi', 1);
    device.programMsiVector(0, 0x50ff8n, 0xa1b2c3d4);
    device.maskMsiVector(0, false);
    expect(device.raiseMsi(0)).toBe(true);
    const out = new Uint8Array(4);
    kernel.phys.read(RAM_PFN, 0xff8, out, 0, 4);
    expect([...out]).toEqual([0xd4, 0xc3, 0xb2, 0xa1]);
    domain.unmap(0x50, 1);
    detach();
  });

  test('an unmapped message address faults: false, a fault record, no write', () => {
    const { kernel, device, writes, detach } = world();
    device.enableMsi('msi', 1);
    device.programMsiVector(0, 0x8000040n, 7);
    device.maskMsiVector(0, false);
    expect(device.raiseMsi(0)).toBe(false);
    expect(kernel.dmaFaults().at(-1)).toEqual({ bdf: BDF, group: 26, iova: 0x8000040n, access: 'write', reason: 'unmapped' });
    expect(writes).toEqual([]);
    detach();
  });

  test('a read-only mapping of the doorbell faults with reason permission', () => {
    const { kernel, device, domain, writes, detach } = world();
    domain.map(0x40, DOORBELL_PFN, 1, IOMMU_READ);
    device.enableMsi('msi', 1);
    device.programMsiVector(0, 0x40040n, 7);
    device.maskMsiVector(0, false);
    expect(device.raiseMsi(0)).toBe(false);
    expect(kernel.dmaFaults().at(-1)?.reason).toBe('permission');
    expect(writes).toEqual([]);
    domain.unmap(0x40, 1);
    detach();
  });

  test('an intercepted IOVA reaches its handler before translation, with or without a domain', () => {
    const { kernel, device, detach } = world();
    const seen: number[] = [];
    kernel.mmio.intercept('irq-range', 0xfee00, 256, (offset, value) => seen.push(offset, value));
    device.enableMsi('msi', 1);
    device.programMsiVector(0, 0xfee01018n, 0x41);
    device.maskMsiVector(0, false);
    expect(device.raiseMsi(0)).toBe(true);
    detach();
    expect(device.raiseMsi(0)).toBe(true);
    expect(seen).toEqual([0x1018, 0x41, 0x1018, 0x41]);
    expect(kernel.dmaFaults()).toEqual([]);
  });

  test('without a domain a non-intercepted MSI write faults with reason no-domain', () => {
    const { kernel, device, detach } = world();
    detach();
    device.enableMsi('msi', 1);
    device.programMsiVector(0, 0x40040n, 1);
    device.maskMsiVector(0, false);
    expect(device.raiseMsi(0)).toBe(false);
    expect(kernel.dmaFaults().at(-1)?.reason).toBe('no-domain');
  });

  test('capability misuse is a simulator bug: both capabilities, too many vectors, an unaligned address', () => {
    const { device, detach } = world();
    expect(() => device.enableMsi('msi', 8)).toThrow(SimBugError);
    device.enableMsi('msi', 4);
    expect(() => device.enableMsi('msix', 1)).toThrow(SimBugError);
    expect(() => device.programMsiVector(0, 0x1002n, 0)).toThrow(SimBugError);
    expect(() => device.programMsiVector(4, 0x1000n, 0)).toThrow(SimBugError);
    device.disableMsi();
    expect(device.msiMode).toBe('none');
    detach();
  });
});

describe('bulk DMA and doorbells', () => {
  test('a write over a doorbell frame hands over whole aligned words only; RAM is not touched', () => {
    const { device, domain, writes, detach } = world();
    domain.map(0x40, DOORBELL_PFN, 1, IOMMU_READ | IOMMU_WRITE);
    device.dmaWrite(0x40002n, Uint8Array.of(0xaa, 0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 0xcc));
    expect(writes).toEqual([
      [4, 0x04030201, device],
      [8, 0x08070605, device],
    ]);
    expect([...device.dmaRead(0x40000n, 16)]).toEqual(new Array(16).fill(0));
    domain.unmap(0x40, 1);
    detach();
  });

  test('an intercepted range takes one aligned DWORD; any other write there faults and delivers nothing', () => {
    const { kernel, device, detach } = world();
    const seen: number[] = [];
    kernel.mmio.intercept('irq-range', 0xfee00, 256, (offset, value) => seen.push(offset, value));
    device.dmaWrite(0xfee00004n, Uint8Array.of(1, 0, 0, 0));
    expect(() => device.dmaWrite(0xfee00004n, Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0))).toThrow(DmaFault);
    expect(() => device.dmaWrite(0xfee00006n, Uint8Array.of(1, 0, 0, 0))).toThrow(DmaFault);
    expect(() => device.dmaRead(0xfee00004n, 4)).toThrow(DmaFault);
    expect(seen).toEqual([4, 1]);
    detach();
  });
});

describe('INTx: the line and its handler', () => {
  test('raiseIntx asserts the line and calls the handler; lowerIntx deasserts', () => {
    const { device, detach } = world();
    expect(device.raiseIntx()).toBe(false);
    expect(device.intxAsserted).toBe(true);
    const calls: boolean[] = [];
    device.setIntxHandler(() => {
      calls.push(device.intxAsserted);
      return true;
    });
    expect(device.raiseIntx()).toBe(true);
    device.lowerIntx();
    expect(device.intxAsserted).toBe(false);
    expect(calls).toEqual([true]);
    device.setIntxHandler(undefined);
    detach();
  });

  test('a function without an INTx pin cannot assert it', () => {
    const kernel = new Kernel({ machine: 'x86-vtd', devices: [{ bdf: BDF, group: 26, driver: 'none', intx: false }] });
    const device = kernel.device(BDF);
    device.setIntxHandler(() => true);
    expect(device.raiseIntx()).toBe(false);
    expect(device.intxAsserted).toBe(false);
  });
});
