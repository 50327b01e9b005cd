// Composition root of the notifications worker process.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { runProcess, rootContainer } from '../../shared/runtime/process';
import { startWorker, type WorkerDefinition } from '../../shared/runtime/worker';
import { NotificationsHandler } from './handler';
import { notificationsTopology } from './topology';

export const notificationsWorker: WorkerDefinition = {
  name: 'notifications',
  topology: notificationsTopology,
  consumers: (c, topology) => [{ queue: topology.queues[0]!, handlers: c.resolve(NotificationsHandler).handlers }],
};

if (require.main === module) {
  runProcess('notifications', ({ config, logger }) => startWorker(notificationsWorker, config, logger, rootContainer));
}
