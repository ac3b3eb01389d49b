/**
 * The windowed ("type2") backend descriptor. Its extension id is VFIO_TYPE2_IOMMU = 0x100, outside
 * upstream's 1–10 and the SDK's 1000/1001 (reference/pamu-windowed.md §6). It answers CHECK_EXTENSION
 * only on a machine that has a windowed IOMMU unit — elsewhere the module would not load — and opens a
 * Type2Iommu that drives the windowed domain capability (kernel-sim/iommu/windowed-domain.ts), so any
 * IOMMU model that implements that capability can be driven by it.
 */
import { sysError } from '../../../kernel-sim/errors';
import type { Kernel } from '../../../kernel-sim/kernel';
import { VFIO_TYPE2_IOMMU } from '../../../uapi/vfio-pamu';
import type { BackendContext, VfioIommuBackend } from '../../backend';
import type { MsiBankProvider } from './msi-bank-provider';
import { Type2Iommu } from './type2-iommu';

/** The backend for one kernel; `msiBanks` gives the machine's MSI banks (undefined when it has none). */
export function type2Backend(kernel: Kernel, msiBanks: () => MsiBankProvider | undefined): VfioIommuBackend {
  const windowed = kernel.machine.iommus.some((unit) => unit.model === 'windowed');
  return {
    name: 'vfio-iommu-type2',
    checkExtension(extension: number): number {
      return windowed && extension === VFIO_TYPE2_IOMMU ? 1 : 0;
    },
    /** @throws SysError EINVAL for a type that is not VFIO_TYPE2_IOMMU */
    open(type: number, context: BackendContext): Type2Iommu {
      if (type !== VFIO_TYPE2_IOMMU) throw sysError('EINVAL', `type ${type} is not the windowed IOMMU`);
      return new Type2Iommu(context.kernel, msiBanks());
    },
  };
}
