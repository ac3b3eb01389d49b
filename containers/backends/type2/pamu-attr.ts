/**
 * VFIO_IOMMU_PAMU_GET_ATTR / SET_ATTR (struct vfio_pamu_attr, 32 bytes; reference/pamu-windowed.md §3.2–3.3):
 *
 * - fewer than 32 bytes → EFAULT; argsz < 32, flags ≠ 0 (none is defined) or an unknown attribute → EINVAL.
 * - GEOMETRY {aperture_start, aperture_end (inclusive)}: the domain's rules (power of two ≥ 4 KiB,
 *   naturally aligned, inside the addressable space → EINVAL); changing it while mappings or bank windows
 *   exist → EBUSY.
 * - WINDOWS {windows}: GET before any SET answers the hardware maximum (how userspace learns it); SET
 *   needs GEOMETRY first (EINVAL), a power of two ≤ the maximum (EINVAL), and no mapping (EBUSY).
 * - PAMU_STASH {cpu, cache}: needs WINDOWS (EINVAL); cache 1 (L1), 2 (L2) or 3 (L3), cpu below 64
 *   (the simulator does not model the CPU topology) → else EINVAL. Recorded; it does not change DMA.
 * - GET writes the 32 bytes back. Every error is reported (the SDK swallowed them).
 */
import { sysError } from '../../../kernel-sim/errors';
import type { IoctlArg } from '../../../kernel-sim/fs/file';
import { readU32, readU64, writeU32, writeU64 } from '../../../uapi/codec';
import { VFIO_ATTR_GEOMETRY, VFIO_ATTR_PAMU_STASH, VFIO_ATTR_WINDOWS, VFIO_PAMU_ATTR_MINSZ } from '../../../uapi/vfio-pamu';
import { checkOut, copyIn } from '../../user-arg';
import type { Type2Iommu } from './type2-iommu';

/** Stash targets of enum pamu_stash_target. */
const STASH_CACHES = new Set([1, 2, 3]);
const MAX_STASH_CPU = 64;

function readAttr(arg: IoctlArg): { buf: Uint8Array; attribute: number } {
  const buf = copyIn(arg, VFIO_PAMU_ATTR_MINSZ);
  if (readU32(buf, 0) < VFIO_PAMU_ATTR_MINSZ) throw sysError('EINVAL', 'argsz is below 32');
  if (readU32(buf, 4) !== 0) throw sysError('EINVAL', 'no attribute flags are defined');
  return { buf, attribute: readU32(buf, 8) };
}

/** @throws SysError EFAULT, EINVAL */
export function type2IoctlGetAttr(iommu: Type2Iommu, arg: IoctlArg): number {
  const { buf, attribute } = readAttr(arg);
  const windows = iommu.domain.windows;
  checkOut(buf, 0, VFIO_PAMU_ATTR_MINSZ);
  switch (attribute) {
    case VFIO_ATTR_GEOMETRY: {
      const geometry = windows.geometry() ?? { start: iommu.domain.geometry.apertureStart, last: iommu.domain.geometry.apertureLast };
      writeU64(buf, 16, geometry.start);
      writeU64(buf, 24, geometry.last);
      return 0;
    }
    case VFIO_ATTR_WINDOWS:
      writeU32(buf, 16, windows.windowCount());
      writeU32(buf, 20, 0);
      return 0;
    case VFIO_ATTR_PAMU_STASH:
      writeU32(buf, 16, iommu.stash?.cpu ?? 0);
      writeU32(buf, 20, iommu.stash?.cache ?? 0);
      return 0;
    default:
      throw sysError('EINVAL', `unknown attribute ${attribute}`);
  }
}

/** @throws SysError EFAULT, EINVAL, EBUSY, ENOSPC */
export function type2IoctlSetAttr(iommu: Type2Iommu, arg: IoctlArg): number {
  const { buf, attribute } = readAttr(arg);
  const windows = iommu.domain.windows;
  const busy = (): void => {
    if (iommu.dmas.size > 0 || iommu.banks.size > 0) throw sysError('EBUSY', 'windows are mapped');
  };
  switch (attribute) {
    case VFIO_ATTR_GEOMETRY: {
      const start = readU64(buf, 16);
      const last = readU64(buf, 24);
      if (last < start) throw sysError('EINVAL', 'aperture end is below its start');
      busy();
      windows.setGeometry(start, last);
      return 0;
    }
    case VFIO_ATTR_WINDOWS:
      busy();
      windows.setWindowCount(readU32(buf, 16));
      return 0;
    case VFIO_ATTR_PAMU_STASH: {
      const cpu = readU32(buf, 16);
      const cache = readU32(buf, 20);
      if (windows.windowBytes() === 0n) throw sysError('EINVAL', 'windows are not set');
      if (!STASH_CACHES.has(cache) || cpu >= MAX_STASH_CPU) throw sysError('EINVAL', 'no such stash target');
      iommu.stash = { cpu, cache };
      return 0;
    }
    default:
      throw sysError('EINVAL', `unknown attribute ${attribute}`);
  }
}
