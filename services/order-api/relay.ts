// Composition root of the outbox relay process. Its METRICS_PORT serves the outbox's backlog
// (outbox-metrics.ts) beside its rate.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { createPool } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import { runProcess } from '../../shared/runtime/process';
import { connectPublisher } from '../../shared/messaging/publisher';
import { MessageValidator } from '../../shared/messaging/validator';
import { processRegistry } from '../../shared/observability/metrics';
import { OutboxRelay } from './outbox';
import { registerOutboxGauges } from './outbox-metrics';

runProcess('outbox-relay', async ({ config, logger }) => {
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const db = createPool(config.databaseUrl, 'outbox-relay', { max: 4, logger });
  registerOutboxGauges(db, processRegistry);
  const { connection: amqp, publisher } = await connectPublisher(config, 'outbox-relay', new MessageValidator(), logger);
  const relay = new OutboxRelay(db, publisher, { logger });
  await relay.start();
  logger.info('outbox relay started');
  return {
    async stop() {
      await relay.stop();
      await amqp.close();
      await db.end();
    },
  };
});
