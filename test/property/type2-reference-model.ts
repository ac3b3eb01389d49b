/**
 * A reference model of a windowed (type2) VFIO container with one device, for the model-based test in
 * type2-model.test.ts. It speaks the same `DmaSystem` interface as the type1 model
 * (type1-reference-model.ts: MAP / UNMAP / UNMAP_ALL / DMA / CPU access / accounting, outcomes as
 * `{ ok, errno | fault, size | byte }`), with the windowed rules written as plainly as possible: a fixed
 * layout of `count` windows of `windowBytes` from `apertureStart`, a sorted list of mappings in bigint,
 * the process memory as a copy, and a map from each page of it to the frame behind it (the test's
 * /proc/self/pagemap, read once after the memory was faulted in), from which the model itself decides
 * contiguity and natural alignment. It is meant to be obviously right, so that it can judge the
 * simulator.
 *
 * Ranges: `end` is exclusive, `last` is inclusive.
 *
 * Rules (issue 3 item 2; reference/pamu-windowed.md §1.4, §1.6, §3.3, §7; the order of
 * containers/backends/type2/type2-map-dma.ts, whose checks the SDK did not make at all):
 * - MAP: unknown flags (VADDR included) → EINVAL; size 0 → EINVAL; iova or vaddr range wraps → EOVERFLOW;
 *   neither READ nor WRITE → EINVAL; iova, size or vaddr not 4 KiB aligned → EINVAL; the shape: a size
 *   of at least a window must be a whole number of windows, a smaller one a power of two → EINVAL; the
 *   iova must be a window base inside the aperture and the range must end inside it → EINVAL; any of its
 *   windows already mapped → EEXIST. Then window by window, in order: the pages from the window's vaddr
 *   up to the first one that is not mapped must be one physically contiguous run (EFAULT), fit under
 *   RLIMIT_MEMLOCK together with everything charged so far, this MAP's earlier windows included
 *   (ENOMEM), and be the whole window (EFAULT); the first frame must be aligned to the mapped size
 *   (EINVAL). All or nothing.
 * - UNMAP: a flag other than ALL → EINVAL; iova not aligned → EINVAL; ALL needs iova = size = 0
 *   (EINVAL); otherwise size 0 or not aligned → EINVAL, a wrapping range → EOVERFLOW; a range whose first
 *   or last byte falls in a mapping it does not cover whole → EINVAL (a mapping covers its own size, not
 *   its window's slot); then every mapping in the range goes, and the size written back is their sum.
 * - DMA from the device's LIODN: the LIODN disabled by an earlier violation → 'blocked'; the domain not
 *   enabled (nothing mapped) → 'blocked'; outside the aperture, in a window not mapped, or past the
 *   mapped size in its slot → 'unmapped'; against the window's permission → 'permission'. Every refusal
 *   disables the LIODN (pamu_av_isr). The domain is enabled exactly while something is mapped; every
 *   successful MAP sets the enable attribute again (as the SDK did), which re-enables the LIODN; so does
 *   `reenable()` (the hardware re-enable the kernel's window API offers, no ioctl).
 * - Accounting: every mapped page is pinned once and charged once to locked_vm.
 */
import {
  ByteMemoryModel,
  MAP_READ,
  MAP_WRITE,
  PAGE,
  U64_MAX,
  UNMAP_ALL,
  fail,
  ok,
  type Accounting,
  type MapRequest,
  type Outcome,
  type ReferenceModel,
  type UnmapRequest,
} from './type1-reference-model';

/** One region of process memory the model knows: where it is, and the frame behind each page. */
export interface MemoryRegion {
  /** Offset of the region from the buffer base (what `MapRequest.vaddrOffset` counts from). */
  readonly offset: bigint;
  /** The frame behind each page, in order. */
  readonly pfns: readonly number[];
}

/** What the model needs to know about the container, the process and its memory. */
export interface Type2ModelConfig {
  /** Where the process buffer starts: every vaddr is this plus a `vaddrOffset`. */
  readonly bufferBase: bigint;
  readonly apertureStart: bigint;
  readonly windowBytes: bigint;
  readonly count: number;
  /** The process memory: everything else near the buffer base is unmapped. */
  readonly regions: readonly MemoryRegion[];
  /** RLIMIT_MEMLOCK in pages; undefined for no limit. */
  readonly memlockLimitPages?: number;
}

/** A mapping as the steps see it (the `ReferenceModel` view plus its windows). */
export interface WindowedMapping {
  readonly iova: bigint;
  readonly size: bigint;
  readonly vaddrInvalid: false;
  readonly firstWindow: number;
  readonly windowCount: number;
}

/** One valid window as the hardware would hold it. */
export interface ModelWindow {
  readonly index: number;
  readonly pfn: number;
  readonly pageCount: number;
  /** IOMMU_READ (1) | IOMMU_WRITE (2): the same bits as the MAP flags. */
  readonly prot: number;
}

interface ModelMapping extends WindowedMapping {
  readonly vaddrOffset: bigint;
  readonly read: boolean;
  readonly write: boolean;
  /** Pages each window maps. */
  readonly pagesPerWindow: number;
  readonly windowPfns: readonly number[];
}

const fault = (reason: 'blocked' | 'unmapped' | 'permission'): Outcome => ({ ok: false, fault: reason });
const isPowerOfTwo = (n: bigint): boolean => n > 0n && (n & (n - 1n)) === 0n;

/** The reference model of one windowed container; see the file header. */
export class Type2Model extends ByteMemoryModel implements ReferenceModel {
  /** Why the last MAP failed or succeeded, finer than its errno (for the test's coverage guard). */
  lastMapReason = '';

  private readonly _mappings: ModelMapping[] = [];
  private _liodnDisabled = false;

  constructor(private readonly _config: Type2ModelConfig) {
    // The process memory, region after region, as the CPU sees it.
    super(new Uint8Array(_config.regions.reduce((n, r) => n + r.pfns.length, 0) * Number(PAGE)));
  }

  private get _apertureEnd(): bigint {
    return this._config.apertureStart + BigInt(this._config.count) * this._config.windowBytes;
  }

  mappings(): readonly WindowedMapping[] {
    return this._mappings;
  }

  /** The valid windows, ascending. */
  windows(): ModelWindow[] {
    const out: ModelWindow[] = [];
    for (const m of this._mappings) {
      const prot = (m.read ? MAP_READ : 0) | (m.write ? MAP_WRITE : 0);
      m.windowPfns.forEach((pfn, i) => out.push({ index: m.firstWindow + i, pfn, pageCount: m.pagesPerWindow, prot }));
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** Whether the domain is enabled (something is mapped). */
  enabled(): boolean {
    return this._mappings.length > 0;
  }

  /** Whether the LIODN is disabled by a violation. */
  liodnDisabled(): boolean {
    return this._liodnDisabled;
  }

  map(req: MapRequest): Outcome {
    const { iova, size, vaddrOffset, flags } = req;
    const { windowBytes, count } = this._config;
    const reason = (why: string, outcome: Outcome): Outcome => {
      this.lastMapReason = why;
      return outcome;
    };
    if ((flags & ~(MAP_READ | MAP_WRITE)) !== 0) return reason('flags', fail('EINVAL'));
    if (size === 0n) return reason('size 0', fail('EINVAL'));
    const vaddr = this._config.bufferBase + vaddrOffset;
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) return reason('wrap', fail('EOVERFLOW'));
    const read = (flags & MAP_READ) !== 0;
    const write = (flags & MAP_WRITE) !== 0;
    if (!read && !write) return reason('prot', fail('EINVAL'));
    if (((iova | size | vaddrOffset) & (PAGE - 1n)) !== 0n) return reason('alignment', fail('EINVAL'));
    let windowCount: number;
    let windowSize: bigint;
    if (size >= windowBytes) {
      if (size % windowBytes !== 0n) return reason('remainder', fail('EINVAL'));
      windowCount = Number(size / windowBytes);
      windowSize = windowBytes;
    } else {
      if (!isPowerOfTwo(size)) return reason('not a power of two', fail('EINVAL'));
      windowCount = 1;
      windowSize = size;
    }
    const rel = iova - this._config.apertureStart;
    if (rel < 0n || rel % windowBytes !== 0n) return reason('not a window base', fail('EINVAL'));
    if (iova + size > this._apertureEnd) return reason('outside the aperture', fail('EINVAL'));
    const firstWindow = Number(rel / windowBytes);
    if (this._mappings.some((m) => m.firstWindow < firstWindow + windowCount && firstWindow < m.firstWindow + m.windowCount)) {
      return reason('overlap', fail('EEXIST'));
    }
    if (firstWindow + windowCount > count) throw new Error('model: window arithmetic');
    // Window by window, all or nothing.
    const pagesPerWindow = Number(windowSize / PAGE);
    const limit = this._config.memlockLimitPages;
    let charged = this.accounting().lockedVm;
    const windowPfns: number[] = [];
    for (let w = 0; w < windowCount; w++) {
      const pfns = this._framesFrom(vaddrOffset + BigInt(w) * windowSize, pagesPerWindow);
      const contiguous = pfns.every((pfn, i) => i === 0 || pfn === pfns[i - 1]! + 1);
      if (pfns.length > 0 && !contiguous) return reason('not contiguous', fail('EFAULT'));
      if (pfns.length > 0 && limit !== undefined && charged + pfns.length > limit) return reason('memlock', fail('ENOMEM'));
      if (pfns.length < pagesPerWindow) return reason('not mapped', fail('EFAULT'));
      if (pfns[0]! % pagesPerWindow !== 0) return reason('backing not aligned', fail('EINVAL'));
      charged += pagesPerWindow;
      windowPfns.push(pfns[0]!);
    }
    this._liodnDisabled = false; // every successful MAP sets the PAMU enable attribute: every LIODN's PPAACE gets V again
    this._mappings.push({ iova, size, vaddrInvalid: false, firstWindow, windowCount, vaddrOffset, read, write, pagesPerWindow, windowPfns });
    this._mappings.sort((a, b) => (a.iova < b.iova ? -1 : 1));
    return reason(windowCount > 1 ? 'ok, several windows' : size < windowBytes ? 'ok, part of a window' : 'ok, one window', ok());
  }

  unmap(req: UnmapRequest): Outcome {
    const { iova, size, flags } = req;
    if ((flags & ~UNMAP_ALL) !== 0) return fail('EINVAL');
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
      const head = this._containing(iova);
      if (head !== undefined && head.iova !== iova) return fail('EINVAL');
      const tail = this._containing(end - 1n);
      if (tail !== undefined && tail.iova + tail.size !== end) return fail('EINVAL');
    }
    const victims = this._mappings.filter((m) => m.iova < end && iova < m.iova + m.size);
    for (const m of victims) this._mappings.splice(this._mappings.indexOf(m), 1);
    return ok({ size: victims.reduce((sum, m) => sum + m.size, 0n) });
  }

  /** The PAMU re-enables the LIODN (what DOMAIN_ATTR_FSL_PAMU_ENABLE does for each attached LIODN). */
  reenable(): void {
    this._liodnDisabled = false;
  }

  /** The CPU writes at `offset` from the buffer base; the bytes must lie inside one region. */
  cpuWrite(offset: number, bytes: Uint8Array): void {
    const at = this._memoryIndex(BigInt(offset));
    if (at === undefined) throw new Error(`model: no memory at buffer offset 0x${offset.toString(16)}`);
    this._memory.set(bytes, at);
  }

  /** Every region's bytes, region after region. */
  accounting(): Accounting {
    const pages = Number(this._mappings.reduce((sum, m) => sum + m.size, 0n) / PAGE);
    return { pinnedPages: pages, lockedVm: pages };
  }

  /** The memory index a device access reaches, or its fault; a fault disables the LIODN. */
  protected override _translate(iova: bigint, access: 'read' | 'write'): number | Outcome {
    const refuse = (reason: 'blocked' | 'unmapped' | 'permission'): Outcome => {
      this._liodnDisabled = true;
      return fault(reason);
    };
    if (this._liodnDisabled || !this.enabled()) return refuse('blocked');
    if (iova < this._config.apertureStart || iova >= this._apertureEnd) return refuse('unmapped');
    const m = this._containing(iova);
    // A window not mapped, or past the mapped size in the window's slot.
    if (m === undefined) return refuse('unmapped');
    if (!(access === 'read' ? m.read : m.write)) return refuse('permission');
    return this._memoryIndex(m.vaddrOffset + (iova - m.iova))!;
  }

  /** The frames behind the pages from buffer offset `offset`, up to `pages` of them, stopping at the first unmapped page. */
  private _framesFrom(offset: bigint, pages: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < pages; i++) {
      const pfn = this._frameAt(offset + BigInt(i) * PAGE);
      if (pfn === undefined) break;
      out.push(pfn);
    }
    return out;
  }

  private _frameAt(offset: bigint): number | undefined {
    for (const r of this._config.regions) {
      const page = (offset - r.offset) / PAGE;
      if (offset >= r.offset && page < BigInt(r.pfns.length)) return r.pfns[Number(page)];
    }
    return undefined;
  }

  /** Where buffer offset `offset` is in `_memory`, or undefined in a hole. */
  private _memoryIndex(offset: bigint): number | undefined {
    let base = 0;
    for (const r of this._config.regions) {
      const bytes = BigInt(r.pfns.length) * PAGE;
      if (offset >= r.offset && offset < r.offset + bytes) return base + Number(offset - r.offset);
      base += Number(bytes);
    }
    return undefined;
  }

  private _containing(addr: bigint): ModelMapping | undefined {
    return this._mappings.find((m) => m.iova <= addr && addr < m.iova + m.size);
  }
}
