/**
 * A reference model of a type1 VFIO container (VFIO_TYPE1_IOMMU and VFIO_TYPE1v2_IOMMU) for the
 * model-based test in type1-model.test.ts: a sorted list of mappings `{ iova, size, vaddr, prot }` in
 * bigint, a copy of the process buffer the mappings pin, and the kernel's rules written as plainly as
 * possible, with no page tables, no pinning machinery and no page numbers. It is meant to be obviously
 * right, so that it can judge the simulator.
 *
 * Ranges: `end` is exclusive, `last` is inclusive (so a range may end at 2^64 - 1 without overflowing).
 *
 * Rules (reference/vfio-uapi.md §5, §6, §9; the ≥6.18 order with EOVERFLOW):
 * - MAP: unknown flags → EINVAL; size 0 → EINVAL; iova or vaddr range wraps past 2^64 → EOVERFLOW;
 *   neither READ nor WRITE without VADDR, or VADDR with READ/WRITE → EINVAL; iova, size or vaddr not
 *   4 KiB aligned → EINVAL; VADDR: no overlap → ENOENT, not exactly one invalidated mapping → EINVAL,
 *   else the vaddr is replaced; overlap → EEXIST; entry limit reached → ENOSPC; not inside one usable
 *   IOVA range → EINVAL; then pinning, page by page from vaddr: RLIMIT_MEMLOCK crossed before an
 *   unmapped page → ENOMEM, an unmapped page → EFAULT. MAP is all or nothing.
 * - UNMAP: unknown flags, or GET_DIRTY_BITMAP (alone it needs argsz ≥ 48, with ALL or VADDR it is
 *   refused) → EINVAL; iova not aligned → EINVAL; ALL with iova or size ≠ 0 → EINVAL; otherwise size 0
 *   or not aligned → EINVAL, range wraps → EOVERFLOW. v2 (not ALL): a mapping holding the first byte
 *   must start there and one holding the last byte must end there → EINVAL. Then whole mappings are
 *   removed: v1 removes nothing when the lowest mapping in the range starts below iova, and otherwise
 *   every mapping that starts in the range (the last may reach past it); v2 removes every mapping in
 *   the range. VADDR marks instead of removing and fails with EINVAL, marking nothing, if one of them
 *   is already invalid. The size written back is the sum of the sizes removed (or marked).
 * - DMA: a device access at an iova inside a mapping whose prot allows it reaches the pages pinned at
 *   MAP time (an invalidated vaddr changes nothing for the device, and a VADDR update does not re-pin),
 *   at the same offset; anything else faults with 'unmapped' or 'permission' and touches nothing.
 *   Pinned pages stay coherent with the CPU's view of the buffer, read-only pins included (current
 *   kernels unshare the zero page for FOLL_LONGTERM pins).
 * - Accounting: every mapped page is pinned once and charged once to locked_vm, with no deduplication
 *   between mappings of the same buffer; invalidated mappings stay pinned and charged.
 */
import type { DmaFaultReason, uapi } from '../../index';

/** The smallest IOMMU page on x86-vtd (the lowest bit of iova_pgsizes 0x40201000). */
export const PAGE = 0x1000n;
export const U64_MAX = (1n << 64n) - 1n;

// Flag bits as linux/vfio.h spells them, written out here so that the model does not lean on the
// simulator's uapi/ (the golden tests pin those).
/** VFIO_DMA_MAP_FLAG_READ: the device may read. */
export const MAP_READ = 1 << 0;
/** VFIO_DMA_MAP_FLAG_WRITE: the device may write. */
export const MAP_WRITE = 1 << 1;
/** VFIO_DMA_MAP_FLAG_VADDR: give an invalidated mapping its new vaddr. */
export const MAP_VADDR = 1 << 2;
/** VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP. */
export const UNMAP_GET_DIRTY_BITMAP = 1 << 0;
/** VFIO_DMA_UNMAP_FLAG_ALL. */
export const UNMAP_ALL = 1 << 1;
/** VFIO_DMA_UNMAP_FLAG_VADDR: invalidate the vaddrs instead of unmapping. */
export const UNMAP_VADDR = 1 << 2;

/** VFIO_IOMMU_MAP_DMA arguments; the vaddr is an offset into the process buffer (which may point past it). */
export interface MapRequest {
  readonly iova: bigint;
  readonly size: bigint;
  readonly vaddrOffset: bigint;
  readonly flags: number;
}

/** VFIO_IOMMU_UNMAP_DMA arguments (argsz 24). */
export interface UnmapRequest {
  readonly iova: bigint;
  readonly size: bigint;
  readonly flags: number;
}

/** Why a device access was refused: the model only predicts 'unmapped' and 'permission'. */
export type FaultReason = DmaFaultReason;

/**
 * What one operation did: an ioctl's success (with the size UNMAP wrote back) or errno code, or a DMA's
 * byte read or fault.
 */
export type Outcome =
  | { readonly ok: true; readonly size?: bigint; readonly byte?: number }
  | { readonly ok: false; readonly errno: uapi.ErrnoCode }
  | { readonly ok: false; readonly fault: FaultReason };

/** Pinned pages and the locked_vm charge of the process. */
export interface Accounting {
  readonly pinnedPages: number;
  readonly lockedVm: number;
}

/**
 * The operations the model-based test drives, with the same shape on the reference model and on the
 * real system, so that each command runs once on each and compares the outcomes.
 */
export interface DmaSystem {
  map(req: MapRequest): Outcome;
  unmap(req: UnmapRequest): Outcome;
  /** UNMAP_DMA with FLAG_ALL (plus `extraFlags`), iova 0 and size 0. */
  unmapAll(extraFlags: number): Outcome;
  dmaRead(iova: bigint): Outcome;
  dmaWrite(iova: bigint, byte: number): Outcome;
  /** The process writes its own buffer. */
  cpuWrite(offset: number, bytes: Uint8Array): void;
  /** The process reads its whole buffer. */
  cpuReadAll(): Uint8Array;
  accounting(): Accounting;
}

/** A reference model: a `DmaSystem` that also shows its mappings, so that steps can aim at them. */
export interface ReferenceModel extends DmaSystem {
  /** The current mappings, in ascending iova order. */
  mappings(): readonly { readonly iova: bigint; readonly size: bigint; readonly vaddrInvalid: boolean }[];
}

/** An inclusive range of usable IOVA. */
export interface IovaRange {
  readonly start: bigint;
  readonly last: bigint;
}

/** x86-vtd with a 48-bit aperture: the interrupt range 0xFEE00000–0xFEEFFFFF is cut out. */
export const X86_VTD_USABLE_RANGES: readonly IovaRange[] = [
  { start: 0n, last: 0xfedfffffn },
  { start: 0xfef00000n, last: (1n << 48n) - 1n },
];

/** What the model needs to know about the container and the process. */
export interface Type1ModelConfig {
  readonly v2: boolean;
  /** dma_entry_limit. */
  readonly entryLimit: number;
  readonly usableRanges: readonly IovaRange[];
  /** The only user memory there is: [bufferBase, bufferBase + bufferSize), read-write. */
  readonly bufferBase: bigint;
  readonly bufferSize: number;
  /** RLIMIT_MEMLOCK in pages; undefined for no limit. */
  readonly memlockLimitPages?: number;
}

interface ModelMapping {
  readonly iova: bigint;
  readonly size: bigint;
  vaddr: bigint;
  /** Where the pages pinned at MAP time are, as an offset into the buffer. */
  readonly pinnedOffset: number;
  readonly read: boolean;
  readonly write: boolean;
  vaddrInvalid: boolean;
}

export const ok = (extra: { size?: bigint; byte?: number } = {}): Outcome => ({ ok: true, ...extra });
export const fail = (errno: uapi.ErrnoCode): Outcome => ({ ok: false, errno });

/**
 * What both reference models share: the process memory the device reaches as one byte array, and the
 * commands that follow from each model's own translation and unmap (DMA, UNMAP_ALL, CPU reads).
 */
export abstract class ByteMemoryModel {
  constructor(protected readonly _memory: Uint8Array) {}

  abstract unmap(req: UnmapRequest): Outcome;

  /** The offset into the memory a device access reaches, or its fault. */
  protected abstract _translate(iova: bigint, access: 'read' | 'write'): number | Outcome;

  unmapAll(extraFlags: number): Outcome {
    return this.unmap({ iova: 0n, size: 0n, flags: UNMAP_ALL | extraFlags });
  }

  dmaRead(iova: bigint): Outcome {
    const at = this._translate(iova, 'read');
    return typeof at === 'number' ? ok({ byte: this._memory[at]! }) : at;
  }

  dmaWrite(iova: bigint, byte: number): Outcome {
    const at = this._translate(iova, 'write');
    if (typeof at !== 'number') return at;
    this._memory[at] = byte;
    return ok();
  }

  cpuReadAll(): Uint8Array {
    return this._memory.slice();
  }
}

/** The reference model of one type1 container with one device. */
export class Type1Model extends ByteMemoryModel implements ReferenceModel {
  /** Sorted by iova, never overlapping. */
  private readonly _mappings: ModelMapping[] = [];

  constructor(private readonly _config: Type1ModelConfig) {
    // The process buffer as the CPU sees it (fresh anonymous memory reads as zero).
    super(new Uint8Array(_config.bufferSize));
  }

  mappings(): readonly { readonly iova: bigint; readonly size: bigint; readonly vaddrInvalid: boolean }[] {
    return this._mappings;
  }

  map(req: MapRequest): Outcome {
    const { iova, size, flags } = req;
    const vaddr = this._config.bufferBase + req.vaddrOffset;
    // §5 steps 2, 4, 5, 6.
    if ((flags & ~(MAP_READ | MAP_WRITE | MAP_VADDR)) !== 0) return fail('EINVAL');
    if (size === 0n) return fail('EINVAL');
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) return fail('EOVERFLOW');
    const read = (flags & MAP_READ) !== 0;
    const write = (flags & MAP_WRITE) !== 0;
    const isVaddr = (flags & MAP_VADDR) !== 0;
    if ((read || write) === isVaddr) return fail('EINVAL');
    if (((iova | size | vaddr) & (PAGE - 1n)) !== 0n) return fail('EINVAL');
    // §5 step 7. Several overlapping mappings cannot be one exact match, whichever the kernel finds first.
    const hits = this._overlapping(iova, iova + size);
    if (isVaddr) {
      const dma = hits[0];
      if (dma === undefined) return fail('ENOENT');
      if (hits.length > 1 || !dma.vaddrInvalid || dma.iova !== iova || dma.size !== size) return fail('EINVAL');
      dma.vaddr = vaddr;
      dma.vaddrInvalid = false;
      return ok();
    }
    // §5 steps 7, 8, 9.
    if (hits.length > 0) return fail('EEXIST');
    if (this._mappings.length >= this._config.entryLimit) return fail('ENOSPC');
    if (!this._config.usableRanges.some((r) => iova >= r.start && iova + size - 1n <= r.last)) return fail('EINVAL');
    // §5 step 12: pinning walks the pages from vaddr and charges each before it meets the first hole.
    const pages = size / PAGE;
    const offset = req.vaddrOffset;
    const bufferSize = BigInt(this._config.bufferSize);
    const room = offset >= bufferSize ? 0n : (bufferSize - offset) / PAGE;
    const present = room < pages ? room : pages;
    const limit = this._config.memlockLimitPages;
    if (present > 0n && limit !== undefined && BigInt(this.accounting().lockedVm) + present > BigInt(limit)) return fail('ENOMEM');
    if (present < pages) return fail('EFAULT');
    const mapping: ModelMapping = { iova, size, vaddr, pinnedOffset: Number(offset), read, write, vaddrInvalid: false };
    this._mappings.push(mapping);
    this._mappings.sort((a, b) => (a.iova < b.iova ? -1 : 1));
    return ok();
  }

  unmap(req: UnmapRequest): Outcome {
    const { iova, size, flags } = req;
    // §6 entry steps 1–3, then vfio_dma_do_unmap steps 3–4.
    if ((flags & ~(UNMAP_GET_DIRTY_BITMAP | UNMAP_ALL | UNMAP_VADDR)) !== 0) return fail('EINVAL');
    if ((flags & UNMAP_GET_DIRTY_BITMAP) !== 0) return fail('EINVAL');
    if ((iova & (PAGE - 1n)) !== 0n) return fail('EINVAL');
    const all = (flags & UNMAP_ALL) !== 0;
    let end: bigint;
    if (all) {
      if (iova !== 0n || size !== 0n) return fail('EINVAL');
      end = U64_MAX + 1n;
    } else {
      if (size === 0n || (size & (PAGE - 1n)) !== 0n) return fail('EINVAL');
      if (iova + size - 1n > U64_MAX) return fail('EOVERFLOW');
      end = iova + size;
    }
    // §6 step 6: v2 never cuts a mapping.
    if (this._config.v2 && !all) {
      const head = this._containing(iova);
      if (head !== undefined && head.iova !== iova) return fail('EINVAL');
      const tail = this._containing(end - 1n);
      if (tail !== undefined && tail.iova + tail.size !== end) return fail('EINVAL');
    }
    // §6 step 7: the walk from the lowest mapping in the range; v1 stops at once at one that starts below iova.
    let victims = this._overlapping(iova, end);
    if (!this._config.v2 && victims[0] !== undefined && victims[0].iova < iova) victims = [];
    const total = victims.reduce((sum, m) => sum + m.size, 0n);
    if ((flags & UNMAP_VADDR) !== 0) {
      if (victims.some((m) => m.vaddrInvalid)) return fail('EINVAL');
      for (const m of victims) m.vaddrInvalid = true;
    } else {
      for (const m of victims) this._mappings.splice(this._mappings.indexOf(m), 1);
    }
    return ok({ size: total });
  }

  cpuWrite(offset: number, bytes: Uint8Array): void {
    this._memory.set(bytes, offset);
  }

  accounting(): Accounting {
    const pages = Number(this._mappings.reduce((sum, m) => sum + m.size, 0n) / PAGE);
    return { pinnedPages: pages, lockedVm: pages };
  }

  /** The buffer offset a device access reaches, or its fault. */
  protected override _translate(iova: bigint, access: 'read' | 'write'): number | Outcome {
    const m = this._containing(iova);
    if (m === undefined) return { ok: false, fault: 'unmapped' };
    if (!(access === 'read' ? m.read : m.write)) return { ok: false, fault: 'permission' };
    return m.pinnedOffset + Number(iova - m.iova);
  }

  /** Mappings that intersect [start, end), in ascending iova order. */
  private _overlapping(start: bigint, end: bigint): ModelMapping[] {
    return this._mappings.filter((m) => m.iova < end && start < m.iova + m.size);
  }

  private _containing(addr: bigint): ModelMapping | undefined {
    return this._mappings.find((m) => m.iova <= addr && addr < m.iova + m.size);
  }
}
