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

/**
 * Why a message is poison, the start of its dead letter's x-error-message. unknown_version: a
 * schema version the consumer's catalog does not have and may not read as its latest (the
 * type is backward compatible only), or one a producer's catalog does not have.
 */
export type PoisonReason = 'bad_json' | 'invalid_envelope' | 'unknown_type' | 'unknown_version' | 'schema_validation' | 'too_large' | 'wrong_content_type' | 'id_mismatch' | 'type_mismatch';

/** A message that can never be handled as it is (docs/architecture.md#the-guarantees, guarantee 3). */
export class PoisonMessageError extends PermanentError {
  override name = 'PoisonMessageError';
  constructor(
    readonly reason: PoisonReason,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

/**
 * A message held back to an older schema version (PUBLISH_HOLD_BACK) whose data that version
 * cannot carry, such as a value only the newer version has. Nothing was published; the
 * caller still has the message (a handler's input is dead-lettered, the relay keeps the
 * event unsent and tries again) until the hold-back is lifted.
 */
export class DowncastError extends PermanentError {
  override name = 'DowncastError';
}

/** The same message is being handled elsewhere right now; try again later. */
export class DuplicateInProgressError extends Error {
  override name = 'DuplicateInProgressError';
}

/**
 * A dedup claim is no longer this handler's: its lease ran out (or was taken over) while it
 * ran. The handler must not act as the owner: no done marker, no ack as done; the message
 * is retried later, when the owner's outcome (or a fresh claim) decides.
 */
export class LeaseLostError extends DuplicateInProgressError {
  override name = 'LeaseLostError';
  constructor(key: string) {
    super(`the dedup claim ${key} is not owned by this handler any more`);
  }
}

/** A message whose body could not be made (its content() threw): nothing was sent, and trying again makes the same body. */
export class UnserializableError extends PermanentError {
  override name = 'UnserializableError';
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

/**
 * A failure that neither retrying nor restarting the process will cure: only an operator's
 * change (a broker plugin, a queue's arguments, a permission) will. A process that meets one
 * at start exits with EXIT_INCURABLE, so a supervisor can stop restarting it.
 */
export class IncurableError extends Error {
  override name = 'IncurableError';
}

/**
 * The broker refused to declare part of the topology: an unknown exchange type (a plugin is
 * off), an exchange or queue that exists with other arguments, or no permission.
 */
export class BrokerRefusedError extends IncurableError {
  override name = 'BrokerRefusedError';
  constructor(
    /** The AMQP reply code, e.g. 406 PRECONDITION_FAILED or 503 COMMAND_INVALID. */
    readonly replyCode: number,
    message: string,
    cause?: unknown,
    /** The exchange type the broker does not know, when that is what it refused (its plugin is off). */
    readonly unknownExchangeType?: string,
  ) {
    super(message, { cause });
  }
}

/** Exit status of a process that cannot start for an incurable reason (sysexits' EX_CONFIG). */
export const EXIT_INCURABLE = 78;

/** The name of an error class for logs and dead-letter headers, with a fallback for non-errors. */
export function errorName(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
