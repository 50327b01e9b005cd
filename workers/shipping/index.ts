// Composition root of the shipping worker process.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { runProcess, rootContainer } from '../../shared/runtime/process';
import { TOKENS } from '../../shared/di/tokens';
import { startWorker, type WorkerDefinition } from '../../shared/runtime/worker';
import { StaticCarrierDirectory } from './carriers';
import { ShippingHandler } from './handler';
import { shippingTopology } from './topology';

export const shippingWorker: WorkerDefinition = {
  name: 'shipping',
  topology: shippingTopology,
  register: (c) => void c.register(TOKENS.CarrierDirectory, { useClass: StaticCarrierDirectory }),
  consumers: (c, topology) => [{ queue: topology.queues[0]!, handlers: c.resolve(ShippingHandler).handlers }],
};

if (require.main === module) {
  runProcess('shipping', ({ config, logger }) => startWorker(shippingWorker, config, logger, rootContainer));
}
