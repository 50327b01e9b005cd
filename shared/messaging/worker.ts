// Runs a worker: its infrastructure in a tsyringe container, its topology, its consumers,
// and a graceful stop. Each workers/<name>/index.ts is a composition root over this.
import type { DependencyContainer } from 'tsyringe';
import type Redis from 'ioredis';
import type { Config } from '../config';
import { createPool, type Pool } from '../db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../db/migrate';
import { createRedis, RedisDedupStore, type DedupStore } from '../dedup';
import { TOKENS } from '../di/tokens';
import type { Logger } from '../observability/logger';
import { AmqpConnection } from './connection';
import { Consumer, type Handler } from './consumer';
import { Publisher } from './publisher';
import { declareTopology, type QueueSpec, type Topology } from './topology';
import { MessageValidator } from './validator';

export interface ConsumerDefinition {
  queue: QueueSpec;
  handlers: Readonly<Record<string, Handler>>;
  /** Default 32 */
  prefetch?: number;
  /** false for handlers that are idempotent by nature and must act on every delivery. Default true */
  dedup?: boolean;
}

export interface WorkerDefinition {
  /** Process name: in logs, the broker's connection list and dedup keys (`dedup:<name>:<id>`). */
  name: string;
  /** Exchanges and queues of this worker, inside a bus namespace. */
  topology(namespace: string): Topology;
  /** Registers the worker's own classes and clients (handlers, providers) in its container. */
  register?(container: DependencyContainer, config: Config): void | Promise<void>;
  /** Closes what register() opened. */
  close?(container: DependencyContainer): Promise<void>;
  /** The consumers, resolved from the container once the infrastructure is in it. */
  consumers(container: DependencyContainer, topology: Topology): ConsumerDefinition[];
}

export interface RunningWorker {
  container: DependencyContainer;
  consumers: Consumer[];
  stop(): Promise<void>;
}

/** Builds the infrastructure, migrates the database, declares the topology and starts consuming. */
export async function startWorker(definition: WorkerDefinition, config: Config, logger: Logger, parent: DependencyContainer): Promise<RunningWorker> {
  const container = parent.createChildContainer();
  const validator = new MessageValidator();
  const pool: Pool = createPool(config.databaseUrl, definition.name);
  const redis: Redis = createRedis(config.redisUrl, definition.name);
  redis.on('error', () => undefined); // reported by the dedup store as DependencyUnavailableError
  const connection = new AmqpConnection({ url: config.amqpUrl, name: definition.name, logger });
  const publisher = new Publisher(connection, validator, { namespace: config.busNamespace, logger });
  const dedup: DedupStore = new RedisDedupStore(redis, { leaseMs: config.dedupLeaseMs });
  container.register(TOKENS.Config, { useValue: config });
  container.register(TOKENS.Logger, { useValue: logger });
  container.register(TOKENS.Db, { useValue: pool });
  container.register(TOKENS.Redis, { useValue: redis });
  container.register(TOKENS.Amqp, { useValue: connection });
  container.register(TOKENS.Publisher, { useValue: publisher });
  container.register(TOKENS.Validator, { useValue: validator });
  container.register(TOKENS.DedupStore, { useValue: dedup });
  await definition.register?.(container, config);

  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const topology = definition.topology(config.busNamespace);
  await connection.start();
  await connection.addSetup(async (model) => {
    const channel = await model.createChannel();
    await declareTopology(channel, topology);
    await channel.close();
  });
  await publisher.start();
  const consumers = definition.consumers(container, topology).map(
    (c) =>
      new Consumer(connection, publisher, validator, {
        queue: c.queue,
        handlers: c.handlers,
        prefetch: c.prefetch,
        consumerName: definition.name,
        dedup: c.dedup === false ? null : dedup,
        logger,
      }),
  );
  for (const consumer of consumers) await consumer.start();
  logger.info({ queues: consumers.map((c) => c.queueName) }, 'worker started');

  return {
    container,
    consumers,
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
      await definition.close?.(container);
      await connection.close();
      redis.disconnect();
      await pool.end();
    },
  };
}
