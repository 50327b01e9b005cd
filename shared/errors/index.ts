// Error classes with stable names. Whether a failure is permanent or transient is its
// type, never a string match. Safe to import from workflows: no Node, no I/O.

/** A failure that will not go away by retrying: the message goes to the DLQ at once. */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** A failure that may pass: the message is retried with a growing delay. */
export class TransientError extends Error {
  override name = 'TransientError';
}

/**
 * A dependency (Redis, PostgreSQL) is unreachable. Nothing is processed and nothing is
 * lost: the consumer holds the message and tries again until the dependency is back.
 */
export class DependencyUnavailableError extends Error {
  override name = 'DependencyUnavailableError';
  constructor(
    readonly dependency: string,
    cause?: unknown,
  ) {
    super(`${dependency} is unavailable${cause instanceof Error ? `: ${cause.message}` : ''}`, { cause });
  }
}

export type PoisonReason = 'bad_json' | 'invalid_envelope' | 'unknown_type' | 'schema_validation' | 'too_large' | 'wrong_content_type' | 'id_mismatch' | 'type_mismatch';

/** A message that can never be handled as it is (DESIGN.md guarantee 3). */
export class PoisonMessageError extends PermanentError {
  override name = 'PoisonMessageError';
  constructor(
    readonly reason: PoisonReason,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

/** The same message is being handled elsewhere right now; try again later. */
export class DuplicateInProgressError extends Error {
  override name = 'DuplicateInProgressError';
}

/** The broker refused a published message (basic.nack). */
export class PublishNackedError extends Error {
  override name = 'PublishNackedError';
}

/** The broker returned a mandatory message: no queue is bound for its routing key. */
export class UnroutableError extends Error {
  override name = 'UnroutableError';
}

/** No confirm arrived in time; the message may or may not have been routed. */
export class PublishTimeoutError extends Error {
  override name = 'PublishTimeoutError';
}

/** The channel closed before its confirm; the message may or may not have been routed. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError';
}

/** A configuration value is missing or malformed; the message names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable} ${problem}`);
  }
}

/** The name of an error class for logs and dead-letter headers, with a fallback for non-errors. */
export function errorName(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
