/**
 * VfioEndpointMapper: an assigned device behind the virtio-iommu, reached the way QEMU reaches it —
 * one VFIO container per endpoint, owned by the VMM process (reference §5.1: every endpoint has its own
 * IOMMU memory region, hence its own VFIOAddressSpace and container) — through the VMM's file
 * descriptors only (userspace/ VfioContainer / VfioGroup; never containers/).
 *
 * Setup (kvmtool's `vfio_group_init`, reference §5.4): open /dev/vfio/<group of the device>, a new
 * /dev/vfio/vfio, VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU with the first type the container supports
 * of TYPE1v2 ("We really need v2 semantics for unmap-all") and the windowed TYPE2 — TYPE2 first when
 * the VMM gave a window layout.
 * Everything host-specific is then read from VFIO_IOMMU_GET_INFO, so the same code serves any backend
 * that answers it (DESIGN.md §4: type2 answers GET_INFO with the window size as `iova_pgsizes` and the
 * aperture minus the MSI windows as its IOVA ranges):
 *
 * - granule and page sizes: `iova_pgsizes`;
 * - input range: the hull of the usable IOVA ranges;
 * - RESV_MEM: the complement of those ranges as RESERVED, with the platform's MSI windows on top as
 *   MSI (host-reserved-regions.ts, QEMU's rule);
 * - a MAP the backend cannot hold as asked (a type2 MAP that does not cover whole windows) is refused by
 *   the device's granule check (S_RANGE) before VFIO sees it, since the window size is the granule.
 *
 * Mapping rules:
 * - MAP → VFIO_IOMMU_MAP_DMA with iova = virt_start, vaddr = guest RAM hva + phys_start, size =
 *   virt_end - virt_start + 1, READ/WRITE from the MAP flags: one VFIO mapping per virtio mapping
 *   (cloud-hypervisor; QEMU cuts it into power-of-two chunks, which VFIO would merge back anyway).
 * - Mappings with the MMIO flag or with neither READ nor WRITE are not forwarded, as QEMU's
 *   `virtio_iommu_notify_map` returns early for them: VFIO cannot map device registers of the guest,
 *   and refuses prot 0.
 * - A GPA range outside guest RAM is refused with EFAULT (→ S_FAULT) before any ioctl: vaddr = hva + gpa
 *   past the end of guest RAM would hand the device other memory of the VMM.
 * - UNMAP → VFIO_IOMMU_UNMAP_DMA of exactly one earlier MAP_DMA; the device never asks for a range that
 *   bisects one, and VFIO's answer (bytes unmapped) is checked against what was mapped.
 * - Bypass → the identity map of guest RAM (IOVA = GPA), clipped to the usable IOVA ranges, as QEMU
 *   does for assigned devices in bypass (commit 90519b9: the container then sees plain guest RAM).
 *
 * Errors: VFIO's EEXIST comes back as 'overlap'; an UNMAP that does not match one forwarded mapping
 * exactly is 'would-split' before any ioctl (so type1 v2's bisect EINVAL cannot occur), and an EINVAL
 * from UNMAP_DMA of an exact mapping is thrown as EIO (device and backend disagree); every other errno
 * is thrown as the SysError the kernel raised, for the device's one errno → status table.
 *
 * Windowed (type2) hosts need one host-specific step, done right after SET_IOMMU, as the vendor SDK's
 * QEMU does it (`vfio_connect_container`): a window layout chosen by the VMM (`windows.windowSize`):
 * n = ⌈guest RAM / W⌉ + the MSI bank count, rounded up to a power of two and checked against the
 * hardware maximum (GET_ATTR WINDOWS); GEOMETRY [start; start + n·W − 1]; WINDOWS n; then every MSI bank
 * mapped (MAP_MSI_BANK) into the windows right after guest RAM. Those bank windows are this endpoint's
 * MSI doorbells, reported by PROBE as RESV_MEM MSI (adjacent ones merged into one region, as the spec
 * wants one MSI property per endpoint); the rest follows from GET_INFO unchanged.
 * What remains for windowed hosts:
 * - each window must be backed by physically contiguous guest RAM (hugepages of at least the window
 *   size); a guest MAP over RAM that is not gets VFIO's EINVAL, hence S_INVAL, where S_RANGE would be
 *   closer — the device cannot see host contiguity before asking;
 * - PAMU's stash attributes are left at their defaults.
 */
import type { Process } from '../kernel-sim';
import { SysError } from '../kernel-sim';
import { VFIO_TYPE1v2_IOMMU } from '../uapi/vfio';
import {
  VFIO_ATTR_GEOMETRY,
  VFIO_ATTR_WINDOWS,
  VFIO_IOMMU_PAMU_GET_ATTR,
  VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT,
  VFIO_IOMMU_PAMU_MAP_MSI_BANK,
  VFIO_IOMMU_PAMU_SET_ATTR,
  VFIO_TYPE2_IOMMU,
  VfioPamuAttr,
  VfioPamuMsiBankMap,
} from '../uapi/vfio-pamu';
import { VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA } from '../uapi/vfio';
import { VfioIommuType1DmaMap, VfioIommuType1DmaUnmap } from '../uapi/vfio-structs';
import { VIRTIO_IOMMU_MAP_F_MMIO, VIRTIO_IOMMU_MAP_F_READ, VIRTIO_IOMMU_MAP_F_WRITE } from '../uapi/virtio-iommu';
import { VfioContainer } from '../userspace/vfio-container';
import type { IommuInfo } from '../userspace/vfio-container';
import { VfioGroup } from '../userspace/vfio-group';
import type { Addr, EndpointMapper, IovaRange, MapOutcome, ReservedRegion, UnmapOutcome } from './endpoint-mapper';
import { exactNumber } from './exact-number';
import { high32 } from './host-order';
import { hostReservedRegions } from './host-reserved-regions';

const TWO_32 = 2 ** 32;
const MAP_ARGSZ = VfioIommuType1DmaMap.size;
const MAP_FLAGS = VfioIommuType1DmaMap.offsetof('flags');
const MAP_VADDR = VfioIommuType1DmaMap.offsetof('vaddr');
const MAP_IOVA = VfioIommuType1DmaMap.offsetof('iova');
const MAP_SIZE = VfioIommuType1DmaMap.offsetof('size');
const UNMAP_ARGSZ = VfioIommuType1DmaUnmap.size;
const UNMAP_FLAGS = VfioIommuType1DmaUnmap.offsetof('flags');
const UNMAP_IOVA = VfioIommuType1DmaUnmap.offsetof('iova');
const UNMAP_SIZE = VfioIommuType1DmaUnmap.offsetof('size');


function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** Stores the non-negative safe integer `v` as a little-endian u64. */
function put64(b: Uint8Array, o: number, v: number): void {
  const hi = high32(v);
  put32(b, o, v - hi * TWO_32);
  put32(b, o + 4, hi);
}

function get32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** IOMMU types tried in order at SET_IOMMU (the windowed one first when the VMM gave a window layout). */
const IOMMU_TYPES = [VFIO_TYPE1v2_IOMMU, VFIO_TYPE2_IOMMU] as const;

/** Where guest RAM lives in the VMM process: GPA g is HVA `hva + g`. */
export interface GuestRamRegion {
  readonly hva: bigint;
  readonly size: bigint;
}

/** How a VFIO endpoint is set up. */
export interface VfioEndpointConfig {
  readonly vmm: Process;
  /** The assigned PCI function, bound to vfio-pci. */
  readonly bdf: string;
  readonly guestRam: GuestRamRegion;
  /** MSI doorbell windows to report as RESV_MEM MSI. Default: the platform's (platformMsiWindows). */
  readonly msiWindows?: readonly IovaRange[];
  /** The window layout on a windowed (type2) host; required there, ignored elsewhere. */
  readonly windows?: WindowLayout;
}

/** How the VMM lays a windowed host's aperture out. */
export interface WindowLayout {
  /** Bytes per window (a power of two; guest RAM should be backed by hugepages at least this large). */
  readonly windowSize: bigint;
  /** First IOVA of the aperture (default 0, so IOVA = GPA identity maps work). */
  readonly start?: bigint;
}

/**
 * The MSI windows the host reserves for `bdf` (the x86 interrupt range, the Arm SW_MSI window): the
 * 'msi' / 'sw-msi' entries of its group's reserved regions (/sys/kernel/iommu_groups/N/reserved_regions,
 * `Kernel.reservedRegionsOf`), as QEMU reads them for an assigned device.
 * @throws RangeError for an unknown BDF
 */
export function platformMsiWindows(vmm: Process, bdf: string): IovaRange[] {
  return vmm.kernel
    .reservedRegionsOf(bdf)
    .filter((r) => r.type === 'msi' || r.type === 'sw-msi')
    .map((r) => ({ start: r.start, last: r.last }));
}

/** One assigned device's private VFIO container. */
export class VfioEndpointMapper implements EndpointMapper {
  readonly kind = 'vfio' as const;
  readonly bdf: string;
  readonly group: VfioGroup;
  readonly container: VfioContainer;
  /** The IOMMU type SET_IOMMU accepted. */
  readonly iommuType: number;
  private readonly _info: IommuInfo;
  private readonly _guestRam: GuestRamRegion;
  private readonly _inputRange: IovaRange;
  private readonly _reserved: readonly ReservedRegion[];
  /**
   * Forwarded mappings: iova → size, exactly as MAP_DMA received them; the IOVA key and the size are
   * numbers when exact in a double (no BigInt per MAP/UNMAP), else bigints.
   */
  private readonly _mapped = new Map<number | bigint, number | bigint>();
  /** The identity mappings of bypass mode: [iova, size] pairs. */
  private _identity: Array<readonly [bigint, bigint]> = [];
  private _bypass = false;
  private _released = false;
  // MAP_DMA / UNMAP_DMA argument bytes, reused: the MAP/UNMAP path writes their fields as numbers when
  // every value is exact in a double (the container helper's codec path serves the rest).
  private readonly _mapArg = new Uint8Array(MAP_ARGSZ);
  private readonly _unmapArg = new Uint8Array(UNMAP_ARGSZ);
  /** Guest RAM's hva and size as numbers (−1 when not exact). */
  private readonly _hvaNum: number;
  private readonly _ramNum: number;

  /**
   * Opens the device's group and a container for it in the VMM process.
   * @throws RangeError for an unknown BDF
   * @throws SysError from the VFIO calls (EBUSY: the group is open elsewhere; EPERM: not viable;
   *   ENODEV: no IOMMU type fits)
   */
  constructor(config: VfioEndpointConfig) {
    const { vmm, bdf } = config;
    this.bdf = bdf;
    this._guestRam = config.guestRam;
    const groupId = vmm.kernel.iommuGroupOf(bdf);
    this.group = VfioGroup.open(vmm, groupId);
    let container: VfioContainer | undefined;
    let hostMsi: IovaRange[] | undefined;
    try {
      container = VfioContainer.open(vmm);
      this.group.setContainer(container);
      // A VMM that gave a window layout wants the windowed type; otherwise type1 v2 first (QEMU's order).
      const order = config.windows !== undefined ? [VFIO_TYPE2_IOMMU, VFIO_TYPE1v2_IOMMU] : IOMMU_TYPES;
      const type = order.find((t) => container!.checkExtension(t) > 0);
      if (type === undefined) throw new SysError('ENODEV', { reason: `the container of ${bdf} supports neither VFIO_TYPE1v2_IOMMU nor VFIO_TYPE2_IOMMU` });
      container.setIommu(type);
      this.iommuType = type;
      if (type === VFIO_TYPE2_IOMMU) hostMsi = layOutWindows(vmm, container, config.guestRam.size, config.windows);
      this._info = container.iommuInfo();
    } catch (err) {
      container?.close();
      this.group.close();
      throw err;
    }
    this.container = container;
    const ranges = this._info.iovaRanges.length > 0 ? this._info.iovaRanges : [{ start: 0n, last: (1n << 64n) - 1n }];
    this._inputRange = {
      start: ranges.reduce((m, r) => (r.start < m ? r.start : m), ranges[0]!.start),
      last: ranges.reduce((m, r) => (r.last > m ? r.last : m), ranges[0]!.last),
    };
    this._reserved = hostReservedRegions(ranges, config.msiWindows ?? hostMsi ?? platformMsiWindows(vmm, bdf));
    this._hvaNum = exactNumber(config.guestRam.hva + config.guestRam.size) >= 0 ? Number(config.guestRam.hva) : -1;
    this._ramNum = exactNumber(config.guestRam.size);
    put32(this._mapArg, 0, MAP_ARGSZ);
    put32(this._unmapArg, 0, UNMAP_ARGSZ);
  }

  pageSizeMask(): bigint {
    return this._info.iovaPgsizes;
  }

  inputRange(): IovaRange {
    return this._inputRange;
  }

  reservedRegions(): readonly ReservedRegion[] {
    return this._reserved;
  }

  /** The usable IOVA ranges GET_INFO reported (inclusive). */
  iovaRanges(): readonly IovaRange[] {
    return this._info.iovaRanges;
  }

  /**
   * Routes to the number path when every value is an exact number (the `Addr` contract of
   * endpoint-mapper.ts: the device passes numbers only then), else to the bigint path, converted once.
   */
  map(iova: Addr, gpa: Addr, size: Addr, flags: number): MapOutcome {
    if (typeof iova === 'number' && typeof gpa === 'number' && typeof size === 'number') return this._mapSmall(iova, gpa, size, flags);
    return this._mapBig(BigInt(iova), BigInt(gpa), BigInt(size), flags);
  }

  /** Routes as `map` does. */
  unmap(iova: Addr, size: Addr): UnmapOutcome {
    if (typeof iova === 'number' && typeof size === 'number') return this._unmapSmall(iova, size);
    return this._unmapBig(BigInt(iova), BigInt(size));
  }

  private _mapBig(iova: bigint, gpa: bigint, size: bigint, flags: number): MapOutcome {
    const read = (flags & VIRTIO_IOMMU_MAP_F_READ) !== 0;
    const write = (flags & VIRTIO_IOMMU_MAP_F_WRITE) !== 0;
    // QEMU virtio_iommu_notify_map: MMIO and permission-less mappings stay in the device's tree only.
    if ((flags & VIRTIO_IOMMU_MAP_F_MMIO) !== 0 || (!read && !write)) return 'ok';
    const g = exactNumber(gpa);
    const n = exactNumber(size);
    // As numbers when exact (a sum at or above 2^53 is past guest RAM however it rounds).
    if (g >= 0 && n >= 0 && this._ramNum >= 0 ? g + n > this._ramNum : gpa + size > this._guestRam.size) {
      throw new SysError('EFAULT', { reason: `GPA range [0x${gpa.toString(16)}, +0x${size.toString(16)}) is outside guest RAM` });
    }
    const i = exactNumber(iova);
    try {
      if (this._hvaNum >= 0 && g >= 0 && i >= 0 && n >= 0) {
        // gpa + size ≤ guest RAM (checked above), so hva + gpa is exact too.
        const b = this._mapArg;
        put32(b, MAP_FLAGS, (read ? VFIO_DMA_MAP_FLAG_READ : 0) | (write ? VFIO_DMA_MAP_FLAG_WRITE : 0));
        put64(b, MAP_VADDR, this._hvaNum + g);
        put64(b, MAP_IOVA, i);
        put64(b, MAP_SIZE, n);
        this.container.process.ioctl(this.container.fd, VFIO_IOMMU_MAP_DMA, b);
      } else {
        this.container.mapDma({ vaddr: this._guestRam.hva + gpa, iova, size, read, write });
      }
    } catch (err) {
      if (err instanceof SysError && err.code === 'EEXIST') return 'overlap';
      throw err;
    }
    this._mapped.set(i >= 0 ? i : iova, n >= 0 ? n : size);
    return 'ok';
  }

  /** `map` on exact numbers (the MAP_DMA argument written without BigInt). */
  private _mapSmall(iova: number, gpa: number, size: number, flags: number): MapOutcome {
    if (this._hvaNum < 0 || this._ramNum < 0) return this._mapBig(BigInt(iova), BigInt(gpa), BigInt(size), flags);
    const read = (flags & VIRTIO_IOMMU_MAP_F_READ) !== 0;
    const write = (flags & VIRTIO_IOMMU_MAP_F_WRITE) !== 0;
    // As map(): MMIO and permission-less mappings stay in the device's tree only.
    if ((flags & VIRTIO_IOMMU_MAP_F_MMIO) !== 0 || (!read && !write)) return 'ok';
    if (gpa + size > this._ramNum) {
      throw new SysError('EFAULT', { reason: `GPA range [0x${gpa.toString(16)}, +0x${size.toString(16)}) is outside guest RAM` });
    }
    try {
      // gpa + size ≤ guest RAM, so hva + gpa is exact too.
      const b = this._mapArg;
      put32(b, MAP_FLAGS, (read ? VFIO_DMA_MAP_FLAG_READ : 0) | (write ? VFIO_DMA_MAP_FLAG_WRITE : 0));
      put64(b, MAP_VADDR, this._hvaNum + gpa);
      put64(b, MAP_IOVA, iova);
      put64(b, MAP_SIZE, size);
      this.container.process.ioctl(this.container.fd, VFIO_IOMMU_MAP_DMA, b);
    } catch (err) {
      if (err instanceof SysError && err.code === 'EEXIST') return 'overlap';
      throw err;
    }
    this._mapped.set(iova, size);
    return 'ok';
  }

  /** `unmap` on exact numbers. */
  private _unmapSmall(iova: number, size: number): UnmapOutcome {
    const mapped = this._mapped.get(iova);
    if (mapped === undefined) return 'ok'; // never forwarded (MMIO / no permission)
    // An exact size is stored as a number, so a bigint here is a different size.
    if (mapped !== size) return 'would-split';
    const b = this._unmapArg;
    try {
      put32(b, UNMAP_FLAGS, 0);
      put64(b, UNMAP_IOVA, iova);
      put64(b, UNMAP_SIZE, size);
      this.container.process.ioctl(this.container.fd, VFIO_IOMMU_UNMAP_DMA, b);
    } catch (err) {
      // As unmap(): an EINVAL of an exact mapping means device and backend disagree (EIO).
      if (err instanceof SysError && err.code === 'EINVAL') {
        throw new SysError('EIO', { reason: `UNMAP_DMA of the mapping at 0x${iova.toString(16)} (0x${size.toString(16)} bytes) failed with EINVAL` });
      }
      throw err;
    }
    this._mapped.delete(iova);
    const unmapped = get32(b, UNMAP_SIZE + 4) * TWO_32 + get32(b, UNMAP_SIZE);
    if (unmapped !== size) {
      throw new SysError('EIO', { reason: `UNMAP_DMA removed 0x${unmapped.toString(16)} bytes at 0x${iova.toString(16)}, 0x${size.toString(16)} were mapped` });
    }
    return 'ok';
  }

  private _unmapBig(iova: bigint, size: bigint): UnmapOutcome {
    const i = exactNumber(iova);
    const key = i >= 0 ? i : iova;
    const mapped = this._mapped.get(key);
    if (mapped === undefined) return 'ok'; // never forwarded (MMIO / no permission)
    if (typeof mapped === 'number' ? mapped !== exactNumber(size) : mapped !== size) return 'would-split';
    let unmapped: bigint | number;
    let expected: bigint | number = size;
    try {
      const n = exactNumber(size);
      if (i >= 0 && n >= 0) {
        const b = this._unmapArg;
        put32(b, UNMAP_FLAGS, 0);
        put64(b, UNMAP_IOVA, i);
        put64(b, UNMAP_SIZE, n);
        this.container.process.ioctl(this.container.fd, VFIO_IOMMU_UNMAP_DMA, b);
        // The kernel writes back the bytes unmapped; compared as numbers (exact below 2^53).
        unmapped = get32(b, UNMAP_SIZE + 4) * TWO_32 + get32(b, UNMAP_SIZE);
        expected = n;
      } else {
        unmapped = this.container.unmapDma(iova, size);
      }
    } catch (err) {
      // The range is exactly one earlier MAP_DMA (checked above), so type1 v2's bisect EINVAL — the one
      // 'would-split' stands for — cannot be the reason. An EINVAL here means the container itself
      // refused (e.g. it lost its IOMMU when the group left): device and backend disagree about what is
      // mapped, which is EIO (S_IOERR), not the guest's S_RANGE nor the S_INVAL the errno table would
      // give for a request the device found valid. Other errnos go through status.ts unchanged.
      if (err instanceof SysError && err.code === 'EINVAL') {
        throw new SysError('EIO', { reason: `UNMAP_DMA of the mapping at 0x${iova.toString(16)} (0x${size.toString(16)} bytes) failed with EINVAL` });
      }
      throw err;
    }
    this._mapped.delete(key);
    if (unmapped !== expected) {
      throw new SysError('EIO', { reason: `UNMAP_DMA removed 0x${unmapped.toString(16)} bytes at 0x${iova.toString(16)}, 0x${size.toString(16)} were mapped` });
    }
    return 'ok';
  }

  setBypass(on: boolean): void {
    if (on === this._bypass) return;
    if (!on) {
      // Each range leaves the bookkeeping as soon as its unmap succeeded: when one fails, `_identity`
      // lists exactly what the container still holds (and `isBypass` says whether anything does); the
      // error goes up so the device quarantines the endpoint (clear() then removes the rest).
      try {
        while (this._identity.length > 0) {
          const [iova, size] = this._identity[this._identity.length - 1]!;
          this.container.unmapDma(iova, size);
          this._identity.pop();
        }
      } finally {
        this._bypass = this._identity.length > 0;
      }
      return;
    }
    const granule = this._info.iovaPgsizes & -this._info.iovaPgsizes;
    const done: Array<readonly [bigint, bigint]> = [];
    try {
      for (const r of this._info.iovaRanges.length > 0 ? this._info.iovaRanges : [{ start: 0n, last: (1n << 64n) - 1n }]) {
        // IOVA = GPA over guest RAM ∩ this usable range, rounded inward to the granule.
        const start = roundUp(r.start, granule);
        const last = r.last < this._guestRam.size - 1n ? r.last : this._guestRam.size - 1n;
        const end = ((last + 1n) / granule) * granule;
        if (end <= start) continue;
        this.container.mapDma({ vaddr: this._guestRam.hva + start, iova: start, size: end - start });
        done.push([start, end - start]);
      }
    } catch (err) {
      // Undo with the leave-bypass walk: if one of its unmaps fails too, the ranges still mapped stay in
      // `_identity` (and `isBypass` true) for clear(), instead of pinned and forgotten.
      this._identity = done;
      this._bypass = true;
      try {
        this.setBypass(false);
      } catch (undoErr) {
        if (!(undoErr instanceof SysError)) throw undoErr;
      }
      throw err;
    }
    this._identity = done;
    this._bypass = true;
  }

  clear(): void {
    if (this._mapped.size > 0 || this._identity.length > 0) {
      try {
        this.container.unmapAll();
      } catch (err) {
        if (!(err instanceof SysError)) throw err;
        // A kernel without VFIO_DMA_UNMAP_FLAG_ALL: one UNMAP_DMA per mapping, whatever each says.
        for (const [iova, size] of [...this.forwardedMappings(), ...this._identity]) {
          try {
            this.container.unmapDma(iova, size);
          } catch (e) {
            if (!(e instanceof SysError)) throw e;
          }
        }
      }
    }
    this._mapped.clear();
    this._identity = [];
    this._bypass = false;
  }

  release(): void {
    if (this._released) return;
    this._released = true;
    this._mapped.clear();
    this._identity = [];
    // Closing the fds is the whole teardown: the group leaves the container, which unmaps and unpins
    // everything. The VMM may already have exited (its fds are then gone): nothing is left to do.
    for (const close of [() => this.group.close(), () => this.container.close()]) {
      try {
        close();
      } catch (err) {
        if (!(err instanceof SysError)) throw err;
      }
    }
  }

  /** Forwarded mappings, as [iova, size] pairs in insertion order (for tests and debugState). */
  forwardedMappings(): Array<[bigint, bigint]> {
    return [...this._mapped].map(([iova, size]) => [BigInt(iova), BigInt(size)]);
  }

  /** Whether the identity map of bypass mode is installed. */
  get isBypass(): boolean {
    return this._bypass;
  }
}

/**
 * The windowed host's layout step (see the file header): GEOMETRY, WINDOWS and one MAP_MSI_BANK per bank.
 * @returns the bank windows (the endpoint's MSI doorbells)
 * @throws RangeError without a layout, or when the layout needs more windows than the hardware has
 * @throws SysError from the PAMU ioctls
 */
function layOutWindows(vmm: Process, container: VfioContainer, ramSize: bigint, layout: WindowLayout | undefined): IovaRange[] {
  if (layout === undefined) throw new RangeError('a windowed (VFIO_TYPE2_IOMMU) host needs a window layout: windows: { windowSize }');
  const w = layout.windowSize;
  if (w <= 0n || (w & (w - 1n)) !== 0n) throw new RangeError(`window size ${w} is not a power of two`);
  const start = layout.start ?? 0n;
  const attr = (request: number, value: Parameters<typeof VfioPamuAttr.encode>[0]): ReturnType<typeof VfioPamuAttr.decode> => {
    const buf = VfioPamuAttr.encode({ argsz: VfioPamuAttr.size, ...value });
    vmm.ioctl(container.fd, request, buf);
    return VfioPamuAttr.decode(buf);
  };
  const banks = vmm.ioctl(container.fd, VFIO_IOMMU_PAMU_GET_MSI_BANK_COUNT);
  const maxWindows = attr(VFIO_IOMMU_PAMU_GET_ATTR, { attribute: VFIO_ATTR_WINDOWS }).windows;
  const ramWindows = (ramSize + w - 1n) / w;
  let n = ramWindows + BigInt(banks);
  while ((n & (n - 1n)) !== 0n) n += n & -n; // round up to a power of two
  if (n > BigInt(maxWindows)) throw new RangeError(`${n} windows of ${w} bytes are needed; the hardware has ${maxWindows}`);
  attr(VFIO_IOMMU_PAMU_SET_ATTR, { attribute: VFIO_ATTR_GEOMETRY, aperture_start: start, aperture_end: start + n * w - 1n });
  attr(VFIO_IOMMU_PAMU_SET_ATTR, { attribute: VFIO_ATTR_WINDOWS, windows: Number(n) });
  const doorbells: IovaRange[] = [];
  for (let i = 0; i < banks; i++) {
    const iova = start + (ramWindows + BigInt(i)) * w;
    const map = VfioPamuMsiBankMap.encode({ argsz: VfioPamuMsiBankMap.size, flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, msi_bank_index: i, iova });
    vmm.ioctl(container.fd, VFIO_IOMMU_PAMU_MAP_MSI_BANK, map);
    doorbells.push({ start: iova, last: iova + w - 1n });
  }
  return doorbells;
}

function roundUp(x: bigint, granule: bigint): bigint {
  return ((x + granule - 1n) / granule) * granule;
}
