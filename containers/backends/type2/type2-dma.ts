/**
 * What the windowed backend records for one MAP_DMA: the windows it took, the frame backing each, and
 * the pins and locked_vm charge behind them. Ranges are in 4 KiB pages; `end` is exclusive.
 */
import type { AddressSpace } from '../../../kernel-sim/mm/address-space';
import type { DmaRange } from '../common/dma-tree';

/** One MAP_DMA on a windowed container. */
export interface Type2Dma extends DmaRange {
  readonly iovaPfn: number;
  readonly pageCount: number;
  readonly prot: number;
  readonly mm: AddressSpace;
  /** Index of the first window; the mapping covers `windowCount` consecutive windows. */
  readonly firstWindow: number;
  readonly windowCount: number;
  /** Pages each window maps (the window size, or the whole mapping when it is smaller than a window). */
  readonly pagesPerWindow: number;
  /** The frame backing each window. */
  readonly windowPfns: number[];
  lockedPages: number;
}
