/**
 * Model-based test of the windowed (type2) backend: fast-check generates window-shaped sequences of
 * MAP_DMA, UNMAP_DMA, UNMAP_DMA with FLAG_ALL, device DMA reads and writes, CPU writes to the process
 * memory, SET_ATTR of the layout, and the hardware's LIODN re-enable, runs each on the windowed reference
 * model (type2-reference-model.ts) and on a simulated fsl-p4080, and requires the same errno or success
 * (with the same unmapped size), the same bytes, and after every step the same pinned pages, locked_vm,
 * valid windows (index, backing frame, mapped size, permission), domain enable state and LIODN state.
 * An Audit step, and the end of every sequence, also run `kernel.checkInvariants()` and compare the whole
 * memory; the end shuts the kernel down, which must release everything. Before that, a table of examples
 * pins the model, and the simulator, to the rules.
 *
 * The foundation issue's model-based test (type1-model.test.ts) with window-shaped inputs: the same
 * `DmaSystem` / `ReferenceModel` interface and outcome shape (imported from type1-reference-model.ts),
 * the same step kinds and the same failure reporting, shared through dma-model-kit.ts (the `ModelStep`
 * base class, outcome counting, printing and comparing). The steps below follow type1's one for one,
 * aimed at windows instead (slots, whole-window unmaps, a re-enable step, a layout step).
 *
 * The world: an aperture of 256 KiB at 256 KiB split into 16 windows of 16 KiB, so IOVAs below and above
 * it are easy to reach. The process memory: 8 hugetlb pages of 16 KiB (each one physically contiguous and
 * naturally aligned to a window, in a shuffled order, so that runs crossing two of them are usually not
 * contiguous), an unmapped hole of 128 KiB after them, and 8 pages of scattered anonymous memory at
 * +2 MiB. The model learns the frame behind each page once (the test's pagemap) and decides contiguity
 * and alignment itself.
 *
 * What the generators aim at: window bases (mostly), any page below, in and above the aperture,
 * misaligned IOVAs, the top of the 64-bit space; sizes of 1–4 windows, 4 and 8 KiB regions, remainders,
 * non-powers of two, zero, wrapping; vaddrs at hugepage boundaries (mostly), inside hugepages (natural
 * alignment), in the anonymous pages (contiguity), in the hole. Steps aim at existing mappings by index
 * (MAP beside one, UNMAPs shaped around one, DMA inside its slot). A second variant has an RLIMIT_MEMLOCK
 * of 12 pages. Each run checks that the generators reached every outcome they are meant to (`mustSee`),
 * MAP outcomes named by the model's reason (e.g. 'MAP EINVAL backing not aligned').
 *
 * Failures print the shrunk sequence with each step's toString(), and the concrete request that
 * disagreed as the key of the compared outcomes. Set MODEL_STATS=1 to print how often each outcome was
 * reached.
 */
import fc from 'fast-check';
import { Kernel, VfioContainer, VfioGroup, uapi } from '../../index';
import { isWindowedDomain, type WindowedDomain } from '../../kernel-sim/iommu/windowed-domain';
import type { WindowedIommu } from '../../kernel-sim/iommu/windowed/windowed-iommu';
import {
  MAP_READ,
  MAP_VADDR,
  MAP_WRITE,
  PAGE,
  U64_MAX,
  UNMAP_ALL,
  UNMAP_GET_DIRTY_BITMAP,
  UNMAP_VADDR,
  type DmaSystem,
  type MapRequest,
  type Outcome,
  type UnmapRequest,
} from './type1-reference-model';
import { Type2Model, type ModelWindow, type WindowedMapping } from './type2-reference-model';
import {
  ModelStep,
  commonSteps,
  type DmaTarget,
  MAP_FLAG_NAMES,
  OK,
  UNMAP_FLAG_NAMES,
  byteArb,
  countRun,
  err,
  errnoCode,
  expectReached,
  expectSameMemory,
  flagNames,
  hex,
  indexArb,
  label,
  mappingAt,
  okSize,
  seen,
  showMap,
  showOutcome,
  showUnmap,
  shown,
  weighted,
  VfioDmaSystem,
  type RealDmaSystem,
} from './dma-model-kit';

const BDF = '0000:01:00.0';
const GROUP = 1;
const LIODN = 0x100;
const WINDOW = 0x4000n;
const COUNT = 16;
const APERTURE_START = 0x40000n;
const APERTURE_END = APERTURE_START + BigInt(COUNT) * WINDOW;
/** Hugetlb memory at buffer offset 0: 8 pages of 16 KiB. */
const HUGE_BYTES = 0x20000;
/** The hole after it (the upper half of the hugetlb mmap, given back). */
const HOLE_BYTES = 0x20000;
/** Anonymous memory: 8 scattered pages at buffer offset 2 MiB (mmap places mappings 2 MiB apart). */
const ANON_OFFSET = 0x200000n;
const ANON_BYTES = 0x8000;

// ---- the systems ---------------------------------------------------------------------------------

/** The operations of a windowed container beyond type1's `DmaSystem`, and what both sides must show. */
interface WindowedDmaSystem extends DmaSystem {
  /** SET_ATTR GEOMETRY then WINDOWS with the world's layout (the first failure, or ok). */
  setLayout(): Outcome;
  /** The hardware re-enables the LIODN (no ioctl: the window API's enable). */
  reenable(): void;
  windows(): ModelWindow[];
  enabled(): boolean;
  liodnDisabled(): boolean;
}

type RealWindowedSystem = WindowedDmaSystem & RealDmaSystem;

/** A type2 container holding one vfio-pci device on fsl-p4080, driven through raw ioctls. */
class Type2System extends VfioDmaSystem implements RealWindowedSystem {
  private get _domain(): WindowedDomain {
    const domain = this._device.group.domain;
    if (domain === undefined || !isWindowedDomain(domain)) throw new Error('the device has no windowed domain');
    return domain;
  }

  private get _pamu(): WindowedIommu {
    return this._kernel.iommus[0] as WindowedIommu;
  }

  setLayout(): Outcome {
    const attrs = [
      { attribute: uapi.VFIO_ATTR_GEOMETRY, aperture_start: APERTURE_START, aperture_end: APERTURE_END - 1n },
      { attribute: uapi.VFIO_ATTR_WINDOWS, windows: COUNT },
    ];
    for (const attr of attrs) {
      const ret = this._proc.ioctlRaw(this._container, uapi.VFIO_IOMMU_PAMU_SET_ATTR, uapi.VfioPamuAttr.encode({ argsz: 32, ...attr }));
      if (ret !== 0) return { ok: false, errno: errnoCode(ret) };
    }
    return { ok: true };
  }

  reenable(): void {
    this._domain.windows.reenableRequester(LIODN);
  }

  cpuReadAll(): Uint8Array {
    const out = new Uint8Array(HUGE_BYTES + ANON_BYTES);
    out.set(this._proc.readMemory(this._base, HUGE_BYTES), 0);
    out.set(this._proc.readMemory(this._base + ANON_OFFSET, ANON_BYTES), HUGE_BYTES);
    return out;
  }

  windows(): ModelWindow[] {
    const out: ModelWindow[] = [];
    const ops = this._domain.windows;
    for (let index = 0; index < COUNT; index++) {
      const w = ops.window(index);
      if (w !== undefined) out.push({ index, ...w });
    }
    return out;
  }

  enabled(): boolean {
    return this._domain.windows.isEnabled();
  }

  liodnDisabled(): boolean {
    return this._pamu.liodnState(LIODN)!.disabled;
  }

  /** A fault must also be the last record of the kernel's log and of the PAMU's. */
  protected expectFaultLogged(iova: bigint, access: 'read' | 'write'): void {
    const record = this._kernel.dmaFaults().at(-1);
    if (record?.iova !== iova || record.access !== access || record.bdf !== BDF || record.liodn !== LIODN) {
      expect(record).toMatchObject({ iova, access, bdf: BDF, liodn: LIODN });
    }
    const violation = this._pamu.faults().at(-1);
    if (violation?.address !== (iova & ~0xfffn) || violation.liodn !== LIODN) expect(violation).toMatchObject({ address: iova & ~0xfffn, liodn: LIODN });
  }
}

/** The model, with the layout step and the checks the real system must match. */
class WindowedModel extends Type2Model implements WindowedDmaSystem {
  setLayout(): Outcome {
    // Geometry and window count cannot change while anything is mapped (the domain is enabled).
    return this.mappings().length > 0 ? { ok: false, errno: 'EBUSY' } : { ok: true };
  }
}

interface Variant {
  readonly name: string;
  /** RLIMIT_MEMLOCK in pages; undefined for 1 TiB (never reached). */
  readonly memlockLimitPages?: number;
  readonly numRuns: number;
  readonly mustSee: readonly string[];
}

interface World {
  readonly kernel: Kernel;
  readonly model: WindowedModel;
  readonly real: Type2System;
}

/** A kernel, a process with its memory (faulted in), a container with the layout set, and the model. */
function type2World(variant: Variant): World {
  const kernel = new Kernel({ machine: 'fsl-p4080', devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }] });
  const limitPages = variant.memlockLimitPages;
  const proc = kernel.spawn({ memlockLimit: limitPages === undefined ? 1n << 40n : BigInt(limitPages) * PAGE });
  const base = proc.mmap(HUGE_BYTES + HOLE_BYTES, { pageSize: WINDOW, populate: true });
  proc.munmap(base + BigInt(HUGE_BYTES), HOLE_BYTES);
  const anon = proc.mmap(ANON_BYTES, { populate: true });
  expect(anon - base).toBe(ANON_OFFSET);
  // The frame behind each page: the test's /proc/self/pagemap.
  const frames = (offset: bigint, bytes: number): number[] =>
    Array.from({ length: bytes / Number(PAGE) }, (_, i) => proc.mm.resolve(Number((base + offset) / PAGE) + i, false));
  const vfio = VfioContainer.open(proc);
  VfioGroup.open(proc, GROUP).setContainer(vfio);
  vfio.setIommu(uapi.VFIO_TYPE2_IOMMU);
  const real = new Type2System(kernel, proc, vfio.fd, kernel.device(BDF), base);
  expect(real.setLayout()).toEqual({ ok: true });
  const model = new WindowedModel({
    bufferBase: base,
    apertureStart: APERTURE_START,
    windowBytes: WINDOW,
    count: COUNT,
    regions: [
      { offset: 0n, pfns: frames(0n, HUGE_BYTES) },
      { offset: ANON_OFFSET, pfns: frames(ANON_OFFSET, ANON_BYTES) },
    ],
    memlockLimitPages: limitPages,
  });
  return { kernel, model, real };
}

// ---- steps ---------------------------------------------------------------------------------------

/** The hardware state both sides must show after every step. */
function expectSameHardware(model: WindowedDmaSystem, real: WindowedDmaSystem): void {
  const want = { windows: model.windows(), enabled: model.enabled(), liodnDisabled: model.liodnDisabled() };
  const got = { windows: real.windows(), enabled: real.enabled(), liodnDisabled: real.liodnDisabled() };
  if (JSON.stringify(got) !== JSON.stringify(want)) expect(got).toEqual(want);
}

function audit(model: WindowedDmaSystem, real: RealWindowedSystem): void {
  real.checkInvariants();
  expect(real.accounting()).toEqual(model.accounting());
  expectSameHardware(model, real);
  expectSameMemory(model, real);
}

/** The IOVA one past a mapping's last window (its slots, not its mapped size). */
const slotsEnd = (m: WindowedMapping): bigint => m.iova + BigInt(m.windowCount) * WINDOW;

/** One step: runs on the model and on the real system; outcomes, accounting and hardware must agree. */
abstract class Step extends ModelStep<WindowedModel, RealWindowedSystem> {
  protected override afterStep(model: WindowedModel, real: RealWindowedSystem): void {
    expectSameHardware(model, real);
  }

  /** MAP_DMA; its outcome is counted with the model's reason ('MAP ok, one window', 'MAP EFAULT not contiguous'). */
  protected override map(req: MapRequest, model: WindowedModel, real: WindowedDmaSystem): void {
    const key = (expected: Outcome): string => (expected.ok ? `MAP ${model.lastMapReason}` : `${label('MAP', expected)} ${model.lastMapReason}`);
    this.compare('MAP', showMap(req), (s) => s.map(req), model, real, key);
  }

  protected override unmap(req: UnmapRequest, model: WindowedModel, real: WindowedDmaSystem): void {
    this.compare('UNMAP', showUnmap(req), (s) => s.unmap(req), model, real);
  }

  /** UNMAP_DMA with FLAG_ALL; any extra flag is refused, so they are counted together. */
  protected override unmapAll(extraFlags: number, model: WindowedModel, real: WindowedDmaSystem): void {
    super.unmapAll(extraFlags, model, real, 'UNMAP_ALL(+flags)');
  }

}

/** MAP_DMA in the windows right after (or before) an existing mapping's slots. At the aperture start when there is none. */
class MapBesideStep extends Step {
  constructor(
    private readonly _index: number,
    private readonly _side: 'after' | 'before',
    private readonly _req: Omit<MapRequest, 'iova'>,
  ) {
    super();
  }
  protected step(model: WindowedModel, real: WindowedDmaSystem): void {
    const at = mappingAt(model, this._index);
    let iova = APERTURE_START;
    if (at !== undefined) {
      const slots = this._req.size < WINDOW ? WINDOW : this._req.size;
      iova = this._side === 'after' || at.m.iova < slots ? slotsEnd(at.m) : at.m.iova - slots;
    }
    this.map({ ...this._req, iova }, model, real);
  }
  toString(): string {
    const { size, vaddrOffset, flags } = this._req;
    return `MapBeside(${this._side} mapping#${this._index}, size=${hex(size)}, vaddr=buf+${hex(vaddrOffset)}, flags=${flagNames(flags, MAP_FLAG_NAMES)})`;
  }
}

/** A burst of one-window MAP_DMAs from window `first`, vaddrs from a hugepage, wrapping inside the hugetlb memory. */
class MapBurstStep extends Step {
  constructor(
    private readonly _first: number,
    private readonly _count: number,
    private readonly _hugepage: number,
    private readonly _flags: number,
  ) {
    super();
  }
  protected step(model: WindowedModel, real: WindowedDmaSystem): void {
    for (let i = 0; i < this._count; i++) {
      const iova = APERTURE_START + BigInt(this._first + i) * WINDOW;
      const vaddrOffset = (BigInt(this._hugepage + i) * WINDOW) % BigInt(HUGE_BYTES);
      this.map({ iova, size: WINDOW, vaddrOffset, flags: this._flags }, model, real);
    }
  }
  toString(): string {
    return `MapBurst(${this._count} windows from window ${this._first}, vaddr=hugepage ${this._hugepage}, flags=${flagNames(this._flags, MAP_FLAG_NAMES)})`;
  }
}

/** How an UNMAP_DMA is placed around mapping m and the one after it, n (m itself when m is the last). */
const UNMAP_SHAPES = {
  exact: (m: WindowedMapping): [bigint, bigint] => [m.iova, m.iova + m.size],
  slots: (m: WindowedMapping): [bigint, bigint] => [m.iova, slotsEnd(m)],
  'first page': (m: WindowedMapping): [bigint, bigint] => [m.iova, m.iova + PAGE],
  'first window': (m: WindowedMapping): [bigint, bigint] => [m.iova, m.iova + WINDOW],
  'last page': (m: WindowedMapping): [bigint, bigint] => [m.iova + m.size - PAGE, m.iova + m.size],
  'from its second window': (m: WindowedMapping): [bigint, bigint] => [m.iova + WINDOW, slotsEnd(m)],
  'through next': (m: WindowedMapping, n: WindowedMapping): [bigint, bigint] => [m.iova, n.iova + n.size],
  'inside to next end': (m: WindowedMapping, n: WindowedMapping): [bigint, bigint] => [m.iova + PAGE, n.iova + n.size],
  around: (m: WindowedMapping): [bigint, bigint] => [m.iova - WINDOW, slotsEnd(m) + WINDOW],
} as const;
type UnmapShape = keyof typeof UNMAP_SHAPES;

class UnmapShapeStep extends Step {
  constructor(
    private readonly _index: number,
    private readonly _shape: UnmapShape,
    private readonly _flags: number,
  ) {
    super();
  }
  protected step(model: WindowedModel, real: WindowedDmaSystem): void {
    const at = mappingAt(model, this._index);
    const [start, end] = at === undefined ? [APERTURE_START, APERTURE_START + WINDOW] : UNMAP_SHAPES[this._shape](at.m, at.next);
    this.unmap({ iova: start, size: end - start, flags: this._flags }, model, real);
  }
  toString(): string {
    return `UnmapShape(${this._shape} of mapping#${this._index}, flags=${flagNames(this._flags, UNMAP_FLAG_NAMES)})`;
  }
}

/** Where a DMA goes (a `DmaTarget`): a fixed iova, or an offset into an existing mapping's slots (past its size too). */
function dmaIova(model: WindowedModel, target: DmaTarget): bigint {
  if ('iova' in target) return target.iova;
  const m = mappingAt(model, target.index)?.m;
  return m === undefined ? APERTURE_START + 0x100n : m.iova + (BigInt(target.offset) % (slotsEnd(m) - m.iova));
}

const showTarget = (t: DmaTarget): string => ('iova' in t ? `iova=${hex(t.iova)}` : `mapping#${t.index} slots+${hex(t.offset)}`);

const { MapStep, UnmapStep, UnmapAllStep, DmaReadStep, DmaWriteStep } = commonSteps<WindowedModel, RealWindowedSystem>(Step, { iova: dmaIova, show: showTarget });

/** The process fills pages of the hugetlb or the anonymous memory with a pattern that is never 0. */
class CpuFillStep extends Step {
  constructor(
    private readonly _anon: boolean,
    private readonly _page: number,
    private readonly _pages: number,
    private readonly _seed: number,
  ) {
    super();
  }
  protected step(model: WindowedDmaSystem, real: WindowedDmaSystem): void {
    const regionBytes = this._anon ? ANON_BYTES : HUGE_BYTES;
    const start = (this._page * Number(PAGE)) % regionBytes;
    const end = Math.min(regionBytes, start + this._pages * Number(PAGE));
    const bytes = Uint8Array.from({ length: end - start }, (_, i) => ((this._seed + start + i) % 251) + 1);
    const offset = (this._anon ? Number(ANON_OFFSET) : 0) + start;
    model.cpuWrite(offset, bytes);
    real.cpuWrite(offset, bytes);
  }
  toString(): string {
    return `CpuFill(${this._anon ? 'anon' : 'huge'}+${hex(this._page * Number(PAGE))}, ${this._pages} pages, seed ${this._seed})`;
  }
}

/** SET_ATTR GEOMETRY and WINDOWS again with the same layout: EBUSY while anything is mapped. */
class LayoutStep extends Step {
  protected step(model: WindowedModel, real: WindowedDmaSystem): void {
    this.compare('LAYOUT', '', (s) => s.setLayout(), model, real);
  }
  toString(): string {
    return 'SetLayout()';
  }
}

/** The PAMU re-enables the LIODN after a violation. */
class ReenableStep extends Step {
  protected step(model: WindowedModel, real: WindowedDmaSystem): void {
    model.reenable();
    real.reenable();
  }
  toString(): string {
    return 'Reenable()';
  }
}

class AuditStep extends Step {
  protected step(model: WindowedModel, real: RealWindowedSystem): void {
    audit(model, real);
  }
  toString(): string {
    return 'Audit()';
  }
}

// ---- generators ----------------------------------------------------------------------------------

const windowBase = fc.integer({ min: 0, max: COUNT - 1 }).map((k) => APERTURE_START + BigInt(k) * WINDOW);
/** Any page from 0 to 768 KiB: below, in and above the aperture. */
const anyPage = fc.integer({ min: 0, max: 0xbf }).map((k) => BigInt(k) * PAGE);
const gridIova = fc.oneof(
  { arbitrary: windowBase, weight: 10 },
  { arbitrary: anyPage, weight: 3 },
  { arbitrary: fc.integer({ min: 1, max: 4 }).map((k) => U64_MAX + 1n - BigInt(k) * WINDOW), weight: 1 },
);
/** A grid IOVA, misaligned by 0x800 one time in twenty. */
const iovaArb = fc.tuple(gridIova, fc.integer({ min: 0, max: 19 })).map(([iova, dice]) => (dice === 0 ? iova + 0x800n : iova));

const sizeArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 4 }).map((k) => BigInt(k) * WINDOW), weight: 10 },
  { arbitrary: fc.constantFrom(PAGE, 2n * PAGE), weight: 4 },
  {
    arbitrary: fc.constantFrom(0n, 0x800n, 3n * PAGE, WINDOW + PAGE, 2n * WINDOW + 2n * PAGE, BigInt(COUNT) * WINDOW, U64_MAX + 1n - WINDOW, 1n << 63n),
    weight: 3,
  },
);
const unmapSizeArb = fc.oneof(
  { arbitrary: sizeArb, weight: 4 },
  { arbitrary: fc.constantFrom(U64_MAX + 1n - WINDOW, 0x100000n), weight: 1 },
);

const vaddrOffsetArb = fc.oneof(
  // Hugepage boundaries: contiguous and aligned for one window.
  { arbitrary: fc.integer({ min: 0, max: 7 }).map((k) => BigInt(k) * WINDOW), weight: 10 },
  // Any hugetlb page: natural alignment, and runs across two hugepages.
  { arbitrary: fc.integer({ min: 0, max: 31 }).map((k) => BigInt(k) * PAGE), weight: 4 },
  // Scattered anonymous pages.
  { arbitrary: fc.integer({ min: 0, max: 7 }).map((k) => ANON_OFFSET + BigInt(k) * PAGE), weight: 3 },
  // The hole.
  { arbitrary: fc.integer({ min: 32, max: 63 }).map((k) => BigInt(k) * PAGE), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 7 }).map((k) => BigInt(k) * WINDOW + 0x800n), weight: 1 },
);

const mapFlagsArb = weighted(
  [MAP_READ | MAP_WRITE, 12],
  [MAP_READ, 4],
  [MAP_WRITE, 4],
  [0, 1],
  [MAP_VADDR, 1],
  [MAP_VADDR | MAP_READ | MAP_WRITE, 1],
  [0x8 | MAP_READ | MAP_WRITE, 1],
);
const unmapFlagsArb = weighted([0, 14], [UNMAP_ALL, 1], [UNMAP_VADDR, 1], [UNMAP_GET_DIRTY_BITMAP, 1], [0x8, 1]);

const dmaTargetArb: fc.Arbitrary<DmaTarget> = fc.oneof(
  { arbitrary: fc.record({ index: indexArb, offset: fc.nat(0xffff) }), weight: 4 },
  { arbitrary: fc.tuple(gridIova, fc.nat(0xfff)).map(([page, offset]) => ({ iova: page + BigInt(offset) })), weight: 1 },
);

const mapArb = fc.record({ iova: iovaArb, size: sizeArb, vaddrOffset: vaddrOffsetArb, flags: mapFlagsArb }).map((req) => new MapStep(req));
/** A power-of-two region smaller than a window, from any hugetlb page: natural alignment decides. */
const mapRegionArb = fc
  .record({ iova: windowBase, size: weighted([2n * PAGE, 3], [PAGE, 1]), vaddrOffset: fc.integer({ min: 0, max: 31 }).map((k) => BigInt(k) * PAGE), flags: mapFlagsArb })
  .map((req) => new MapStep(req));
const mapBesideArb = fc
  .tuple(indexArb, fc.constantFrom('after' as const, 'before' as const), fc.record({ size: sizeArb, vaddrOffset: vaddrOffsetArb, flags: mapFlagsArb }))
  .map(([index, side, req]) => new MapBesideStep(index, side, req));
const mapBurstArb = fc
  .tuple(fc.nat(COUNT - 1), fc.integer({ min: 2, max: 6 }), fc.nat(7), mapFlagsArb)
  .map(([first, count, hugepage, flags]) => new MapBurstStep(first, count, hugepage, flags));
const unmapArb = fc.record({ iova: iovaArb, size: unmapSizeArb, flags: unmapFlagsArb }).map((req) => new UnmapStep(req));
const unmapShapeArb = fc
  .tuple(indexArb, fc.constantFrom(...(Object.keys(UNMAP_SHAPES) as UnmapShape[])), unmapFlagsArb)
  .map(([index, shape, flags]) => new UnmapShapeStep(index, shape, flags));
const unmapAllArb = weighted([0, 3], [UNMAP_VADDR, 1]).map((flags) => new UnmapAllStep(flags));
const dmaReadArb = dmaTargetArb.map((target) => new DmaReadStep(target));
const dmaWriteArb = fc.tuple(dmaTargetArb, byteArb).map(([target, byte]) => new DmaWriteStep(target, byte));
const cpuFillArb = fc
  .tuple(weighted([false, 3], [true, 1]), fc.nat(31), fc.integer({ min: 1, max: 32 }), fc.nat(250))
  .map(([anon, page, pages, seed]) => new CpuFillStep(anon, page, pages, seed));

const stepArb: fc.Arbitrary<ModelStep<WindowedModel, RealWindowedSystem>> = fc.oneof(
  { arbitrary: mapArb, weight: 6 },
  { arbitrary: mapRegionArb, weight: 2 },
  { arbitrary: mapBesideArb, weight: 3 },
  { arbitrary: mapBurstArb, weight: 2 },
  { arbitrary: unmapArb, weight: 2 },
  { arbitrary: unmapShapeArb, weight: 4 },
  { arbitrary: unmapAllArb, weight: 1 },
  { arbitrary: dmaReadArb, weight: 7 },
  { arbitrary: dmaWriteArb, weight: 4 },
  { arbitrary: cpuFillArb, weight: 4 },
  { arbitrary: fc.constant(new ReenableStep()), weight: 4 },
  { arbitrary: fc.constant(new LayoutStep()), weight: 1 },
  { arbitrary: fc.constant(new AuditStep()), weight: 1 },
);

function runSequence(variant: Variant, steps: Iterable<fc.Command<WindowedModel, RealWindowedSystem>>): void {
  const world = type2World(variant);
  countRun();
  fc.modelRun(() => ({ model: world.model, real: world.real }), steps);
  audit(world.model, world.real);
  world.kernel.shutdown();
}

// ---- tests ---------------------------------------------------------------------------------------

const VARIANTS: Variant[] = [
  {
    name: 'type2, 16 windows of 16 KiB',
    numRuns: 100,
    mustSee: [
      'MAP ok, one window',
      'MAP ok, several windows',
      'MAP ok, part of a window',
      'MAP EINVAL flags',
      'MAP EINVAL size 0',
      'MAP EOVERFLOW wrap',
      'MAP EINVAL prot',
      'MAP EINVAL alignment',
      'MAP EINVAL remainder',
      'MAP EINVAL not a power of two',
      'MAP EINVAL not a window base',
      'MAP EINVAL outside the aperture',
      'MAP EEXIST overlap',
      'MAP EFAULT not contiguous',
      'MAP EFAULT not mapped',
      'MAP EINVAL backing not aligned',
      'UNMAP ok size>0',
      'UNMAP ok size=0',
      'UNMAP EINVAL',
      'UNMAP EOVERFLOW',
      'UNMAP_ALL ok size>0',
      'UNMAP_ALL(+flags) EINVAL',
      'DMA read ok byte=0',
      'DMA read ok byte>0',
      'DMA read unmapped',
      'DMA read permission',
      'DMA read blocked',
      'DMA write ok',
      'DMA write unmapped',
      'DMA write permission',
      'DMA write blocked',
      'LAYOUT ok',
      'LAYOUT EBUSY',
    ],
  },
  {
    name: 'type2 with RLIMIT_MEMLOCK of 12 pages (3 windows)',
    memlockLimitPages: 12,
    numRuns: 40,
    mustSee: ['MAP ok, one window', 'MAP ENOMEM memlock', 'MAP EFAULT not contiguous', 'UNMAP ok size>0'],
  },
];

// ---- the model against examples -----------------------------------------------------------------

const RW = MAP_READ | MAP_WRITE;
const W0 = APERTURE_START;
const mapReq = (iova: bigint, size: bigint, vaddrOffset = 0n, flags = RW): MapRequest => ({ iova, size, vaddrOffset, flags });
const unmapReq = (iova: bigint, size: bigint, flags = 0): UnmapRequest => ({ iova, size, flags });

type Setup = (s: WindowedDmaSystem) => Outcome[];
const none: Setup = () => [];
/** A = windows 1–2 (hugepages 0–1), B = 8 KiB at the base of window 4 (hugepage 2). */
const withAB: Setup = (s) => [s.map(mapReq(W0 + WINDOW, 2n * WINDOW, 0n)), s.map(mapReq(W0 + 4n * WINDOW, 2n * PAGE, 2n * WINDOW))];

interface Example {
  readonly name: string;
  readonly setup: Setup;
  readonly run: (s: WindowedDmaSystem) => Outcome;
  readonly expected: Outcome;
}

const EXAMPLES: Example[] = [
  { name: 'MAP one window from a hugepage', setup: none, run: (s) => s.map(mapReq(W0, WINDOW)), expected: OK },
  { name: 'MAP four windows from four hugepages', setup: none, run: (s) => s.map(mapReq(W0, 4n * WINDOW, 4n * WINDOW)), expected: OK },
  { name: 'MAP 8 KiB from 8 KiB into a hugepage', setup: none, run: (s) => s.map(mapReq(W0, 2n * PAGE, 2n * PAGE)), expected: OK },
  { name: 'MAP 8 KiB from 4 KiB into a hugepage (not aligned)', setup: none, run: (s) => s.map(mapReq(W0, 2n * PAGE, PAGE)), expected: err('EINVAL') },
  { name: 'MAP 12 KiB', setup: none, run: (s) => s.map(mapReq(W0, 3n * PAGE)), expected: err('EINVAL') },
  { name: 'MAP a window and a page', setup: none, run: (s) => s.map(mapReq(W0, WINDOW + PAGE)), expected: err('EINVAL') },
  { name: 'MAP at a page inside a window', setup: none, run: (s) => s.map(mapReq(W0 + PAGE, PAGE)), expected: err('EINVAL') },
  { name: 'MAP below the aperture', setup: none, run: (s) => s.map(mapReq(W0 - WINDOW, WINDOW)), expected: err('EINVAL') },
  { name: 'MAP past the aperture', setup: none, run: (s) => s.map(mapReq(APERTURE_END - WINDOW, 2n * WINDOW)), expected: err('EINVAL') },
  { name: 'MAP a window of anonymous pages', setup: none, run: (s) => s.map(mapReq(W0, WINDOW, ANON_OFFSET)), expected: err('EFAULT') },
  { name: 'MAP one anonymous page', setup: none, run: (s) => s.map(mapReq(W0, PAGE, ANON_OFFSET + PAGE)), expected: OK },
  { name: 'MAP a window from the hole', setup: none, run: (s) => s.map(mapReq(W0, WINDOW, BigInt(HUGE_BYTES))), expected: err('EFAULT') },
  { name: 'MAP with FLAG_VADDR', setup: none, run: (s) => s.map(mapReq(W0, WINDOW, 0n, MAP_VADDR)), expected: err('EINVAL') },
  { name: 'MAP a wrapping range', setup: none, run: (s) => s.map(mapReq(U64_MAX + 1n - WINDOW, 2n * WINDOW)), expected: err('EOVERFLOW') },
  { name: 'MAP over A', setup: withAB, run: (s) => s.map(mapReq(W0 + 2n * WINDOW, WINDOW, 4n * WINDOW)), expected: err('EEXIST') },
  { name: "MAP over B's slot", setup: withAB, run: (s) => s.map(mapReq(W0 + 4n * WINDOW, WINDOW, 4n * WINDOW)), expected: err('EEXIST') },
  { name: 'MAP between A and B', setup: withAB, run: (s) => s.map(mapReq(W0 + 3n * WINDOW, WINDOW, 4n * WINDOW)), expected: OK },
  { name: 'UNMAP A', setup: withAB, run: (s) => s.unmap(unmapReq(W0 + WINDOW, 2n * WINDOW)), expected: okSize(2n * WINDOW) },
  { name: 'UNMAP the first window of A', setup: withAB, run: (s) => s.unmap(unmapReq(W0 + WINDOW, WINDOW)), expected: err('EINVAL') },
  { name: "UNMAP B's slot", setup: withAB, run: (s) => s.unmap(unmapReq(W0 + 4n * WINDOW, WINDOW)), expected: okSize(2n * PAGE) },
  { name: 'UNMAP the first page of B', setup: withAB, run: (s) => s.unmap(unmapReq(W0 + 4n * WINDOW, PAGE)), expected: err('EINVAL') },
  { name: 'UNMAP the aperture', setup: withAB, run: (s) => s.unmap(unmapReq(W0, APERTURE_END - W0)), expected: okSize(2n * WINDOW + 2n * PAGE) },
  { name: 'UNMAP with FLAG_VADDR', setup: withAB, run: (s) => s.unmap(unmapReq(W0 + WINDOW, 2n * WINDOW, UNMAP_VADDR)), expected: err('EINVAL') },
  { name: 'UNMAP_ALL', setup: withAB, run: (s) => s.unmapAll(0), expected: okSize(2n * WINDOW + 2n * PAGE) },
  { name: 'DMA read past B in its slot', setup: withAB, run: (s) => s.dmaRead(W0 + 4n * WINDOW + 2n * PAGE), expected: { ok: false, fault: 'unmapped' } },
  { name: 'DMA read with nothing mapped', setup: none, run: (s) => s.dmaRead(W0), expected: { ok: false, fault: 'blocked' } },
  { name: 'LAYOUT with A and B mapped', setup: withAB, run: (s) => s.setLayout(), expected: err('EBUSY') },
];

describe('the windowed reference model and the simulator give the expected answers', () => {
  test.each(EXAMPLES.map((example) => ({ title: `${example.name} → ${showOutcome(example.expected)}`, example })))('$title', ({ example }) => {
    const world = type2World(VARIANTS[0]!);
    for (const [side, system] of [['model', world.model], ['simulator', world.real]] as const) {
      expect(example.setup(system).filter((o) => !o.ok)).toEqual([]);
      expect({ [side]: shown(example.run(system)) }).toEqual({ [side]: shown(example.expected) });
    }
    audit(world.model, world.real);
  });
});

describe('type2 against the windowed reference model', () => {
  test.each(VARIANTS)('$name agrees with the model on random window-shaped sequences', (variant) => {
    seen.clear();
    fc.assert(
      fc.property(fc.commands([stepArb], { maxCommands: 40, size: 'max' }), (steps) => runSequence(variant, steps)),
      { numRuns: variant.numRuns },
    );
    expectReached(variant.name, variant.mustSee);
  });
});
