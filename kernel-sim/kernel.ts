/**
 * The simulated machine and its kernel: physical memory, IOMMU units, the PCI topology and its IOMMU
 * groups, drivers, processes, /dev nodes, module parameters, and the invariant checker.
 *
 * Kernel-level policy (VFIO and its backends) lives in modules. Built-in modules are registered once
 * with `Kernel.registerBuiltinModule` (module_init) and instantiated by every Kernel; the package's
 * index.ts registers VFIO that way, so `new Kernel()` from 'vfio-sim' always has /dev/vfio/vfio.
 */
import { DmaFaultLog, type DmaFaultRecord } from './dma';
import { SimBugError, sysError } from './errors';
import { Devfs } from './fs/devfs';
import type { EventFd } from './fs/eventfd';
import { FaultInjector } from './fault-injector';
import type { IommuHardware, ReservedRegion } from './iommu/iommu-domain';
import { IommuGroup } from './iommu/iommu-group';
import { PagedIommu } from './iommu/paged/paged-iommu';
import { WindowedIommu } from './iommu/windowed/windowed-iommu';
import { machinePreset, pciControllerLiodn, type IommuUnitSpec, type MachineName, type MachineSpec } from './machines';
import type { AddressSpace } from './mm/address-space';
import { ANON_BASE_PFN, HUGE_BASE_PFN, PhysMemory, type PhysMemoryOptions } from './mm/phys-mem';
import { Mmio } from './mmio';
import { PciDevice, type PciDeviceSpec } from './pci/pci-device';
import { HOST_DRIVER, PCI_STUB_DRIVER, type PciDriver } from './pci/pci-driver';
import { Process, type SpawnOptions } from './process';

/** Module parameters (the type1 module's: /sys/module/vfio_iommu_type1/parameters). */
export interface KernelParams {
  /** Attach groups whose MSIs are not isolated (default false). */
  allowUnsafeInterrupts: boolean;
  /** vfio_dma entries per container (default 65535, U16_MAX); read when a container's IOMMU is set. */
  dmaEntryLimit: number;
  /** Map with 4 KiB IOPTEs only (default false). */
  disableHugepages: boolean;
}

/** How a Kernel is built. */
export interface KernelOptions extends Partial<KernelParams> {
  /** A preset name or a full machine description. Default 'x86-vtd'. */
  machine?: MachineName | MachineSpec;
  /** Changes to the preset's IOMMU units, merged into each (e.g. `{ iotlbEntries: 0 }`). */
  iommuOverrides?: Partial<Omit<IommuUnitSpec, 'model'>> & Record<string, unknown>;
  /** The PCI topology. */
  devices?: PciDeviceSpec[];
  memory?: PhysMemoryOptions;
}

/** A kernel module: VFIO, or a user's. */
export interface KernelModule {
  readonly name: string;
  /** Pinned 4 KiB pages this module holds now. */
  pinnedPages?(): number;
  /** Pages this module has charged to an address space's locked_vm. */
  lockedVm?(mm: AddressSpace): number;
  /** Appends a description of each broken invariant to `problems`. */
  checkInvariants?(problems: string[]): void;
}

export type KernelModuleFactory = (kernel: Kernel) => KernelModule;

/** The simulated machine. */
export class Kernel {
  private static readonly _builtins: KernelModuleFactory[] = [];
  private static _tracked: Set<Kernel> | undefined;

  readonly machine: MachineSpec;
  readonly params: KernelParams;
  readonly phys: PhysMemory;
  readonly devfs = new Devfs();
  readonly faultInjector = new FaultInjector();
  readonly dmaFaultLog = new DmaFaultLog();
  readonly iommus: readonly IommuHardware[];
  /** Doorbells and interrupt address ranges that device writes reach instead of RAM. */
  readonly mmio: Mmio;
  /** Every eventfd whose file is alive (fds and kernel references); a leak shows at shutdown. */
  readonly eventfds = new Set<EventFd>();

  private readonly _devices = new Map<string, PciDevice>();
  private readonly _groups = new Map<number, IommuGroup>();
  private readonly _drivers = new Map<string, PciDriver>();
  private readonly _modules = new Map<string, KernelModule>();
  private readonly _processes = new Set<Process>();
  private _nextPid = 1;

  /** Registers a module every Kernel made from now on will load (module_init of built-in code). */
  static registerBuiltinModule(factory: KernelModuleFactory): void {
    if (!Kernel._builtins.includes(factory)) Kernel._builtins.push(factory);
  }

  /** Test support: remember every Kernel made from now on, so a harness can check each for leaks. */
  static trackInstances(on: boolean): void {
    Kernel._tracked = on ? new Set() : undefined;
  }

  /** The kernels made since tracking started or since the last call; the list is emptied. */
  static takeTracked(): Kernel[] {
    const kernels = [...(Kernel._tracked ?? [])];
    Kernel._tracked?.clear();
    return kernels;
  }

  constructor(options: KernelOptions = {}) {
    const base = typeof options.machine === 'object' ? options.machine : machinePreset(options.machine ?? 'x86-vtd');
    const overrides = options.iommuOverrides ?? {};
    this.machine = { ...base, iommus: base.iommus.map((unit) => ({ ...unit, ...overrides }) as IommuUnitSpec) };
    this.params = {
      allowUnsafeInterrupts: options.allowUnsafeInterrupts ?? false,
      dmaEntryLimit: options.dmaEntryLimit ?? 65535,
      disableHugepages: options.disableHugepages ?? false,
    };
    this.phys = new PhysMemory({ ...this.machine.memory, ...options.memory });
    this.mmio = new Mmio([
      [ANON_BASE_PFN, this.phys.anonFrames],
      [HUGE_BASE_PFN, this.phys.hugeFrames],
    ]);
    this.iommus = this.machine.iommus.map(createHardware);
    this.registerDriver(HOST_DRIVER);
    this.registerDriver(PCI_STUB_DRIVER);
    for (const spec of options.devices ?? []) this._addDevice(spec);
    for (const factory of Kernel._builtins) this.loadModule(factory);
    // Boot-time binding happens after the modules registered their drivers (vfio-pci).
    for (const spec of options.devices ?? []) {
      const device = this.device(spec.bdf);
      const driver = spec.driver ?? (device.isBridge ? 'none' : 'host');
      if (driver !== 'none') this.bindDriver(spec.bdf, driver);
    }
    Kernel._tracked?.add(this);
  }

  private _addDevice(spec: PciDeviceSpec): void {
    if (this._devices.has(spec.bdf)) throw new RangeError(`device ${spec.bdf} listed twice`);
    const unitIndex = spec.iommu ?? 0;
    const unit = this.machine.iommus[unitIndex];
    const hardware = this.iommus[unitIndex];
    if (unit === undefined || hardware === undefined) throw new RangeError(`device ${spec.bdf} names IOMMU unit ${unitIndex}, which the machine lacks`);
    let group = this._groups.get(spec.group);
    if (group === undefined) {
      group = new IommuGroup(spec.group, hardware, unit.reservedRegions, unit.isolatedMsi);
      this._groups.set(spec.group, group);
    } else if (group.hardware !== hardware) {
      throw new RangeError(`group ${spec.group} would span two IOMMU units`);
    }
    // PAMU identifies requesters by LIODN: a device without one uses its PCIe controller's.
    const liodn = spec.liodn ?? (unit.model === 'windowed' ? pciControllerLiodn(spec.bdf) : undefined);
    const device = new PciDevice({ ...spec, liodn }, group, { phys: this.phys, faults: this.dmaFaultLog, mmio: this.mmio });
    group.devices.push(device);
    this._devices.set(spec.bdf, device);
  }

  /** Instantiates a module and keeps it. */
  loadModule(factory: KernelModuleFactory): KernelModule {
    const module = factory(this);
    if (this._modules.has(module.name)) throw new SimBugError(`module ${module.name} loaded twice`);
    this._modules.set(module.name, module);
    return module;
  }

  /** A loaded module by name. @throws RangeError when it is not loaded */
  module<T extends KernelModule>(name: string): T {
    const module = this._modules.get(name);
    if (module === undefined) throw new RangeError(`module ${name} is not loaded`);
    return module as T;
  }

  /** A loaded module by name, or undefined (for optional collaborations between modules). */
  findModule<T extends KernelModule>(name: string): T | undefined {
    return this._modules.get(name) as T | undefined;
  }

  // ---- processes ---------------------------------------------------------------------------------

  /** Starts a process. */
  spawn(options: SpawnOptions = {}): Process {
    const process = new Process(this, this._nextPid++, options);
    this._processes.add(process);
    return process;
  }

  /** Called by Process.exit. */
  reap(process: Process): void {
    this._processes.delete(process);
  }

  processes(): Process[] {
    return [...this._processes];
  }

  // ---- PCI topology and drivers ------------------------------------------------------------------

  /** A PCI function by address. @throws RangeError for an unknown address */
  device(bdf: string): PciDevice {
    const device = this._devices.get(bdf);
    if (device === undefined) throw new RangeError(`no PCI device ${bdf}`);
    return device;
  }

  devices(): PciDevice[] {
    return [...this._devices.values()];
  }

  /** An IOMMU group by number. @throws RangeError for an unknown group */
  group(id: number): IommuGroup {
    const group = this._groups.get(id);
    if (group === undefined) throw new RangeError(`no IOMMU group ${id}`);
    return group;
  }

  groups(): IommuGroup[] {
    return [...this._groups.values()];
  }

  /** Makes a driver available for binding (pci_register_driver). */
  registerDriver(driver: PciDriver): void {
    if (this._drivers.has(driver.name)) throw new SimBugError(`driver ${driver.name} registered twice`);
    this._drivers.set(driver.name, driver);
  }

  /**
   * Binds `driver` ('host', 'vfio-pci', 'pci-stub', ... or 'none' to unbind) to a device, as writing to
   * sysfs unbind/bind does. Nothing changes when it fails.
   * @throws SysError ENODEV (unknown driver), EBUSY (a user owns the group's DMA, or the device is in use)
   */
  bindDriver(bdf: string, driverName: string): void {
    const device = this.device(bdf);
    const next = driverName === 'none' ? undefined : this._drivers.get(driverName);
    if (driverName !== 'none' && next === undefined) throw sysError('ENODEV', `no driver '${driverName}'`);
    const current = device.driver;
    if (current === next) return;
    // A kernel DMA driver cannot take a device whose group a user owns (iommu_device_use_default_domain).
    if (next !== undefined && !next.driverManagedDma && device.group.userOwner !== undefined) {
      throw sysError('EBUSY', 'group DMA is owned by a user');
    }
    if (current !== undefined) {
      current.remove?.(device);
      if (!current.driverManagedDma) device.group.unuseDefaultDomain();
      device.driver = undefined;
    }
    if (next !== undefined) {
      if (!next.driverManagedDma) device.group.useDefaultDomain();
      try {
        next.probe?.(device);
      } catch (err) {
        if (!next.driverManagedDma) device.group.unuseDefaultDomain();
        throw err;
      }
      device.driver = next;
    }
  }

  /** The IOMMU fault log (most recent records). */
  dmaFaults(): readonly DmaFaultRecord[] {
    return this.dmaFaultLog.records();
  }

  /** Faults ever recorded: the sequence number of the newest one (the first is 1). */
  dmaFaultCount(): number {
    return this.dmaFaultLog.count;
  }

  /** The fault records still held that came after sequence number `seq`, oldest first. */
  dmaFaultsSince(seq: number): DmaFaultRecord[] {
    return this.dmaFaultLog.since(seq);
  }

  /** The IOMMU group of a device (the /sys/bus/pci/devices/BDF/iommu_group link). @throws RangeError */
  iommuGroupOf(bdf: string): number {
    return this.device(bdf).group.id;
  }

  /**
   * The reserved IOVA regions of a device's group (/sys/kernel/iommu_groups/N/reserved_regions), with
   * their types. @throws RangeError for an unknown device
   */
  reservedRegionsOf(bdf: string): readonly ReservedRegion[] {
    return this.device(bdf).group.reservedRegions();
  }

  // ---- invariants --------------------------------------------------------------------------------

  /**
   * Checks that no pin, locked_vm charge, refcount or fd is leaked or inconsistent: the pins physical
   * memory holds are exactly those modules account for, each live process's locked_vm is exactly what
   * modules charged it, and every module's own invariants hold.
   * @throws SimBugError listing every problem found
   */
  checkInvariants(): void {
    const problems: string[] = [];
    const modules = [...this._modules.values()];
    const pinned = modules.reduce((sum, m) => sum + (m.pinnedPages?.() ?? 0), 0);
    const physPinned = this.phys.stats().pinnedPages;
    if (pinned !== physPinned) problems.push(`physical memory holds ${physPinned} pinned pages, modules account for ${pinned}`);
    for (const process of this._processes) {
      const charged = modules.reduce((sum, m) => sum + (m.lockedVm?.(process.mm) ?? 0), 0);
      if (charged !== process.mm.lockedVm) {
        problems.push(`pid ${process.pid}: locked_vm is ${process.mm.lockedVm} pages, modules charged ${charged}`);
      }
      for (const fd of process.openFds()) {
        if (process.fileOf(fd)?.isReleased === true) problems.push(`pid ${process.pid}: fd ${fd} names a released file`);
      }
    }
    for (const module of modules) module.checkInvariants?.(problems);
    if (problems.length > 0) throw new SimBugError(`invariants broken:\n- ${problems.join('\n- ')}`);
  }

  /**
   * Ends every process (closing its fds lowest first), then checks that nothing outlived them: no pinned
   * or allocated memory, no IOMMU domain, and every invariant.
   * @throws SimBugError listing every leak
   */
  shutdown(): void {
    for (const process of [...this._processes]) process.exit();
    this.checkInvariants();
    const problems: string[] = [];
    const stats = this.phys.stats();
    if (stats.pinnedPages !== 0) problems.push(`${stats.pinnedPages} pages still pinned`);
    if (stats.anonFramesInUse !== 0) problems.push(`${stats.anonFramesInUse} anonymous frames still allocated`);
    if (stats.hugeFoliosInUse !== 0) problems.push(`${stats.hugeFoliosInUse} hugetlb folios still allocated`);
    this.iommus.forEach((hw) => {
      if (hw.domainCount() !== 0) problems.push(`${hw.name}: ${hw.domainCount()} IOMMU domains still allocated`);
    });
    for (const group of this._groups.values()) {
      if (group.userOwner !== undefined) problems.push(`group ${group.id} still owned by a user`);
    }
    // Every fd is closed, so a live eventfd is a reference kernel code forgot to put.
    if (this.eventfds.size !== 0) problems.push(`${this.eventfds.size} eventfds still referenced`);
    if (problems.length > 0) throw new SimBugError(`leaks after shutdown:\n- ${problems.join('\n- ')}`);
  }
}

function createHardware(unit: IommuUnitSpec): IommuHardware {
  switch (unit.model) {
    case 'paged':
      return new PagedIommu({
        name: unit.name,
        pgsizeBitmap: unit.pgsizeBitmap,
        ias: unit.ias,
        iotlbEntries: unit.iotlbEntries,
        enforceCacheCoherency: unit.enforceCacheCoherency,
      });
    case 'windowed':
      return new WindowedIommu({ name: unit.name, params: unit.params });
    case 'custom':
      return unit.create();
  }
}
