/**
 * Model-based test of the virtio-iommu device: fast-check generates sequences of ATTACH (plain or
 * bypass), DETACH, MAP and UNMAP on a small grid, sends each AS BYTES through the requestq, and requires
 * the status a small reference model of domains and mappings gives (written from the spec's rules and
 * the §3.8 decision order, independently of the device's code). After every sequence the device's
 * domains must equal the model's, each emulated endpoint's own translation table must hold exactly its
 * domain's mappings (replication), and each VFIO endpoint's container exactly the forwarded ones.
 *
 * Grid: domains 0–3, endpoints 8 and 16 (emulated) and 0x668 (VFIO type1) plus 444 (absent); IOVAs on a
 * 16-page grid with one in eight misaligned by 0x800; lengths of 1–4 pages, sometimes inverted ranges
 * (a zero length wraps virt_end to 2^64 − 1) and the unmap-all range [0; 2^64 − 1]. Guest RAM is 16 MiB,
 * bypass is off.
 */
import fc from 'fast-check';
import { Guest, READ, S, U64_MAX, WRITE, attachReq, detachReq, mapReq, unmapReq, type RequestBytes } from '../helpers/virtio-iommu-guest';
import { uapi } from '../../index';
import type { VfioEndpointMapper } from '../../virtio-iommu/vfio-endpoint-mapper';

const PAGE = 0x1000n;
const BYPASS = uapi.VIRTIO_IOMMU_ATTACH_F_BYPASS;
const EMULATED = [8, 16];
const VFIO = 0x668;
const ENDPOINTS = [...EMULATED, VFIO];
const INPUT_LAST = (1n << 48n) - 1n;

type Step =
  | { op: 'attach'; domain: number; endpoint: number; bypass: boolean }
  | { op: 'detach'; domain: number; endpoint: number }
  | { op: 'map'; domain: number; start: bigint; last: bigint; phys: bigint; flags: number }
  | { op: 'unmap'; domain: number; start: bigint; last: bigint };

interface ModelMapping {
  start: bigint;
  end: bigint;
  phys: bigint;
  flags: number;
}
interface ModelDomain {
  bypass: boolean;
  endpoints: number[];
  mappings: ModelMapping[];
}

/** The reference: the spec's rules, nothing else. */
class Model {
  readonly domains = new Map<number, ModelDomain>();
  readonly attachedTo = new Map<number, number>();

  apply(step: Step): number {
    switch (step.op) {
      case 'attach': {
        if (!ENDPOINTS.includes(step.endpoint)) return S.NOENT;
        const d = this.domains.get(step.domain);
        if (d !== undefined && d.bypass !== step.bypass) return S.INVAL;
        if (this.attachedTo.get(step.endpoint) === step.domain) return S.OK;
        this._leave(step.endpoint);
        const target = d ?? { bypass: step.bypass, endpoints: [], mappings: [] };
        target.endpoints.push(step.endpoint);
        this.domains.set(step.domain, target);
        this.attachedTo.set(step.endpoint, step.domain);
        return S.OK;
      }
      case 'detach': {
        if (!ENDPOINTS.includes(step.endpoint)) return S.NOENT;
        if (this.attachedTo.get(step.endpoint) !== step.domain || !this.domains.has(step.domain)) return S.INVAL;
        this._leave(step.endpoint);
        return S.OK;
      }
      case 'map': {
        const end = step.last + 1n;
        // input_range is the VFIO host's 48-bit aperture (the intersection of every endpoint's).
        if (step.last > INPUT_LAST) return S.RANGE;
        const d = this.domains.get(step.domain);
        if (d === undefined) return S.NOENT;
        if (d.bypass) return S.INVAL;
        if (end <= step.start) return S.RANGE;
        if (step.start % PAGE !== 0n || end % PAGE !== 0n || step.phys % PAGE !== 0n) return S.RANGE;
        if (d.mappings.some((m) => m.start < end && step.start < m.end)) return S.INVAL;
        // The VFIO endpoint's host refuses GPAs outside guest RAM (EFAULT → FAULT) — only when it is in the domain.
        if (d.endpoints.includes(VFIO) && step.phys + (end - step.start) > 16n << 20n) return S.FAULT;
        d.mappings.push({ start: step.start, end, phys: step.phys, flags: step.flags });
        d.mappings.sort((a, b) => (a.start < b.start ? -1 : 1));
        return S.OK;
      }
      case 'unmap': {
        const end = step.last + 1n;
        const d = this.domains.get(step.domain);
        if (d === undefined) return S.NOENT;
        if (d.bypass) return S.INVAL;
        if (end <= step.start) return S.RANGE;
        const touched = d.mappings.filter((m) => m.start < end && step.start < m.end);
        if (touched.some((m) => m.start < step.start || m.end > end)) return S.RANGE;
        d.mappings = d.mappings.filter((m) => !touched.includes(m));
        return S.OK;
      }
    }
  }

  private _leave(endpoint: number): void {
    const id = this.attachedTo.get(endpoint);
    if (id === undefined) return;
    const d = this.domains.get(id)!;
    d.endpoints = d.endpoints.filter((e) => e !== endpoint);
    if (d.endpoints.length === 0) this.domains.delete(id);
    this.attachedTo.delete(endpoint);
  }
}

function bytesOf(step: Step): RequestBytes {
  switch (step.op) {
    case 'attach':
      return attachReq(step.domain, step.endpoint, step.bypass ? BYPASS : 0);
    case 'detach':
      return detachReq(step.domain, step.endpoint);
    case 'map':
      return mapReq(step.domain, step.start, step.last, step.phys, step.flags);
    case 'unmap':
      return unmapReq(step.domain, step.start, step.last);
  }
}

const domainArb = fc.integer({ min: 0, max: 3 });
const endpointArb = fc.constantFrom(8, 16, VFIO, 444);
const addrArb = fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 7 })).map(([page, skew]) => BigInt(page) * PAGE + (skew === 0 ? 0x800n : 0n));
const lengthArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 4 }).map((n) => BigInt(n) * PAGE) },
  { weight: 1, arbitrary: fc.constant(0n) },
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('attach' as const), domain: domainArb, endpoint: endpointArb, bypass: fc.integer({ min: 0, max: 4 }).map((n) => n === 0) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('detach' as const), domain: domainArb, endpoint: endpointArb }) },
  {
    weight: 6,
    arbitrary: fc
      .record({ domain: domainArb, start: addrArb, length: lengthArb, physPage: fc.integer({ min: 0, max: 4200 }), flags: fc.constantFrom(READ, WRITE, READ | WRITE) })
      .map(({ domain, start, length, physPage, flags }) => ({ op: 'map' as const, domain, start, last: BigInt.asUintN(64, start + length - 1n), phys: BigInt(physPage) * PAGE, flags })),
  },
  {
    weight: 4,
    arbitrary: fc.oneof(
      { weight: 6, arbitrary: fc.record({ domain: domainArb, start: addrArb, length: fc.integer({ min: 0, max: 8 }) }).map(({ domain, start, length }) => ({ op: 'unmap' as const, domain, start, last: BigInt.asUintN(64, start + BigInt(length) * PAGE - 1n) })) },
      { weight: 1, arbitrary: domainArb.map((domain) => ({ op: 'unmap' as const, domain, start: 0n, last: U64_MAX })) },
    ),
  },
);

describe('virtio-iommu against a reference model', () => {
  test('random ATTACH/DETACH/MAP/UNMAP sequences give the model\'s statuses, domains and replicated mappings', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), (steps) => {
        const g = new Guest({
          devices: [{ bdf: '0000:06:0d.0', group: 26 }],
          endpoints: [
            { id: 8, kind: 'emulated', reservedRegions: [] },
            { id: 16, kind: 'emulated', reservedRegions: [] },
            { id: VFIO, kind: 'vfio', bdf: '0000:06:0d.0' },
          ],
          options: { bootBypass: false },
        });
        const model = new Model();
        for (const step of steps) {
          const expected = model.apply(step);
          const got = g.status(bytesOf(step));
          seen.add(`${step.op}:${expected}`);
          expect([step, got]).toEqual([step, expected]);
        }
        const domains = g.device.debugState().domains;
        expect(domains.map((d) => [d.id, d.bypass, [...d.endpoints].sort(), d.mappings])).toEqual(
          [...model.domains]
            .sort(([a], [b]) => a - b)
            .map(([id, d]) => [id, d.bypass, [...d.endpoints].sort(), d.mappings]),
        );
        for (const ep of ENDPOINTS) {
          const id = model.attachedTo.get(ep);
          const d = id === undefined ? undefined : model.domains.get(id);
          const held = d === undefined || d.bypass ? [] : d.mappings;
          const mapper = g.device.endpointMapper(ep)!;
          if (ep === VFIO) {
            expect((mapper as VfioEndpointMapper).forwardedMappings().sort((a, b) => (a[0] < b[0] ? -1 : 1))).toEqual(held.map((m) => [m.start, m.end - m.start]));
          } else {
            const table = (mapper as unknown as { mappings(): ModelMapping[] }).mappings();
            expect(table.map((m) => [m.start, m.end, m.phys, m.flags])).toEqual(held.map((m) => [m.start, m.end, m.phys, m.flags]));
          }
        }
        g.kernel.checkInvariants();
      }),
      { numRuns: 60, seed: 0x5eed },
    );
    for (const outcome of ['attach:0', 'attach:4', 'attach:6', 'detach:0', 'detach:4', 'detach:6', 'map:0', 'map:4', 'map:5', 'map:6', 'map:7', 'unmap:0', 'unmap:4', 'unmap:5', 'unmap:6']) {
      expect([outcome, seen.has(outcome)]).toEqual([outcome, true]);
    }
  });
});
