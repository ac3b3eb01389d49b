/**
 * VFIO core and its IOMMU backends: what the package's index.ts exposes.
 */
export { vfioModule, registerIommuBackend, VfioModule, VFIO_MODULE_NAME } from './vfio-module';
export { vfioIommuType1Module } from './backends/type1/type1-module';
export { vfioIommuType2Module } from './backends/type2/type2-module';
export type { MsiBankProvider, MsiBankInfo } from './backends/type2/msi-bank-provider';
export type { VfioIommuBackend, VfioIommuBackendInstance, BackendContext } from './backend';
