/**
 * The virtio-iommu layer's barrel: what the package root (index.ts) may re-export. The device is public
 * (DESIGN.md §2), and so is the guest driver model built on its surface; the guest-side helpers (guest
 * memory, the driver side of a virtqueue) are exported for tools and benchmarks that drive the device
 * as a guest would.
 */
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
} from './virtio-iommu-device';
export type { WindowLayout } from './vfio-endpoint-mapper';
export type { Addr, EndpointMapper, EndpointKind, IovaRange, MapOutcome, ReservedRegion, UnmapOutcome } from './endpoint-mapper';
export {
  VirtioIommuDriver,
  VirtioIommuDriverError,
  GuestDomain,
  type VirtioTransport,
  type VirtioIommuDriverOptions,
  type InvalidationMode,
  type DmaDirection,
  type ProbedEndpoint,
  type GuestFault,
  type DriverStats,
} from './virtio-iommu-driver';
export { GuestMemory } from './guest-memory';
export { VirtqueueDriver, type Segment, type AddOptions, type UsedEntry } from './virtqueue-driver';
export type { QueueConfig } from './split-virtqueue';
