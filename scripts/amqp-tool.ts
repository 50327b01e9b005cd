// What the command-line tools share: a connection that fails fast with a clear message, whether a queue exists, and how a dead letter is described.
import type { GetMessage } from 'amqplib';
import { getConfig, redact } from '../shared/config';
import { HEADERS, numberHeader, stringHeader } from '../shared/messaging/headers';
import { AmqpConnection } from '../shared/messaging/connection';
import { Publisher } from '../shared/messaging/publisher';
import { coreTopology } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';

export interface ToolBus {
  /** BUS_NAMESPACE: the tools take exchange and queue names without it and add it. */
  namespace: string;
  connection: AmqpConnection;
  publisher: Publisher;
  validator: MessageValidator;
}

/** A connection to AMQP_URL that gives up after a few attempts, saying where it tried. */
export async function connectBroker(name: string): Promise<AmqpConnection> {
  const { amqpUrl: url } = getConfig();
  const connection = new AmqpConnection({ url, name, initialMaxRetries: 3, maxDelayMs: 1000 });
  try {
    await connection.start();
  } catch (err) {
    throw new Error(`cannot reach RabbitMQ at ${redact(url)} (${err instanceof Error ? err.message : String(err)}); is it running? Set AMQP_URL to point elsewhere.`, { cause: err });
  }
  return connection;
}

export async function connectTool(name: string): Promise<ToolBus> {
  const { busNamespace: namespace } = getConfig();
  const connection = await connectBroker(name);
  // Declaring the core exchanges (and the archive bound to them, so that what a tool
  // publishes is archived) is harmless and lets a tool work against a fresh broker.
  await connection.declareOnEveryConnect(coreTopology(namespace));
  const validator = new MessageValidator();
  const publisher = new Publisher(connection, validator, { namespace });
  await publisher.start();
  return { namespace, connection, publisher, validator };
}

/** Whether a queue exists, asked on a channel of its own (a missing queue closes it). */
export async function queueExists(connection: AmqpConnection, name: string): Promise<boolean> {
  const model = connection.channelModel;
  if (!model) throw new Error('not connected to RabbitMQ');
  const probe = await model.createChannel();
  probe.on('error', () => undefined);
  try {
    await probe.checkQueue(name);
    await probe.close();
    return true;
  } catch (err) {
    // 404 NOT_FOUND is the answer; anything else (the broker gone) is not "no such queue".
    if ((err as { code?: number }).code === 404) return false;
    throw err;
  }
}

export interface DeadLetter {
  messageId: string;
  type: string;
  reason: string;
  attempts: number;
  origin: string;
  deadLetteredAt: string;
}

/** Why a message is in the DLQ: our consumer's headers, or the broker's own dead-letter reason. */
export function describeDeadLetter(m: GetMessage): DeadLetter {
  const h = m.properties.headers ?? {};
  const errorType = stringHeader(h, HEADERS.errorType);
  const brokerReason = stringHeader(h, HEADERS.firstDeathReason);
  const reason = errorType
    ? `${errorType}: ${stringHeader(h, HEADERS.errorMessage) ?? ''}`
    : `broker: ${brokerReason ?? 'unknown'}${brokerReason === 'delivery_limit' ? ' (the consumer kept crashing on it)' : ''}`;
  const exchange = stringHeader(h, HEADERS.originalExchange) ?? stringHeader(h, 'x-first-death-exchange') ?? '';
  const routingKey = stringHeader(h, HEADERS.originalRoutingKey) ?? '';
  return {
    messageId: String(m.properties.messageId ?? '(none)'),
    type: String(m.properties.type ?? '(none)'),
    reason,
    attempts: numberHeader(h, HEADERS.attempts) || numberHeader(h, HEADERS.deliveryCount),
    origin: `${exchange || '(default)'} / ${routingKey || '(none)'}`,
    deadLetteredAt: stringHeader(h, HEADERS.deadLetteredAt) ?? '',
  };
}
