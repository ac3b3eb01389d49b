/**
 * The type1 backend descriptor (vfio_iommu_driver_ops_type1): answers CHECK_EXTENSION before any
 * container has chosen it, and opens a Type1Iommu for VFIO_TYPE1_IOMMU (v1) or VFIO_TYPE1v2_IOMMU (v2).
 */
import { sysError } from '../../../kernel-sim/errors';
import {
  __VFIO_RESERVED_TYPE1_NESTING_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
} from '../../../uapi/vfio';
import type { BackendContext, VfioIommuBackend } from '../../backend';
import { Type1Iommu } from './type1-iommu';

export const TYPE1_BACKEND: VfioIommuBackend = {
  name: 'vfio-iommu-type1',

  /**
   * Without a container (iommu == NULL): TYPE1, TYPE1v2 and UNMAP_ALL are supported; UPDATE_VADDR and
   * DMA_CC_IOMMU answer 0 because they depend on the container's groups.
   */
  checkExtension(extension: number): number {
    switch (extension) {
      case VFIO_TYPE1_IOMMU:
      case VFIO_TYPE1v2_IOMMU:
      case VFIO_UNMAP_ALL:
        return 1;
      default:
        return 0;
    }
  },

  /** vfio_iommu_type1_open. @throws SysError EINVAL for a type that is not type1 */
  open(type: number, context: BackendContext): Type1Iommu {
    switch (type) {
      case VFIO_TYPE1_IOMMU:
        return new Type1Iommu(context.kernel, false);
      case VFIO_TYPE1v2_IOMMU:
      case __VFIO_RESERVED_TYPE1_NESTING_IOMMU:
        return new Type1Iommu(context.kernel, true);
      default:
        throw sysError('EINVAL', `type ${type} is not a type1 IOMMU`);
    }
  },
};
