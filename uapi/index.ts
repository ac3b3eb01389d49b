/**
 * The ABI layer's public surface (`vfio-sim/uapi`): errno table, ioctl encoding, struct codecs, and the
 * constants and layouts of linux/vfio.h plus the vendor PAMU additions, and of virtio-iommu with its
 * split virtqueue. Values and layouts only; no behaviour. Imports nothing outside uapi/ (DESIGN.md §1).
 */
export * from './errno';
export * from './ioctl';
export * from './codec';
export * from './vfio';
export * from './vfio-structs';
export * from './vfio-pamu';
export * from './virtio-iommu';
