/**
 * vfio-sim: the package's public face. Everything exported here is what users, docs and tests may rely
 * on (DESIGN.md §2); everything else may change.
 *
 * Importing the package loads the MSI layer, VFIO and its type1 and windowed (type2) backends into every
 * Kernel, as built-in modules.
 */
import { vfioIommuType1Module, vfioIommuType2Module, vfioModule } from './containers';
import { Kernel } from './kernel-sim';
import { msiModule } from './msi';

// The MSI layer first: VFIO composes interrupt messages through it, and type1 asks it for SW_MSI cookies.
Kernel.registerBuiltinModule(msiModule);
Kernel.registerBuiltinModule(vfioModule);
Kernel.registerBuiltinModule(vfioIommuType1Module);
Kernel.registerBuiltinModule(vfioIommuType2Module);

export {
  Kernel,
  Process,
  SysError,
  SimBugError,
  sysError,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
  type IommuHardware,
  type IommuGeometry,
  type MappingVisitor,
  type IommuGroup,
  type AddressSpace,
  type PinnedRuns,
  DmaFault,
  MACHINE_PRESETS,
  DEFAULT_MEMLOCK_LIMIT,
  CostModel,
  DEFAULT_COSTS,
  type CostParams,
  type CountedWork,
  type ModelledTime,
  type KernelOptions,
  type KernelParams,
  type KernelModule,
  type SpawnOptions,
  type MmapOptions,
  type PageSize,
  type Capability,
  type DmaFaultRecord,
  type DmaFaultReason,
  type IoctlArg,
  type MachineName,
  type MachineSpec,
  type IommuUnitSpec,
  type PciDevice,
  type PciDeviceSpec,
  type ReservedRegion,
  type ReservedRegionType,
} from './kernel-sim';
export { registerIommuBackend, type VfioIommuBackend, type VfioIommuBackendInstance, type BackendContext } from './containers';
export { VfioContainer, VfioGroup, VfioDevice, type DmaMapRequest, type IommuInfo, type IovaRangeInfo } from './userspace';
export {
  VirtioIommuDevice,
  type VirtioIommuDeviceConfig,
  type VirtioIommuOptions,
  type OfferedFeatures,
  type EndpointSpec,
  type VfioEndpointSpec,
  type EmulatedEndpointSpec,
  type EndpointDma,
  type GuestRam,
  type VirtioIommuDebugState,
  VirtioIommuDriver,
  VirtioIommuDriverError,
  GuestDomain,
  GuestMemory,
  type VirtioTransport,
  type VirtioIommuDriverOptions,
  type InvalidationMode,
  type DmaDirection,
  type ProbedEndpoint,
  type GuestFault,
  type DriverStats,
  type WindowLayout,
} from './virtio-iommu';
export { MSI_MODULE_NAME, type MsiModule, type MsiModuleCounters, type MpicBankInfo } from './msi';
export * as uapi from './uapi';
