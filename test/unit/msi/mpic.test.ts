/**
 * The MPIC MSI banks (msi/mpic.ts) through the MSI module, on a machine whose IOMMU is a windowed-domain
 * test double: message composition through the windows (fsl_iommu_get_iova), bank choice, delivery and
 * its hwirq decoding for MSIIR (P4080) and MSIIR1 (T4240), forging, and the bank API the type2 backend
 * uses.
 */
import { Kernel, MSI_MODULE_NAME, type MsiModule, type PciDevice } from '../../../index';
import { IOMMU_READ, IOMMU_WRITE } from '../../../kernel-sim/iommu/iommu-domain';
import type { EventFd } from '../../../kernel-sim/fs/eventfd';
import { isWindowedDomain, type WindowedDomain } from '../../../kernel-sim/iommu/windowed-domain';
import { P4080_MPIC_MSI, T4240_MPIC_MSI, type MsiControllerSpec } from '../../../kernel-sim/machines';
import { windowedDoubleMachine } from '../../doubles/windowed-domain-double';
import { codeOf } from '../../helpers/expect-sys-error';

const A = '0000:01:00.0';
const B = '0000:01:00.1';
const BANK0 = 0xffe044000n;

interface World {
  kernel: Kernel;
  msi: MsiModule;
  a: PciDevice;
  b: PciDevice;
  domain: WindowedDomain;
  /** An eventfd (its kernel object), owned by a process. */
  eventfd(): EventFd;
}

/** Devices A and B share group 1, attached to a windowed domain: 2 GiB aperture, 8 windows of 256 MiB. */
function world(spec: MsiControllerSpec = P4080_MPIC_MSI, windows = true): World {
  const kernel = new Kernel({
    machine: windowedDoubleMachine(spec),
    devices: [
      { bdf: A, group: 1, driver: 'none', msixVectors: 512 },
      { bdf: B, group: 1, driver: 'none', msixVectors: 8 },
    ],
  });
  const group = kernel.group(1);
  const owner = {};
  group.claimDmaOwner(owner);
  const domain = kernel.iommus[0]!.allocDomain();
  if (!isWindowedDomain(domain)) throw new Error('the double is windowed');
  group.attachDomain(domain);
  if (windows) {
    domain.windows.setGeometry(0n, (1n << 31n) - 1n);
    domain.windows.setWindowCount(8);
  }
  const proc = kernel.spawn();
  return {
    kernel,
    msi: kernel.module<MsiModule>(MSI_MODULE_NAME),
    a: kernel.device(A),
    b: kernel.device(B),
    domain,
    eventfd: () => proc.fileOf(proc.eventfd())!.data as EventFd,
  };
}

/** Maps bank `bank`'s MSIIR page into window `window` of the domain. */
function mapBank(w: World, bank: number, window: number, prot = IOMMU_READ | IOMMU_WRITE): void {
  w.domain.windows.enableWindow(window, w.msi.bank(bank).doorbellPfn, 1, prot);
}

/** Frees what a world attached (vectors, domain, ownership), so the leak check passes. */
function teardown(w: World): void {
  w.msi.freeVectors(w.a);
  w.msi.freeVectors(w.b);
  w.kernel.group(1).detachDomain(w.domain);
  w.domain.free();
  w.kernel.group(1).releaseDmaOwner(w.kernel.group(1).userOwner!);
}

describe('composing through the windows', () => {
  test('the message is the IOVA of the window that maps the bank page + 0x140; data is the hwirq', () => {
    const w = world();
    mapBank(w, 2, 3);
    expect(w.msi.allocVectors(w.a, 'msix', 3)).toBe(3);
    // Window 3 of 256 MiB starts at 0x30000000.
    expect([0, 1, 2].map((v) => w.a.msiVector(v))).toEqual([0, 1, 2].map((data) => ({ address: 0x30000140n, data, enabled: false })));
    teardown(w);
  });

  test('no window maps a bank: EINVAL ("fail setting MSI") and nothing is allocated', () => {
    const w = world();
    expect(codeOf(() => w.msi.allocVectors(w.a, 'msix', 1))).toBe('EINVAL');
    expect(w.a.msiMode).toBe('none');
    expect(w.msi.counters()).toMatchObject({ composed: 0, vectors: 0 });
    teardown(w);
  });

  test('windows not set at all: EINVAL', () => {
    const w = world(P4080_MPIC_MSI, false);
    expect(codeOf(() => w.msi.allocVectors(w.a, 'msix', 1))).toBe('EINVAL');
    teardown(w);
  });

  test('a device without a domain gets the physical MSIIR address of the first bank', () => {
    const w = world();
    w.kernel.group(1).detachDomain(w.domain);
    expect(w.msi.allocVectors(w.a, 'msix', 1)).toBe(1);
    expect(w.a.msiVector(0)).toEqual({ address: BANK0 + 0x140n, data: 0, enabled: false });
    w.msi.freeVectors(w.a);
    w.kernel.group(1).attachDomain(w.domain);
    teardown(w);
  });

  test('bank choice: the lowest reachable bank with a free hwirq; then the next reachable one; ENOSPC when all are full', () => {
    const w = world();
    mapBank(w, 2, 6);
    mapBank(w, 1, 5);
    expect(w.msi.allocVectors(w.a, 'msix', 256)).toBe(256);
    expect(w.a.msiVector(255)).toMatchObject({ address: 0x50000140n, data: 255 });
    expect(w.msi.allocVectors(w.b, 'msix', 8)).toBe(8);
    expect(w.b.msiVector(0)).toMatchObject({ address: 0x60000140n, data: 0 });
    w.msi.freeVectors(w.b);
    mapBank(w, 0, 7);
    w.msi.freeVectors(w.a);
    expect(w.msi.allocVectors(w.a, 'msix', 512)).toBe(512);
    expect(w.msi.allocVectors(w.b, 'msix', 8)).toBe(8);
    expect(w.b.msiVector(0)).toMatchObject({ address: 0x60000140n, data: 0 });
    teardown(w);
  });

  test('reachable banks with too few free hwirqs: ENOSPC, nothing allocated', () => {
    const w = world();
    mapBank(w, 0, 1);
    expect(w.msi.allocVectors(w.a, 'msix', 250)).toBe(250);
    expect(codeOf(() => w.msi.allocVectors(w.b, 'msix', 8))).toBe('ENOSPC');
    expect(w.b.msiMode).toBe('none');
    expect(w.msi.counters().vectors).toBe(250);
    teardown(w);
  });

  test('no multiple-message MSI: 2 MSI vectors give 1 and allocate nothing', () => {
    const kernel = new Kernel({ machine: windowedDoubleMachine(P4080_MPIC_MSI), devices: [{ bdf: A, group: 1, driver: 'none', msiVectors: 4 }] });
    const msi = kernel.module<MsiModule>(MSI_MODULE_NAME);
    expect(msi.allocVectors(kernel.device(A), 'msi', 2)).toBe(1);
    expect(kernel.device(A).msiMode).toBe('none');
    expect(msi.counters()).toMatchObject({ composed: 0, vectors: 0 });
  });
});

describe('delivery', () => {
  test('raiseMsi writes MSIIR through the window; the hwirq\'s eventfd is signalled', () => {
    const w = world();
    mapBank(w, 1, 2);
    w.msi.allocVectors(w.a, 'msix', 2);
    const efd = w.eventfd();
    w.msi.setTrigger(w.a, 1, efd);
    expect(w.a.raiseMsi(1)).toBe(true);
    expect(w.a.raiseMsi(0)).toBe(false);
    expect(efd.count).toBe(1n);
    expect(w.msi.counters()).toMatchObject({ composed: 2, delivered: 1, dropped: 0, forged: 0 });
    teardown(w);
  });

  test('a read-only bank window: the MSI write faults, nothing is delivered', () => {
    const w = world();
    mapBank(w, 0, 2, IOMMU_READ);
    w.msi.allocVectors(w.a, 'msix', 1);
    const efd = w.eventfd();
    w.msi.setTrigger(w.a, 0, efd);
    expect(w.a.raiseMsi(0)).toBe(false);
    expect(w.kernel.dmaFaults().at(-1)).toMatchObject({ iova: 0x20000140n, reason: 'permission' });
    expect(efd.count).toBe(0n);
    teardown(w);
  });

  test.each([
    ['P4080 MSIIR: MSIR index in bits 7:5, bit in 4:0; higher bits ignored', P4080_MPIC_MSI, 256, 0x140n, [[(6 << 5) | 17, 209], [0xffffff00 | 5, 5]]],
    ['T4240 MSIIR1: MSIR index in bits 3:0, bit in 8:4; higher bits ignored', T4240_MPIC_MSI, 512, 0x148n, [[(17 << 4) | 6, 278], [0xfffffe00 | 3, 3]]],
  ] as const)('%s', (_name, spec, vectorsPerBank, msiirOffset, cases) => {
    const w = world(spec);
    mapBank(w, 0, 1);
    w.msi.allocVectors(w.a, 'msix', vectorsPerBank);
    for (const [data, hwirq] of cases) {
      const efd = w.eventfd();
      w.msi.setTrigger(w.a, hwirq, efd);
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, data, true);
      w.a.dmaWrite(0x10000000n + msiirOffset, bytes);
      expect(efd.count).toBe(1n);
      w.msi.setTrigger(w.a, hwirq, undefined);
    }
    teardown(w);
  });

  test('any device that reaches the bank can raise any of its hwirqs: delivered and counted as forged', () => {
    const w = world();
    mapBank(w, 0, 1);
    w.msi.allocVectors(w.a, 'msix', 4);
    const efd = w.eventfd();
    w.msi.setTrigger(w.a, 3, efd);
    w.b.dmaWrite(0x10000140n, Uint8Array.of(3, 0, 0, 0));
    expect(efd.count).toBe(1n);
    expect(w.msi.counters()).toMatchObject({ delivered: 1, forged: 1 });
    teardown(w);
  });

  test('writes elsewhere in the alias page, and to hwirqs nobody owns, are dropped', () => {
    const w = world();
    mapBank(w, 0, 1);
    w.msi.allocVectors(w.a, 'msix', 1);
    w.msi.setTrigger(w.a, 0, w.eventfd());
    w.a.dmaWrite(0x10000144n, Uint8Array.of(0, 0, 0, 0));
    w.a.dmaWrite(0x10000140n, Uint8Array.of(9, 0, 0, 0));
    expect(w.msi.counters()).toMatchObject({ delivered: 0, dropped: 2 });
    teardown(w);
  });
});

describe('the bank API (the type2 backend\'s MsiBankProvider)', () => {
  test('P4080 has 3 banks of 256 at CCSR 0x44000/0x45000/0x46000 + 0x140; T4240 4 of 512 + 0x148', () => {
    const p = world(P4080_MPIC_MSI);
    expect(p.msi.bankCount()).toBe(3);
    expect([0, 1, 2].map((i) => p.msi.bank(i))).toEqual([0, 1, 2].map((i) => ({
      index: i,
      doorbellPfn: 0xffe044 + i,
      doorbellAddress: BANK0 + BigInt(i) * 0x1000n + 0x140n,
      msiirOffset: 0x140,
      vectors: 256,
      owners: [],
    })));
    expect(codeOf(() => p.msi.bank(3))).toBe('ENODEV');
    teardown(p);
    const t = world(T4240_MPIC_MSI);
    expect(t.msi.bankCount()).toBe(4);
    expect(t.msi.bank(3)).toMatchObject({ doorbellPfn: 0xffe047, doorbellAddress: 0xffe047148n, msiirOffset: 0x148, vectors: 512 });
    teardown(t);
  });

  test('one owner at a time: claims nest; another owner is EBUSY unless shared; release gives the bank back', () => {
    const w = world();
    const banks = w.msi.msiBanks()!;
    const c1 = {};
    const c2 = {};
    banks.claimBank(0, c1, false);
    banks.claimBank(0, c1, false);
    expect(codeOf(() => banks.claimBank(0, c2, false))).toBe('EBUSY');
    banks.releaseBank(0, c1);
    expect(codeOf(() => banks.claimBank(0, c2, false))).toBe('EBUSY');
    banks.releaseBank(0, c1);
    banks.claimBank(0, c2, false);
    expect(w.msi.bank(0).owners).toEqual([c2]);
    banks.claimBank(0, c1, true);
    expect(w.msi.bank(0).owners).toEqual([c2, c1]);
    banks.releaseBank(0, c1);
    banks.releaseBank(0, c2);
    expect(banks.claimCount()).toBe(0);
    expect(codeOf(() => banks.claimBank(7, c1, false))).toBe('ENODEV');
    teardown(w);
  });

  test('a machine without an MPIC has no banks', () => {
    const kernel = new Kernel({ machine: 'x86-vtd' });
    const msi = kernel.module<MsiModule>(MSI_MODULE_NAME);
    expect(msi.bankCount()).toBe(0);
    expect(msi.msiBanks()).toBeUndefined();
    expect(codeOf(() => msi.bank(0))).toBe('ENODEV');
  });
});
