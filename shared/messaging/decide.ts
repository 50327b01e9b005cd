// The one place that turns a handler's outcome into what happens to the message:
// ack, retry after a delay, dead-letter, or wait for a dependency. Pure, so it is unit-tested.
import {
  DependencyUnavailableError,
  DuplicateInProgressError,
  errorMessage,
  errorName,
  PermanentError,
} from '../errors';
import { delayFor, type RetryPolicy } from './topology';

export type Decision =
  | { action: 'ack' }
  /** Republish to the wait queue of `delayMs`; `countsAsAttempt` is false for an in-progress duplicate. */
  | { action: 'retry'; delayMs: number; countsAsAttempt: boolean; errorType: string; errorMessage: string }
  | { action: 'dead-letter'; errorType: string; errorMessage: string }
  /** A dependency is down: hold the message and try again, consuming no attempt. */
  | { action: 'wait-for-dependency'; dependency: string };

/**
 * @param attempt the attempt that just failed, 1-based.
 */
export function decide(err: unknown, attempt: number, policy: RetryPolicy): Decision {
  if (err instanceof DependencyUnavailableError) return { action: 'wait-for-dependency', dependency: err.dependency };
  const errorType = errorName(err);
  const message = errorMessage(err);
  if (err instanceof DuplicateInProgressError) {
    return { action: 'retry', delayMs: delayFor(policy, 1), countsAsAttempt: false, errorType, errorMessage: message };
  }
  if (err instanceof PermanentError) return { action: 'dead-letter', errorType, errorMessage: message };
  if (attempt >= policy.maxAttempts) {
    return { action: 'dead-letter', errorType, errorMessage: `gave up after ${attempt} attempts: ${message}` };
  }
  return { action: 'retry', delayMs: delayFor(policy, attempt), countsAsAttempt: true, errorType, errorMessage: message };
}
