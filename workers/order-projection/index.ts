// Composition root of the order read-model (projection) worker process.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import type { DependencyContainer } from 'tsyringe';
import type { Config, Replica } from '../../shared/config';
import { TOKENS } from '../../shared/di/tokens';
import { errorMessage } from '../../shared/errors';
import type { DedupStore } from '../../shared/dedup';
import type { AmqpConnection } from '../../shared/messaging/connection';
import { Consumer } from '../../shared/messaging/consumer';
import type { Publisher } from '../../shared/messaging/publisher';
import type { QueueSpec } from '../../shared/messaging/topology';
import type { MessageValidator } from '../../shared/messaging/validator';
import type { Logger } from '../../shared/observability/logger';
import { runProcess, rootContainer } from '../../shared/runtime/process';
import { startWorker, type RunningWorker, type WorkerDefinition } from '../../shared/runtime/worker';
import { OrderProjection } from './handler';
import { projectionTopology } from './topology';

const PREFETCH = 16;

/**
 * How long a replica waits before it also consumes the other replicas' partitions. A partition
 * (a single-active-consumer queue) is delivered to the consumer that registered first; replicas
 * started together each register on their own share first and become its active consumer, and
 * stand by on the rest, taking a partition over when its consumer goes away.
 */
export const STANDBY_AFTER_MS = 10_000;

export const projectionWorker: WorkerDefinition = {
  name: 'order-projection',
  topology: projectionTopology,
  consumers: (c, topology) => {
    const handlers = c.resolve(OrderProjection).handlers;
    return topology.queues.map((queue) => ({ queue, handlers, prefetch: PREFETCH }));
  },
};

/** A replica's own partitions (every N-th, from its index) and the others, on which it stands by. */
export function partitionsOf(queues: readonly QueueSpec[], replica: Replica): { own: QueueSpec[]; others: QueueSpec[] } {
  const own = queues.filter((_, i) => i % replica.count === (replica.index - 1) % replica.count);
  return { own, others: queues.filter((q) => !own.includes(q)) };
}

/**
 * The projection process. One of several replicas (FLEET_REPLICA, set by `npm start --
 * --replicas`) consumes its own partitions at once and the others STANDBY_AFTER_MS later, so
 * the partitions spread over the replicas. Without it, it consumes every partition at once (a
 * second copy that does not know its index stands by on all of them).
 */
export async function startProjection(config: Config, logger: Logger, parent: DependencyContainer): Promise<RunningWorker> {
  const replica = config.replica;
  if (!replica || replica.count === 1) return startWorker(projectionWorker, config, logger, parent);
  const { own, others } = partitionsOf(projectionTopology(config.busNamespace).queues, replica);
  const running = await startWorker({ ...projectionWorker, consumers: (c) => own.map((queue) => ({ queue, handlers: c.resolve(OrderProjection).handlers, prefetch: PREFETCH })) }, config, logger, parent);
  const c = running.container;
  const standby = others.map(
    (queue) =>
      new Consumer(c.resolve<AmqpConnection>(TOKENS.Amqp), c.resolve<Publisher>(TOKENS.Publisher), c.resolve<MessageValidator>(TOKENS.Validator), {
        queue,
        handlers: c.resolve(OrderProjection).handlers,
        prefetch: PREFETCH,
        consumerName: projectionWorker.name,
        dedup: c.resolve<DedupStore>(TOKENS.DedupStore),
        logger,
      }),
  );
  logger.info({ replica: `${replica.index}/${replica.count}`, own: own.map((q) => q.name), standbyAfterMs: STANDBY_AFTER_MS }, "consuming this replica's partitions first");
  let stopped = false;
  const standBy = async (): Promise<void> => {
    for (const consumer of standby) {
      if (stopped) return;
      // One that fails to start has its setup hook kept: it subscribes after the next reconnect.
      await consumer.start().catch((err: unknown) => logger.warn({ err: errorMessage(err), queue: consumer.queueName }, 'could not stand by on a partition yet'));
    }
  };
  const timer = setTimeout(() => void standBy(), STANDBY_AFTER_MS);
  return {
    ...running,
    consumers: [...running.consumers, ...standby],
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await Promise.all(standby.map((s) => s.stop()));
      await running.stop();
    },
  };
}

if (require.main === module) {
  runProcess('order-projection', ({ config, logger }) => startProjection(config, logger, rootContainer));
}
