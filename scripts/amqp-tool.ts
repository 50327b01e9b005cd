// What the command-line tools share: a connection that fails fast with a clear message.
import { getConfig, redact } from '../shared/config';
import { AmqpConnection } from '../shared/messaging/connection';
import { Publisher } from '../shared/messaging/publisher';
import { coreExchanges, declareTopology } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';

export interface ToolBus {
  /** BUS_NAMESPACE: the tools take exchange and queue names without it and add it. */
  namespace: string;
  connection: AmqpConnection;
  publisher: Publisher;
  validator: MessageValidator;
}

export async function connectTool(name: string): Promise<ToolBus> {
  const { amqpUrl: url, busNamespace: namespace } = getConfig();
  const connection = new AmqpConnection({ url, name, initialMaxRetries: 3, maxDelayMs: 1000 });
  try {
    await connection.start();
  } catch (err) {
    throw new Error(`cannot reach RabbitMQ at ${redact(url)} (${err instanceof Error ? err.message : String(err)}); is it running? Set AMQP_URL to point elsewhere.`, { cause: err });
  }
  // Declaring the core exchanges is harmless and lets a tool work against a fresh broker.
  await connection.addSetup(async (model) => {
    const channel = await model.createChannel();
    await declareTopology(channel, { exchanges: coreExchanges(namespace), queues: [] });
    await channel.close();
  });
  const validator = new MessageValidator();
  const publisher = new Publisher(connection, validator, { namespace });
  await publisher.start();
  return { namespace, connection, publisher, validator };
}
