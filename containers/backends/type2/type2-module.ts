/**
 * The windowed IOMMU module: registers the type2 backend with VFIO through the same public call as type1
 * and a user's backend (registerIommuBackend). The MSI banks come from the msi/ module when the machine
 * has them (PAMU machines' MPIC).
 */
import type { Kernel, KernelModule } from '../../../kernel-sim/kernel';
import { registerIommuBackend } from '../../vfio-module';
import type { MsiBankProvider } from './msi-bank-provider';
import { type2Backend } from './type2-backend';

/** A kernel module that can hand out the machine's MSI banks. */
interface MsiBanksModule extends KernelModule {
  msiBanks(): MsiBankProvider | undefined;
}

export function vfioIommuType2Module(kernel: Kernel): KernelModule {
  // A kernel built without the msi module has no MSI banks to offer.
  const banks = (): MsiBankProvider | undefined => kernel.findModule<MsiBanksModule>('msi')?.msiBanks();
  registerIommuBackend(kernel, type2Backend(kernel, banks));
  return { name: 'vfio_iommu_type2' };
}
