/**
 * AddrSplitMapper: the one place that routes `EndpointMapper.map` / `unmap` to a number path or a bigint
 * path, as the `Addr` contract of endpoint-mapper.ts describes. The device hands a call numbers only when
 * all of its values are exact numbers; anything else (a mix, or a value past 2^53) goes to the bigint
 * path, converted once here, so a mapper writes each path once and never re-checks the types.
 */
import type { Addr, MapOutcome, UnmapOutcome } from './endpoint-mapper';

export abstract class AddrSplitMapper {
  map(iova: Addr, gpa: Addr, size: Addr, flags: number): MapOutcome {
    if (typeof iova === 'number' && typeof gpa === 'number' && typeof size === 'number') return this._mapSmall(iova, gpa, size, flags);
    return this._mapBig(BigInt(iova), BigInt(gpa), BigInt(size), flags);
  }

  unmap(iova: Addr, size: Addr): UnmapOutcome {
    if (typeof iova === 'number' && typeof size === 'number') return this._unmapSmall(iova, size);
    return this._unmapBig(BigInt(iova), BigInt(size));
  }

  /** `map` on exact numbers: no BigInt is made. */
  protected abstract _mapSmall(iova: number, gpa: number, size: number, flags: number): MapOutcome;
  protected abstract _mapBig(iova: bigint, gpa: bigint, size: bigint, flags: number): MapOutcome;
  /** `unmap` on exact numbers: no BigInt is made. */
  protected abstract _unmapSmall(iova: number, size: number): UnmapOutcome;
  protected abstract _unmapBig(iova: bigint, size: bigint): UnmapOutcome;
}
