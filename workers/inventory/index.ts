// Composition root of the inventory worker process.
import { runProcess, rootContainer } from '../../shared/di/process';
import { startWorker, type WorkerDefinition } from '../../shared/messaging/worker';
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
