/**
 * Endpoint: one device whose DMA the virtio-iommu manages, identified by its endpoint ID (for PCI, the
 * requester ID `bus << 8 | devfn`, reference §1.1), with the mapper that really translates its DMA.
 *
 * Two facts are kept apart, because a failed backend call may separate them for a moment:
 * - `domain`: what the driver asked for (the domain the endpoint is attached to, if any);
 * - `translation`: what the mapper holds right now — nothing ('blocked'), the identity map ('bypass')
 *   or a domain's mappings. iommu-state.ts changes it only through calls that either succeed or restore
 *   the previous translation; if even the restore fails the endpoint is quarantined ('blocked',
 *   detached) and the device sets NEEDS_RESET, so the two never silently disagree.
 */
import type { Domain } from './domain';
import type { EndpointMapper } from './endpoint-mapper';

/** What an endpoint's mapper holds. */
export type EndpointTranslation = 'blocked' | 'bypass' | Domain;

/** One endpoint behind the device. */
export class Endpoint {
  domain: Domain | undefined = undefined;
  translation: EndpointTranslation = 'blocked';
  /** Attached at least once since the last reset (QEMU keeps an endpoint record from then on). */
  everAttached = false;

  /** The mapper reads its domain's mappings (EndpointMapper.useDomainMappings): nothing is replicated into it. */
  readonly sharesDomainMappings: boolean;

  constructor(
    readonly id: number,
    readonly mapper: EndpointMapper,
    /** The PCI address: the assigned function's for VFIO, the requester ID's for emulated endpoints. */
    readonly bdf: string,
  ) {
    this.sharesDomainMappings = mapper.useDomainMappings !== undefined;
  }
}

/** The PCI address a requester ID names, in segment 0: 0x0608 → '0000:06:01.0'. */
export function bdfOfRequesterId(id: number): string {
  const bus = (id >>> 8) & 0xff;
  const dev = (id >>> 3) & 0x1f;
  const fn = id & 0x7;
  return `0000:${hex2(bus)}:${hex2(dev)}.${fn}`;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
