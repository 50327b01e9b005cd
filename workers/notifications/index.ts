// Composition root of the notifications worker process.
import { runProcess, rootContainer } from '../../shared/di/process';
import { startWorker, type WorkerDefinition } from '../../shared/messaging/worker';
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
