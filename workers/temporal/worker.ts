// The Temporal worker process: runs the orderFulfillment workflow (bundled once at start)
// and the saga's activities on the task queue "order-fulfillment".
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { createSagaActivities } from '../../activities';
import type { Config } from '../../shared/config';
import { createPool } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import { runProcess } from '../../shared/di/process';
import { connectPublisher } from '../../shared/messaging/publisher';
import { MessageValidator } from '../../shared/messaging/validator';
import type { Logger } from '../../shared/observability/logger';
import { SAGA } from '../../shared/saga';

export async function startSagaWorker(config: Config, logger: Logger): Promise<{ stop(): Promise<void> }> {
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const db = createPool(config.databaseUrl, 'temporal-worker');
  const { connection: amqp, publisher } = await connectPublisher(config, 'temporal-worker', new MessageValidator(), logger);

  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: { info() {}, warn: (m) => logger.warn(m), error: (m) => logger.error(m), debug() {}, trace() {}, log() {} },
  });
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const worker = await Worker.create({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: SAGA.taskQueue,
    workflowBundle,
    activities: createSagaActivities({ db, publisher }),
  });
  const running = worker.run();
  logger.info({ taskQueue: SAGA.taskQueue, temporal: config.temporalAddress }, 'temporal worker started');
  running.catch((err: unknown) => logger.fatal({ err: String(err) }, 'temporal worker failed'));

  return {
    async stop() {
      worker.shutdown();
      await running.catch(() => undefined);
      await connection.close();
      await amqp.close();
      await db.end();
    },
  };
}

if (require.main === module) {
  runProcess('temporal-worker', ({ config, logger }) => startSagaWorker(config, logger));
}
