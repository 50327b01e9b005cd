// Composition root of the order read-model (projection) worker process.
import { runProcess, rootContainer } from '../../shared/di/process';
import { startWorker, type WorkerDefinition } from '../../shared/messaging/worker';
import { OrderProjection } from './handler';
import { projectionTopology } from './topology';

export const projectionWorker: WorkerDefinition = {
  name: 'order-projection',
  topology: projectionTopology,
  consumers: (c, topology) => {
    const handlers = c.resolve(OrderProjection).handlers;
    return topology.queues.map((queue) => ({ queue, handlers, prefetch: 16 }));
  },
};

if (require.main === module) {
  runProcess('order-projection', ({ config, logger }) => startWorker(projectionWorker, config, logger, rootContainer));
}
