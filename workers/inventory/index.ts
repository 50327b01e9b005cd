// Composition root of the inventory worker process.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { runProcess, rootContainer } from '../../shared/runtime/process';
import { startWorker, type WorkerDefinition } from '../../shared/runtime/worker';
import { InventoryHandler } from './handler';
import { inventoryTopology } from './topology';

export const inventoryWorker: WorkerDefinition = {
  name: 'inventory',
  topology: inventoryTopology,
  consumers: (c, topology) => [{ queue: topology.queues[0]!, handlers: c.resolve(InventoryHandler).handlers }],
};

if (require.main === module) {
  runProcess('inventory', ({ config, logger }) => startWorker(inventoryWorker, config, logger, rootContainer));
}
