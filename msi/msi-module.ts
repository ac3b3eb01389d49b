/**
 * The MSI kernel module: one MSI controller per machine (chosen from `MachineSpec.msi`), its doorbells
 * in the kernel's MMIO map, the vectors devices have allocated, the SW_MSI cookies of IOMMU domains,
 * and the MPIC bank bookkeeping of the windowed model. Loaded as a built-in module before VFIO; reached
 * with `kernel.module<MsiModule>(MSI_MODULE_NAME)`.
 *
 * What it stands for in Linux, and the simulator's simplifications:
 * - `allocVectors` is pci_alloc_irq_vectors(dev, n, n, PCI_IRQ_MSI | PCI_IRQ_MSIX) as vfio_msi_enable
 *   calls it: the controller composes every message (all or nothing), the capability is enabled and the
 *   messages are written to the device (pci_write_msi_msg), every vector masked. Multiple-message MSI on
 *   a controller without it (x86 without remapping, MPIC) gives 1: nothing is allocated and the caller
 *   learns how many it could have (__pci_enable_msi_range retries with fewer; vfio returns the count).
 * - `setTrigger(device, v, eventfd)` is request_irq with vfio_msihandler: the vector is unmasked and a
 *   delivered interrupt signals the eventfd; `setTrigger(…, undefined)` is free_irq (masked again). The
 *   caller (VFIO) holds the eventfd file's reference; this module only points at the eventfd while it
 *   is set.
 * - `freeVectors` is pci_free_irq_vectors: vectors freed, capability disabled.
 * - `prepareCookie(domain, base)` is iommu_get_msi_cookie plus the doorbell mapping of
 *   iommu_dma_prepare_msi, done at once: every doorbell page of the controller is mapped write-only at
 *   base, base + 4 KiB, … (Linux maps a doorbell at the first MSI allocation and keeps it until the
 *   domain is freed; mapping at cookie time differs only before the first MSI). `releaseCookie` unmaps
 *   them; it must run before the domain is freed. type1 calls both (vfio_iommu_type1_attach_group step
 *   11, domain teardown).
 * - Composing finds the doorbell's address as the device sees it (ComposeContext.doorbellIova): the
 *   cookie IOVA, the IOVA of the window that maps the doorbell page (windowed domains), or the physical
 *   address (no domain, or a domain without a cookie).
 * - The MPIC bank API (`bankCount`, `bank`, `claimBank`, `releaseBank`) is documented in ./mpic.ts; on
 *   other machines there are 0 banks and `bank` is ENODEV. `msiBanks()` hands the MPIC to the type2
 *   backend as its MsiBankProvider (undefined on machines without banks).
 * - A machine whose controller kind is 'none' has no MSI: allocation is ENODEV.
 */
import { SimBugError, sysError } from '../kernel-sim/errors';
import type { EventFd } from '../kernel-sim/fs/eventfd';
import { IOMMU_WRITE, type IommuDomain } from '../kernel-sim/iommu/iommu-domain';
import { isWindowedDomain } from '../kernel-sim/iommu/windowed-domain';
import type { Kernel, KernelModule } from '../kernel-sim/kernel';
import {
  ARM_ITS_MSI,
  P4080_MPIC_MSI,
  T4240_MPIC_MSI,
  X86_COMPAT_MSI,
  X86_REMAPPING_MSI,
  type MachineSpec,
  type MsiControllerSpec,
} from '../kernel-sim/machines';
import type { PciDevice } from '../kernel-sim/pci/pci-device';
import { ArmItsController } from './arm-its';
import { MpicController, type MpicBankInfo } from './mpic';
import type { ComposeContext, MsiCapability, MsiController, MsiCounters, MsiVector } from './msi-controller';
import { X86CompatController } from './x86-compat';
import { X86RemappingController } from './x86-remapping';

export const MSI_MODULE_NAME = 'msi';

/** The vectors one device has allocated. */
interface DeviceVectors {
  readonly capability: MsiCapability;
  readonly vectors: readonly MsiVector[];
}

/** A domain's SW_MSI cookie: its doorbell pages, mapped from `basePfn` on. */
interface MsiCookie {
  readonly basePfn: number;
  readonly doorbellPfns: readonly number[];
}

/** A snapshot of the module's counters. */
export interface MsiModuleCounters extends MsiCounters {
  /** Vectors allocated now. */
  readonly vectors: number;
  /** Domains holding an SW_MSI cookie now. */
  readonly cookies: number;
}

/** The controller a machine has when its description does not say. */
export function defaultMsiSpec(machine: MachineSpec): MsiControllerSpec {
  if (machine.name === 'fsl-p4080') return P4080_MPIC_MSI;
  if (machine.name === 'fsl-t4240') return T4240_MPIC_MSI;
  const regions = machine.iommus.flatMap((unit) => unit.reservedRegions);
  if (regions.some((r) => r.type === 'sw-msi')) return ARM_ITS_MSI;
  if (regions.some((r) => r.type === 'msi')) return machine.iommus.every((u) => u.isolatedMsi) ? X86_REMAPPING_MSI : X86_COMPAT_MSI;
  return { kind: 'none' };
}

function createController(spec: MsiControllerSpec): MsiController | undefined {
  switch (spec.kind) {
    case 'x86-remapping': return new X86RemappingController();
    case 'x86-compat': return new X86CompatController(spec.cpus);
    case 'arm-its': return new ArmItsController(spec.translater);
    case 'mpic': return new MpicController(spec);
    case 'none': return undefined;
  }
}

/** The MSI layer of one kernel; see the file header. */
export class MsiModule implements KernelModule {
  readonly name = MSI_MODULE_NAME;
  readonly spec: MsiControllerSpec;
  /** The machine's controller; undefined when it has none. */
  readonly controller: MsiController | undefined;
  private readonly _mpic: MpicController | undefined;
  private readonly _devices = new Map<PciDevice, DeviceVectors>();
  private readonly _cookies = new Map<IommuDomain, MsiCookie>();
  private readonly _ctx: ComposeContext = { doorbellIova: (device, phys) => this.doorbellIova(device, phys) };

  constructor(private readonly _kernel: Kernel) {
    this.spec = _kernel.machine.msi ?? defaultMsiSpec(_kernel.machine);
    this.controller = createController(this.spec);
    this._mpic = this.controller instanceof MpicController ? this.controller : undefined;
    for (const doorbell of this.controller?.doorbells() ?? []) {
      if (doorbell.intercept) _kernel.mmio.intercept(doorbell.name, doorbell.pfn, doorbell.pageCount, doorbell.onWrite);
      else _kernel.mmio.register(doorbell.name, doorbell.pfn, doorbell.pageCount, doorbell.onWrite);
    }
  }

  // ---- device vectors ----------------------------------------------------------------------------

  /**
   * Allocates vectors 0 … count − 1 of the device's MSI or MSI-X capability, composes and writes their
   * messages, enables the capability with every vector masked. All or nothing.
   * @returns `count`; or 1 without allocating anything when `count` > 1 MSI vectors are asked of a
   *   controller without multiple-message MSI
   * @throws SysError ENODEV (no MSI controller), ENOSPC (no free interrupt), EINVAL (the device cannot
   *   reach a doorbell: a PAMU domain without an MSI bank window)
   * @throws SimBugError when the device already has vectors, or `count` is not 1 … the capability's size
   */
  allocVectors(device: PciDevice, capability: MsiCapability, count: number): number {
    if (this._devices.has(device)) throw new SimBugError(`${device.bdf} already has MSI vectors`);
    const max = capability === 'msi' ? device.msiVectors : device.msixVectors;
    if (!Number.isInteger(count) || count < 1 || count > max) throw new SimBugError(`${device.bdf}: ${count} ${capability} vectors asked, the function has ${max}`);
    const controller = this.controller;
    if (controller === undefined) throw sysError('ENODEV', 'the machine has no MSI controller');
    if (capability === 'msi' && count > 1 && !controller.multiMsi) return 1;
    const vectors = controller.allocate(device, capability, count, this._ctx);
    device.enableMsi(capability, count);
    for (const v of vectors) device.programMsiVector(v.vector, v.address, v.data);
    this._devices.set(device, { capability, vectors });
    return count;
  }

  /** The device's allocated vectors, or undefined. */
  vectorsOf(device: PciDevice): readonly MsiVector[] | undefined {
    return this._devices.get(device)?.vectors;
  }

  /**
   * Sets (request_irq) or clears (free_irq) the eventfd a vector's interrupts signal; the vector is
   * unmasked while one is set. The caller keeps the eventfd's file referenced while it is set.
   * @throws SimBugError for a vector the device has not allocated
   */
  setTrigger(device: PciDevice, vector: number, trigger: EventFd | undefined): void {
    const v = this._devices.get(device)?.vectors[vector];
    if (v === undefined) throw new SimBugError(`${device.bdf}: MSI vector ${vector} is not allocated`);
    v.trigger = trigger;
    device.maskMsiVector(vector, trigger === undefined);
  }

  /** Frees every vector of the device and disables its capability (pci_free_irq_vectors). */
  freeVectors(device: PciDevice): void {
    const entry = this._devices.get(device);
    if (entry === undefined) return;
    for (const v of entry.vectors) v.trigger = undefined;
    this.controller!.free(entry.vectors);
    device.disableMsi();
    this._devices.delete(device);
  }

  /**
   * Where `device` reaches the physical doorbell address `phys`; see ComposeContext.doorbellIova.
   * @returns the address to put in the message, or undefined when a windowed domain has no window on it
   */
  doorbellIova(device: PciDevice, phys: bigint): bigint | undefined {
    const domain = device.group.domain;
    if (domain === undefined) return phys;
    const pfn = Number(phys >> 12n);
    const offset = phys & 0xfffn;
    const cookie = this._cookies.get(domain);
    if (cookie !== undefined) {
      const at = cookie.doorbellPfns.indexOf(pfn);
      return at < 0 ? phys : (BigInt(cookie.basePfn + at) << 12n) | offset;
    }
    if (isWindowedDomain(domain)) {
      // fsl_iommu_get_iova: the window whose translation of its base is the doorbell page.
      const windows = domain.windows;
      const geometry = windows.geometry();
      const size = windows.windowBytes();
      if (geometry === undefined || size === 0n) return undefined;
      const count = windows.windowCount();
      for (let i = 0; i < count; i++) {
        if (windows.window(i)?.pfn === pfn) return geometry.start + BigInt(i) * size + offset;
      }
      return undefined;
    }
    return phys;
  }

  // ---- SW_MSI cookies ----------------------------------------------------------------------------

  /**
   * iommu_get_msi_cookie(domain, base) with the doorbells mapped at once: each doorbell page of the
   * controller at base + k · 4 KiB, write-only. All or nothing.
   * @throws SysError EBUSY (the domain has a cookie), the domain's map errors
   */
  prepareCookie(domain: IommuDomain, base: bigint): void {
    if (this._cookies.has(domain)) throw sysError('EBUSY', 'the domain already has an MSI cookie');
    if ((base & 0xfffn) !== 0n) throw new SimBugError(`MSI cookie base 0x${base.toString(16)} is not page aligned`);
    const basePfn = Number(base >> 12n);
    const doorbellPfns = this.controller?.cookieDoorbellPfns ?? [];
    let mapped = 0;
    try {
      for (; mapped < doorbellPfns.length; mapped++) domain.map(basePfn + mapped, doorbellPfns[mapped]!, 1, IOMMU_WRITE);
    } catch (err) {
      if (mapped > 0) domain.unmap(basePfn, mapped);
      throw err;
    }
    this._cookies.set(domain, { basePfn, doorbellPfns });
  }

  /** Unmaps a domain's cookie doorbells and forgets the cookie (iommu_put_dma_cookie); none: nothing. */
  releaseCookie(domain: IommuDomain): void {
    const cookie = this._cookies.get(domain);
    if (cookie === undefined) return;
    if (cookie.doorbellPfns.length > 0) domain.unmap(cookie.basePfn, cookie.doorbellPfns.length);
    this._cookies.delete(domain);
  }

  /** Pages the domain's cookie maps (0 without a cookie): mappings no VFIO record accounts for. */
  cookiePages(domain: IommuDomain): number {
    return this._cookies.get(domain)?.doorbellPfns.length ?? 0;
  }

  /** The IOVA of the domain's cookie, or undefined. */
  cookieBase(domain: IommuDomain): bigint | undefined {
    const cookie = this._cookies.get(domain);
    return cookie === undefined ? undefined : BigInt(cookie.basePfn) << 12n;
  }

  // ---- MPIC banks (the type2 backend's API; see ./mpic.ts) ---------------------------------------

  /** MSI banks of the machine (0 unless its controller is an MPIC). */
  bankCount(): number {
    return this._mpic?.bankCount() ?? 0;
  }

  /** @throws SysError ENODEV (no such bank) */
  bank(index: number): MpicBankInfo {
    return this._mpicOrNoDev().bank(index);
  }

  /** @throws SysError ENODEV (no such bank), EBUSY (another owner maps it and `shared` is false) */
  claimBank(index: number, owner: object, shared = false): void {
    this._mpicOrNoDev().claimBank(index, owner, shared);
  }

  /** @throws SysError ENODEV (no such bank) */
  releaseBank(index: number, owner: object): void {
    this._mpicOrNoDev().releaseBank(index, owner);
  }

  /** The machine's MSI banks for the windowed backend, or undefined when it has none. */
  msiBanks(): MpicController | undefined {
    return this._mpic;
  }

  private _mpicOrNoDev(): MpicController {
    if (this._mpic === undefined) throw sysError('ENODEV', 'the machine has no MSI banks');
    return this._mpic;
  }

  // ---- reports and invariants --------------------------------------------------------------------

  counters(): MsiModuleCounters {
    const c = this.controller?.counters ?? { composed: 0, delivered: 0, dropped: 0, forged: 0 };
    return { ...c, vectors: this.controller?.liveVectors() ?? 0, cookies: this._cookies.size };
  }

  /** Zeroes the message counters. */
  resetCounters(): void {
    const c = this.controller?.counters;
    if (c !== undefined) c.composed = c.delivered = c.dropped = c.forged = 0;
  }

  checkInvariants(problems: string[]): void {
    let vectors = 0;
    for (const [device, entry] of this._devices) {
      vectors += entry.vectors.length;
      if (device.msiMode !== entry.capability || device.msiVectorCount !== entry.vectors.length) {
        problems.push(`msi: ${device.bdf} has ${entry.vectors.length} ${entry.capability} vectors, its capability says ${device.msiMode} × ${device.msiVectorCount}`);
      }
      for (const v of entry.vectors) {
        if (v.trigger?.isReleased === true) problems.push(`msi: ${device.bdf} vector ${v.vector} signals a released eventfd`);
        if (device.msiVector(v.vector)?.enabled !== (v.trigger !== undefined)) problems.push(`msi: ${device.bdf} vector ${v.vector} mask disagrees with its handler`);
      }
    }
    const live = this.controller?.liveVectors() ?? 0;
    if (live !== vectors) problems.push(`msi: the controller holds ${live} vectors, devices ${vectors}`);
    for (const [domain, cookie] of this._cookies) {
      cookie.doorbellPfns.forEach((pfn, k) => {
        let got: number;
        try {
          got = domain.iovaToPfn(cookie.basePfn + k);
        } catch {
          problems.push(`msi: a cookie outlived its domain ${domain.id}`);
          return;
        }
        if (got !== pfn) problems.push(`msi: domain ${domain.id} cookie page ${k} maps frame ${got}, not the doorbell ${pfn}`);
      });
    }
    for (const doorbell of this.controller?.doorbells() ?? []) {
      if (doorbell.intercept) continue;
      for (let p = 0; p < doorbell.pageCount; p++) {
        if (this._kernel.phys.refCount(doorbell.pfn + p) !== 0) problems.push(`msi: RAM frame ${doorbell.pfn + p} in use behind doorbell ${doorbell.name}`);
      }
    }
  }
}

/** The module factory index.ts registers as built in, before VFIO. */
export function msiModule(kernel: Kernel): MsiModule {
  return new MsiModule(kernel);
}
