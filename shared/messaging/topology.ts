// Broker topology as data, and the one function that declares it. Every consumer queue
// is a quorum queue with an explicit delivery limit and at-least-once dead lettering to
// `<queue>.dlq`; each retry delay has its own wait queue whose TTL dead-letters the
// message back to the consumer queue. Declaring the same topology twice is harmless.
import type { Channel } from 'amqplib';
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

export interface Topology {
  exchanges: readonly ExchangeSpec[];
  queues: readonly QueueSpec[];
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, delaysMs: [1_000, 5_000, 30_000, 120_000] };
/** For steps a saga waits on: a flaky dependency usually recovers within a second or two. */
export const FAST_RETRY: RetryPolicy = { maxAttempts: 6, delaysMs: [250, 1_000, 5_000, 30_000] };
export const DEFAULT_DELIVERY_LIMIT = 10;

/** A name inside a bus namespace (BUS_NAMESPACE): "<namespace>.<name>", or the name itself. */
export function inNamespace(namespace: string, name: string): string {
  return namespace ? `${namespace}.${name}` : name;
}

/** The exchanges of DESIGN.md: one topic exchange per aggregate, and "commands". */
export function coreExchanges(namespace = ''): ExchangeSpec[] {
  return [...EVENT_EXCHANGES, COMMAND_EXCHANGE].map((name) => ({ name: inNamespace(namespace, name) }));
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

export function queueArguments(spec: QueueSpec): Record<string, unknown> {
  return {
    'x-queue-type': 'quorum',
    'x-delivery-limit': spec.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT,
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': dlqName(spec.name),
    ...AT_LEAST_ONCE,
    ...(spec.singleActiveConsumer ? { 'x-single-active-consumer': true } : {}),
  };
}

export async function declareTopology(channel: Channel, topology: Topology): Promise<void> {
  for (const exchange of topology.exchanges) {
    await channel.assertExchange(exchange.name, exchange.type ?? 'topic', { durable: true, arguments: exchange.arguments });
  }
  for (const exchange of topology.exchanges) {
    for (const [source, pattern] of exchange.bindFrom ?? []) await channel.bindExchange(exchange.name, source, pattern);
  }
  for (const queue of topology.queues) {
    await channel.assertQueue(dlqName(queue.name), { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await channel.assertQueue(queue.name, { durable: true, arguments: queueArguments(queue) });
    for (const delay of retryDelays(queue.retry ?? DEFAULT_RETRY)) {
      await channel.assertQueue(waitQueueName(queue.name, delay), {
        durable: true,
        arguments: {
          'x-queue-type': 'quorum',
          'x-message-ttl': delay,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': queue.name,
          ...AT_LEAST_ONCE,
        },
      });
    }
    for (const [exchange, pattern] of queue.bind) await channel.bindQueue(queue.name, exchange, pattern);
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
  return { exchanges: coreExchanges(namespace), queues: [commands] };
}

/** Every queue a topology declares, for tests and tools that clean up. */
export function queueNames(topology: Topology): string[] {
  return topology.queues.flatMap((q) => [
    q.name,
    dlqName(q.name),
    ...retryDelays(q.retry ?? DEFAULT_RETRY).map((d) => waitQueueName(q.name, d)),
  ]);
}
