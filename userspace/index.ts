/** A small libvfio: typed helpers over the raw ioctls, for VMMs, the CLI, benchmarks and examples. */
export { VfioContainer, type DmaMapRequest, type IommuInfo, type IovaRangeInfo } from './vfio-container';
export { VfioGroup } from './vfio-group';
export { VfioDevice } from './vfio-device';
