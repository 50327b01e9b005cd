// What the command-line tools share: a connection that fails fast with a clear message.
import { getConfig, redact } from '../shared/config';
import { AmqpConnection } from '../shared/messaging/connection';
import { Publisher } from '../shared/messaging/publisher';
import { CORE_EXCHANGES, declareTopology } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';

export interface ToolBus {
  connection: AmqpConnection;
  publisher: Publisher;
  validator: MessageValidator;
}

export async function connectTool(name: string): Promise<ToolBus> {
  const url = getConfig().amqpUrl;
  const connection = new AmqpConnection({ url, name, initialMaxRetries: 3, maxDelayMs: 1000 });
  try {
    await connection.start();
  } catch (err) {
    throw new Error(`cannot reach RabbitMQ at ${redact(url)} (${err instanceof Error ? err.message : String(err)}); is it running? Set AMQP_URL to point elsewhere.`, { cause: err });
  }
  // Declaring the core exchanges is harmless and lets a tool work against a fresh broker.
  await connection.addSetup(async (model) => {
    const channel = await model.createChannel();
    await declareTopology(channel, { exchanges: CORE_EXCHANGES, queues: [] });
    await channel.close();
  });
  const validator = new MessageValidator();
  const publisher = new Publisher(connection, validator);
  await publisher.start();
  return { connection, publisher, validator };
}
