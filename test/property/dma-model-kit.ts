/**
 * What the model-based tests of the type1 (type1-model.test.ts) and the windowed type2
 * (type2-model.test.ts) backends share: the simulator side driven through raw MAP_DMA / UNMAP_DMA
 * ioctls (`VfioDmaSystem`), counting and naming outcomes, printing requests, comparing outcomes and
 * memory, picking an existing mapping by index, the base class of their steps (`ModelStep`) and the
 * steps that do not depend on the address layout (`commonSteps`). It is a plain module (not a
 * *.test.ts file) so that both tests can import it without running each other's tests.
 *
 * Each test keeps what differs: its world and fault logs, its `Step` class (how MAP and UNMAP are
 * counted, and for type2 the hardware checked after every step), the steps that aim at its address
 * layout, its generators and its examples.
 */
import fc from 'fast-check';
import { DmaFault, uapi, type Kernel, type PciDevice, type Process } from '../../index';
import {
  MAP_READ,
  MAP_VADDR,
  MAP_WRITE,
  UNMAP_ALL,
  UNMAP_GET_DIRTY_BITMAP,
  UNMAP_VADDR,
  type Accounting,
  type DmaSystem,
  type MapRequest,
  type Outcome,
  type UnmapRequest,
} from './type1-reference-model';

/** The simulator side of a `DmaSystem`, with the checks only a real system has. */
export interface RealDmaSystem extends DmaSystem {
  checkInvariants(): void;
}

// ---- ioctls --------------------------------------------------------------------------------------

/** Requires an ioctl argument to be as it was sent (the kernel wrote nothing back). */
export function expectUnchanged(arg: Uint8Array, sent: Uint8Array): void {
  if (Buffer.compare(arg, sent) !== 0) expect(arg).toEqual(sent);
}

/** The errno name of a failed ioctl's return value. */
export function errnoCode(ret: number): uapi.ErrnoCode {
  const code = uapi.errnoName(ret);
  if (ret >= 0 || code === undefined) throw new Error(`ioctl returned ${ret}, not a known -errno`);
  return code;
}

/** VFIO_IOMMU_MAP_DMA through a raw ioctl, with `vaddr` the absolute address of the request's vaddr offset. */
export function ioctlMapDma(proc: Process, container: number, vaddr: bigint, req: MapRequest): Outcome {
  const arg = uapi.VfioIommuType1DmaMap.encode({ argsz: 32, flags: req.flags, vaddr, iova: req.iova, size: req.size });
  const sent = arg.slice();
  const ret = proc.ioctlRaw(container, uapi.VFIO_IOMMU_MAP_DMA, arg);
  // MAP_DMA writes nothing back, whatever happens.
  expectUnchanged(arg, sent);
  return ret === 0 ? { ok: true } : { ok: false, errno: errnoCode(ret) };
}

/** VFIO_IOMMU_UNMAP_DMA through a raw ioctl (argsz 24: no dirty bitmap). */
export function ioctlUnmapDma(proc: Process, container: number, req: UnmapRequest): Outcome {
  const arg = uapi.VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: req.flags, iova: req.iova, size: req.size });
  const sent = arg.slice();
  const ret = proc.ioctlRaw(container, uapi.VFIO_IOMMU_UNMAP_DMA, arg);
  if (ret !== 0) {
    // On failure the size is not written back.
    expectUnchanged(arg, sent);
    return { ok: false, errno: errnoCode(ret) };
  }
  // On success only `size` changes: it becomes the bytes unmapped.
  const size = uapi.VfioIommuType1DmaUnmap.read(arg, 'size');
  uapi.VfioIommuType1DmaUnmap.write(arg, 'size', req.size);
  expectUnchanged(arg, sent);
  return { ok: true, size };
}

/**
 * The simulator side: a container holding one device, driven through raw ioctls by a process whose
 * memory (at `_base`) the mappings pin. A test adds how it reads that memory back and which fault logs
 * a device fault must show up in.
 */
export abstract class VfioDmaSystem implements RealDmaSystem {
  constructor(
    protected readonly _kernel: Kernel,
    protected readonly _proc: Process,
    protected readonly _container: number,
    protected readonly _device: PciDevice,
    protected readonly _base: bigint,
  ) {}

  map(req: MapRequest): Outcome {
    return ioctlMapDma(this._proc, this._container, this._base + req.vaddrOffset, req);
  }

  unmap(req: UnmapRequest): Outcome {
    return ioctlUnmapDma(this._proc, this._container, req);
  }

  unmapAll(extraFlags: number): Outcome {
    return this.unmap({ iova: 0n, size: 0n, flags: uapi.VFIO_DMA_UNMAP_FLAG_ALL | extraFlags });
  }

  dmaRead(iova: bigint): Outcome {
    return this._dma(iova, 'read', () => ({ ok: true, byte: this._device.dmaRead(iova, 1)[0]! }));
  }

  dmaWrite(iova: bigint, byte: number): Outcome {
    return this._dma(iova, 'write', () => {
      this._device.dmaWrite(iova, Uint8Array.of(byte));
      return { ok: true };
    });
  }

  cpuWrite(offset: number, bytes: Uint8Array): void {
    this._proc.writeMemory(this._base + BigInt(offset), bytes);
  }

  abstract cpuReadAll(): Uint8Array;

  accounting(): Accounting {
    return { pinnedPages: this._kernel.phys.stats().pinnedPages, lockedVm: this._proc.mm.lockedVm };
  }

  checkInvariants(): void {
    this._kernel.checkInvariants();
  }

  /** Requires the device access that just faulted to be the last record of the fault logs. */
  protected abstract expectFaultLogged(iova: bigint, access: 'read' | 'write'): void;

  private _dma(iova: bigint, access: 'read' | 'write', run: () => Outcome): Outcome {
    try {
      return run();
    } catch (err) {
      if (!(err instanceof DmaFault)) throw err;
      this.expectFaultLogged(iova, access);
      return { ok: false, fault: err.reason };
    }
  }
}

// ---- outcomes reached ----------------------------------------------------------------------------

/** How often each outcome was expected during the current property run (see each test's `Variant.mustSee`). */
export const seen = new Map<string, number>();

export function label(op: string, outcome: Outcome): string {
  if (outcome.ok && outcome.size !== undefined) return `${op} ok ${outcome.size === 0n ? 'size=0' : 'size>0'}`;
  if (outcome.ok && outcome.byte !== undefined) return `${op} ok ${outcome.byte === 0 ? 'byte=0' : 'byte>0'}`;
  if (outcome.ok) return `${op} ok`;
  return `${op} ${'errno' in outcome ? outcome.errno : outcome.fault}`;
}

/** Counts one generated sequence (under '#runs'). */
export function countRun(): void {
  seen.set('#runs', (seen.get('#runs') ?? 0) + 1);
}

/** After a property run: every outcome of `mustSee` was reached (MODEL_STATS=1 prints the counts). */
export function expectReached(name: string, mustSee: readonly string[]): void {
  if (process.env.MODEL_STATS) console.log(name, [...seen.entries()].sort());
  const missing = mustSee.filter((outcome) => !seen.has(outcome));
  expect(missing).toEqual([]);
}

// ---- printing ------------------------------------------------------------------------------------

export const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

export function flagNames(flags: number, names: readonly (readonly [number, string])[]): string {
  const parts = names.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
  const unknown = names.reduce((rest, [bit]) => rest & ~bit, flags) >>> 0;
  if (unknown !== 0) parts.push(hex(unknown));
  return parts.length === 0 ? '0' : parts.join('|');
}

export const MAP_FLAG_NAMES = [
  [MAP_READ, 'READ'],
  [MAP_WRITE, 'WRITE'],
  [MAP_VADDR, 'VADDR'],
] as const;
export const UNMAP_FLAG_NAMES = [
  [UNMAP_GET_DIRTY_BITMAP, 'GET_DIRTY_BITMAP'],
  [UNMAP_ALL, 'ALL'],
  [UNMAP_VADDR, 'VADDR'],
] as const;

export const showMap = (r: MapRequest): string =>
  `iova=${hex(r.iova)}, size=${hex(r.size)}, vaddr=buf+${hex(r.vaddrOffset)}, flags=${flagNames(r.flags, MAP_FLAG_NAMES)}`;
export const showUnmap = (r: UnmapRequest): string => `iova=${hex(r.iova)}, size=${hex(r.size)}, flags=${flagNames(r.flags, UNMAP_FLAG_NAMES)}`;

/** An outcome as compared and printed: sizes in hex. */
export const shown = (o: Outcome): object => ('size' in o && o.size !== undefined ? { ...o, size: hex(o.size) } : o);

/** An outcome in a test title. */
export function showOutcome(o: Outcome): string {
  if (o.ok) return o.size === undefined ? 'ok' : `size ${hex(o.size)}`;
  return 'errno' in o ? o.errno : o.fault;
}

// ---- comparing -----------------------------------------------------------------------------------

/** The same outcome (a quick test first: `expect` is only needed, for its report, when they differ). */
export function sameOutcome(a: Outcome, b: Outcome): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => (a as Record<string, unknown>)[k] === (b as Record<string, unknown>)[k]);
}

/** Requires the same memory on both sides, reporting the first byte that differs. */
export function expectSameMemory(model: DmaSystem, real: DmaSystem): void {
  const want = model.cpuReadAll();
  const got = real.cpuReadAll();
  if (Buffer.compare(want, got) === 0) return;
  const at = want.findIndex((byte, i) => got[i] !== byte);
  expect({ offset: hex(at), byte: got[at] }).toEqual({ offset: hex(at), byte: want[at] });
}

// ---- steps ---------------------------------------------------------------------------------------

/**
 * Steps that aim at existing mappings name them by index into the model's sorted list (modulo its
 * length), so that a sequence means the same thing every time it runs and shrinks well.
 */
export function mappingAt<T>(model: { mappings(): readonly T[] }, index: number): { m: T; next: T } | undefined {
  const list = model.mappings();
  const m = list[index % Math.max(list.length, 1)];
  if (m === undefined) return undefined;
  return { m, next: list[(index % list.length) + 1] ?? m };
}

/**
 * One step: runs on the model and on the real system, and their outcomes and accounting must agree
 * (then whatever `afterStep` adds). A failure shows the concrete request as the key of the compared
 * objects.
 */
export abstract class ModelStep<M extends DmaSystem, R extends RealDmaSystem> implements fc.Command<M, R> {
  check(): boolean {
    return true;
  }

  run(model: M, real: R): void {
    this.step(model, real);
    const want = model.accounting();
    const got = real.accounting();
    if (got.pinnedPages !== want.pinnedPages || got.lockedVm !== want.lockedVm) expect(got).toEqual(want);
    this.afterStep(model, real);
  }

  /** What else both sides must show after every step. */
  protected afterStep(_model: M, _real: R): void {}

  /** Runs `apply` on the model, counts its outcome under `key`, then requires the same outcome from the real system. */
  protected compare<S extends DmaSystem>(
    op: string,
    request: string,
    apply: (system: S) => Outcome,
    model: S,
    real: S,
    key: (expected: Outcome) => string = (expected) => label(op, expected),
  ): void {
    const expected = apply(model);
    const seenKey = key(expected);
    seen.set(seenKey, (seen.get(seenKey) ?? 0) + 1);
    const actual = apply(real);
    if (sameOutcome(actual, expected)) return;
    const call = `${op}(${request})`;
    expect({ [call]: shown(actual) }).toEqual({ [call]: shown(expected) });
  }

  /** MAP_DMA, compared; FLAG_VADDR counted apart ('MAP(VADDR) ok'). A test may count it its own way. */
  protected map(req: MapRequest, model: DmaSystem, real: DmaSystem): void {
    this.compare<DmaSystem>(req.flags & MAP_VADDR ? 'MAP(VADDR)' : 'MAP', showMap(req), (s) => s.map(req), model, real);
  }

  /** UNMAP_DMA, compared; FLAG_VADDR counted apart ('UNMAP(VADDR) ok size>0'). */
  protected unmap(req: UnmapRequest, model: DmaSystem, real: DmaSystem): void {
    const op = req.flags & UNMAP_VADDR ? 'UNMAP(VADDR)' : 'UNMAP';
    this.compare<DmaSystem>(op, showUnmap(req), (s) => s.unmap(req), model, real);
  }

  /** UNMAP_DMA with FLAG_ALL (and `extraFlags`), compared; with extra flags counted as 'UNMAP_ALL(VADDR)'. */
  protected unmapAll(extraFlags: number, model: DmaSystem, real: DmaSystem, withFlags = 'UNMAP_ALL(VADDR)'): void {
    this.compare<DmaSystem>(extraFlags ? withFlags : 'UNMAP_ALL', '', (s) => s.unmapAll(extraFlags), model, real);
  }

  protected abstract step(model: M, real: R): void;
  abstract toString(): string;
}

/** Where a DMA goes: a fixed iova, or an offset into an existing mapping (what "into" means is the test's). */
export type DmaTarget = { readonly iova: bigint } | { readonly index: number; readonly offset: number };

/** How a test turns a `DmaTarget` into an iova, and prints it. */
export interface DmaAim<M> {
  iova(model: M, target: DmaTarget): bigint;
  show(target: DmaTarget): string;
}

/** The constructors `commonSteps` returns. */
export interface CommonSteps<M extends DmaSystem, R extends RealDmaSystem> {
  MapStep: new (req: MapRequest) => ModelStep<M, R>;
  UnmapStep: new (req: UnmapRequest) => ModelStep<M, R>;
  UnmapAllStep: new (extraFlags: number) => ModelStep<M, R>;
  DmaReadStep: new (target: DmaTarget) => ModelStep<M, R>;
  DmaWriteStep: new (target: DmaTarget, byte: number) => ModelStep<M, R>;
}

/**
 * The steps that are the same in every test, built on the test's own `Step` class (so that its
 * `map`, `unmap` and `afterStep` apply) and aiming DMA with `aim`.
 */
export function commonSteps<M extends DmaSystem, R extends RealDmaSystem>(
  Step: abstract new () => ModelStep<M, R>,
  aim: DmaAim<M>,
): CommonSteps<M, R> {
  /** MAP_DMA with the generated arguments. */
  class MapStep extends Step {
    constructor(private readonly _req: MapRequest) {
      super();
    }
    protected step(model: M, real: R): void {
      this.map(this._req, model, real);
    }
    toString(): string {
      return `Map(${showMap(this._req)})`;
    }
  }

  /** UNMAP_DMA with the generated arguments. */
  class UnmapStep extends Step {
    constructor(private readonly _req: UnmapRequest) {
      super();
    }
    protected step(model: M, real: R): void {
      this.unmap(this._req, model, real);
    }
    toString(): string {
      return `Unmap(${showUnmap(this._req)})`;
    }
  }

  class UnmapAllStep extends Step {
    constructor(private readonly _extraFlags: number) {
      super();
    }
    protected step(model: M, real: R): void {
      this.unmapAll(this._extraFlags, model, real);
    }
    toString(): string {
      return this._extraFlags ? `UnmapAll(${flagNames(this._extraFlags, UNMAP_FLAG_NAMES)})` : 'UnmapAll()';
    }
  }

  class DmaReadStep extends Step {
    constructor(private readonly _target: DmaTarget) {
      super();
    }
    protected step(model: M, real: R): void {
      const iova = aim.iova(model, this._target);
      this.compare<DmaSystem>('DMA read', hex(iova), (s) => s.dmaRead(iova), model, real);
    }
    toString(): string {
      return `DmaRead(${aim.show(this._target)})`;
    }
  }

  class DmaWriteStep extends Step {
    constructor(
      private readonly _target: DmaTarget,
      private readonly _byte: number,
    ) {
      super();
    }
    protected step(model: M, real: R): void {
      const iova = aim.iova(model, this._target);
      this.compare<DmaSystem>('DMA write', `${hex(iova)}, ${hex(this._byte)}`, (s) => s.dmaWrite(iova, this._byte), model, real);
      // The byte landed in the process memory at the pinned vaddr + offset, and nowhere else.
      expectSameMemory(model, real);
    }
    toString(): string {
      return `DmaWrite(${aim.show(this._target)}, ${hex(this._byte)})`;
    }
  }

  return { MapStep, UnmapStep, UnmapAllStep, DmaReadStep, DmaWriteStep };
}

// ---- generators and examples ---------------------------------------------------------------------

export const weighted = <T>(...choices: readonly (readonly [T, number])[]): fc.Arbitrary<T> =>
  fc.oneof(...choices.map(([value, weight]) => ({ arbitrary: fc.constant(value), weight })));

/** An index into the model's mappings (see `mappingAt`). */
export const indexArb = fc.nat(7);
/** A byte a device writes: never 0, so that the write shows. */
export const byteArb = fc.integer({ min: 1, max: 255 });

export const OK: Outcome = { ok: true };
export const okSize = (size: bigint): Outcome => ({ ok: true, size });
export const err = (errno: uapi.ErrnoCode): Outcome => ({ ok: false, errno });
