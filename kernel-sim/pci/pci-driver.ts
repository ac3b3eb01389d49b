/**
 * PCI drivers as far as VFIO cares: a name, whether the driver manages DMA itself
 * (`driver_managed_dma`, as vfio-pci and pci-stub set it), and probe/remove hooks.
 *
 * A driver without driver_managed_dma is a kernel DMA owner of its device's IOMMU group
 * (iommu_device_use_default_domain at probe), which makes the group not viable for VFIO.
 */
import type { PciDevice } from './pci-device';

/** The operations of a PCI driver. */
export interface PciDriver {
  readonly name: string;
  /** True for drivers that never use the kernel's DMA API on the device (vfio-pci, pci-stub). */
  readonly driverManagedDma: boolean;
  /** Binds the driver to the device. @throws SysError to refuse */
  probe?(device: PciDevice): void;
  /** Unbinds. @throws SysError EBUSY when the device is in use and cannot be taken away */
  remove?(device: PciDevice): void;
}

/** A generic host driver (e1000e, snd-emu10k1, ...): it owns the device's DMA. */
export const HOST_DRIVER: PciDriver = { name: 'host', driverManagedDma: false };

/** pci-stub: claims a device without using it. */
export const PCI_STUB_DRIVER: PciDriver = { name: 'pci-stub', driverManagedDma: true };
