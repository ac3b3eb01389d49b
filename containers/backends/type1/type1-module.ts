/**
 * The vfio_iommu_type1 module: registers the type1 backend with VFIO through the same public call a
 * user's IOMMU type uses (vfio_register_iommu_driver).
 */
import type { Kernel, KernelModule } from '../../../kernel-sim/kernel';
import { registerIommuBackend } from '../../vfio-module';
import { TYPE1_BACKEND } from './type1-backend';

export function vfioIommuType1Module(kernel: Kernel): KernelModule {
  registerIommuBackend(kernel, TYPE1_BACKEND);
  return { name: 'vfio_iommu_type1' };
}
