/**
 * Model-based test of the type1 backend (VFIO_TYPE1_IOMMU and VFIO_TYPE1v2_IOMMU): fast-check generates
 * sequences of MAP_DMA, UNMAP_DMA, UNMAP_DMA with FLAG_ALL, device DMA reads and writes, and CPU writes
 * to the mapped buffer, runs each on the reference model (type1-reference-model.ts) and on a simulated
 * kernel, and requires the same errno or success (with the same unmapped size), the same bytes, and
 * after every step the same pinned pages and locked_vm. An Audit step, and the end of every sequence,
 * also run `kernel.checkInvariants()` and compare the whole buffer; the end shuts the kernel down, which
 * must release everything whatever state the sequence left. Before that, a table of the reference's own
 * examples (the §6 table, the order of the §5 checks) pins the model, and the simulator, to the document.
 *
 * What the generators aim at (reference/vfio-uapi.md §5, §6, §9):
 * - IOVAs on a 16-page grid in five places: at 0, around the end of the first usable range and the
 *   start of the interrupt range (0xFEE00000), around the end of the interrupt range (0xFEF00000),
 *   around the top of the 48-bit aperture, and the last pages below 2^64; so exact matches, overlaps and
 *   range edges are frequent. One IOVA in twenty is misaligned by 0x800.
 * - Sizes of 1–16 pages, plus zero, misaligned, wrapping (2^64 − 0x1000), ending exactly at 2^64 − 1,
 *   and huge ones that cross the interrupt range or the aperture.
 * - vaddrs inside the 64 KiB buffer, past its end (an unmapped hole: EFAULT), or misaligned.
 * - Flags: READ/WRITE combinations, none, VADDR (update path), VADDR with READ, unknown bits; for
 *   UNMAP: VADDR, ALL with a non-zero range, GET_DIRTY_BITMAP (refused with argsz 24), unknown bits.
 * - Steps that aim at existing mappings (by index into the model's list, resolved when the step runs):
 *   MAP next to one, bursts of adjacent MAPs, MAP with FLAG_VADDR on an invalidated one, UNMAPs shaped
 *   around one and its neighbour (exact, head, tail, starting inside, spanning both), DMA inside one.
 * - A dma_entry_limit of 8 so that ENOSPC is reached; one variant with a tight RLIMIT_MEMLOCK.
 * Each run also checks that the generators reached every outcome they are meant to (`mustSee`).
 *
 * Structure, so the same steps can drive the windowed (type2) backend later: both sides implement
 * `DmaSystem` (map / unmap / unmapAll / dmaRead / dmaWrite returning an `Outcome` { ok, errno | fault,
 * size | byte }, plus cpuWrite / cpuReadAll / accounting), and the model also lists its mappings
 * (`ReferenceModel`). `Type1System` below is the only code that knows the type1 ioctls; a type2 run
 * needs a windowed reference model implementing `ReferenceModel`, a `Type2System` adapter implementing
 * `RealDmaSystem`, and generators for its address grid. type2-model.test.ts is that run: what both
 * tests share (outcome counting and naming, printing, comparing, the `ModelStep` base class) lives in
 * dma-model-kit.ts; the steps below stay here because they aim at type1's address grid.
 *
 * Failures print the shrunk sequence with each step's toString(), and the concrete request that
 * disagreed as the key of the compared outcomes. Set MODEL_STATS=1 to print how often each outcome
 * was reached.
 */
import fc from 'fast-check';
import { Kernel, uapi } from '../../index';
import {
  MAP_READ,
  MAP_VADDR,
  MAP_WRITE,
  PAGE,
  U64_MAX,
  UNMAP_ALL,
  UNMAP_GET_DIRTY_BITMAP,
  UNMAP_VADDR,
  X86_VTD_USABLE_RANGES,
  Type1Model,
  type DmaSystem,
  type ReferenceModel,
  type MapRequest,
  type Outcome,
  type UnmapRequest,
} from './type1-reference-model';
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
  expectReached,
  expectSameMemory,
  flagNames,
  hex,
  indexArb,
  mappingAt,
  okSize,
  seen,
  showOutcome,
  shown,
  weighted,
  VfioDmaSystem,
  type RealDmaSystem,
} from './dma-model-kit';

const BDF = '0000:06:0d.0';
const GROUP = 26;
/** dma_entry_limit: small, so that sequences of 40 steps reach ENOSPC. */
const ENTRY_LIMIT = 8;
/** The process buffer every mapping pins: 16 pages, with an unmapped hole of 16 pages above it. */
const BUFFER_SIZE = 0x10000;

// ---- the real system ---------------------------------------------------------------------------

/** A type1 container holding one vfio-pci device, driven through raw ioctls. */
class Type1System extends VfioDmaSystem {
  cpuReadAll(): Uint8Array {
    return this._proc.readMemory(this._base, BUFFER_SIZE);
  }

  /** A fault must also be the last record of the IOMMU's fault log. */
  protected expectFaultLogged(iova: bigint, access: 'read' | 'write'): void {
    const record = this._kernel.dmaFaults().at(-1);
    if (record?.iova !== iova || record.access !== access || record.bdf !== BDF) expect(record).toMatchObject({ iova, access, bdf: BDF });
  }
}

interface Variant {
  readonly name: string;
  readonly type: typeof uapi.VFIO_TYPE1_IOMMU | typeof uapi.VFIO_TYPE1v2_IOMMU;
  /** RLIMIT_MEMLOCK in pages; undefined for 1 TiB (never reached). */
  readonly memlockLimitPages?: number;
  /** Outcomes the generators must reach in one property run (a guard against generators that drift). */
  readonly mustSee: readonly string[];
}

interface World {
  readonly kernel: Kernel;
  readonly model: Type1Model;
  readonly real: Type1System;
}

/** A kernel, a process with the buffer and the hole above it, and a container with SET_IOMMU done. */
function type1World(variant: Variant): World {
  const kernel = new Kernel({ devices: [{ bdf: BDF, group: GROUP, driver: 'vfio-pci' }], dmaEntryLimit: ENTRY_LIMIT });
  const limitPages = variant.memlockLimitPages;
  const proc = kernel.spawn({ memlockLimit: limitPages === undefined ? 1n << 40n : BigInt(limitPages) * PAGE });
  // Map twice the buffer and give the upper half back, so that the hole above the buffer is certain.
  const base = proc.mmap(2 * BUFFER_SIZE);
  proc.munmap(base + BigInt(BUFFER_SIZE), BUFFER_SIZE);
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open(`/dev/vfio/${GROUP}`);
  const fd = new Uint8Array(4);
  uapi.writeU32(fd, 0, container);
  expect(proc.ioctlRaw(group, uapi.VFIO_GROUP_SET_CONTAINER, fd)).toBe(0);
  expect(proc.ioctlRaw(container, uapi.VFIO_SET_IOMMU, variant.type)).toBe(0);
  const model = new Type1Model({
    v2: variant.type === uapi.VFIO_TYPE1v2_IOMMU,
    entryLimit: ENTRY_LIMIT,
    usableRanges: X86_VTD_USABLE_RANGES,
    bufferBase: base,
    bufferSize: BUFFER_SIZE,
    memlockLimitPages: limitPages,
  });
  return { kernel, model, real: new Type1System(kernel, proc, container, kernel.device(BDF), base) };
}

// ---- steps ---------------------------------------------------------------------------------------

function audit(model: DmaSystem, real: RealDmaSystem): void {
  real.checkInvariants();
  expect(real.accounting()).toEqual(model.accounting());
  expectSameMemory(model, real);
}

type Mapping = { readonly iova: bigint; readonly size: bigint; readonly vaddrInvalid: boolean };

/** A type1 step: the kit's, where MAP and UNMAP with FLAG_VADDR are counted apart ('MAP(VADDR) ok'). */
abstract class Step extends ModelStep<ReferenceModel, RealDmaSystem> {}

/** MAP_DMA right after (or before) an existing mapping: builds runs of adjacent mappings. At 0 when there is none. */
class MapBesideStep extends Step {
  constructor(
    private readonly _index: number,
    private readonly _side: 'after' | 'before',
    private readonly _req: Omit<MapRequest, 'iova'>,
  ) {
    super();
  }
  protected step(model: ReferenceModel, real: DmaSystem): void {
    const at = mappingAt(model, this._index);
    let iova = 0n;
    // 'before' turns into 'after' when there is no room below the mapping.
    if (at !== undefined) {
      iova = this._side === 'after' || at.m.iova < this._req.size ? at.m.iova + at.m.size : at.m.iova - this._req.size;
    }
    this.map({ ...this._req, iova }, model, real);
  }
  toString(): string {
    const { size, vaddrOffset, flags } = this._req;
    const where = `${this._side} mapping#${this._index}`;
    return `MapBeside(${where}, size=${hex(size)}, vaddr=buf+${hex(vaddrOffset)}, flags=${flagNames(flags, MAP_FLAG_NAMES)})`;
  }
}

/**
 * MAP_DMA with only FLAG_VADDR, on the exact iova and size of an existing mapping: the index counts
 * among the mappings whose vaddr is invalid when there are some, else among all (→ EINVAL), and with
 * no mapping the request is (0, 0x1000) (→ ENOENT).
 */
class MapVaddrStep extends Step {
  constructor(
    private readonly _index: number,
    private readonly _vaddrOffset: bigint,
  ) {
    super();
  }
  protected step(model: ReferenceModel, real: DmaSystem): void {
    const invalid = model.mappings().filter((m) => m.vaddrInvalid);
    const m = invalid[this._index % Math.max(invalid.length, 1)] ?? mappingAt(model, this._index)?.m ?? { iova: 0n, size: PAGE };
    this.map({ iova: m.iova, size: m.size, vaddrOffset: this._vaddrOffset, flags: MAP_VADDR }, model, real);
  }
  toString(): string {
    return `MapVaddr(invalidated mapping#${this._index}, vaddr=buf+${hex(this._vaddrOffset)})`;
  }
}

/**
 * A burst of MAP_DMAs of `pages` pages each, back to back from `iova`, with vaddrs back to back from
 * `vaddrOffset` (wrapping inside the buffer): builds runs of adjacent mappings and reaches the entry
 * limit (ENOSPC) and RLIMIT_MEMLOCK.
 */
class MapBurstStep extends Step {
  constructor(
    private readonly _iova: bigint,
    private readonly _count: number,
    private readonly _pages: number,
    private readonly _vaddrOffset: bigint,
    private readonly _flags: number,
  ) {
    super();
  }
  protected step(model: ReferenceModel, real: DmaSystem): void {
    const size = BigInt(this._pages) * PAGE;
    for (let i = 0n; i < BigInt(this._count); i++) {
      const vaddrOffset = (this._vaddrOffset + i * size) % BigInt(BUFFER_SIZE);
      this.map({ iova: this._iova + i * size, size, vaddrOffset, flags: this._flags }, model, real);
    }
  }
  toString(): string {
    const flags = flagNames(this._flags, MAP_FLAG_NAMES);
    const from = `iova=${hex(this._iova)}, vaddr=buf+${hex(this._vaddrOffset)}`;
    return `MapBurst(${this._count} x ${this._pages} pages from ${from}, flags=${flags})`;
  }
}

/**
 * How an UNMAP_DMA is placed around mapping m and the one after it, n (m itself when m is the last):
 * the cases of the §6 table (exact, only the start, starts inside, covers it with holes) and the v1
 * trap of a request that starts inside m and covers n.
 */
const UNMAP_SHAPES = {
  exact: (m: Mapping): [bigint, bigint] => [m.iova, m.iova + m.size],
  head: (m: Mapping): [bigint, bigint] => [m.iova, m.iova + PAGE],
  tail: (m: Mapping): [bigint, bigint] => [m.iova + m.size - PAGE, m.iova + m.size],
  'inside-to-next-end': (m: Mapping, n: Mapping): [bigint, bigint] => [m.iova + PAGE, n.iova + n.size],
  'start-to-next-head': (m: Mapping, n: Mapping): [bigint, bigint] => [m.iova, n.iova + PAGE],
  'through-next': (m: Mapping, n: Mapping): [bigint, bigint] => [m.iova, n.iova + n.size],
  around: (m: Mapping): [bigint, bigint] => [m.iova < PAGE ? 0n : m.iova - PAGE, m.iova + m.size + PAGE],
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
  protected step(model: ReferenceModel, real: DmaSystem): void {
    const at = mappingAt(model, this._index);
    const [start, end] = at === undefined ? [0n, PAGE] : UNMAP_SHAPES[this._shape](at.m, at.next);
    this.unmap({ iova: start, size: end - start, flags: this._flags }, model, real);
  }
  toString(): string {
    return `UnmapShape(${this._shape} of mapping#${this._index}, flags=${flagNames(this._flags, UNMAP_FLAG_NAMES)})`;
  }
}

/** Where a DMA goes (a `DmaTarget`): a fixed iova, or an offset into an existing mapping (0x100 when there is none). */
function dmaIova(model: ReferenceModel, target: DmaTarget): bigint {
  if ('iova' in target) return target.iova;
  const m = mappingAt(model, target.index)?.m;
  return m === undefined ? 0x100n : m.iova + (BigInt(target.offset) % m.size);
}

const showTarget = (t: DmaTarget): string => ('iova' in t ? `iova=${hex(t.iova)}` : `mapping#${t.index}+${hex(t.offset)}`);

const { MapStep, UnmapStep, UnmapAllStep, DmaReadStep, DmaWriteStep } = commonSteps(Step, { iova: dmaIova, show: showTarget });

/**
 * The process fills pages of its buffer with a pattern that differs from byte to byte and never is 0,
 * so that later DMA reads there check the page and the offset inside it.
 */
class CpuFillStep extends Step {
  constructor(
    private readonly _page: number,
    private readonly _pages: number,
    private readonly _seed: number,
  ) {
    super();
  }
  protected step(model: DmaSystem, real: DmaSystem): void {
    const start = this._page * Number(PAGE);
    const end = Math.min(BUFFER_SIZE, start + this._pages * Number(PAGE));
    const bytes = Uint8Array.from({ length: end - start }, (_, i) => ((this._seed + start + i) % 251) + 1);
    model.cpuWrite(start, bytes);
    real.cpuWrite(start, bytes);
  }
  toString(): string {
    return `CpuFill(buf+${hex(this._page * Number(PAGE))}, ${this._pages} pages, seed ${this._seed})`;
  }
}

class AuditStep extends Step {
  protected step(model: DmaSystem, real: RealDmaSystem): void {
    audit(model, real);
  }
  toString(): string {
    return 'Audit()';
  }
}

// ---- generators ----------------------------------------------------------------------------------

/** Where IOVAs are drawn: `pages` pages from `base`, with the weight of each place. */
const IOVA_PLACES: readonly { base: bigint; pages: number; weight: number }[] = [
  { base: 0n, pages: 16, weight: 20 },
  // The last usable pages below the interrupt range 0xFEE00000–0xFEEFFFFF, and its start.
  { base: 0xfedf8000n, pages: 16, weight: 2 },
  // The end of the interrupt range, and the first usable pages above it (0xFEF00000).
  { base: 0xfeef8000n, pages: 16, weight: 2 },
  // The top of the 48-bit aperture, and past it.
  { base: (1n << 48n) - 0x8000n, pages: 16, weight: 2 },
  // The last pages of the 64-bit space.
  { base: U64_MAX + 1n - 0x8000n, pages: 8, weight: 1 },
];

const pageIn = (place: { base: bigint; pages: number }): fc.Arbitrary<bigint> =>
  fc.integer({ min: 0, max: place.pages - 1 }).map((k) => place.base + BigInt(k) * PAGE);

const gridIova = fc.oneof(...IOVA_PLACES.map((place) => ({ arbitrary: pageIn(place), weight: place.weight })));

/** A page of the grid, misaligned by 0x800 one time in twenty. */
const iovaArb = fc.tuple(gridIova, fc.integer({ min: 0, max: 19 })).map(([iova, dice]) => (dice === 0 ? iova + 0x800n : iova));

/** Sizes of 1–16 pages mostly; then zero, misaligned, wrapping (twice as likely) and huge ones. */
const sizeArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 4 }).map((k) => BigInt(k) * PAGE), weight: 12 },
  { arbitrary: fc.integer({ min: 5, max: 16 }).map((k) => BigInt(k) * PAGE), weight: 3 },
  {
    arbitrary: fc.constantFrom(
      0n,
      0x800n,
      0x1800n,
      // Wraps past 2^64 from any iova above 0x1000 (and from any vaddr).
      U64_MAX + 1n - PAGE,
      U64_MAX + 1n - PAGE,
      // Ends exactly at 2^64 - 1 from iova 0x8000.
      U64_MAX + 1n - 0x8000n,
      1n << 48n,
      1n << 63n,
      0x100000n,
      0x110000n,
    ),
    weight: 3,
  },
);

/** UNMAP sizes: as MAP's, with wrapping sizes more often (MAP also meets them through the vaddr). */
const unmapSizeArb = fc.oneof(
  { arbitrary: sizeArb, weight: 3 },
  { arbitrary: fc.constantFrom(U64_MAX + 1n - PAGE, U64_MAX + 1n - 0x8000n), weight: 1 },
);

const vaddrOffsetArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 15 }).map((k) => BigInt(k) * PAGE), weight: 16 },
  // The hole above the buffer.
  { arbitrary: fc.integer({ min: 16, max: 31 }).map((k) => BigInt(k) * PAGE), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 15 }).map((k) => BigInt(k) * PAGE + 0x800n), weight: 1 },
);

const mapFlagsArb = weighted(
  [MAP_READ | MAP_WRITE, 12],
  [MAP_READ, 4],
  [MAP_WRITE, 4],
  [0, 1],
  [MAP_VADDR, 2],
  [MAP_VADDR | MAP_READ, 1],
  [0x8 | MAP_READ | MAP_WRITE, 1],
  [0x80000000 | MAP_READ | MAP_WRITE, 1],
);

const unmapFlagsArb = weighted(
  [0, 12],
  [UNMAP_VADDR, 6],
  [UNMAP_ALL, 1],
  [UNMAP_ALL | UNMAP_VADDR, 1],
  [UNMAP_GET_DIRTY_BITMAP, 1],
  [UNMAP_GET_DIRTY_BITMAP | UNMAP_ALL, 1],
  [0x8, 1],
);

/** A byte inside an existing mapping, or anywhere in a grid page (DMA is byte-granular). */
const dmaTargetArb: fc.Arbitrary<DmaTarget> = fc.oneof(
  fc.record({ index: indexArb, offset: fc.nat(0xffff) }),
  fc.tuple(gridIova, fc.nat(0xfff)).map(([page, offset]) => ({ iova: page + BigInt(offset) })),
);

const mapArb = fc
  .record({ iova: iovaArb, size: sizeArb, vaddrOffset: vaddrOffsetArb, flags: mapFlagsArb })
  .map((req) => new MapStep(req));
const mapBesideArb = fc
  .tuple(
    indexArb,
    fc.constantFrom('after' as const, 'before' as const),
    fc.record({ size: sizeArb, vaddrOffset: vaddrOffsetArb, flags: mapFlagsArb }),
  )
  .map(([index, side, req]) => new MapBesideStep(index, side, req));
const mapBurstArb = fc
  .tuple(pageIn(IOVA_PLACES[0]!), fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 2 }), vaddrOffsetArb, mapFlagsArb)
  .map(([iova, count, pages, vaddr, flags]) => new MapBurstStep(iova, count, pages, vaddr, flags));
const mapVaddrArb = fc.tuple(indexArb, vaddrOffsetArb).map(([index, vaddr]) => new MapVaddrStep(index, vaddr));
const unmapArb = fc.record({ iova: iovaArb, size: unmapSizeArb, flags: unmapFlagsArb }).map((req) => new UnmapStep(req));
const unmapShapeArb = fc
  .tuple(indexArb, fc.constantFrom(...(Object.keys(UNMAP_SHAPES) as UnmapShape[])), unmapFlagsArb)
  .map(([index, shape, flags]) => new UnmapShapeStep(index, shape, flags));
const unmapAllArb = weighted([0, 1], [UNMAP_VADDR, 1]).map((flags) => new UnmapAllStep(flags));
const dmaReadArb = dmaTargetArb.map((target) => new DmaReadStep(target));
const dmaWriteArb = fc.tuple(dmaTargetArb, byteArb).map(([target, byte]) => new DmaWriteStep(target, byte));
const cpuFillArb = fc
  .tuple(fc.nat(BUFFER_SIZE / Number(PAGE) - 1), fc.integer({ min: 1, max: 16 }), fc.nat(250))
  .map(([page, pages, seed]) => new CpuFillStep(page, pages, seed));
const auditArb = fc.constant(new AuditStep());

/** The mix: MAP often (to build state), DMA often (to observe it), UNMAP_ALL rarely (it empties everything). */
const stepArb: fc.Arbitrary<ModelStep<ReferenceModel, RealDmaSystem>> = fc.oneof(
  { arbitrary: mapArb, weight: 5 },
  { arbitrary: mapBesideArb, weight: 4 },
  { arbitrary: mapBurstArb, weight: 2 },
  { arbitrary: mapVaddrArb, weight: 3 },
  { arbitrary: unmapArb, weight: 3 },
  { arbitrary: unmapShapeArb, weight: 3 },
  { arbitrary: unmapAllArb, weight: 1 },
  { arbitrary: dmaReadArb, weight: 4 },
  { arbitrary: dmaWriteArb, weight: 4 },
  { arbitrary: cpuFillArb, weight: 3 },
  { arbitrary: auditArb, weight: 1 },
);

/** Runs one generated sequence on a fresh world, then audits and shuts the kernel down. */
function runSequence(variant: Variant, steps: Iterable<fc.Command<ReferenceModel, RealDmaSystem>>): void {
  const world = type1World(variant);
  countRun();
  fc.modelRun(() => ({ model: world.model, real: world.real }), steps);
  audit(world.model, world.real);
  world.kernel.shutdown();
}

// ---- tests ---------------------------------------------------------------------------------------

const COMMON_OUTCOMES = [
  'MAP ok',
  'MAP EINVAL',
  'MAP EOVERFLOW',
  'MAP EEXIST',
  'MAP ENOSPC',
  'MAP EFAULT',
  'MAP(VADDR) ok',
  'MAP(VADDR) ENOENT',
  'MAP(VADDR) EINVAL',
  'UNMAP ok size>0',
  'UNMAP ok size=0',
  'UNMAP EINVAL',
  'UNMAP EOVERFLOW',
  'UNMAP(VADDR) ok size>0',
  'UNMAP(VADDR) EINVAL',
  'UNMAP_ALL ok size>0',
  'UNMAP_ALL(VADDR) ok size>0',
  'DMA read ok byte=0',
  'DMA read ok byte>0',
  'DMA read unmapped',
  'DMA read permission',
  'DMA write ok',
  'DMA write unmapped',
  'DMA write permission',
];

const VARIANTS: Variant[] = [
  { name: 'type1 v1 (VFIO_TYPE1_IOMMU)', type: uapi.VFIO_TYPE1_IOMMU, mustSee: COMMON_OUTCOMES },
  { name: 'type1 v2 (VFIO_TYPE1v2_IOMMU)', type: uapi.VFIO_TYPE1v2_IOMMU, mustSee: COMMON_OUTCOMES },
  {
    name: 'type1 v2 with RLIMIT_MEMLOCK of 12 pages',
    type: uapi.VFIO_TYPE1v2_IOMMU,
    memlockLimitPages: 12,
    mustSee: ['MAP ok', 'MAP ENOMEM', 'MAP EFAULT', 'UNMAP ok size>0'],
  },
];

// ---- the model against the reference's own examples -------------------------------------------

const RW = MAP_READ | MAP_WRITE;

/** Mappings made before the request; each must succeed. */
type Setup = (s: DmaSystem) => Outcome[];
/** M = [0x1000, 0x3000), the mapping of the §6 table. */
const withM: Setup = (s) => [s.map({ iova: 0x1000n, size: 0x2000n, vaddrOffset: 0n, flags: RW })];
/** M, and B = [0x3000, 0x4000) right after it. */
const withMB: Setup = (s) => [...withM(s), s.map({ iova: 0x3000n, size: PAGE, vaddrOffset: 0x2000n, flags: RW })];
/** M plus 7 one-page mappings from 0x10000: all 8 entries used. */
const full: Setup = (s) => [
  ...withM(s),
  ...[0n, 1n, 2n, 3n, 4n, 5n, 6n].map((i) => s.map({ iova: 0x10000n + i * PAGE, size: PAGE, vaddrOffset: i * PAGE, flags: RW })),
];
/** M with its vaddr invalidated (UNMAP_DMA with FLAG_VADDR). */
const invalidated: Setup = (s) => [...withM(s), s.unmap({ iova: 0x1000n, size: 0x2000n, flags: UNMAP_VADDR })];

interface Example {
  readonly name: string;
  readonly setup: Setup;
  readonly run: (s: DmaSystem) => Outcome;
  readonly v1: Outcome;
  readonly v2: Outcome;
}

const unmapCase = (name: string, req: UnmapRequest, v1: Outcome, v2: Outcome, setup = withM): Example => ({
  name: `UNMAP ${name}`,
  setup,
  run: (s) => s.unmap(req),
  v1,
  v2,
});

const mapCase = (name: string, req: MapRequest, expected: Outcome, setup = withM): Example => ({
  name: `MAP ${name}`,
  setup,
  run: (s) => s.map(req),
  v1: expected,
  v2: expected,
});

const WRAP = U64_MAX + 1n - PAGE;
const unmapReq = (iova: bigint, size: bigint, flags = 0): UnmapRequest => ({ iova, size, flags });
const mapReq = (iova: bigint, size: bigint, vaddrOffset = 0n, flags = RW): MapRequest => ({ iova, size, vaddrOffset, flags });

/** reference/vfio-uapi.md §6 (the table and the extra v1 example) and §5 (the order of the MAP checks). */
const EXAMPLES: Example[] = [
  unmapCase('(0x1000, 0x2000): exactly M', unmapReq(0x1000n, 0x2000n), okSize(0x2000n), okSize(0x2000n)),
  unmapCase('(0x1000, 0x1000): the start of M only', unmapReq(0x1000n, 0x1000n), okSize(0x2000n), err('EINVAL')),
  unmapCase('(0x2000, 0x1000): starts inside M', unmapReq(0x2000n, 0x1000n), okSize(0n), err('EINVAL')),
  unmapCase('(0x0, 0x2000): starts before M, ends inside', unmapReq(0n, 0x2000n), okSize(0x2000n), err('EINVAL')),
  unmapCase('(0x0, 0x4000): M plus holes', unmapReq(0n, 0x4000n), okSize(0x2000n), okSize(0x2000n)),
  unmapCase('(0x5000, 0x1000): nothing there', unmapReq(0x5000n, 0x1000n), okSize(0n), okSize(0n)),
  unmapCase('FLAG_ALL (0, 0)', unmapReq(0n, 0n, UNMAP_ALL), okSize(0x2000n), okSize(0x2000n)),
  unmapCase('FLAG_ALL with iova 0x1000', unmapReq(0x1000n, 0n, UNMAP_ALL), err('EINVAL'), err('EINVAL')),
  unmapCase('FLAG_ALL with size 0x1000', unmapReq(0n, 0x1000n, UNMAP_ALL), err('EINVAL'), err('EINVAL')),
  unmapCase('(0x2000, 0x2000): starts inside M, covers B (v1 stops at M)', unmapReq(0x2000n, 0x2000n), okSize(0n), err('EINVAL'), withMB),
  unmapCase('(0x1000, 0x3000) over M and B', unmapReq(0x1000n, 0x3000n), okSize(0x3000n), okSize(0x3000n), withMB),
  unmapCase('a misaligned iova before a wrapping size', unmapReq(0x800n, WRAP), err('EINVAL'), err('EINVAL')),
  unmapCase('a wrapping size', unmapReq(0x2000n, WRAP), err('EOVERFLOW'), err('EOVERFLOW')),
  unmapCase('ending exactly at 2^64 - 1', unmapReq(0x8000n, U64_MAX + 1n - 0x8000n), okSize(0n), okSize(0n)),
  unmapCase('GET_DIRTY_BITMAP with argsz 24', unmapReq(0x1000n, 0x2000n, UNMAP_GET_DIRTY_BITMAP), err('EINVAL'), err('EINVAL')),
  unmapCase('FLAG_VADDR of M', unmapReq(0x1000n, 0x2000n, UNMAP_VADDR), okSize(0x2000n), okSize(0x2000n)),
  unmapCase('FLAG_VADDR of M again', unmapReq(0x1000n, 0x2000n, UNMAP_VADDR), err('EINVAL'), err('EINVAL'), invalidated),
  unmapCase('of M after FLAG_VADDR', unmapReq(0x1000n, 0x2000n), okSize(0x2000n), okSize(0x2000n), invalidated),
  mapCase('a wrapping range before prot 0', mapReq(0x2000n, WRAP, 0n, 0), err('EOVERFLOW')),
  mapCase('a wrapping vaddr before a misaligned iova', mapReq(0x800n, WRAP), err('EOVERFLOW')),
  mapCase('a misaligned iova before overlap', mapReq(0x1800n, PAGE), err('EINVAL')),
  mapCase('overlap before the entry limit', mapReq(0x2000n, PAGE), err('EEXIST'), full),
  mapCase('the entry limit before the IOVA ranges', mapReq(0xfee00000n, PAGE), err('ENOSPC'), full),
  mapCase('the IOVA ranges before pinning', mapReq(0xfee00000n, PAGE, 0x10000n), err('EINVAL')),
  mapCase('an unmapped vaddr', mapReq(0x10000n, 0x2000n, 0xf000n), err('EFAULT')),
  mapCase('the last usable page below the interrupt range', mapReq(0xfedff000n, PAGE), OK),
  mapCase('into the interrupt range', mapReq(0xfedff000n, 0x2000n), err('EINVAL')),
  mapCase('the first usable page above the interrupt range', mapReq(0xfef00000n, PAGE), OK),
  mapCase('the last page of the aperture', mapReq((1n << 48n) - PAGE, PAGE), OK),
  mapCase('past the aperture', mapReq(1n << 48n, PAGE), err('EINVAL')),
  mapCase('ending exactly at 2^64 - 1', mapReq(WRAP, PAGE), err('EINVAL')),
  mapCase('FLAG_VADDR with READ', mapReq(0x1000n, 0x2000n, 0n, MAP_VADDR | MAP_READ), err('EINVAL')),
  mapCase('FLAG_VADDR where nothing is mapped', mapReq(0x8000n, PAGE, 0n, MAP_VADDR), err('ENOENT')),
  mapCase('FLAG_VADDR on a valid vaddr', mapReq(0x1000n, 0x2000n, 0x4000n, MAP_VADDR), err('EINVAL')),
  mapCase('FLAG_VADDR on part of an invalidated mapping', mapReq(0x1000n, PAGE, 0n, MAP_VADDR), err('EINVAL'), invalidated),
  mapCase('FLAG_VADDR on an invalidated mapping', mapReq(0x1000n, 0x2000n, 0x4000n, MAP_VADDR), OK, invalidated),
];

describe('the reference model and the simulator give the documented answers', () => {
  const cases = VARIANTS.slice(0, 2).flatMap((variant) =>
    EXAMPLES.map((example) => {
      const expected = variant.type === uapi.VFIO_TYPE1_IOMMU ? example.v1 : example.v2;
      return { title: `${variant.name}: ${example.name} → ${showOutcome(expected)}`, variant, example, expected };
    }),
  );
  test.each(cases)('$title', ({ variant, example, expected }) => {
    const world = type1World(variant);
    for (const [side, system] of [['model', world.model], ['simulator', world.real]] as const) {
      expect(example.setup(system).filter((o) => !o.ok)).toEqual([]);
      expect({ [side]: shown(example.run(system)) }).toEqual({ [side]: shown(expected) });
    }
    audit(world.model, world.real);
  });
});

describe('type1 against the reference model', () => {
  test.each(VARIANTS)('$name agrees with the model on random MAP/UNMAP/UNMAP_ALL/DMA sequences', (variant) => {
    seen.clear();
    fc.assert(
      fc.property(fc.commands([stepArb], { maxCommands: 40, size: 'max' }), (steps) => runSequence(variant, steps)),
      { numRuns: variant.memlockLimitPages === undefined ? 150 : 60 },
    );
    expectReached(variant.name, variant.mustSee);
  });
});
