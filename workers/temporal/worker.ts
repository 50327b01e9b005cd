// The Temporal worker process: runs the orderFulfillment workflow (bundled once at start)
// and the saga's activities on the task queue "order-fulfillment"; with tracing on, both
// continue the trace of the order whose saga they run (shared/temporal/tracing.ts).
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { createSagaActivities } from '../../activities';
import type { Config } from '../../shared/config';
import { createPool } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import { runProcess, type RunningProcess } from '../../shared/runtime/process';
import { connectPublisher } from '../../shared/messaging/publisher';
import { MessageValidator } from '../../shared/messaging/validator';
import { DependencyWatch } from '../../shared/observability/dependency-watch';
import type { Logger } from '../../shared/observability/logger';
import { SAGA } from '../../shared/saga';
import { connectWithRetry, temporalConnectionOptions } from '../../shared/temporal/client';
import { activityTracing, WORKFLOW_TRACING_MODULES, workflowSpanSinks } from '../../shared/temporal/tracing';

/** How often the worker asks the Temporal server whether it answers, and how long it waits, in ms. */
const TEMPORAL_PROBE_EVERY_MS = 5_000;
const TEMPORAL_PROBE_DEADLINE_MS = 2_000;

export async function startSagaWorker(config: Config, logger: Logger): Promise<RunningProcess> {
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const db = createPool(config.databaseUrl, 'temporal-worker');
  const { connection: amqp, publisher } = await connectPublisher(config, 'temporal-worker', new MessageValidator(), logger);

  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    // The workflow interceptors, tracing on or off (a worker given a bundle takes none of its own).
    workflowInterceptorModules: [...WORKFLOW_TRACING_MODULES],
    logger: { info() {}, warn: (m) => logger.warn(m), error: (m) => logger.error(m), debug() {}, trace() {}, log() {} },
  });
  // A server that is down (or restarting) at start is waited for: exiting would only be
  // restarted into the same wait, and past three quick failures not restarted at all.
  const temporalOptions = temporalConnectionOptions(config); // an unreadable certificate fails now, not in the wait
  const connection = await connectWithRetry(config.temporalAddress, () => NativeConnection.connect(temporalOptions), { logger });
  const worker = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: SAGA.taskQueue,
    workflowBundle,
    activities: createSagaActivities({ db, publisher }),
    interceptors: activityTracing(),
    sinks: workflowSpanSinks(),
  });
  const running = worker.run();
  logger.info({ taskQueue: SAGA.taskQueue, temporal: config.temporalAddress }, 'temporal worker started');
  // The SDK retries its polls quietly while the server is away: a probe of our own makes the
  // wait show (the warning lines, dependency_connected, /readyz naming temporal).
  const temporalWatch = new DependencyWatch('temporal', logger);
  const probe = setInterval(() => {
    connection
      .withDeadline(Date.now() + TEMPORAL_PROBE_DEADLINE_MS, () => connection.workflowService.getSystemInfo({}))
      .then(() => temporalWatch.up(), (err: unknown) => temporalWatch.down(err));
  }, TEMPORAL_PROBE_EVERY_MS);

  return {
    // A worker whose run() ended no longer polls: the process exits so that it is restarted.
    // A server that dies while the worker runs does not end it: the SDK's core retries task
    // polls that fail as unavailable for as long as it takes, and other poll errors for a
    // minute, so the worker resumes when the server is back (the chaos run kills it).
    ended: running,
    async stop() {
      clearInterval(probe);
      temporalWatch.close();
      try {
        worker.shutdown();
      } catch {
        // A worker whose run() rejected has shut down already, and shutdown() throws
        // (IllegalStateError): its connections are still to be closed.
      }
      await running.catch(() => undefined);
      // Each is closed even when another fails to close; the first failure is reported.
      const closed = await Promise.allSettled([connection.close(), amqp.close(), db.end()]);
      const failed = closed.find((c) => c.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}

if (require.main === module) {
  runProcess('temporal-worker', ({ config, logger }) => startSagaWorker(config, logger));
}
