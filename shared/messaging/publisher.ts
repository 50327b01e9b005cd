// Publishes with publisher confirms through one confirm channel per connection.
// At most `window` messages are unconfirmed at once; further callers wait for a slot
// (backpressure, no unbounded buffer). publish() resolves on the broker's ack and
// rejects on a nack, a closed channel or the deadline.
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { ChannelClosedError, errorMessage, PermanentError, PublishNackedError, PublishTimeoutError, UnroutableError } from '../errors';
import type { Envelope } from '../events';
import { silentLogger, type Logger } from '../observability/logger';
import { AmqpConnection as AmqpConnectionClass, type AmqpConnection } from './connection';
import { HEADERS } from './headers';
import { coreExchanges, declareTopology, inNamespace } from './topology';
import type { MessageValidator } from './validator';

export interface PublisherOptions {
  /** Most messages unconfirmed at once. Default 256 */
  window?: number;
  /** How long publish() waits in all (for a slot, a connection and the confirm), in ms. Default 10000 */
  timeoutMs?: number;
  /** Bus namespace prefixed to the catalog's exchange names (BUS_NAMESPACE). Default "" */
  namespace?: string;
  logger?: Logger;
}

export interface PublishOptions {
  headers?: Record<string, unknown>;
  /** Skip the schema check (the publish script's --raw). Default false */
  raw?: boolean;
  /** Reject with UnroutableError when no queue receives the message. Default false */
  mandatory?: boolean;
}

export interface RawPublish {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
}

export class Publisher {
  private channel?: ConfirmChannel;
  private inFlight = 0;
  /** Callers waiting for a slot, first come first served. */
  private readonly waiters = new WaitQueue();
  private readonly window: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly namespace: string;
  private started = false;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly validator: MessageValidator,
    options: PublisherOptions = {},
  ) {
    this.window = options.window ?? 256;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.logger = options.logger ?? silentLogger;
    this.namespace = options.namespace ?? '';
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.connection.on('unblocked', () => this.wakeAll());
    this.connection.on('connect', () => this.wakeAll());
    await this.connection.addSetup((model) => this.openChannel(model));
  }

  private async openChannel(model: ChannelModel): Promise<void> {
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: Error) => {
      this.lastChannelError = errorMessage(err);
      this.logger.warn({ err: this.lastChannelError }, 'publisher channel error');
    });
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      // A channel-level error (e.g. publishing to a missing exchange) closes only the
      // channel; reopen it while the connection lives.
      const live = this.connection.channelModel;
      if (live === model) {
        this.openChannel(live).catch((err: unknown) => this.logger.debug({ err: errorMessage(err) }, 'publisher channel reopen failed'));
      }
    });
    // With `mandatory`, an unroutable message comes back (basic.return) before its confirm.
    channel.on('return', (msg: { properties: { messageId?: string } }) => {
      if (msg.properties.messageId !== undefined) this.returned.add(msg.properties.messageId);
    });
    channel.on('drain', () => {
      this.channelFull = false;
      this.wakeAll();
    });
    this.channel = channel;
    this.channelFull = false;
    this.wakeAll();
  }

  /** Publishes an envelope to the exchange of its type, routing key = its type, unless options say otherwise. */
  async publishEnvelope(envelope: Envelope, options: PublishOptions & { exchange?: string; routingKey?: string } = {}): Promise<void> {
    if (!options.raw) {
      try {
        this.validator.check(envelope);
      } catch (err) {
        throw new PermanentError(`refusing to publish an invalid message: ${errorMessage(err)}`);
      }
    }
    const home = this.validator.exchangeOf(envelope.eventType);
    const exchange = options.exchange ?? (home === undefined ? undefined : inNamespace(this.namespace, home));
    if (exchange === undefined) throw new PermanentError(`no exchange known for "${envelope.eventType}"`);
    await this.publish({
      exchange,
      routingKey: options.routingKey ?? envelope.eventType,
      content: Buffer.from(JSON.stringify(envelope)),
      options: {
        messageId: envelope.eventId,
        type: envelope.eventType,
        correlationId: envelope.correlationId,
        timestamp: Math.floor(Date.parse(envelope.occurredAt) / 1000),
        // The aggregate id as a header lets a consistent-hash exchange partition by it.
        headers: { [HEADERS.aggregateId]: envelope.aggregateId, ...options.headers },
        mandatory: options.mandatory,
      },
    });
  }

  /** Publishes bytes as they are; persistent, JSON unless the options say otherwise. */
  async publish(message: RawPublish): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    await this.acquire(deadline);
    try {
      await this.send(message, deadline);
    } finally {
      this.release();
    }
  }

  private send(message: RawPublish, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const channel = this.channel;
      if (!channel) {
        reject(new ChannelClosedError('publisher channel closed'));
        return;
      }
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new PublishTimeoutError(`no confirm within ${this.timeoutMs} ms for ${message.exchange}/${message.routingKey}`));
      }, Math.max(1, deadline - Date.now()));
      try {
        const ok = channel.publish(
          message.exchange,
          message.routingKey,
          message.content,
          { persistent: true, contentType: 'application/json', ...message.options },
          (err: unknown) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            const id = message.options.messageId;
            if (!err && message.options.mandatory && id !== undefined && this.returned.delete(id)) {
              reject(new UnroutableError(`no queue is bound to ${message.exchange} for ${message.routingKey}: the broker dropped it`));
            } else if (!err) resolve();
            else if (errorMessage(err).includes('nack')) reject(new PublishNackedError(`broker nacked ${message.exchange}/${message.routingKey}`));
            else {
              const why = this.lastChannelError ? `: ${this.lastChannelError}` : '';
              reject(new ChannelClosedError(`channel closed before the confirm of ${message.exchange}/${message.routingKey}${why}`));
            }
          },
        );
        if (!ok) this.channelFull = true;
      } catch (err) {
        settled = true;
        clearTimeout(timer);
        reject(new ChannelClosedError(`publish failed: ${errorMessage(err)}`));
      }
    });
  }

  /** messageIds of mandatory messages the broker returned, until their confirm arrives. */
  private readonly returned = new Set<string>();

  /** Why the channel last closed (e.g. "NOT_FOUND - no exchange 'x'"), for error messages. */
  private lastChannelError = '';

  /** Set when the socket's write buffer is full; cleared on 'drain'. */
  private channelFull = false;

  private canSend(): boolean {
    return this.inFlight < this.window && this.channel !== undefined && !this.channelFull && this.connection.ready;
  }

  private acquire(deadline: number): Promise<void> {
    if (this.canSend() && this.waiters.size === 0) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.remove(wake);
        reject(new PublishTimeoutError(`could not publish within ${this.timeoutMs} ms: ${this.channel ? 'too many unconfirmed messages' : 'not connected'}`));
      }, Math.max(1, deadline - Date.now()));
      const wake = (): void => {
        clearTimeout(timer);
        this.inFlight++;
        resolve();
      };
      this.waiters.push(wake);
    });
  }

  private release(): void {
    this.inFlight--;
    this.wakeAll();
  }

  private wakeAll(): void {
    while (this.waiters.size > 0 && this.canSend()) {
      const next = this.waiters.shift()!;
      next();
    }
  }

  /** Messages published and not yet confirmed. */
  get unconfirmed(): number {
    return this.inFlight;
  }
}

/**
 * A FIFO of waiting callers whose shift is O(1): a burst of 50,000 publishes queues 50,000
 * callers, and Array#shift on that many cost more than the publishing (the publish
 * benchmark's figure). A caller that gives up leaves a hole that shift skips.
 */
class WaitQueue {
  private items: Array<(() => void) | undefined> = [];
  private head = 0;
  size = 0;

  push(wake: () => void): void {
    this.items.push(wake);
    this.size++;
  }

  shift(): (() => void) | undefined {
    while (this.head < this.items.length) {
      const wake = this.items[this.head];
      this.items[this.head++] = undefined;
      if (this.head > 1_024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (wake) {
        this.size--;
        return wake;
      }
    }
    return undefined;
  }

  remove(wake: () => void): void {
    const i = this.items.indexOf(wake, this.head);
    if (i >= 0) {
      this.items[i] = undefined;
      this.size--;
    }
  }
}

/**
 * A connection and publisher for a process that only publishes (the relay, the Temporal
 * worker): the core exchanges of its namespace are declared after every (re)connect.
 */
export async function connectPublisher(
  config: { amqpUrl: string; busNamespace: string },
  name: string,
  validator: MessageValidator,
  logger: Logger,
): Promise<{ connection: AmqpConnection; publisher: Publisher }> {
  const connection = new AmqpConnectionClass({ url: config.amqpUrl, name, logger });
  await connection.start();
  await connection.addSetup(async (model) => {
    const channel = await model.createChannel();
    await declareTopology(channel, { exchanges: coreExchanges(config.busNamespace), queues: [] });
    await channel.close();
  });
  const publisher = new Publisher(connection, validator, { namespace: config.busNamespace, logger });
  await publisher.start();
  return { connection, publisher };
}
