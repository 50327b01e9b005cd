// Composition root of the payments worker process.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { runProcess, rootContainer } from '../../shared/runtime/process';
import { TOKENS } from '../../shared/di/tokens';
import { startWorker, type WorkerDefinition } from '../../shared/runtime/worker';
import { PaymentsHandler } from './handler';
import { SimulatedPaymentProvider } from './provider';
import { paymentsTopology } from './topology';

export const paymentsWorker: WorkerDefinition = {
  name: 'payments',
  topology: paymentsTopology,
  register: (c) => void c.registerSingleton(TOKENS.PaymentProvider, SimulatedPaymentProvider),
  close: (c) => c.resolve<SimulatedPaymentProvider>(TOKENS.PaymentProvider).close(),
  consumers: (c, topology) => [{ queue: topology.queues[0]!, handlers: c.resolve(PaymentsHandler).handlers }],
};

if (require.main === module) {
  runProcess('payments', ({ config, logger }) => startWorker(paymentsWorker, config, logger, rootContainer));
}
