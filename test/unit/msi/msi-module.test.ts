/**
 * The MSI module (msi/msi-module.ts) and the x86 and Arm controllers: which controller each machine gets,
 * doorbell registration, vector allocation and masking, SW_MSI cookies, the allocation rules of the IRTE
 * table, the x86 vector matrix and the ITS event table, delivery checks, and the invariant checker.
 */
import { Kernel, MACHINE_PRESETS, MSI_MODULE_NAME, SimBugError, type MachineSpec, type MsiModule, type PciDevice } from '../../../index';
import type { EventFd } from '../../../kernel-sim/fs/eventfd';
import { IOMMU_READ, IOMMU_WRITE, TRANSLATE_NO_PERMISSION } from '../../../kernel-sim/iommu/iommu-domain';
import { remappableAddress } from '../../../msi/x86-remapping';
import { codeOf } from '../../helpers/expect-sys-error';

const A = '0000:06:0d.0';
const B = '0000:06:0e.0';

interface World {
  kernel: Kernel;
  msi: MsiModule;
  a: PciDevice;
  b: PciDevice;
  eventfd(): EventFd;
  /** Frees every vector (the leak check needs the eventfds' files released). */
  done(): void;
}

function world(machine: MachineSpec | keyof typeof MACHINE_PRESETS = 'x86-vtd'): World {
  const kernel = new Kernel({
    machine,
    devices: [
      { bdf: A, group: 26, driver: 'none', msiVectors: 8, msixVectors: 256 },
      { bdf: B, group: 27, driver: 'none', msiVectors: 1, msixVectors: 8 },
    ],
  });
  const msi = kernel.module<MsiModule>(MSI_MODULE_NAME);
  const proc = kernel.spawn();
  const a = kernel.device(A);
  const b = kernel.device(B);
  return {
    kernel,
    msi,
    a,
    b,
    eventfd: () => proc.fileOf(proc.eventfd())!.data as EventFd,
    done: () => {
      msi.freeVectors(a);
      msi.freeVectors(b);
    },
  };
}

function dword(value: number): Uint8Array {
  return Uint8Array.of(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
}

describe('one controller per machine', () => {
  test.each([
    ['x86-vtd', 'x86-remapping', { intercepts: ['x86-interrupt-remapping'], doorbells: [] }],
    ['x86-vtd-no-ir', 'x86-compat', { intercepts: ['x86-interrupt-compat'], doorbells: [] }],
    ['arm-smmuv3', 'arm-its', { intercepts: [], doorbells: ['its-gits-translater'] }],
    ['fsl-p4080', 'mpic', { intercepts: [], doorbells: ['mpic-msiir-0', 'mpic-msiir-1', 'mpic-msiir-2'] }],
    ['fsl-t4240', 'mpic', { intercepts: [], doorbells: ['mpic-msiir-0', 'mpic-msiir-1', 'mpic-msiir-2', 'mpic-msiir-3'] }],
  ] as const)('%s: %s, its doorbells in the kernel MMIO map', (machine, kind, names) => {
    const kernel = new Kernel({ machine });
    const msi = kernel.module<MsiModule>(MSI_MODULE_NAME);
    expect(msi.controller?.kind).toBe(kind);
    const regions = kernel.mmio.regions();
    expect({ intercepts: regions.intercepts.map((r) => r.name), doorbells: regions.doorbells.map((r) => r.name) }).toEqual(names);
  });

  test('the x86 intercept covers 0xFEE00000–0xFEEFFFFF; the ITS doorbell is the page of GITS_TRANSLATER', () => {
    const x86 = new Kernel({ machine: 'x86-vtd' }).mmio.regions().intercepts[0]!;
    expect([x86.firstPfn, x86.pageCount]).toEqual([0xfee00, 256]);
    const its = new Kernel({ machine: 'arm-smmuv3' }).mmio.regions().doorbells[0]!;
    expect([its.firstPfn, its.pageCount]).toEqual([0x8090, 1]);
  });

  test('a machine description without `msi` gets one from its reserved regions and MSI isolation', () => {
    const strip = ({ msi: _msi, ...rest }: MachineSpec): MachineSpec => rest;
    const kind = (spec: MachineSpec): string | undefined => new Kernel({ machine: spec }).module<MsiModule>(MSI_MODULE_NAME).spec.kind;
    expect(kind(strip({ ...MACHINE_PRESETS['x86-vtd'], name: 'mine' }))).toBe('x86-remapping');
    expect(kind(strip({ ...MACHINE_PRESETS['x86-vtd-no-ir'], name: 'mine' }))).toBe('x86-compat');
    expect(kind(strip({ ...MACHINE_PRESETS['arm-smmuv3'], name: 'mine' }))).toBe('arm-its');
    expect(kind(strip({ ...MACHINE_PRESETS['fsl-p4080'] }))).toBe('mpic');
    expect(kind(strip({ ...MACHINE_PRESETS['x86-vtd'], name: 'mine', iommus: [{ ...MACHINE_PRESETS['x86-vtd'].iommus[0], reservedRegions: [] }] }))).toBe('none');
  });

  test('a machine with no MSI controller refuses allocation with ENODEV', () => {
    const w = world({ ...MACHINE_PRESETS['x86-vtd'], msi: { kind: 'none' } });
    expect(codeOf(() => w.msi.allocVectors(w.a, 'msi', 1))).toBe('ENODEV');
    expect(w.a.msiMode).toBe('none');
  });
});

describe('vectors: allocate, set a trigger, free', () => {
  test('allocation enables the capability with every message written and every vector masked', () => {
    const w = world();
    expect(w.msi.allocVectors(w.a, 'msix', 2)).toBe(2);
    expect(w.a.msiMode).toBe('msix');
    expect([0, 1].map((v) => w.a.msiVector(v)?.enabled)).toEqual([false, false]);
    expect(w.a.raiseMsi(0)).toBe(false);
    const efd = w.eventfd();
    w.msi.setTrigger(w.a, 1, efd);
    expect(w.a.msiVector(1)?.enabled).toBe(true);
    expect(w.a.raiseMsi(1)).toBe(true);
    expect(efd.count).toBe(1n);
    w.msi.setTrigger(w.a, 1, undefined);
    expect(w.a.raiseMsi(1)).toBe(false);
    w.msi.freeVectors(w.a);
    expect(w.a.msiMode).toBe('none');
    expect(w.msi.counters()).toEqual({ composed: 2, delivered: 1, dropped: 0, forged: 0, vectors: 0, cookies: 0 });
  });

  test('misuse is a simulator bug: allocating twice, a vector count the function lacks, a vector not allocated', () => {
    const w = world();
    w.msi.allocVectors(w.a, 'msi', 1);
    expect(() => w.msi.allocVectors(w.a, 'msi', 1)).toThrow(SimBugError);
    expect(() => w.msi.allocVectors(w.b, 'msix', 9)).toThrow(SimBugError);
    expect(() => w.msi.setTrigger(w.a, 1, undefined)).toThrow(SimBugError);
    w.done();
  });

  test('resetCounters zeroes the message counters', () => {
    const w = world();
    w.msi.allocVectors(w.a, 'msi', 1);
    w.msi.resetCounters();
    expect(w.msi.counters()).toMatchObject({ composed: 0, delivered: 0, vectors: 1 });
    w.done();
  });

  test('the invariant checker reports a vector that signals a released eventfd', () => {
    const w = world();
    const proc = w.kernel.spawn();
    const fd = proc.eventfd();
    w.msi.allocVectors(w.a, 'msi', 1);
    // A handler set without holding the eventfd's file (the caller's job) dangles once the fd closes.
    w.msi.setTrigger(w.a, 0, proc.fileOf(fd)!.data as EventFd);
    proc.close(fd);
    const problems: string[] = [];
    w.msi.checkInvariants(problems);
    expect(problems).toEqual([`msi: ${A} vector 0 signals a released eventfd`]);
    w.done();
  });
});

describe('SW_MSI cookies', () => {
  test('prepareCookie maps the ITS doorbell write-only at the base; EBUSY a second time; releaseCookie unmaps', () => {
    const w = world('arm-smmuv3');
    const domain = w.kernel.iommus[0]!.allocDomain();
    w.msi.prepareCookie(domain, 0x8000000n);
    expect(domain.iovaToPfn(0x8000)).toBe(0x8090);
    expect(domain.translate(0x8000, IOMMU_READ)).toBe(TRANSLATE_NO_PERMISSION);
    expect(domain.translate(0x8000, IOMMU_WRITE)).toBe(0x8090);
    expect(w.msi.cookiePages(domain)).toBe(1);
    expect(w.msi.cookieBase(domain)).toBe(0x8000000n);
    expect(codeOf(() => w.msi.prepareCookie(domain, 0x8000000n))).toBe('EBUSY');
    w.msi.releaseCookie(domain);
    expect(domain.mappedPages()).toBe(0);
    expect(w.msi.cookiePages(domain)).toBe(0);
    domain.free();
  });

  test('a cookie whose page is already mapped fails whole (EEXIST) and records nothing', () => {
    const w = world('arm-smmuv3');
    const domain = w.kernel.iommus[0]!.allocDomain();
    domain.map(0x8000, 0x100000, 1, IOMMU_READ);
    expect(codeOf(() => w.msi.prepareCookie(domain, 0x8000000n))).toBe('EEXIST');
    expect(w.msi.cookiePages(domain)).toBe(0);
    domain.unmap(0x8000, 1);
    domain.free();
  });

  test('on x86 a cookie maps nothing: the interrupt range is intercepted, not translated', () => {
    const w = world('x86-vtd');
    const domain = w.kernel.iommus[0]!.allocDomain();
    w.msi.prepareCookie(domain, 0x8000000n);
    expect(w.msi.cookiePages(domain)).toBe(0);
    expect(domain.mappedPages()).toBe(0);
    w.msi.releaseCookie(domain);
    domain.free();
  });

  test('composing for a device whose domain holds the cookie gives the cookie IOVA; without a domain, the physical doorbell', () => {
    const w = world('arm-smmuv3');
    const group = w.kernel.group(26);
    group.claimDmaOwner(group);
    const domain = w.kernel.iommus[0]!.allocDomain();
    group.attachDomain(domain);
    w.msi.prepareCookie(domain, 0x8000000n);
    w.msi.allocVectors(w.a, 'msi', 1);
    w.msi.allocVectors(w.b, 'msi', 1);
    expect(w.a.msiVector(0)?.address).toBe(0x8000040n);
    expect(w.b.msiVector(0)?.address).toBe(0x08090040n);
    w.done();
    w.msi.releaseCookie(domain);
    group.detachDomain(domain);
    domain.free();
    group.releaseDmaOwner(group);
  });
});

describe('x86 interrupt remapping: the IRTE table', () => {
  test('an MSI capability takes an aligned power-of-two block; MSI-X vectors one IRTE each', () => {
    const w = world('x86-vtd');
    w.msi.allocVectors(w.b, 'msix', 1);
    w.msi.allocVectors(w.a, 'msi', 3);
    expect(w.b.msiVector(0)).toMatchObject({ address: remappableAddress(0), data: 0 });
    expect([0, 1, 2].map((v) => w.a.msiVector(v))).toEqual([0, 1, 2].map((data) => ({ address: remappableAddress(4), data, enabled: false })));
    w.done();
  });

  test('the handle is split in the address: bits 14:0 at 19:5, bit 15 at bit 2; bit 4 remappable, bit 3 SHV', () => {
    expect(remappableAddress(0)).toBe(0xfee00018n);
    expect(remappableAddress(0x7fff)).toBe(0xfeeffff8n);
    expect(remappableAddress(0x8001)).toBe(0xfee0003cn);
  });

  test('the sub-handle of the block\'s padding names no interrupt: dropped', () => {
    const w = world('x86-vtd');
    w.msi.allocVectors(w.a, 'msi', 3);
    w.a.dmaWrite(remappableAddress(0), dword(3));
    expect(w.msi.counters()).toMatchObject({ delivered: 0, dropped: 1 });
    w.done();
  });

  test('freed IRTEs, padding included, are handed out again', () => {
    const w = world('x86-vtd');
    w.msi.allocVectors(w.a, 'msi', 3);
    w.msi.freeVectors(w.a);
    w.msi.allocVectors(w.b, 'msix', 4);
    expect([0, 1, 2, 3].map((v) => w.b.msiVector(v)?.address)).toEqual([0, 1, 2, 3].map(remappableAddress));
    w.done();
  });
});

describe('x86 compatibility format: the vector matrix', () => {
  test('vectors spread over the CPUs with the fewest, lowest vector first', () => {
    const w = world('x86-vtd-no-ir');
    w.msi.allocVectors(w.a, 'msix', 10);
    const targets = Array.from({ length: 10 }, (_, v) => w.a.msiVector(v)!).map((m) => [Number((m.address >> 12n) & 0xffn), m.data]);
    expect(targets).toEqual([[0, 0x21], [1, 0x21], [2, 0x21], [3, 0x21], [4, 0x21], [5, 0x21], [6, 0x21], [7, 0x21], [0, 0x22], [1, 0x22]]);
    w.done();
  });

  test('with one CPU, 203 vectors (0x21–0xEB) fit and the 204th is ENOSPC', () => {
    const w = world({ ...MACHINE_PRESETS['x86-vtd-no-ir'], msi: { kind: 'x86-compat', cpus: 1 } });
    w.msi.allocVectors(w.a, 'msix', 203);
    expect(w.a.msiVector(202)?.data).toBe(0xeb);
    expect(codeOf(() => w.msi.allocVectors(w.b, 'msix', 1))).toBe('ENOSPC');
    w.done();
  });

  test('a message naming a vector nobody holds is dropped', () => {
    const w = world('x86-vtd-no-ir');
    w.a.dmaWrite(0xfee03000n, dword(0x40));
    expect(w.msi.counters()).toMatchObject({ delivered: 0, dropped: 1 });
  });
});

describe('Arm ITS: per-device event tables', () => {
  test('each device numbers its events from 0; an MSI capability takes an aligned block', () => {
    const w = world('arm-smmuv3');
    w.msi.allocVectors(w.a, 'msi', 3);
    w.msi.allocVectors(w.b, 'msix', 2);
    expect([0, 1, 2].map((v) => w.a.msiVector(v)?.data)).toEqual([0, 1, 2]);
    expect([0, 1].map((v) => w.b.msiVector(v)?.data)).toEqual([0, 1]);
    w.done();
  });

  test('a write to the doorbell page other than GITS_TRANSLATER is dropped', () => {
    const w = world('arm-smmuv3');
    const group = w.kernel.group(26);
    group.claimDmaOwner(group);
    const domain = w.kernel.iommus[0]!.allocDomain();
    group.attachDomain(domain);
    w.msi.prepareCookie(domain, 0x8000000n);
    w.msi.allocVectors(w.a, 'msi', 1);
    const efd = w.eventfd();
    w.msi.setTrigger(w.a, 0, efd);
    w.a.dmaWrite(0x8000044n, dword(0));
    w.a.dmaWrite(0x8000040n, dword(0));
    expect(efd.count).toBe(1n);
    expect(w.msi.counters()).toMatchObject({ delivered: 1, dropped: 1 });
    w.done();
    w.msi.releaseCookie(domain);
    group.detachDomain(domain);
    domain.free();
    group.releaseDmaOwner(group);
  });
});
