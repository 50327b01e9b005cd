// Runs a worker: its infrastructure in a tsyringe container, the database migrated, its
// topology, its consumers, and a graceful stop. Each workers/<name>/index.ts is a
// composition root over this.
import type { DependencyContainer } from 'tsyringe';
import type Redis from 'ioredis';
import type { Config } from '../config';
import { createPool, type Pool } from '../db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../db/migrate';
import { createRedis, RedisDedupStore, type DedupStore } from '../dedup';
import { TOKENS } from '../di/tokens';
import type { Catalog } from '../events';
import type { Logger } from '../observability/logger';
import { AmqpConnection } from '../messaging/connection';
import { Consumer } from '../messaging/consumer';
import type { HandlerMap } from '../messaging/handler';
import { Publisher } from '../messaging/publisher';
import type { QueueSpec, Topology } from '../messaging/topology';
import { MessageValidator } from '../messaging/validator';

export interface ConsumerDefinition {
  queue: QueueSpec;
  handlers: HandlerMap;
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

export interface WorkerOptions {
  /**
   * The message catalog its consumers read and its publisher checks by. Default: this
   * release's; a test gives it an older release's, to run the worker as that release would.
   */
  catalog?: Catalog;
}

export interface RunningWorker {
  container: DependencyContainer;
  consumers: Consumer[];
  stop(): Promise<void>;
  /** Its consumers that are not consuming (by queue), and the dependencies they hold messages for: what keeps it from being ready. */
  notWorking(): string[];
}

/** Builds the infrastructure, migrates the database, declares the topology and starts consuming. */
export async function startWorker(definition: WorkerDefinition, config: Config, logger: Logger, parent: DependencyContainer, options: WorkerOptions = {}): Promise<RunningWorker> {
  const container = parent.createChildContainer();
  const validator = new MessageValidator(options.catalog, { logger });
  const pool: Pool = createPool(config.databaseUrl, definition.name, {
    logger,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
  });
  const redis: Redis = createRedis(config.redisUrl, definition.name, {
    logger,
    connectTimeoutMs: config.redisConnectTimeoutMs,
    commandTimeoutMs: config.redisCommandTimeoutMs,
  });
  redis.on('error', () => undefined); // reported by the dedup store as DependencyUnavailableError
  const connection = new AmqpConnection({ url: config.amqpUrl, name: definition.name, logger, connectTimeoutMs: config.amqpConnectTimeoutMs });
  const publisher = new Publisher(connection, validator, { namespace: config.busNamespace, holdBack: config.publishHoldBack, logger });
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
  await connection.declareOnEveryConnect(topology);
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
    notWorking: () => [...consumers.filter((c) => !c.consuming).map((c) => `consumer ${c.queueName}`), ...consumers.flatMap((c) => c.waitingFor)],
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
      await definition.close?.(container);
      await connection.close();
      redis.disconnect();
      await pool.end();
    },
  };
}
