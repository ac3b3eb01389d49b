/**
 * Typed helpers over the raw container ioctls, the way rust-vmm's vfio-ioctls wraps vfio-bindings: each
 * method builds the struct bytes, calls `ioctl`, and decodes the answer. Errors are the SysErrors the
 * kernel raised, untouched.
 */
import type { Process } from '../kernel-sim';
import { readU16, readU32, readU64 } from '../uapi/codec';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
} from '../uapi/vfio';
import { VfioIommuType1DmaMap, VfioIommuType1DmaUnmap, VfioIommuType1Info } from '../uapi/vfio-structs';

/** A usable IOVA range as GET_INFO reports it; `last` is inclusive. */
export interface IovaRangeInfo {
  start: bigint;
  last: bigint;
}

/** What VFIO_IOMMU_GET_INFO says about a container. */
export interface IommuInfo {
  flags: number;
  iovaPgsizes: bigint;
  iovaRanges: IovaRangeInfo[];
  /** DMA_AVAIL capability: mappings left before dma_entry_limit. */
  dmaAvail: number | undefined;
  /** MIGRATION capability: dirty-bitmap page sizes and the largest bitmap. */
  migration: { pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint } | undefined;
}

/** One DMA mapping request. */
export interface DmaMapRequest {
  vaddr: bigint;
  iova: bigint;
  size: bigint;
  /** Default true. */
  read?: boolean;
  /** Default true. */
  write?: boolean;
}

/** An open /dev/vfio/vfio. */
export class VfioContainer {
  private readonly _map = new Uint8Array(VfioIommuType1DmaMap.size);
  private readonly _unmap = new Uint8Array(VfioIommuType1DmaUnmap.size);

  private constructor(
    readonly process: Process,
    readonly fd: number,
  ) {}

  /** Opens a new container. @throws SysError */
  static open(process: Process): VfioContainer {
    return new VfioContainer(process, process.open('/dev/vfio/vfio'));
  }

  apiVersion(): number {
    return this.process.ioctl(this.fd, VFIO_GET_API_VERSION);
  }

  /** VFIO_CHECK_EXTENSION: the kernel's answer (0 = unsupported). */
  checkExtension(extension: number): number {
    return this.process.ioctl(this.fd, VFIO_CHECK_EXTENSION, extension);
  }

  /** @throws SysError EINVAL, ENODEV, EPERM */
  setIommu(type: number): void {
    this.process.ioctl(this.fd, VFIO_SET_IOMMU, type);
  }

  /** VFIO_IOMMU_GET_INFO, asked twice as userspace does: once for the size, once with room for the caps. */
  iommuInfo(): IommuInfo {
    let buf: Uint8Array = VfioIommuType1Info.encode({ argsz: VfioIommuType1Info.size });
    this.process.ioctl(this.fd, VFIO_IOMMU_GET_INFO, buf);
    const needed = readU32(buf, 0);
    if (needed > buf.length) {
      buf = new Uint8Array(needed);
      VfioIommuType1Info.write(buf, 'argsz', needed);
      this.process.ioctl(this.fd, VFIO_IOMMU_GET_INFO, buf);
    }
    const info = VfioIommuType1Info.decode(buf);
    const result: IommuInfo = { flags: info.flags, iovaPgsizes: info.iova_pgsizes, iovaRanges: [], dmaAvail: undefined, migration: undefined };
    const seen = new Set<number>();
    for (let at = info.cap_offset; at !== 0 && !seen.has(at) && at + 8 <= buf.length; at = readU32(buf, at + 4)) {
      seen.add(at);
      switch (readU16(buf, at)) {
        case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: {
          const count = readU32(buf, at + 8);
          for (let i = 0; i < count; i++) result.iovaRanges.push({ start: readU64(buf, at + 16 + 16 * i), last: readU64(buf, at + 24 + 16 * i) });
          break;
        }
        case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
          result.dmaAvail = readU32(buf, at + 8);
          break;
        case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
          result.migration = { pgsizeBitmap: readU64(buf, at + 16), maxDirtyBitmapSize: readU64(buf, at + 24) };
          break;
      }
    }
    return result;
  }

  /** VFIO_IOMMU_MAP_DMA. @throws SysError */
  mapDma(request: DmaMapRequest): void {
    const flags = (request.read === false ? 0 : VFIO_DMA_MAP_FLAG_READ) | (request.write === false ? 0 : VFIO_DMA_MAP_FLAG_WRITE);
    VfioIommuType1DmaMap.encode({ argsz: VfioIommuType1DmaMap.size, flags, vaddr: request.vaddr, iova: request.iova, size: request.size }, this._map);
    this.process.ioctl(this.fd, VFIO_IOMMU_MAP_DMA, this._map);
  }

  /** VFIO_IOMMU_UNMAP_DMA: the bytes the kernel unmapped. @throws SysError */
  unmapDma(iova: bigint, size: bigint, flags = 0): bigint {
    VfioIommuType1DmaUnmap.encode({ argsz: VfioIommuType1DmaUnmap.size, flags, iova, size }, this._unmap);
    this.process.ioctl(this.fd, VFIO_IOMMU_UNMAP_DMA, this._unmap);
    return VfioIommuType1DmaUnmap.read(this._unmap, 'size');
  }

  /** UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL: every mapping goes; the bytes unmapped. */
  unmapAll(): bigint {
    return this.unmapDma(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL);
  }

  close(): void {
    this.process.close(this.fd);
  }
}
