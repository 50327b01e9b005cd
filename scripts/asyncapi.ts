// npm run asyncapi [-- --check]: writes docs/asyncapi.yaml (AsyncAPI 3.0), the fleet's
// messaging as the tools of the ecosystem read it, derived from the code: the message
// catalog (every type, each schema version, its aggregate version and compatibility mode),
// the topologies and broker roles of the fleet's processes (scripts/rabbitmq-definitions.ts:
// exchanges, queues, bindings, who consumes and publishes), and the saga's steps (who
// answers which command).
// --check exits 1 when the committed file is not what the code says; test/unit/asyncapi.test.ts
// does the same, and validates the document with @asyncapi/parser.
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { version } from '../package.json';
import { AGGREGATE_VERSIONS, catalog, EnvelopeSchema, isMessageType, type MessageType } from '../shared/events';
import { ORDER_EVENT_TYPES } from '../shared/orders/order';
import { HEADERS } from '../shared/messaging/headers';
import { DEFAULT_DELIVERY_LIMIT, DEFAULT_RETRY, dlqName, retryDelays, topicMatches, waitQueueName, type ExchangeSpec, type QueueSpec, type StreamSpec } from '../shared/messaging/topology';
import { SAGA_STEPS } from '../shared/saga';
import { runCli } from './cli';
import { fleetAccess, type BrokerAccess } from './rabbitmq-definitions';

export const ASYNCAPI_FILE = resolve(__dirname, '../docs/asyncapi.yaml');

const AMQP_BINDING = '0.3.0';

const sorted = <T>(items: Iterable<T>): T[] => [...items].sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
const byKey = <V>(entries: Iterable<readonly [string, V]>): Record<string, V> => Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
/** A schema as plain JSON: TypeBox's own symbols and any shared objects dropped. */
const plain = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema)) as unknown;

const messageId = (type: MessageType, v: number): string => `${type}.v${v}`;
const versionsOf = (type: MessageType): number[] => Object.keys(catalog[type].versions).map(Number).sort((a, b) => a - b);
const routeChannelId = (exchange: string, key: string): string => `${exchange}_${key}`;
const queueChannelId = (queue: string): string => `queue_${queue}`;

/**
 * What each publishing process sends, by message type. A command worker answers the commands
 * it receives as SAGA_STEPS pairs them; the others are named here with the code that says so.
 * Each must fit the exchanges the process may publish to (its broker role).
 */
function sentBy(access: BrokerAccess, received: readonly MessageType[]): MessageType[] {
  if (access.consumes) {
    return SAGA_STEPS.flatMap((s) => [...(received.includes(s.command) ? [s.ok, s.fail] : []), ...(received.includes(s.undo.command) ? [s.undo.ok] : [])]);
  }
  if (access.user === 'temporal-worker') {
    // activities/index.ts: each step's command and compensation (the outcome is appended to the order's stream).
    return SAGA_STEPS.flatMap((s) => [s.command, s.undo.command]);
  }
  // The event store is the outbox: the relay publishes every event of the order's stream (shared/orders/order.ts).
  if (access.user === 'outbox-relay') return [...ORDER_EVENT_TYPES];
  throw new Error(`asyncapi: no rule says what ${access.user} publishes`);
}

/** The envelope headers every published message carries, and those of a retried or dead-lettered copy. */
function headersSchema(): object {
  const optional = (description: string, type = 'string'): object => ({ type, description });
  return {
    type: 'object',
    required: [HEADERS.aggregateId],
    properties: {
      [HEADERS.aggregateId]: { type: 'string', description: "The envelope's aggregateId: the key the order-projection's consistent-hash exchange partitions by." },
      [HEADERS.publishId]: optional('Set on a mandatory publish, so that a returned message names the publish it answers.'),
      [HEADERS.attempts]: optional('On a retried or dead-lettered copy: the attempts already made.', 'integer'),
      [HEADERS.originalExchange]: optional('On a retried or dead-lettered copy: the exchange it was first published to.'),
      [HEADERS.originalRoutingKey]: optional('On a retried or dead-lettered copy: its first routing key.'),
      [HEADERS.errorType]: optional('On a retried or dead-lettered copy: the error that failed the last attempt (PoisonMessageError, TransientError, …).'),
      [HEADERS.errorMessage]: optional('On a retried or dead-lettered copy: that error, in words.'),
      [HEADERS.consumer]: optional('On a dead-lettered copy: the consumer that gave up on it.'),
      [HEADERS.deadLetteredAt]: optional('On a dead-lettered copy: when, as an ISO 8601 time.'),
      [HEADERS.replayedAt]: optional('On a copy `npm run dlq -- replay` sent back: when.'),
      [HEADERS.traceparent]: optional("With tracing on: the W3C trace context of the publish's span (00-<trace id>-<span id>-<flags>), which its consumer's span continues."),
      [HEADERS.tracestate]: optional('With tracing on, when the trace has one: its W3C tracestate.'),
    },
  };
}

export function asyncApiDocument(): object {
  const processes = fleetAccess('');
  const exchanges = new Map<string, ExchangeSpec>();
  for (const p of processes) for (const e of p.topology.exchanges) exchanges.set(e.name, { ...exchanges.get(e.name), ...e });
  const types = Object.keys(catalog).filter(isMessageType);

  /** Every message type that reaches an exchange: those published to it, and those its bindings from other exchanges route to it. */
  const arriving = (exchange: string, seen = new Set<string>()): MessageType[] => {
    if (seen.has(exchange)) return [];
    seen.add(exchange);
    const direct = types.filter((t) => catalog[t].exchange === exchange);
    const bound = (exchanges.get(exchange)?.bindFrom ?? []).flatMap(([source, pattern]) => arriving(source, seen).filter((t) => topicMatches(pattern, t)));
    return [...new Set([...direct, ...bound])];
  };
  /** A binding key of a consistent-hash exchange is a weight, not a pattern: each queue gets a share of everything. */
  const routedBy = (exchange: string, pattern: string): MessageType[] =>
    arriving(exchange).filter((t) => exchanges.get(exchange)?.type === 'x-consistent-hash' || topicMatches(pattern, t));
  const receivedFrom = (queue: QueueSpec): MessageType[] => sorted(new Set(queue.bind.flatMap(([exchange, pattern]) => routedBy(exchange, pattern))));

  // ---- Messages: one per type and schema version ----
  const schemas: Array<[string, unknown]> = [
    ['Envelope', { ...(plain(EnvelopeSchema) as object), description: 'The envelope every event and command travels in (docs/messaging.md#the-envelope).' }],
    ['Headers', headersSchema()],
  ];
  const messages: Array<[string, object]> = [];
  for (const type of types) {
    const def = catalog[type];
    for (const v of versionsOf(type)) {
      const id = messageId(type, v);
      schemas.push([id, plain(def.versions[v as keyof typeof def.versions])]);
      messages.push([
        id,
        {
          name: type,
          title: `${type} v${v}`,
          summary: `${def.kind === 'command' ? 'Command' : 'Event'} ${type}, schema version ${v}${v === def.latest ? ' (what producers publish now)' : ' (still accepted: consumers upcast it)'}. Compatibility: ${def.compatibility}.`,
          contentType: 'application/json',
          headers: { $ref: '#/components/schemas/Headers' },
          payload: {
            allOf: [
              { $ref: '#/components/schemas/Envelope' },
              {
                type: 'object',
                properties: {
                  eventType: { const: type },
                  schemaVersion: { const: v },
                  aggregateVersion: isOrderEvent(type)
                    ? { type: 'integer', minimum: AGGREGATE_VERSIONS[type], description: "Its version in the order's event stream (docs/event-sourcing.md)." }
                    : { const: AGGREGATE_VERSIONS[type], description: 'Its place in the aggregate history (shared/events/aggregate-versions.ts).' },
                  data: { $ref: `#/components/schemas/${id}` },
                },
              },
            ],
          },
          correlationId: { description: 'The same along a whole flow (an order).', location: '$message.payload#/correlationId' },
          bindings: { amqp: { contentEncoding: 'utf-8', messageType: type, bindingVersion: AMQP_BINDING } },
          // The type's compatibility mode (docs/messaging.md#compatibility-modes): which readers its versions keep working.
          'x-compatibility': def.compatibility,
        },
      ]);
    }
  }
  const channelMessages = (ts: readonly MessageType[]): Record<string, { $ref: string }> =>
    byKey(ts.flatMap((t) => versionsOf(t).map((v) => [messageId(t, v), { $ref: `#/components/messages/${messageId(t, v)}` }] as const)));

  // ---- Channels: each exchange and routing key, and each queue ----
  const channels: Array<[string, object]> = [];
  for (const [name, e] of exchanges) {
    const exchange = {
      name,
      ...(e.type === 'x-consistent-hash' ? {} : { type: e.type ?? 'topic' }),
      durable: true,
      autoDelete: false,
      vhost: '/',
    };
    const extensions = {
      ...(e.type === 'x-consistent-hash' ? { 'x-exchange-type': e.type } : {}),
      ...(e.arguments ? { 'x-arguments': e.arguments } : {}),
      ...(e.bindFrom?.length ? { 'x-bound-from': e.bindFrom.map(([source, pattern]) => ({ exchange: source, routingKey: pattern })) } : {}),
    };
    const direct = types.filter((t) => catalog[t].exchange === name);
    if (direct.length > 0) {
      for (const t of direct) {
        channels.push([
          routeChannelId(name, t),
          {
            address: t,
            title: `${t} on ${name}`,
            description: `Exchange "${name}" (topic, durable), routing key ${t}: the message type is the routing key.`,
            messages: channelMessages([t]),
            bindings: { amqp: { is: 'routingKey', exchange, ...extensions, bindingVersion: AMQP_BINDING } },
          },
        ]);
      }
    } else {
      const bound = e.bindFrom?.map(([source, pattern]) => `${source} ${pattern}`).join(', ') ?? 'nothing';
      channels.push([
        `exchange_${name}`,
        {
          address: null,
          title: `exchange ${name}`,
          description: `Exchange "${name}" (${e.type ?? 'topic'}), nobody publishes to it directly: it is bound from ${bound}${e.arguments ? `, with arguments ${JSON.stringify(e.arguments)}` : ''}.`,
          messages: channelMessages(sorted(arriving(name))),
          bindings: { amqp: { is: 'routingKey', exchange, ...extensions, bindingVersion: AMQP_BINDING } },
        },
      ]);
    }
  }
  const queues = new Map<string, { queue: QueueSpec; consumers: string[] }>();
  for (const p of processes) for (const q of p.topology.queues) queues.set(q.name, { queue: q, consumers: [...(queues.get(q.name)?.consumers ?? []), p.user] });
  for (const [name, { queue }] of queues) {
    const retry = queue.retry ?? DEFAULT_RETRY;
    channels.push([
      queueChannelId(name),
      {
        address: name,
        title: `queue ${name}`,
        description:
          `Quorum queue "${name}", bound to ${queue.bind.map(([exchange, key]) => (exchanges.get(exchange)?.type === 'x-consistent-hash' ? `${exchange} (weight ${key})` : `${exchange} ${key}`)).join(', ')}. ` +
          `A failed message waits in ${retryDelays(retry).map((d) => waitQueueName(name, d)).join(', ')} and is retried (${retry.maxAttempts} attempts in all), then goes to ${dlqName(name)}; ` +
          `past ${queue.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT} deliveries the broker dead-letters it there (docs/messaging.md#retries-and-the-dlq).` +
          (queue.singleActiveConsumer ? ' One consumer at a time receives (single active consumer).' : ''),
        messages: channelMessages(receivedFrom(queue)),
        bindings: {
          amqp: {
            is: 'queue',
            queue: { name, durable: true, exclusive: false, autoDelete: false, vhost: '/' },
            'x-bindings': queue.bind.map(([exchange, pattern]) => ({ exchange, routingKey: pattern })),
            'x-queue-type': 'quorum',
            'x-delivery-limit': queue.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT,
            'x-dead-letter-queue': dlqName(name),
            'x-retry': { maxAttempts: retry.maxAttempts, delaysMs: [...retry.delaysMs] },
            'x-wait-queues': retryDelays(retry).map((d) => waitQueueName(name, d)),
            ...(queue.singleActiveConsumer ? { 'x-single-active-consumer': true } : {}),
            bindingVersion: AMQP_BINDING,
          },
        },
      },
    ]);
  }

  // The event archive: a stream the fleet declares and binds, and no process of it consumes.
  const streams = new Map<string, StreamSpec>();
  for (const p of processes) for (const stream of p.topology.streams ?? []) streams.set(stream.name, stream);
  for (const [name, stream] of streams) {
    channels.push([
      queueChannelId(name),
      {
        address: name,
        title: `stream ${name}`,
        description:
          `Stream "${name}", the event archive, bound to ${stream.bind.map(([exchange, key]) => `${exchange} ${key}`).join(', ')}: it keeps every event, in order, ` +
          'for ARCHIVE_MAX_AGE or up to ARCHIVE_MAX_BYTES. No process of the fleet consumes it; `npm run replay` reads it from an offset (x-stream-offset) ' +
          'and publishes events into a queue (docs/messaging.md#the-event-archive).',
        messages: channelMessages(sorted(new Set(stream.bind.flatMap(([exchange, pattern]) => routedBy(exchange, pattern))))),
        bindings: {
          amqp: {
            is: 'queue',
            queue: { name, durable: true, exclusive: false, autoDelete: false, vhost: '/' },
            'x-bindings': stream.bind.map(([exchange, pattern]) => ({ exchange, routingKey: pattern })),
            'x-queue-type': 'stream',
            bindingVersion: AMQP_BINDING,
          },
        },
      },
    ]);
  }

  // ---- Operations: what each process receives and sends ----
  const operations: Array<[string, object]> = [];
  const ref = (channel: string, ts: readonly MessageType[]) => ({
    channel: { $ref: `#/channels/${channel}` },
    messages: ts.flatMap((t) => versionsOf(t).map((v) => ({ $ref: `#/channels/${channel}/messages/${messageId(t, v)}` }))),
  });
  for (const p of processes) {
    const received = sorted(new Set(p.topology.queues.flatMap(receivedFrom)));
    if (p.consumes) {
      for (const q of p.topology.queues) {
        operations.push([
          `${p.user}.receives.${q.name}`,
          {
            action: 'receive',
            title: `${p.user} consumes ${q.name}`,
            summary: `${p.user} consumes ${q.name}, acking each message once it is handled (or moved to a wait queue or the DLQ).`,
            tags: [{ name: p.user }],
            ...ref(queueChannelId(q.name), receivedFrom(q)),
            bindings: { amqp: { ack: true, bindingVersion: AMQP_BINDING } },
          },
        ]);
      }
    }
    const sent = sorted(new Set(sentBy(p, received)));
    for (const t of sent) {
      const exchange = catalog[t].exchange;
      if (!p.publishes.includes(exchange)) throw new Error(`asyncapi: ${p.user} sends ${t} to "${exchange}", which its broker role does not let it publish to`);
      // Only the latest version is published; older ones are still received.
      const latest = catalog[t].latest;
      operations.push([
        `${p.user}.sends.${t}`,
        {
          action: 'send',
          title: `${p.user} publishes ${t}`,
          summary: `${p.user} publishes ${t} v${latest} to ${exchange}, persistent, with publisher confirms.`,
          tags: [{ name: p.user }],
          channel: { $ref: `#/channels/${routeChannelId(exchange, t)}` },
          messages: [{ $ref: `#/channels/${routeChannelId(exchange, t)}/messages/${messageId(t, latest)}` }],
          bindings: { amqp: { deliveryMode: 2, bindingVersion: AMQP_BINDING } },
        },
      ]);
    }
    const unused = p.publishes.filter((e) => !sent.some((t) => catalog[t].exchange === e));
    if (unused.length > 0) throw new Error(`asyncapi: ${p.user} may publish to ${unused.join(', ')}, but no rule says what it sends there`);
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'order-fulfillment messaging',
      version,
      description:
        'The events and commands of the order fulfillment fleet on RabbitMQ: every exchange, routing key, queue and binding, each message type with its schema versions and headers, and which process sends and receives what. Generated by `npm run asyncapi` from shared/events/catalog.ts, the fleet\'s topologies and the saga\'s steps; do not edit it by hand. The design: docs/messaging.md.',
    },
    defaultContentType: 'application/json',
    servers: {
      rabbitmq: {
        host: '127.0.0.1:5672',
        protocol: 'amqp',
        protocolVersion: '0.9.1',
        description:
          'AMQP_URL. Each process connects as its own user (deploy/rabbitmq/definitions.json). BUS_NAMESPACE, when set, prefixes every exchange and queue name here with "<namespace>.".',
      },
    },
    channels: byKey(channels),
    operations: byKey(operations),
    components: { schemas: byKey(schemas), messages: byKey(messages) },
  };
}

/** The document as docs/asyncapi.yaml holds it: the same code gives the same bytes. */
export function renderAsyncApi(): string {
  const header = '# Generated by `npm run asyncapi` (scripts/asyncapi.ts) from the code; do not edit.\n';
  return header + stringify(asyncApiDocument(), { aliasDuplicateObjects: false, lineWidth: 0 });
}

if (require.main === module) {
  runCli('asyncapi', () => {
    // Strict: a mistyped --check must not write the file instead of checking it.
    const { values } = parseArgs({ args: process.argv.slice(2), options: { check: { type: 'boolean', default: false } }, strict: true });
    const rendered = renderAsyncApi();
    if (values.check) {
      if (readFileSync(ASYNCAPI_FILE, 'utf8') === rendered) return 0;
      console.error('docs/asyncapi.yaml is out of date: run `npm run asyncapi`');
      return 1;
    }
    writeFileSync(ASYNCAPI_FILE, rendered);
    console.log(`wrote ${ASYNCAPI_FILE}`);
    return 0;
  });
}

/** An event of the order's stream: the event store gives its aggregateVersion. */
function isOrderEvent(type: MessageType): boolean {
  return (ORDER_EVENT_TYPES as readonly string[]).includes(type);
}
