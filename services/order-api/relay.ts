// Composition root of the outbox relay process.
import { createPool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { runProcess } from '../../shared/di/process';
import { AmqpConnection } from '../../shared/messaging/connection';
import { Publisher } from '../../shared/messaging/publisher';
import { coreExchanges, declareTopology } from '../../shared/messaging/topology';
import { MessageValidator } from '../../shared/messaging/validator';
import { OutboxRelay } from './outbox';

runProcess('outbox-relay', async ({ config, logger }) => {
  await migrate(config.databaseUrl, logger);
  const db = createPool(config.databaseUrl, 'outbox-relay', 4);
  const amqp = new AmqpConnection({ url: config.amqpUrl, name: 'outbox-relay', logger });
  await amqp.start();
  await amqp.addSetup(async (model) => {
    const channel = await model.createChannel();
    await declareTopology(channel, { exchanges: coreExchanges(config.busNamespace), queues: [] });
    await channel.close();
  });
  const publisher = new Publisher(amqp, new MessageValidator(), { namespace: config.busNamespace, logger });
  await publisher.start();
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
