// Broker topology as data, and the one function that declares it. Every consumer queue
// is a quorum queue with an explicit delivery limit and at-least-once dead lettering to
// `<queue>.dlq`; each retry delay has its own wait queue whose TTL dead-letters the
// message back to the consumer queue. The event archive is a stream bound to every event
// exchange. Declaring the same topology twice is harmless.
import type { Channel } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import { getConfig } from '../config';
import { BrokerRefusedError } from '../errors';
import { COMMAND_EXCHANGE, EVENT_EXCHANGES } from '../events';

export interface ExchangeSpec {
  name: string;
  /** Default "topic" */
  type?: 'topic' | 'direct' | 'fanout' | 'x-consistent-hash';
  /** Exchange arguments, e.g. { 'hash-header': 'x-aggregate-id' } for consistent hashing. */
  arguments?: Record<string, unknown>;
  /** [source exchange, binding key] pairs: exchange-to-exchange bindings into this one. */
  bindFrom?: ReadonlyArray<readonly [exchange: string, pattern: string]>;
}

/** The broker plugin an exchange type needs; the types not listed are built in. */
export const EXCHANGE_TYPE_PLUGINS: Readonly<Partial<Record<NonNullable<ExchangeSpec['type']>, string>>> = {
  'x-consistent-hash': 'rabbitmq_consistent_hash_exchange',
};

/** The broker plugins a topology needs (its exchange types), each once. */
export function requiredPlugins(topology: Topology): string[] {
  const plugins = topology.exchanges.map((e) => EXCHANGE_TYPE_PLUGINS[e.type ?? 'topic']);
  return [...new Set(plugins.filter((p): p is string => p !== undefined))];
}

export interface RetryPolicy {
  /** Attempts in all, the first included; after the last failed one the message goes to the DLQ. */
  maxAttempts: number;
  /** Delay before retry n (1-based) is delaysMs[n-1]; the last entry repeats. */
  delaysMs: readonly number[];
}

export interface QueueSpec {
  /** `<consumer>.<purpose>`, e.g. "payments.commands". Never derived from a class name. */
  name: string;
  /** [exchange, binding key] pairs. */
  bind: ReadonlyArray<readonly [exchange: string, pattern: string]>;
  /** Broker-side cap on redeliveries (crash loops); past it the broker dead-letters. Default 10 */
  deliveryLimit?: number;
  /** Default DEFAULT_RETRY */
  retry?: RetryPolicy;
  /** One consumer at a time receives, for per-key ordering. Default false */
  singleActiveConsumer?: boolean;
}

/**
 * A stream queue: an append-only log that keeps every message until its retention drops the
 * oldest, read from an offset (docs/messaging.md#the-event-archive). Its retention is the
 * declaring process's (DeclareOptions.retention), not data: every process must agree on it.
 */
export interface StreamSpec {
  name: string;
  /** [exchange, binding key] pairs. */
  bind: ReadonlyArray<readonly [exchange: string, pattern: string]>;
}

export interface Topology {
  exchanges: readonly ExchangeSpec[];
  queues: readonly QueueSpec[];
  /** Streams, bound after the exchanges and before the queues. Default none */
  streams?: readonly StreamSpec[];
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, delaysMs: [1_000, 5_000, 30_000, 120_000] };
/** For steps a saga waits on: a flaky dependency usually recovers within a second or two. */
export const FAST_RETRY: RetryPolicy = { maxAttempts: 6, delaysMs: [250, 1_000, 5_000, 30_000] };
export const DEFAULT_DELIVERY_LIMIT = 10;

/** Does an AMQP topic pattern (`*` one word, `#` any number of words) match a routing key? */
export function topicMatches(pattern: string, key: string): boolean {
  const match = (p: readonly string[], k: readonly string[]): boolean => {
    if (p.length === 0) return k.length === 0;
    const [head, ...rest] = p;
    if (head === '#') return match(rest, k) || (k.length > 0 && match(p, k.slice(1)));
    return k.length > 0 && (head === '*' || head === k[0]) && match(rest, k.slice(1));
  };
  return match(pattern.split('.'), key.split('.'));
}

/** A name inside a bus namespace (BUS_NAMESPACE): "<namespace>.<name>", or the name itself. */
export function inNamespace(namespace: string, name: string): string {
  return namespace ? `${namespace}.${name}` : name;
}

/** The exchanges of docs/messaging.md#exchanges-and-queues: one topic exchange per aggregate, and "commands". */
export function coreExchanges(namespace = ''): ExchangeSpec[] {
  return [...EVENT_EXCHANGES, COMMAND_EXCHANGE].map((name) => ({ name: inNamespace(namespace, name) }));
}

/** The event archive's name inside a bus namespace. */
export const ARCHIVE = 'events.archive';

/** The event archive: a stream bound to every event exchange with `#` (commands are not events). */
export function archiveStream(namespace = ''): StreamSpec {
  return { name: inNamespace(namespace, ARCHIVE), bind: EVENT_EXCHANGES.map((e) => [inNamespace(namespace, e), '#'] as const) };
}

/**
 * The core exchanges and the archive bound to them: what a process of the fleet declares
 * before it publishes or consumes, so that no event flows while the archive is missing.
 */
export function coreTopology(namespace = ''): Topology {
  return { exchanges: coreExchanges(namespace), queues: [], streams: [archiveStream(namespace)] };
}

export const dlqName = (queue: string): string => `${queue}.dlq`;
export const waitQueueName = (queue: string, delayMs: number): string => `${queue}.wait.${delayMs}ms`;

/** The distinct wait-queue delays of a policy, in order. */
export function retryDelays(policy: RetryPolicy): number[] {
  return [...new Set(policy.delaysMs)];
}

/** The delay before the given retry (1 = the first retry). */
export function delayFor(policy: RetryPolicy, retry: number): number {
  const delays = policy.delaysMs;
  return delays[Math.min(retry, delays.length) - 1] ?? delays[delays.length - 1] ?? 0;
}

const AT_LEAST_ONCE = { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' } as const;

/** How long and how much a stream keeps: RabbitMQ's x-max-age and x-max-length-bytes. */
export interface StreamRetention {
  /** A whole number and a unit (Y, M, D, h, m, s), e.g. "30D". */
  maxAge: string;
  maxBytes: number;
}

/** How the queues of a topology are declared on this broker. */
export interface DeclareOptions {
  /**
   * Members of each quorum queue (`x-quorum-initial-group-size`); undefined leaves it to the
   * broker (every node). The broker compares it when a queue is declared again, so a queue
   * keeps the size it was first declared with. Default: QUORUM_GROUP_SIZE
   */
  quorumGroupSize?: number;
  /**
   * The streams' retention. The broker compares it when a stream is declared again (406
   * PRECONDITION_FAILED): every process must declare the archive alike.
   * Default: ARCHIVE_MAX_AGE and ARCHIVE_MAX_BYTES
   */
  retention?: StreamRetention;
}

/** The archive's retention from this process's configuration. */
export const configuredRetention = (): StreamRetention => ({ maxAge: getConfig().archiveMaxAge, maxBytes: getConfig().archiveMaxBytes });

/** The options of this process: its QUORUM_GROUP_SIZE, ARCHIVE_MAX_AGE and ARCHIVE_MAX_BYTES. */
export const configuredDeclareOptions = (): DeclareOptions => ({ quorumGroupSize: getConfig().quorumGroupSize, retention: configuredRetention() });

/** A stream's segment files: 100 MB (RabbitMQ's default is 500 MB), or less when the stream may keep less. */
export const MAX_SEGMENT_BYTES = 100_000_000;

/**
 * A stream's arguments. Retention drops whole segments, the oldest first, so a stream holds up
 * to one segment more than its x-max-length-bytes; hence segments no larger than that.
 */
export function streamArguments(retention: StreamRetention): Record<string, unknown> {
  return {
    'x-queue-type': 'stream',
    'x-max-age': retention.maxAge,
    'x-max-length-bytes': retention.maxBytes,
    'x-stream-max-segment-size-bytes': Math.min(MAX_SEGMENT_BYTES, retention.maxBytes),
  };
}

/** The arguments every quorum queue of the topology gets, whatever its role. */
function quorumArguments(options: DeclareOptions): Record<string, unknown> {
  return { 'x-queue-type': 'quorum', ...(options.quorumGroupSize === undefined ? {} : { 'x-quorum-initial-group-size': options.quorumGroupSize }) };
}

export function queueArguments(spec: QueueSpec, options: DeclareOptions = {}): Record<string, unknown> {
  return {
    ...quorumArguments(options),
    'x-delivery-limit': spec.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT,
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': dlqName(spec.name),
    ...AT_LEAST_ONCE,
    ...(spec.singleActiveConsumer ? { 'x-single-active-consumer': true } : {}),
  };
}

/**
 * AMQP replies to a declare or bind that say the broker will refuse it again however often
 * it is retried, until an operator changes something. A lost connection is not one of them.
 */
const REFUSAL_CODES: ReadonlySet<number> = new Set([403 /* ACCESS_REFUSED */, 406 /* PRECONDITION_FAILED */, 503 /* COMMAND_INVALID */, 530 /* NOT_ALLOWED */]);

/**
 * An amqplib error for a refused declare as a BrokerRefusedError; undefined for any other
 * error. Some refusals close the channel (406 PRECONDITION_FAILED: the error of the
 * declare), others the whole connection (503 COMMAND_INVALID for an unknown exchange type:
 * the error the connection closed with, while the declare only learns "Channel ended").
 */
export function brokerRefusal(err: unknown, declaring?: string, otherArgumentsHint?: string): BrokerRefusedError | undefined {
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  if (!(err instanceof Error) || typeof code !== 'number' || !REFUSAL_CODES.has(code)) return undefined;
  // amqplib's message wraps the broker's: `... 503 (COMMAND-INVALID) with message "COMMAND_INVALID - unknown exchange type 'x'"`.
  const said = /with message "(.*)"$/s.exec(err.message)?.[1] ?? err.message;
  const type = /(?:unknown|invalid) exchange type '([^']+)'/.exec(said)?.[1];
  const plugin = type === undefined ? undefined : EXCHANGE_TYPE_PLUGINS[type as NonNullable<ExchangeSpec['type']>];
  const hint = plugin
    ? ` (enable the plugin: rabbitmq-plugins enable ${plugin})`
    : said.includes('inequivalent arg')
      ? ` (${otherArgumentsHint ?? 'it exists with other arguments, which the broker keeps until it is deleted'})`
      : '';
  return new BrokerRefusedError(code, `the broker refused the topology${declaring ? ` (${declaring})` : ''}: ${said}${hint}`, err, type);
}

/**
 * How long a declare that failed with "Channel ended" waits for the connection's close, whose
 * error carries the broker's reason (an unknown exchange type closes the whole connection,
 * and the close may arrive a moment after the channel's), in ms.
 */
export const REFUSAL_WAIT_MS = 2_000;

/**
 * The broker's refusal behind a failed declare: the declare's own error (a refusal that closed
 * only the channel), or the error `connectionClosed` settles with within REFUSAL_WAIT_MS.
 * Undefined when the broker refused nothing.
 */
export async function refusalBehind(err: unknown, connectionClosed: Promise<unknown>): Promise<BrokerRefusedError | undefined> {
  if (err instanceof BrokerRefusedError) return err;
  return brokerRefusal(err) ?? brokerRefusal(await Promise.race([connectionClosed, sleep(REFUSAL_WAIT_MS).then(() => undefined)]));
}

/** Why a stream's declare was refused with other arguments: its retention is the likeliest. */
const RETENTION_DIFFERS =
  'its retention differs: it was declared with other x-max-age, x-max-length-bytes or x-stream-max-segment-size-bytes, which ARCHIVE_MAX_AGE and ARCHIVE_MAX_BYTES set; ' +
  'give every process the values it was declared with, or change its retention as docs/operations.md#the-archives-retention says';

export async function declareTopology(channel: Channel, topology: Topology, options: DeclareOptions = configuredDeclareOptions()): Promise<void> {
  let declaring = '';
  let otherArgumentsHint: string | undefined;
  try {
    for (const exchange of topology.exchanges) {
      declaring = `exchange '${exchange.name}'`;
      await channel.assertExchange(exchange.name, exchange.type ?? 'topic', { durable: true, arguments: exchange.arguments });
    }
    for (const exchange of topology.exchanges) {
      for (const [source, pattern] of exchange.bindFrom ?? []) {
        declaring = `binding of exchange '${exchange.name}' to '${source}'`;
        await channel.bindExchange(exchange.name, source, pattern);
      }
    }
    for (const stream of topology.streams ?? []) {
      declaring = `stream '${stream.name}'`;
      otherArgumentsHint = RETENTION_DIFFERS;
      await channel.assertQueue(stream.name, { durable: true, arguments: streamArguments(options.retention ?? configuredRetention()) });
      otherArgumentsHint = undefined;
      for (const [exchange, pattern] of stream.bind) {
        declaring = `binding of stream '${stream.name}' to '${exchange}'`;
        await channel.bindQueue(stream.name, exchange, pattern);
      }
    }
    for (const queue of topology.queues) {
      declaring = `queue '${dlqName(queue.name)}'`;
      await channel.assertQueue(dlqName(queue.name), { durable: true, arguments: quorumArguments(options) });
      declaring = `queue '${queue.name}'`;
      await channel.assertQueue(queue.name, { durable: true, arguments: queueArguments(queue, options) });
      for (const delay of retryDelays(queue.retry ?? DEFAULT_RETRY)) {
        declaring = `queue '${waitQueueName(queue.name, delay)}'`;
        await channel.assertQueue(waitQueueName(queue.name, delay), {
          durable: true,
          arguments: {
            ...quorumArguments(options),
            'x-message-ttl': delay,
            'x-dead-letter-exchange': '',
            'x-dead-letter-routing-key': queue.name,
            ...AT_LEAST_ONCE,
          },
        });
      }
      for (const [exchange, pattern] of queue.bind) {
        declaring = `binding of queue '${queue.name}' to '${exchange}'`;
        await channel.bindQueue(queue.name, exchange, pattern);
      }
    }
  } catch (err) {
    throw brokerRefusal(err, declaring, otherArgumentsHint) ?? err;
  }
}

/** A worker that handles the commands `<prefix>.*` of the "commands" exchange on its queue `<prefix>.commands`. */
export function commandWorkerTopology(namespace: string, prefix: string): Topology {
  const commands: QueueSpec = {
    name: inNamespace(namespace, `${prefix}.commands`),
    bind: [[inNamespace(namespace, 'commands'), `${prefix}.*`]],
    deliveryLimit: DEFAULT_DELIVERY_LIMIT,
    retry: FAST_RETRY,
  };
  return { ...coreTopology(namespace), queues: [commands] };
}

/** Every queue a topology declares, its streams included, for tests and tools that clean up. */
export function queueNames(topology: Topology): string[] {
  return [
    ...topology.queues.flatMap((q) => [q.name, dlqName(q.name), ...retryDelays(q.retry ?? DEFAULT_RETRY).map((d) => waitQueueName(q.name, d))]),
    ...(topology.streams ?? []).map((s) => s.name),
  ];
}
