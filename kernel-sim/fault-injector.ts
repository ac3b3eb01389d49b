/**
 * Fault injection, as Linux's fault-injection framework (should_fail) offers it: a test or a tool
 * arms a failure point and the next operation that crosses it fails the way the real one can.
 * Nothing here changes behaviour while no point is armed.
 */
import { sysError } from './errors';

/** Armed failure points of one kernel. */
export class FaultInjector {
  private _pinPagesLeft = -1;

  /**
   * Makes pin_user_pages fail with EFAULT when it reaches the page after the next `pages` pages it
   * pins (0: the very next page). One-shot.
   */
  failPinAfter(pages: number): void {
    if (!Number.isInteger(pages) || pages < 0) throw new RangeError('pages must be a non-negative integer');
    this._pinPagesLeft = pages;
  }

  /** Disarms every failure point. */
  clear(): void {
    this._pinPagesLeft = -1;
  }

  /**
   * Called by the pinning loop before it pins `pages` more pages; returns how many of them may be
   * pinned before the armed failure, or `pages` when nothing is armed within them.
   */
  pinBudget(pages: number): number {
    if (this._pinPagesLeft < 0) return pages;
    if (this._pinPagesLeft >= pages) {
      this._pinPagesLeft -= pages;
      return pages;
    }
    const allowed = this._pinPagesLeft;
    this._pinPagesLeft = -1;
    return allowed;
  }

  /** The error an injected pin failure reports (GUP found no page). */
  static pinFailure(): Error {
    return sysError('EFAULT', 'injected pin_user_pages failure');
  }
}
