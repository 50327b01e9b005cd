// Composition root of the outbox relay process.
import { createPool } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import { runProcess } from '../../shared/di/process';
import { connectPublisher } from '../../shared/messaging/publisher';
import { MessageValidator } from '../../shared/messaging/validator';
import { OutboxRelay } from './outbox';

runProcess('outbox-relay', async ({ config, logger }) => {
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const db = createPool(config.databaseUrl, 'outbox-relay', 4);
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
