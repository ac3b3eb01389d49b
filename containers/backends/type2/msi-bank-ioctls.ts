/**
 * The MSI bank ioctls of the windowed backend (reference/pamu-windowed.md §3.3–3.5, §4a):
 *
 * - GET_MSI_BANK_COUNT: the number of banks, as the return value (the argument is ignored).
 * - MAP_MSI_BANK {argsz, flags = READ|WRITE prot, msi_bank_index, iova}: fewer than 24 bytes → EFAULT;
 *   argsz < 24, unknown flags or no permission → EINVAL; no such bank → ENODEV; windows not set, iova not
 *   the base of a window inside the aperture (the SDK never checked) → EINVAL; the window already holds a
 *   mapping or a bank, or this container already mapped the bank → EEXIST; another container holds the
 *   bank → EBUSY unless allow_unsafe_interrupts (isolation: one container per bank). The bank's MSIIR page
 *   is then mapped at the start of the window, and the domain is enabled.
 * - UNMAP_MSI_BANK {argsz, flags, iova}: argsz < 16 or flags ≠ 0 → EINVAL; no bank at exactly that iova →
 *   EINVAL; else the window is disabled and the bank given back.
 * Every error is reported (the SDK returned 0 whatever happened).
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { IOMMU_READ, IOMMU_WRITE } from '../../../kernel-sim/iommu/iommu-domain';
import { readU32 } from '../../../uapi/codec';
import { VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE } from '../../../uapi/vfio';
import { VFIO_PAMU_MSI_BANK_MAP_MINSZ, VFIO_PAMU_MSI_BANK_UNMAP_MINSZ } from '../../../uapi/vfio-pamu';
import { copyIn, readU64Pages, type U64Pages } from '../../user-arg';
import type { Type2Iommu } from './type2-iommu';
import { windowAt } from './window-layout';

const iova: U64Pages = { pfn: 0, low: 0 };

/** GET_MSI_BANK_COUNT: the machine's MSI banks, as the return value (0 on a machine without banks). */
export function type2IoctlGetMsiBankCount(iommu: Type2Iommu): number {
  return iommu.msiBanks?.bankCount() ?? 0;
}

/** MAP_MSI_BANK: maps a bank's MSIIR page at the base of a free window. @throws SysError EFAULT, EINVAL, ENODEV, EEXIST, EBUSY */
export function type2IoctlMapMsiBank(iommu: Type2Iommu, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_PAMU_MSI_BANK_MAP_MINSZ);
  const flags = readU32(buf, 4);
  if (readU32(buf, 0) < VFIO_PAMU_MSI_BANK_MAP_MINSZ) throw sysError('EINVAL', 'argsz is below 24');
  if ((flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) !== 0) throw sysError('EINVAL', 'unknown flags');
  const prot = (flags & VFIO_DMA_MAP_FLAG_READ ? IOMMU_READ : 0) | (flags & VFIO_DMA_MAP_FLAG_WRITE ? IOMMU_WRITE : 0);
  if (prot === 0) throw sysError('EINVAL', 'neither READ nor WRITE');
  const index = readU32(buf, 8);
  const banks = iommu.msiBanks;
  if (banks === undefined || index >= banks.bankCount()) throw sysError('ENODEV', `no MSI bank ${index}`);
  readU64Pages(buf, 16, iova);
  const window = windowAt(iommu, iova, 1);
  if (iommu.banks.has(index)) throw sysError('EEXIST', `MSI bank ${index} is already mapped by this container`);
  if (iommu.windowInUse(window)) throw sysError('EEXIST', `window ${window} is already mapped`);
  // Isolation (Scott Wood, 2013): a bank shared by two containers lets either device raise the other's MSIs.
  banks.claimBank(index, iommu, iommu.kernel.params.allowUnsafeInterrupts);
  try {
    iommu.domain.windows.enableWindow(window, banks.bank(index).doorbellPfn, 1, prot);
  } catch (err) {
    banks.releaseBank(index, iommu);
    throw err;
  }
  iommu.banks.set(index, { bank: index, window, iovaPfn: iova.pfn });
  iommu.enableAfterMap();
  return 0;
}

/** UNMAP_MSI_BANK: removes the bank mapped at exactly this IOVA. @throws SysError EFAULT, EINVAL */
export function type2IoctlUnmapMsiBank(iommu: Type2Iommu, arg: IoctlArg): number {
  const buf = copyIn(arg, VFIO_PAMU_MSI_BANK_UNMAP_MINSZ);
  if (readU32(buf, 0) < VFIO_PAMU_MSI_BANK_UNMAP_MINSZ) throw sysError('EINVAL', 'argsz is below 16');
  if (readU32(buf, 4) !== 0) throw sysError('EINVAL', 'no flags are defined');
  readU64Pages(buf, 8, iova);
  const bank = iova.low === 0 ? [...iommu.banks.values()].find((b) => b.iovaPfn === iova.pfn) : undefined;
  if (bank === undefined) throw sysError('EINVAL', 'no MSI bank is mapped at this iova');
  iommu.unmapBank(bank);
  return 0;
}
