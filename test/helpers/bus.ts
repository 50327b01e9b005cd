// A real RabbitMQ + Redis bus for one test: its own exchange, queues and dedup prefix,
// all removed by cleanup().
import type { Channel, GetMessage, Options } from 'amqplib';
import type Redis from 'ioredis';
import { getConfig } from '../../shared/config';
import { createRedis, RedisDedupStore, type DedupStore } from '../../shared/dedup';
import type { DataOf, Envelope, MessageType } from '../../shared/events';
import { AmqpConnection } from '../../shared/messaging/connection';
import { Consumer, type ConsumerOptions } from '../../shared/messaging/consumer';
import type { Handler } from '../../shared/messaging/handler';
import { newEnvelope, type EnvelopeContext } from '../../shared/messaging/new-envelope';
import { Publisher, type PublisherOptions } from '../../shared/messaging/publisher';
import { queueNames, type QueueSpec } from '../../shared/messaging/topology';
import { MessageValidator } from '../../shared/messaging/validator';
import { uniqueName } from './names';

export const validator = new MessageValidator();

/** Takes every message now in a queue (acking them). */
export async function takeAll(channel: Channel, queue: string): Promise<GetMessage[]> {
  const out: GetMessage[] = [];
  for (;;) {
    const m = await channel.get(queue, { noAck: true });
    if (!m) return out;
    out.push(m);
  }
}

export class TestBus {
  readonly exchange = uniqueName('test.ex');
  readonly dedupPrefix = uniqueName('test.dedup');
  private readonly consumers: Consumer[] = [];
  private readonly specs: QueueSpec[] = [];
  private readonly redisClients: Redis[] = [];
  private readonly extraConnections: AmqpConnection[] = [];

  private constructor(
    readonly connection: AmqpConnection,
    readonly publisher: Publisher,
    readonly admin: Channel,
  ) {}

  static async create(publisherOptions: PublisherOptions = {}): Promise<TestBus> {
    const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'test' });
    await connection.start();
    const publisher = new Publisher(connection, validator, publisherOptions);
    await publisher.start();
    const admin = await (connection.channelModel as NonNullable<typeof connection.channelModel>).createChannel();
    admin.on('error', () => undefined);
    const bus = new TestBus(connection, publisher, admin);
    await admin.assertExchange(bus.exchange, 'topic', { durable: false, autoDelete: false });
    return bus;
  }

  /** A queue spec with a unique name, bound to this test's exchange. */
  queue(purpose: string, overrides: Partial<QueueSpec> = {}): QueueSpec {
    const spec: QueueSpec = { name: uniqueName(`test.${purpose}`), bind: [[this.exchange, '#']], ...overrides };
    this.specs.push(spec);
    return spec;
  }

  /** A dedup store on its own Redis client and key prefix (pass a URL to use another Redis). */
  dedup(options: { leaseMs?: number; redisUrl?: string } = {}): { store: DedupStore; redis: Redis } {
    const redis = createRedis(options.redisUrl ?? getConfig().redisUrl, 'test');
    redis.on('error', () => undefined);
    this.redisClients.push(redis);
    return { store: new RedisDedupStore(redis, { prefix: this.dedupPrefix, leaseMs: options.leaseMs }), redis };
  }

  async consumer(
    spec: QueueSpec,
    handlers: Record<string, Handler>,
    options: Partial<Omit<ConsumerOptions, 'queue' | 'handlers'>> = {},
  ): Promise<Consumer> {
    const consumer = new Consumer(this.connection, this.publisher, validator, {
      queue: spec,
      handlers,
      dedup: options.dedup === undefined ? this.dedup().store : options.dedup,
      consumerName: options.consumerName ?? spec.name,
      prefetch: options.prefetch,
      logger: options.logger,
      drainTimeoutMs: options.drainTimeoutMs,
    });
    await consumer.start();
    this.consumers.push(consumer);
    return consumer;
  }

  /** A second connection, e.g. to consume with its own publisher. Closed by cleanup(). */
  async connect(name = 'test-extra'): Promise<{ connection: AmqpConnection; publisher: Publisher }> {
    const connection = new AmqpConnection({ url: getConfig().amqpUrl, name });
    await connection.start();
    const publisher = new Publisher(connection, validator);
    await publisher.start();
    this.extraConnections.push(connection);
    return { connection, publisher };
  }

  /** Publishes a message of the catalog to this test's exchange; returns its envelope. */
  async send<T extends MessageType>(type: T, data: DataOf<T>, ctx: Partial<EnvelopeContext> = {}): Promise<Envelope<DataOf<T>>> {
    const envelope = newEnvelope(type, data, { aggregateId: 'agg-1', ...ctx });
    await this.publisher.publishEnvelope(envelope, { exchange: this.exchange });
    return envelope;
  }

  /** Publishes raw bytes to this test's exchange. */
  async sendRaw(routingKey: string, content: Buffer, messageId = uniqueName('raw'), options: Options.Publish = {}): Promise<void> {
    await this.publisher.publish({ exchange: this.exchange, routingKey, content, options: { messageId, ...options } });
  }

  /** Takes every message now in a queue (acking them). */
  drain(queue: string): Promise<GetMessage[]> {
    return takeAll(this.admin, queue);
  }

  async messageCount(queue: string): Promise<number> {
    return (await this.admin.checkQueue(queue)).messageCount;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    await this.connection.waitUntilConnected(15_000);
    const ch = await (this.connection.channelModel as NonNullable<typeof this.connection.channelModel>).createChannel();
    ch.on('error', () => undefined);
    for (const spec of this.specs) {
      for (const q of queueNames({ exchanges: [], queues: [spec] })) await ch.deleteQueue(q).catch(() => undefined);
    }
    await ch.deleteExchange(this.exchange).catch(() => undefined);
    for (const redis of this.redisClients) {
      if (redis.status === 'ready') {
        const keys = await redis.keys(`${this.dedupPrefix}:*`);
        if (keys.length > 0) await redis.del(...keys);
      }
      redis.disconnect();
    }
    await Promise.all(this.extraConnections.map((c) => c.close()));
    await this.connection.close();
  }
}

/** A valid payments.capture command for tests. */
export function captureData(orderId: string): DataOf<'payments.capture'> {
  return { orderId, amount: 19.99, currency: 'EUR', paymentToken: 'tok_ok' };
}
