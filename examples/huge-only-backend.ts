/**
 * A new IOMMU type built only on the public plug-in API (README: Writing a new IOMMU type).
 *
 * "Huge-only" is a type1-like backend for hardware that should be driven with 2 MiB pages only: every
 * MAP_DMA must be 2 MiB aligned (iova, vaddr, size) and physically backed by 2 MiB-contiguous memory, so
 * each mapping is written as 2M leaves and nothing else. It answers extension VFIO_HUGE_ONLY_IOMMU.
 *
 * It shows the whole contract of VfioIommuBackend / VfioIommuBackendInstance:
 * - checkExtension without an instance, open(type) for its own type only;
 * - attachGroup all or nothing (one domain per group, from the group's own IOMMU hardware);
 * - ioctl as a switch with one handler per request, each validating before it mutates;
 * - release undoing everything, and pinnedPages/lockedVm for the invariant checker.
 */
import {
  IOMMU_READ,
  IOMMU_WRITE,
  sysError,
  uapi,
  type AddressSpace,
  type BackendContext,
  type IoctlArg,
  type IommuDomain,
  type IommuGroup,
  type Kernel,
  type Process,
  type VfioIommuBackend,
  type VfioIommuBackendInstance,
} from '../index';

/** This example's extension id (any value no other registered backend answers). */
export const VFIO_HUGE_ONLY_IOMMU = 0x201;

const HUGE_PAGES = 512; // 2 MiB in 4 KiB pages
const HUGE_BYTES = 2n << 20n;

interface HugeMapping {
  iovaPfn: number;
  pageCount: number;
  mm: AddressSpace;
}

class HugeOnlyIommu implements VfioIommuBackendInstance {
  private readonly _domains = new Map<IommuGroup, IommuDomain>();
  private readonly _mappings: HugeMapping[] = [];

  constructor(private readonly _kernel: Kernel) {}

  checkExtension(extension: number): number {
    return extension === VFIO_HUGE_ONLY_IOMMU ? 1 : 0;
  }

  /** One domain per group; a group joining a container that already has mappings is refused (EBUSY). */
  attachGroup(group: IommuGroup): void {
    if (this._mappings.length > 0) throw sysError('EBUSY', 'huge-only containers take groups before mapping');
    if ((group.hardware.pgsizeBitmap & HUGE_BYTES) === 0n) throw sysError('EINVAL', 'the IOMMU has no 2 MiB pages');
    const domain = group.hardware.allocDomain();
    try {
      group.attachDomain(domain); // the VFIO core claimed the group's DMA before calling us
    } catch (err) {
      domain.free();
      throw err;
    }
    this._domains.set(group, domain);
  }

  detachGroup(group: IommuGroup): void {
    const domain = this._domains.get(group)!;
    this._removeAll();
    group.detachDomain(domain);
    domain.free();
    this._domains.delete(group);
  }

  ioctl(request: number, arg: IoctlArg, caller: Process): number {
    switch (request) {
      case uapi.VFIO_IOMMU_MAP_DMA: return this._mapDma(arg, caller);
      case uapi.VFIO_IOMMU_UNMAP_DMA: return this._unmapDma(arg);
      default: throw sysError('ENOTTY', 'unknown huge-only ioctl');
    }
  }

  /** VFIO_IOMMU_MAP_DMA with 2 MiB alignment everywhere and 2 MiB-contiguous backing. */
  private _mapDma(arg: IoctlArg, caller: Process): number {
    if (!(arg instanceof Uint8Array) || arg.length < 32) throw sysError('EFAULT', 'argument does not hold 32 bytes');
    const map = uapi.VfioIommuType1DmaMap.decode(arg);
    const rw = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
    if (map.argsz < 32 || (map.flags & ~rw) !== 0 || (map.flags & rw) === 0) throw sysError('EINVAL', 'bad argsz or flags');
    if (map.size === 0n || (map.iova | map.vaddr | map.size) % HUGE_BYTES !== 0n) throw sysError('EINVAL', 'not 2 MiB aligned');
    const iovaPfn = Number(map.iova >> 12n);
    const pageCount = Number(map.size >> 12n);
    if (this._mappings.some((m) => iovaPfn < m.iovaPfn + m.pageCount && m.iovaPfn < iovaPfn + pageCount)) {
      throw sysError('EEXIST', 'overlaps a mapping');
    }
    const prot = (map.flags & uapi.VFIO_DMA_MAP_FLAG_READ ? IOMMU_READ : 0) | (map.flags & uapi.VFIO_DMA_MAP_FLAG_WRITE ? IOMMU_WRITE : 0);
    const domains = [...this._domains.values()];
    const mm = caller.mm;
    let mapped = 0;
    try {
      mm.pin(Number(map.vaddr >> 12n), pageCount, (prot & IOMMU_WRITE) !== 0, (runs) => {
        for (let r = 0; r < runs.length; r++) {
          const count = runs.count[r]!;
          const pfn = runs.pfn[r]!;
          // Every run must be whole, aligned 2 MiB pages: this type has no 4 KiB leaves.
          if (count % HUGE_PAGES !== 0 || pfn % HUGE_PAGES !== 0) throw sysError('EFAULT', 'backing is not 2 MiB contiguous');
        }
        mm.accountLocked(runs.pages, caller.memlockLimitPages());
        const base = iovaPfn + mapped;
        let at = base;
        try {
          for (let r = 0; r < runs.length; r++) {
            for (const domain of domains) domain.map(at, runs.pfn[r]!, runs.count[r]!, prot);
            at += runs.count[r]!;
          }
        } catch (err) {
          // Undo this batch's mappings; the pin layer unpins the batch when we rethrow.
          for (const domain of domains) domain.unmap(base, runs.pages);
          mm.unaccountLocked(runs.pages);
          throw err;
        }
        mapped += runs.pages;
      });
    } catch (err) {
      this._unmapUnpin(iovaPfn, mapped, mm);
      throw err;
    }
    this._mappings.push({ iovaPfn, pageCount, mm });
    return 0;
  }

  /** VFIO_IOMMU_UNMAP_DMA of exactly one mapping; writes back the bytes unmapped. */
  private _unmapDma(arg: IoctlArg): number {
    if (!(arg instanceof Uint8Array) || arg.length < 24) throw sysError('EFAULT', 'argument does not hold 24 bytes');
    const unmap = uapi.VfioIommuType1DmaUnmap.decode(arg);
    if (unmap.argsz < 24 || unmap.flags !== 0) throw sysError('EINVAL', 'bad argsz or flags');
    const index = this._mappings.findIndex((m) => BigInt(m.iovaPfn) << 12n === unmap.iova && BigInt(m.pageCount) << 12n === unmap.size);
    if (index < 0) throw sysError('EINVAL', 'not exactly one mapping');
    const [mapping] = this._mappings.splice(index, 1);
    this._unmapUnpin(mapping!.iovaPfn, mapping!.pageCount, mapping!.mm);
    uapi.VfioIommuType1DmaUnmap.write(arg, 'size', unmap.size);
    return 0;
  }

  /** Unmaps from every domain, unpinning what the first one mapped, and returns the locked_vm charge. */
  private _unmapUnpin(iovaPfn: number, pageCount: number, mm: AddressSpace): void {
    const [first, ...others] = [...this._domains.values()];
    for (const domain of others) domain.unmap(iovaPfn, pageCount);
    let unpinned = 0;
    first?.unmap(iovaPfn, pageCount, (_iova, pfn, count) => {
      this._kernel.phys.unpin(pfn, count);
      unpinned += count;
    });
    mm.unaccountLocked(unpinned);
  }

  private _removeAll(): void {
    for (const m of this._mappings.splice(0)) this._unmapUnpin(m.iovaPfn, m.pageCount, m.mm);
  }

  release(): void {
    this._removeAll();
    for (const [group, domain] of this._domains) {
      group.detachDomain(domain);
      domain.free();
    }
    this._domains.clear();
  }

  pinnedPages(): number {
    return this._mappings.reduce((n, m) => n + m.pageCount, 0);
  }

  lockedVm(mm: AddressSpace): number {
    return this._mappings.filter((m) => m.mm === mm).reduce((n, m) => n + m.pageCount, 0);
  }
}

/** The backend descriptor: register it with `registerIommuBackend(kernel, HUGE_ONLY_BACKEND)`. */
export const HUGE_ONLY_BACKEND: VfioIommuBackend = {
  name: 'example-huge-only',
  checkExtension: (extension) => (extension === VFIO_HUGE_ONLY_IOMMU ? 1 : 0),
  open(type: number, context: BackendContext): VfioIommuBackendInstance {
    if (type !== VFIO_HUGE_ONLY_IOMMU) throw sysError('EINVAL', 'not the huge-only type');
    return new HugeOnlyIommu(context.kernel);
  },
};
