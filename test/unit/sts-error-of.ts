import { StsError } from '../../src/errors.js';

/** The StsError `fn` throws; fails the test when it throws nothing or something else. */
export function stsErrorOf(fn: () => unknown): StsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof StsError) return err;
    throw err;
  }
  throw new Error('expected an StsError, nothing was thrown');
}
