/**
 * The domains a hardware unit has handed out and not yet freed, with allocation counters: the
 * bookkeeping every IommuHardware model shares (the invariant checker asks `size`, reports ask the counts).
 */
import { SimBugError } from '../errors';

/** Live domains of one unit. */
export class DomainRegistry<D> implements Iterable<D> {
  private readonly _live = new Set<D>();
  /** Domains ever allocated / freed since the last reset. */
  allocated = 0;
  freed = 0;

  /** Records a new domain and returns it. */
  add(domain: D): D {
    this._live.add(domain);
    this.allocated++;
    return domain;
  }

  /** Forgets a freed domain. Freeing one twice is a simulator bug. */
  remove(domain: D): void {
    if (!this._live.delete(domain)) throw new SimBugError('domain freed twice or never allocated');
    this.freed++;
  }

  get size(): number {
    return this._live.size;
  }

  [Symbol.iterator](): Iterator<D> {
    return this._live[Symbol.iterator]();
  }

  resetCounters(): void {
    this.allocated = 0;
    this.freed = 0;
  }
}
