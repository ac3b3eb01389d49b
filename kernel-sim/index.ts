/**
 * The public syscall surface of the simulated kernel: what userspace/ and virtio-iommu/ may use.
 */
export { Kernel, type KernelOptions, type KernelParams, type KernelModule, type KernelModuleFactory } from './kernel';
export { Process, type SpawnOptions, type MmapOptions, type PageSize, type Capability, DEFAULT_MEMLOCK_LIMIT } from './process';
export { SysError, SimBugError, sysError, type SysErrorInfo } from './errors';
export { DmaFault, type DmaFaultRecord, type DmaFaultReason } from './dma';
export type { IoctlArg } from './fs/file';
export { MACHINE_PRESETS, type MachineName, type MachineSpec, type IommuUnitSpec } from './machines';
export type { PciDevice, PciDeviceSpec, PciBar } from './pci/pci-device';
export { CostModel, DEFAULT_COSTS, type CostParams, type CountedWork, type ModelledTime } from './cost-model';
export {
  IOMMU_READ,
  IOMMU_WRITE,
  type ReservedRegion,
  type ReservedRegionType,
  type IommuDomain,
  type IommuHardware,
  type IommuGeometry,
  type MappingVisitor,
} from './iommu/iommu-domain';
// For IOMMU backends written outside the package (the plug-in interface, DESIGN.md §5).
export type { IommuGroup } from './iommu/iommu-group';
export type { AddressSpace, PinnedRuns } from './mm/address-space';
