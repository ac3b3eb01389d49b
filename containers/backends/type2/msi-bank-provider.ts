/**
 * What the windowed backend needs of the machine's MSI banks (the MPIC of a PAMU machine, provided by the
 * msi/ module): how many there are, where each bank's doorbell page is, and who holds each one.
 */

/** One MSI bank: its MSIIR alias page and the doorbell offset in it. */
export interface MsiBankInfo {
  /** Frame number of the page holding the bank's MSIIR. */
  readonly doorbellPfn: number;
  /** Offset of MSIIR in that page (0x140 for MSIIR, 0x148 for MSIIR1). */
  readonly msiirOffset: number;
}

/** The MSI banks of a machine, as the windowed backend uses them. */
export interface MsiBankProvider {
  bankCount(): number;
  /** @throws RangeError for an index ≥ bankCount() */
  bank(index: number): MsiBankInfo;
  /**
   * Records `owner` as holding the bank. Isolation (the 2013 thread): one container at a time.
   * @throws SysError EBUSY when another owner holds it and `shared` is false
   */
  claimBank(index: number, owner: object, shared: boolean): void;
  releaseBank(index: number, owner: object): void;
}
