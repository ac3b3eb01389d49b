/**
 * locked_vm bookkeeping shared by backends that pin user memory: each mapping record remembers the
 * address space it charged and how many pages, so the invariant checker can ask what a backend holds.
 */
import type { AddressSpace } from '../../../kernel-sim/mm/address-space';

/** A record that charged pages to an address space's locked_vm. */
export interface LockedCharge {
  readonly mm: AddressSpace;
  readonly lockedPages: number;
}

/** Pages the records charged to `mm`. */
export function lockedPagesOf(records: Iterable<LockedCharge>, mm: AddressSpace): number {
  let pages = 0;
  for (const record of records) if (record.mm === mm) pages += record.lockedPages;
  return pages;
}
