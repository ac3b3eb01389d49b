/** Asserts that `fn` throws a SysError with `code` (tests compare codes, never messages). */
import { SysError } from '../../kernel-sim/errors';

export function expectSysError(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SysError);
  expect((caught as SysError).code).toBe(code);
}

/** The SysError code `fn` fails with, or undefined when it succeeds. Other errors propagate. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof SysError) return err.code;
    throw err;
  }
  return undefined;
}
