// Builds envelopes for outgoing messages: an id, a timestamp, the latest schema version and
// the type's place in its aggregate's history (shared/events/aggregate-versions.ts).
import { createHash } from 'node:crypto';
import { newId } from '../ids';
import { aggregateVersionOf, catalog, type DataOf, type Envelope, type EnvelopeOf, type MessageType, type ReplyTo } from '../events';

export interface EnvelopeContext {
  aggregateId: string;
  /**
   * Only for tools and tests that forge a history (events out of order, a stale repeat):
   * everything else takes the type's version from AGGREGATE_VERSIONS.
   */
  aggregateVersion?: number;
  /** Carried unchanged from the message that started the flow. Defaults to the new eventId. */
  correlationId?: string;
  /** The eventId of the message that caused this one. Defaults to the new eventId. */
  causationId?: string;
  replyTo?: ReplyTo;
  /** A fixed id, when a retried step must publish under the same id. */
  eventId?: string;
}

/**
 * A message caused by another gets an id derived from its cause, type and aggregate: a
 * handler that runs again for the same message (its dedup marker lost, say) emits the same
 * message, which consumers then deduplicate. Anything else gets a fresh ULID.
 */
export function newEnvelope<T extends MessageType>(type: T, data: DataOf<T>, ctx: EnvelopeContext): EnvelopeOf<T> {
  const eventId = ctx.eventId ?? (ctx.causationId ? stableEventId(`${ctx.causationId}/${type}/${ctx.aggregateId}`) : newId());
  return {
    eventId,
    eventType: type,
    schemaVersion: catalog[type].latest,
    occurredAt: new Date().toISOString(),
    aggregateId: ctx.aggregateId,
    aggregateVersion: ctx.aggregateVersion ?? aggregateVersionOf(type),
    correlationId: ctx.correlationId ?? eventId,
    causationId: ctx.causationId ?? eventId,
    ...(ctx.replyTo ? { replyTo: ctx.replyTo } : {}),
    data,
  };
}

/** The context of a message caused by `cause`: same correlation and reply address, causation = its id. */
export function causedBy(cause: Envelope, aggregateId: string): EnvelopeContext {
  return {
    aggregateId,
    correlationId: cause.correlationId,
    causationId: cause.eventId,
    ...(cause.replyTo ? { replyTo: cause.replyTo } : {}),
  };
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A ULID-shaped id derived from a seed: the same seed always gives the same id, so a
 * retried step publishes under the same id and consumers deduplicate it.
 */
export function stableEventId(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  let id = CROCKFORD[digest[0]! % 8]!; // a ULID's first character is 0-7
  for (let i = 1; i < 26; i++) id += CROCKFORD[digest[i]! % 32]!;
  return id;
}
