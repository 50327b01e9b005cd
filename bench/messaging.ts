// publish and consume: our publisher and consumer loop against raw amqplib doing the least
// the same job needs, on the same broker, the same quorum queue arguments and 1 KB messages.
import type { ConfirmChannel } from 'amqplib';
import type { Config } from '../shared/config';
import { createRedis, RedisDedupStore } from '../shared/dedup';
import { AmqpConnection } from '../shared/messaging/connection';
import { Consumer } from '../shared/messaging/consumer';
import { Publisher } from '../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace, queueArguments, queueNames, type QueueSpec } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';
import { kilobyteEvent } from './lib';
import { generatedNamespace } from '../scripts/bus';

export const WINDOW = 256;
export const PREFETCH = 64;

export interface Comparison {
  ours: number;
  baseline: number;
  ratio: number;
  unit: string;
  messages: number;
  bytesPerMessage: number;
}

const ratio = (ours: number, baseline: number): number => Math.round((ours / baseline) * 1000) / 1000;

/** Confirmed publishes per second through Publisher, and through a raw confirm channel with the same window. */
export async function benchPublish(config: Config, messages: number, rounds: number): Promise<Comparison & { window: number }> {
  const namespace = generatedNamespace('bench');
  const connection = new AmqpConnection({ url: config.amqpUrl, name: 'bench-publish' });
  await connection.start();
  const admin = await connection.channelModel!.createChannel();
  const queue: QueueSpec = { name: inNamespace(namespace, 'bench.publish'), bind: [[inNamespace(namespace, 'orders'), '#']] };
  await declareTopology(admin, { exchanges: coreExchanges(namespace), queues: [queue] });
  const publisher = new Publisher(connection, new MessageValidator(), { namespace, window: WINDOW });
  await publisher.start();
  const raw = await connection.channelModel!.createConfirmChannel();
  const sample = kilobyteEvent();
  try {
    const ours = async (): Promise<number> => {
      const events = Array.from({ length: messages }, () => kilobyteEvent());
      const t = performance.now();
      await Promise.all(events.map((e) => publisher.publishEnvelope(e)));
      return messages / ((performance.now() - t) / 1000);
    };
    const baseline = async (): Promise<number> => rawPublish(raw, inNamespace(namespace, 'orders'), messages);
    // Warm-up, untimed: the JIT, the channel, the queue's first segment.
    await rawPublish(raw, inNamespace(namespace, 'orders'), 2_000);
    await Promise.all(Array.from({ length: 2_000 }, () => publisher.publishEnvelope(kilobyteEvent())));
    await admin.purgeQueue(queue.name);
    const best = { ours: 0, baseline: 0 };
    for (let r = 0; r < rounds; r++) {
      best.baseline = Math.max(best.baseline, await baseline());
      await admin.purgeQueue(queue.name);
      best.ours = Math.max(best.ours, await ours());
      await admin.purgeQueue(queue.name);
    }
    return { ours: Math.round(best.ours), baseline: Math.round(best.baseline), ratio: ratio(best.ours, best.baseline), unit: 'confirmed msg/s', messages, bytesPerMessage: JSON.stringify(sample).length, window: WINDOW };
  } finally {
    for (const q of queueNames({ exchanges: [], queues: [queue] })) await admin.deleteQueue(q);
    for (const e of coreExchanges(namespace)) await admin.deleteExchange(e.name);
    await connection.close();
  }
}

/** What a careful amqplib user writes: a confirm channel, at most WINDOW unconfirmed, the same properties. */
async function rawPublish(channel: ConfirmChannel, exchange: string, messages: number): Promise<number> {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let failed: Error | undefined;
  const envelopes = Array.from({ length: messages }, () => kilobyteEvent());
  const t = performance.now();
  for (const envelope of envelopes) {
    while (inFlight >= WINDOW) await new Promise<void>((done) => (wake = done));
    inFlight++;
    channel.publish(exchange, envelope.eventType, Buffer.from(JSON.stringify(envelope)), { persistent: true, contentType: 'application/json', messageId: envelope.eventId, type: envelope.eventType, headers: { 'x-aggregate-id': envelope.aggregateId } }, (err) => {
      if (err) failed = err instanceof Error ? err : new Error(String(err));
      inFlight--;
      wake?.();
    });
  }
  while (inFlight > 0) await new Promise<void>((done) => (wake = done));
  if (failed) throw failed;
  return messages / ((performance.now() - t) / 1000);
}

/** Messages per second through Consumer (validation, Redis dedup, manual acks, an empty handler) and a raw consumer that only acks. */
export async function benchConsume(config: Config, messages: number, rounds: number): Promise<Comparison & { prefetch: number }> {
  const namespace = generatedNamespace('bench');
  const connection = new AmqpConnection({ url: config.amqpUrl, name: 'bench-consume' });
  await connection.start();
  const admin = await connection.channelModel!.createChannel();
  const validator = new MessageValidator();
  const publisher = new Publisher(connection, validator, { window: WINDOW });
  await publisher.start();
  const redis = createRedis(config.redisUrl, 'bench-consume');
  const dedup = new RedisDedupStore(redis, { leaseMs: config.dedupLeaseMs });
  const specs: QueueSpec[] = [];
  const prefill = async (queue: string): Promise<void> => {
    const events = Array.from({ length: messages }, () => kilobyteEvent());
    await Promise.all(events.map((e) => publisher.publishEnvelope(e, { exchange: '', routingKey: queue })));
  };
  try {
    const ours = async (round: number): Promise<number> => {
      const spec: QueueSpec = { name: `${namespace}.consume.ours${round}`, bind: [] };
      specs.push(spec);
      await declareTopology(admin, { exchanges: [], queues: [spec] });
      await prefill(spec.name);
      let handled = 0;
      let done: () => void = () => undefined;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const consumer = new Consumer(connection, publisher, validator, {
        queue: spec,
        handlers: { 'order.placed': async () => void (++handled === messages && done()) },
        prefetch: PREFETCH,
        dedup,
      });
      const t = performance.now();
      await consumer.start();
      await finished;
      const rate = messages / ((performance.now() - t) / 1000);
      await consumer.stop();
      return rate;
    };
    const baseline = async (round: number): Promise<number> => {
      const spec: QueueSpec = { name: `${namespace}.consume.raw${round}`, bind: [] };
      specs.push(spec);
      await admin.assertQueue(spec.name, { durable: true, arguments: queueArguments(spec) });
      await prefill(spec.name);
      const channel = await connection.channelModel!.createChannel();
      await channel.prefetch(PREFETCH);
      let acked = 0;
      let done: () => void = () => undefined;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const t = performance.now();
      await channel.consume(spec.name, (msg) => {
        if (!msg) return;
        channel.ack(msg);
        if (++acked === messages) done();
      });
      await finished;
      const rate = messages / ((performance.now() - t) / 1000);
      await channel.close();
      return rate;
    };
    const best = { ours: 0, baseline: 0 };
    for (let r = 0; r < rounds; r++) {
      best.baseline = Math.max(best.baseline, await baseline(r));
      best.ours = Math.max(best.ours, await ours(r));
    }
    return { ours: Math.round(best.ours), baseline: Math.round(best.baseline), ratio: ratio(best.ours, best.baseline), unit: 'msg/s', messages, bytesPerMessage: JSON.stringify(kilobyteEvent()).length, prefetch: PREFETCH };
  } finally {
    for (const spec of specs) for (const q of queueNames({ exchanges: [], queues: [spec] })) await admin.deleteQueue(q).catch(() => undefined);
    redis.disconnect();
    await connection.close();
  }
}
