// Malformed AMQP messages for fuzzing the consumers: random bytes, wrong content types, text
// that is not JSON, JSON that is not an envelope, envelopes with missing or forged fields,
// wrong schema versions, data that fails its schema, oversized bodies and reused ids.
// None of them is a message a consumer may act on: each must end in a DLQ.
import type { Options } from 'amqplib';
import { ulid } from 'ulid';
import { catalog, type MessageType } from '../../shared/events';
import { HEADERS } from '../../shared/messaging/headers';
import type { Random } from '../../scripts/random';

export interface PoisonMessage {
  kind: string;
  content: Buffer;
  options: Options.Publish;
}

/** Every exchange and routing key the fleet consumes: each message type on its home exchange. */
export const CONSUMED_KEYS: ReadonlyArray<readonly [exchange: string, routingKey: MessageType]> = (Object.keys(catalog) as MessageType[]).map((type) => [catalog[type].exchange, type] as const);

function envelopeOf(type: MessageType, rnd: Random): Record<string, unknown> {
  const orderId = `fuzz-${ulid()}`;
  return {
    eventId: ulid(),
    eventType: type,
    schemaVersion: 1,
    occurredAt: new Date().toISOString(),
    aggregateId: orderId,
    aggregateVersion: rnd.int(0, 3),
    correlationId: ulid(),
    causationId: ulid(),
    data: { orderId },
  };
}

/** A malformed message for the routing key `type`; `reusedId` is given to some of them. */
export function poisonFor(type: MessageType, rnd: Random, reusedId: string): PoisonMessage {
  const envelope = envelopeOf(type, rnd);
  const json = (kind: string, body: unknown, messageId = String(envelope.eventId)): PoisonMessage => ({
    kind,
    content: Buffer.from(JSON.stringify(body)),
    options: { messageId, type, contentType: 'application/json', persistent: true, headers: { [HEADERS.aggregateId]: envelope.aggregateId } },
  });
  switch (rnd.int(0, 11)) {
    case 0:
      return { kind: 'random bytes', content: rnd.bytes(rnd.int(0, 512)), options: { messageId: ulid(), contentType: rnd.pick(['application/octet-stream', 'application/json', 'text/plain']), headers: { [HEADERS.aggregateId]: 'x' } } };
    case 1:
      return { ...json('not JSON', null), content: Buffer.from(`{"eventId": ${rnd.string(20)}`) };
    case 2:
      return json('JSON that is not an object', rnd.pick([[], 'text', 42, null, true]));
    case 3: {
      const field = rnd.pick(Object.keys(envelope));
      const body = { ...envelope };
      delete body[field];
      return json(`envelope without ${field}`, body);
    }
    case 4:
      return json('a forged eventId', { ...envelope, eventId: rnd.pick(['', 'not-a-ulid', 42, null]) });
    case 5:
      return json('a forged occurredAt or aggregateVersion', { ...envelope, ...(rnd.chance(0.5) ? { occurredAt: 'yesterday' } : { aggregateVersion: -1 }) });
    case 6:
      return json('another type than the routing key', { ...envelope, eventType: rnd.pick(['order.shipped', 'payments.steal', '', 'payment.captured.v2']) });
    case 7: {
      // A newer version than the catalog's is read as the latest when the type's mode allows
      // it (docs/messaging.md#how-a-consumer-reads-another-version): with data no version takes.
      const schemaVersion = rnd.pick([0, 2, 99, '1', -1, 1.5]);
      return json('a wrong schema version', { ...envelope, schemaVersion, ...(schemaVersion === 2 || schemaVersion === 99 ? { data: {} } : {}) });
    }
    case 8:
      return json('data that fails its schema', { ...envelope, data: rnd.chance(0.5) ? {} : { ...(envelope.data as object), unexpected: rnd.json(2) } });
    case 9:
      return json('an oversized body', { ...envelope, data: { ...(envelope.data as object), padding: 'x'.repeat(rnd.int(260_000, 400_000)) } });
    case 10:
      return json('a reused message id with a broken body', { ...envelope, eventId: reusedId, data: null }, reusedId);
    default:
      return { ...json('a wrong content type', envelope), options: { ...json('', envelope).options, contentType: rnd.pick(['text/plain', 'application/xml', 'application/x-protobuf']) } };
  }
}
