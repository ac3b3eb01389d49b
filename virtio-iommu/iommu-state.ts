/**
 * IommuState: the device's domains and endpoints, and the only code that changes what an endpoint's
 * mapper holds. Request handlers validate and decide; they reach the backends only through the four
 * primitives here, each of which either succeeds everywhere or leaves every mapper as it was:
 *
 * - `move(endpoint, domain | undefined)`: ATTACH, DETACH, implicit detach, bypass changes. The mapper
 *   is torn down from its current translation (domain mappings / identity) and rebuilt for the new one
 *   (replay of the domain's mappings, as QEMU's `virtio_iommu_replay` and cloud-hypervisor's attach).
 * - `mapInDomain` / `unmapInDomain`: one MAP / UNMAP replicated into every endpoint of the domain.
 * - `setUnattachedBypass`: the `bypass` config byte changed.
 *
 * Rollback (reference §3.4 "CH rolls back the containers it had already mapped"; §5.6 "validate in the
 * device before calling VFIO so that VFIO and device state cannot diverge"): when a backend call fails,
 * everything done so far by the same request is undone in reverse order, and the request's status comes
 * from the failing call through status.ts. If an undo itself fails, the endpoint concerned is
 * quarantined — its mapper cleared, the endpoint detached and blocked — and the device is told to set
 * DEVICE_NEEDS_RESET: "If the device encounters an internal error that wasn't caused by a specific
 * endpoint … we recommend using the DEVICE_NEEDS_RESET status bit" (spec §Fault reporting). Device state
 * and backend state therefore agree after every request.
 *
 * Ranges: `[start, end)` with `end` exclusive (may be 2^64); sizes are `end - start` as bigints.
 */
import { Domain } from './domain';
import type { Endpoint, EndpointTranslation } from './endpoint';
import type { IovaRange, ReservedRegion } from './endpoint-mapper';
import { SmallMapping, type Mapping } from './mapping-tree';
import { statusOfError, statusOfOutcome } from './status';
import { VIRTIO_IOMMU_S_OK } from '../uapi/virtio-iommu';

const OK = VIRTIO_IOMMU_S_OK;

/** What `_build` / `_tearDown` did: a status, and whether a failed undo quarantined the endpoint. */
interface StepResult {
  readonly status: number;
  readonly quarantined: boolean;
}
const DONE: StepResult = { status: OK, quarantined: false };

/** Device behaviour the handlers follow (fixed at construction). */
export interface IommuPolicy {
  /** 'qemu' reproduces QEMU's lax checks (see VirtioIommuOptions.compat). */
  readonly compat: 'spec' | 'qemu';
  /** Align MAPs to the granule of the domain's endpoints rather than the global page_size_mask. */
  readonly perEndpointGranule: boolean;
  /** ATTACH creating a domain beyond this many → S_NOMEM (cloud-hypervisor: 65536). */
  readonly maxDomains: number;
  /** MAP beyond this many mappings in a domain → S_NOMEM (cloud-hypervisor: 2^20). */
  readonly maxMappingsPerDomain: number;
}

/** The device-level values handlers check against; the device updates them as negotiation proceeds. */
export interface IommuLimits {
  /** The config space's page_size_mask. */
  pageSizeMask: bigint;
  /** The config space's input_range (inclusive) and whether F_INPUT_RANGE is offered. */
  inputRange: IovaRange;
  /** `inputRange.last + 1`: the exclusive end MAPs are checked against. */
  inputRangeEnd: bigint;
  /**
   * `inputRange.start` and `inputRangeEnd` as (rounded) numbers: rounding is monotonic and 2^53 is a
   * double, so compared with an exact number below 2^53 they give the bigint comparison's answer.
   */
  inputRangeStartN: number;
  inputRangeEndN: number;
  inputRangeOffered: boolean;
  /** The config space's domain_range (inclusive) and whether F_DOMAIN_RANGE is offered. */
  domainRange: { start: number; last: number };
  domainRangeOffered: boolean;
  /** F_MMIO / F_BYPASS_CONFIG / F_MAP_UNMAP / F_PROBE negotiated. */
  mmioNegotiated: boolean;
  bypassConfigNegotiated: boolean;
  mapUnmapNegotiated: boolean;
  probeOffered: boolean;
  probeSize: number;
  /** Report the per-endpoint PAGE_SIZE_MASK property in PROBE. */
  probePageSizeMask: boolean;
}

/** Domains, endpoints, and the primitives that keep mappers in step with them. */
export class IommuState {
  readonly endpoints = new Map<number, Endpoint>();
  private readonly _domains = new Map<number, Domain>();
  /** The domain `domain(id)` found last (a guest sends runs of requests to one domain), or undefined. */
  private _lastDomain: Domain | undefined = undefined;
  private _unattachedBypass: boolean;

  constructor(
    readonly policy: IommuPolicy,
    readonly limits: IommuLimits,
    unattachedBypass: boolean,
    /** Called when a rollback failed: the device sets DEVICE_NEEDS_RESET. */
    private readonly _onBroken: (reason: string) => void,
  ) {
    this._unattachedBypass = unattachedBypass;
  }

  /** Every domain that exists, by ID. */
  get domains(): ReadonlyMap<number, Domain> {
    return this._domains;
  }

  /** The domain with ID `id`, if it exists: every request's lookup, so the last one found is kept. */
  domain(id: number): Domain | undefined {
    const last = this._lastDomain;
    if (last !== undefined && last.id === id) return last;
    const found = this._domains.get(id);
    if (found !== undefined) this._lastDomain = found;
    return found;
  }

  /** Whether endpoints attached to no domain are in bypass mode (spec §Device operations). */
  get unattachedBypass(): boolean {
    return this._unattachedBypass;
  }

  /** The translation an endpoint must have when attached to `domain` (or to none). */
  translationFor(domain: Domain | undefined): EndpointTranslation {
    if (domain === undefined) return this._unattachedBypass ? 'bypass' : 'blocked';
    return domain.bypass ? 'bypass' : domain;
  }

  // ---- membership --------------------------------------------------------------------------------

  /**
   * Attaches `endpoint` to `to` (a new Domain object creates the domain) or detaches it (`undefined`),
   * leaving its previous domain — which ceases to exist when it was the last endpoint — and rebuilding
   * its mapper. All or nothing.
   * @returns S_OK, or the status of the backend failure (nothing changed)
   */
  move(endpoint: Endpoint, to: Domain | undefined): number {
    const target = this.translationFor(to);
    if (endpoint.translation !== target) {
      const status = this._retarget(endpoint, target);
      if (status !== OK) return status;
    }
    if (endpoint.domain !== undefined) this._leave(endpoint);
    if (to !== undefined) this._join(endpoint, to);
    return OK;
  }

  /**
   * The `bypass` config byte changed: every unattached endpoint follows it. An endpoint whose mapper
   * cannot follow is quarantined (blocked) — never left in bypass when the driver turned bypass off.
   */
  setUnattachedBypass(on: boolean): void {
    if (on === this._unattachedBypass) return;
    this._unattachedBypass = on;
    for (const ep of this.endpoints.values()) {
      if (ep.domain === undefined && this.move(ep, undefined) !== OK) this._quarantine(ep, `endpoint ${ep.id} could not follow bypass=${on ? 1 : 0}`);
    }
  }

  /**
   * Device reset: "When the device is reset, endpoints are not attached to any domain" (spec §Device
   * initialization). Every mapper is emptied; then every endpoint enters bypass if `unattachedBypass`.
   */
  reset(unattachedBypass: boolean): void {
    this._unattachedBypass = unattachedBypass;
    for (const ep of this.endpoints.values()) {
      ep.mapper.clear();
      ep.translation = 'blocked';
      ep.domain = undefined;
      ep.everAttached = false;
    }
    this._domains.clear();
    this._lastDomain = undefined;
    for (const ep of this.endpoints.values()) {
      if (this._unattachedBypass && this._build(ep, 'bypass').status !== OK) this._quarantine(ep, `endpoint ${ep.id} could not enter bypass after reset`);
      else if (this._unattachedBypass) ep.translation = 'bypass';
    }
  }

  // ---- mappings ----------------------------------------------------------------------------------

  /**
   * Replicates one new mapping into every endpoint of `domain` (the caller inserts it into the domain's
   * tree on S_OK). All or nothing.
   */
  mapInDomain(domain: Domain, m: Mapping): number {
    const eps = domain.endpoints;
    for (let i = 0; i < eps.length; i++) {
      const status = this._mapOne(eps[i]!, m);
      if (status === OK) continue;
      for (const ep of eps.slice(0, i).reverse()) {
        if (this._unmapOne(ep, m) !== OK) this._quarantine(ep, `endpoint ${ep.id}: rollback of a MAP failed`);
      }
      return status;
    }
    return OK;
  }

  /**
   * Removes `count` mappings from sorted position `first` of `domain`'s tree from every endpoint (the
   * caller removes them from the tree on S_OK). All or nothing.
   */
  unmapInDomain(domain: Domain, first: number, count: number): number {
    const eps = domain.endpoints;
    for (let k = 0; k < count; k++) {
      const m = domain.mappings.at(first + k);
      for (let i = 0; i < eps.length; i++) {
        const status = this._unmapOne(eps[i]!, m);
        if (status === OK) continue;
        // Put back this mapping where it was already removed, then every earlier mapping everywhere.
        const redo: Array<[Endpoint, Mapping]> = [];
        for (let j = 0; j < i; j++) redo.push([eps[j]!, m]);
        for (let kk = 0; kk < k; kk++) for (const ep of eps) redo.push([ep, domain.mappings.at(first + kk)]);
        for (const [ep, mm] of redo.reverse()) {
          if (ep.domain === domain && this._mapOne(ep, mm) !== OK) this._quarantine(ep, `endpoint ${ep.id}: rollback of an UNMAP failed`);
        }
        return status;
      }
    }
    return OK;
  }

  // ---- constraints -------------------------------------------------------------------------------

  /** The alignment mask (granule − 1) MAPs into `domain` must respect. */
  alignMaskOf(domain: Domain): bigint {
    return domain.alignMask;
  }

  /**
   * Whether `endpoint` can hold every mapping `domain` has (spec §ATTACH: properties incompatible with
   * the other endpoints of the domain → S_UNSUPP): each inside its input range, aligned to its granule
   * (with per-endpoint granules), and clear of its RESV_MEM regions.
   */
  canHold(endpoint: Endpoint, domain: Domain): boolean {
    if (domain.bypass) return true;
    const range = endpoint.mapper.inputRange();
    const mask = this.policy.perEndpointGranule && this.policy.compat !== 'qemu' ? granuleOf(endpoint.mapper.pageSizeMask()) - 1n : 0n;
    const reserved = endpoint.mapper.reservedRegions();
    for (const m of domain.mappings) {
      if (m.start < range.start || m.end - 1n > range.last) return false;
      if (((m.start | m.end | m.phys) & mask) !== 0n) return false;
      for (const r of reserved) if (r.start < m.end && r.last >= m.start) return false;
    }
    return true;
  }

  // ---- internals ---------------------------------------------------------------------------------

  private _join(endpoint: Endpoint, domain: Domain): void {
    domain.endpoints.push(endpoint);
    this._domains.set(domain.id, domain);
    this._lastDomain = undefined;
    endpoint.domain = domain;
    endpoint.everAttached = true;
    this._refresh(domain);
  }

  private _leave(endpoint: Endpoint): void {
    const domain = endpoint.domain!;
    const at = domain.endpoints.indexOf(endpoint);
    if (at >= 0) domain.endpoints.splice(at, 1);
    endpoint.domain = undefined;
    // "After all endpoints have been successfully detached from a domain, it ceases to exist."
    if (domain.endpoints.length === 0) {
      if (this._domains.get(domain.id) === domain) this._domains.delete(domain.id);
      if (this._lastDomain === domain) this._lastDomain = undefined;
    } else {
      this._refresh(domain);
    }
  }

  private _refresh(domain: Domain): void {
    let mask = this.limits.pageSizeMask;
    if (this.policy.perEndpointGranule) {
      let and = (1n << 64n) - 1n;
      let biggest = 1n;
      for (const ep of domain.endpoints) {
        const m = ep.mapper.pageSizeMask();
        and &= m;
        const g = granuleOf(m);
        if (g > biggest) biggest = g;
      }
      mask = and !== 0n ? and : biggest;
    }
    domain.alignMask = granuleOf(mask) - 1n;
    domain.alignMaskLow = domain.alignMask <= 0xffff_ffffn ? Number(domain.alignMask) : -1;
    const reserved: ReservedRegion[] = [];
    for (const ep of domain.endpoints) reserved.push(...ep.mapper.reservedRegions());
    reserved.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    domain.reserved = reserved;
    domain.reservedN = reserved.flatMap((r) => [Number(r.start), Number(r.last)]);
  }

  /**
   * Tears the mapper down from its translation and builds `target`; all or nothing. When a step's own
   * undo failed the endpoint is quarantined (mapper empty, blocked, detached) and nothing is restored:
   * rebuilding the source translation would give the endpoint DMA access its blocked state forbids.
   */
  private _retarget(ep: Endpoint, target: EndpointTranslation): number {
    const source = ep.translation;
    const down = this._tearDown(ep, source);
    if (down.status !== OK) return down.status;
    const up = this._build(ep, target);
    if (up.status !== OK) {
      if (!up.quarantined && this._build(ep, source).status !== OK) this._quarantine(ep, `endpoint ${ep.id}: could not restore its translation`);
      return up.status;
    }
    ep.translation = target;
    return OK;
  }

  /**
   * Installs `t` into an empty mapper; on failure undoes its own partial work, and quarantines the
   * endpoint when that undo fails (`quarantined`: the mapper is then empty and must stay so).
   */
  private _build(ep: Endpoint, t: EndpointTranslation): StepResult {
    if (t === 'blocked') return DONE;
    if (t === 'bypass') {
      const status = this._call(() => ep.mapper.setBypass(true));
      // The mapper was empty; a failed setBypass(true) whose own undo failed may still hold part of the
      // identity map, which clear() drops so the mapper is empty again, as a failed step promises.
      if (status !== OK) ep.mapper.clear();
      return this._step(status);
    }
    if (ep.sharesDomainMappings) {
      ep.mapper.useDomainMappings!(t.mappings);
      return DONE;
    }
    let i = 0;
    for (const m of t.mappings) {
      const status = this._mapOne(ep, m);
      if (status !== OK) {
        for (let j = i - 1; j >= 0; j--) {
          if (this._unmapOne(ep, t.mappings.at(j)) !== OK) {
            this._quarantine(ep, `endpoint ${ep.id}: rollback of a replay failed`);
            return { status, quarantined: true };
          }
        }
        return { status, quarantined: false };
      }
      i++;
    }
    return DONE;
  }

  /**
   * Removes `t` from the mapper; on failure puts back what it removed, and quarantines the endpoint
   * when that fails (`quarantined`).
   */
  private _tearDown(ep: Endpoint, t: EndpointTranslation): StepResult {
    if (t === 'blocked') return DONE;
    if (t === 'bypass') {
      const status = this._call(() => ep.mapper.setBypass(false));
      if (status === OK) return DONE;
      // A failed setBypass(false) may have removed part of the identity map: there is no consistent
      // translation to go back to, so the endpoint is quarantined (its mapper emptied, blocked).
      this._quarantine(ep, `endpoint ${ep.id}: could not leave bypass`);
      return { status, quarantined: true };
    }
    if (ep.sharesDomainMappings) {
      ep.mapper.useDomainMappings!(undefined);
      return DONE;
    }
    let i = 0;
    for (const m of t.mappings) {
      const status = this._unmapOne(ep, m);
      if (status !== OK) {
        for (let j = i - 1; j >= 0; j--) {
          if (this._mapOne(ep, t.mappings.at(j)) !== OK) {
            this._quarantine(ep, `endpoint ${ep.id}: could not restore its mappings`);
            return { status, quarantined: true };
          }
        }
        return { status, quarantined: false };
      }
      i++;
    }
    return DONE;
  }

  private _step(status: number): StepResult {
    return status === OK ? DONE : { status, quarantined: false };
  }

  /** Replicates `m` into `ep`'s mapper; nothing to do for a mapper that reads the domain's mappings. */
  private _mapOne(ep: Endpoint, m: Mapping): number {
    if (ep.sharesDomainMappings) return OK;
    try {
      const mapper = ep.mapper;
      const outcome = m instanceof SmallMapping ? mapper.map(m.startN, m.physN, m.sizeN, m.flags) : mapper.map(m.start, m.phys, m.size, m.flags);
      return outcome === 'ok' ? OK : statusOfOutcome(outcome);
    } catch (err) {
      return statusOfError(err);
    }
  }

  private _unmapOne(ep: Endpoint, m: Mapping): number {
    if (ep.sharesDomainMappings) return OK;
    try {
      const mapper = ep.mapper;
      const outcome = m instanceof SmallMapping ? mapper.unmap(m.startN, m.sizeN) : mapper.unmap(m.start, m.size);
      return outcome === 'ok' ? OK : statusOfOutcome(outcome);
    } catch (err) {
      return statusOfError(err);
    }
  }

  private _call(f: () => void): number {
    try {
      f();
      return OK;
    } catch (err) {
      return statusOfError(err);
    }
  }

  /** The last resort: the endpoint's mapper is emptied, the endpoint detached and blocked, the device broken. */
  private _quarantine(ep: Endpoint, reason: string): void {
    ep.mapper.clear();
    ep.translation = 'blocked';
    if (ep.domain !== undefined) this._leave(ep);
    this._onBroken(reason);
  }
}

/** The lowest set bit of a page size mask (its granule); 1 for a zero mask. */
export function granuleOf(pageSizeMask: bigint): bigint {
  const m = BigInt.asUintN(64, pageSizeMask);
  return m === 0n ? 1n : m & -m;
}
