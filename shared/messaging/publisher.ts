// Publishes with publisher confirms through one confirm channel per connection.
// At most `window` messages are unconfirmed at once, counting those whose caller gave up
// waiting; further callers wait for a slot (backpressure, no unbounded buffer). publish()
// resolves on the broker's ack and rejects on a nack, a return (mandatory), a closed
// channel or the deadline. Each publish is counted by its outcome (messages_published_total),
// and each confirm's latency measured (publish_confirm_seconds). An envelope of a type held
// back (PUBLISH_HOLD_BACK) goes on the wire as that older version; the caller's envelope (the
// event store's, a dedup outcome) stays as it was built, at the latest.
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Counter, Histogram } from 'prom-client';
import type { HoldBack } from '../config';
import { ChannelClosedError, errorMessage, PermanentError, PublishNackedError, PublishTimeoutError, UnroutableError, UnserializableError } from '../errors';
import type { Envelope } from '../events';
import { silentLogger, type Logger } from '../observability/logger';
import { processRegistry } from '../observability/metrics';
import { AmqpConnection as AmqpConnectionClass, type AmqpConnection } from './connection';
import { HEADERS, stringHeader } from './headers';
import { coreTopology, inNamespace } from './topology';
import type { MessageValidator } from './validator';

const published = new Counter<'exchange' | 'outcome'>({
  name: 'messages_published_total',
  help: 'Publishes by exchange ("(default)": the default exchange, which carries retries and dead letters) and outcome: confirmed, nacked, unroutable (returned: no queue took it), timed_out (no slot or no confirm in time), channel_closed, unserializable (its body could not be made)',
  labelNames: ['exchange', 'outcome'],
  registers: [processRegistry],
});

const confirmSeconds = new Histogram<'exchange'>({
  name: 'publish_confirm_seconds',
  help: "Time from sending a message to the broker's confirm (ack), by exchange",
  labelNames: ['exchange'],
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [processRegistry],
});

/** The exchange label of a publish. */
const exchangeLabel = (exchange: string): string => exchange || '(default)';

/** The outcome label of a publish that failed: acquire() and send() reject with nothing else than these errors. */
function failedOutcome(err: unknown): string {
  if (err instanceof UnserializableError) return 'unserializable';
  if (err instanceof PublishNackedError) return 'nacked';
  if (err instanceof UnroutableError) return 'unroutable';
  if (err instanceof PublishTimeoutError) return 'timed_out';
  return 'channel_closed'; // ChannelClosedError
}

export interface PublisherOptions {
  /** Most messages unconfirmed at once. Default 256 */
  window?: number;
  /** How long publish() waits in all (for a slot, a connection and the confirm), in ms. Default 10000 */
  timeoutMs?: number;
  /** Bus namespace prefixed to the catalog's exchange names (BUS_NAMESPACE). Default "" */
  namespace?: string;
  /**
   * The older schema version to publish each held-back type as (PUBLISH_HOLD_BACK), e.g.
   * { 'order.placed': 1 }: until every consumer of the type reads the newer one. Default none
   */
  holdBack?: HoldBack;
  logger?: Logger;
}

export interface PublishOptions {
  headers?: Record<string, unknown>;
  /** Skip the schema check and any hold-back: the bytes as given (the publish script's --raw). Default false */
  raw?: boolean;
  /** Reject with UnroutableError when no queue receives the message. Default false */
  mandatory?: boolean;
}

export interface RawPublish {
  exchange: string;
  routingKey: string;
  /**
   * The body, or how to make it once a slot in the window is free: a burst of publishes then
   * does not serialise every message before the first is sent (the publish benchmark's figure).
   */
  content: Buffer | (() => Buffer);
  options: Options.Publish;
}

interface ChannelState {
  closed: boolean;
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
  private readonly holdBack: HoldBack;
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
    this.holdBack = options.holdBack ?? {};
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
    const state: ChannelState = { closed: false };
    // Before amqplib fails every unconfirmed callback on close: a callback's error is then
    // known to be the close. The only other error a confirm callback gets is a nack.
    channel.prependListener('close', () => void (state.closed = true));
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
    channel.on('return', (msg: { properties: { headers?: Record<string, unknown> } }) => {
      const id = stringHeader(msg.properties.headers, HEADERS.publishId);
      if (id !== undefined) this.returned.add(id);
    });
    channel.on('drain', () => {
      this.channelFull = false;
      this.wakeAll();
    });
    this.channel = channel;
    this.channelState = state;
    this.channelFull = false;
    this.wakeAll();
  }

  /**
   * Publishes an envelope to the exchange of its type, routing key = its type, unless options
   * say otherwise; a held-back type as its older version (DowncastError, before anything is
   * sent, when that version cannot carry the data).
   */
  async publishEnvelope(given: Envelope, options: PublishOptions & { exchange?: string; routingKey?: string } = {}): Promise<void> {
    let envelope = given;
    if (!options.raw) {
      try {
        this.validator.check(envelope);
      } catch (err) {
        throw new PermanentError(`refusing to publish an invalid message: ${errorMessage(err)}`);
      }
      const heldAt = Object.prototype.hasOwnProperty.call(this.holdBack, envelope.eventType) ? this.holdBack[envelope.eventType] : undefined;
      if (heldAt !== undefined) envelope = this.validator.downcast(envelope, heldAt);
    }
    const home = this.validator.exchangeOf(envelope.eventType);
    const exchange = options.exchange ?? (home === undefined ? undefined : inNamespace(this.namespace, home));
    if (exchange === undefined) throw new PermanentError(`no exchange known for "${envelope.eventType}"`);
    await this.publish({
      exchange,
      routingKey: options.routingKey ?? envelope.eventType,
      content: () => Buffer.from(JSON.stringify(envelope)),
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
    try {
      await this.acquire(deadline);
      await this.send(message, deadline);
    } catch (err) {
      published.inc({ exchange: exchangeLabel(message.exchange), outcome: failedOutcome(err) });
      throw err;
    }
    published.inc({ exchange: exchangeLabel(message.exchange), outcome: 'confirmed' });
  }

  /**
   * Sends one message in an acquired slot. The slot is given back only when the broker
   * answers or the channel closes: a caller that stopped waiting (a timeout) leaves its
   * message unconfirmed, and it still counts against the window.
   */
  private send(message: RawPublish, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const channel = this.channel;
      const state = this.channelState;
      if (!channel) {
        this.release();
        reject(new ChannelClosedError('publisher channel closed'));
        return;
      }
      let content: Buffer;
      try {
        content = typeof message.content === 'function' ? message.content() : message.content;
      } catch (err) {
        this.release();
        reject(new UnserializableError(`cannot serialise the message for ${message.exchange}/${message.routingKey}: ${errorMessage(err)}`));
        return;
      }
      let answered = false;
      const answer = (err?: Error): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => answer(new PublishTimeoutError(`no confirm within ${this.timeoutMs} ms for ${message.exchange}/${message.routingKey}`)),
        Math.max(1, deadline - Date.now()),
      );
      // A mandatory message carries an id of its own, so that a return names the publish it
      // answers (a messageId may be missing or shared by copies of one message).
      const publishId = message.options.mandatory ? randomUUID() : undefined;
      const options: Options.Publish = { persistent: true, contentType: 'application/json', ...message.options };
      if (publishId !== undefined) options.headers = { ...(message.options.headers as Record<string, unknown> | undefined), [HEADERS.publishId]: publishId };
      const sentAt = performance.now();
      try {
        const ok = channel.publish(message.exchange, message.routingKey, content, options, (err: unknown) => {
          this.release();
          if (!err) confirmSeconds.observe({ exchange: exchangeLabel(message.exchange) }, (performance.now() - sentAt) / 1000);
          const returned = publishId !== undefined && this.returned.delete(publishId);
          const where = `${message.exchange || '(default exchange)'}/${message.routingKey}`;
          if (!err) answer(returned ? new UnroutableError(`no queue is bound to ${where}: the broker dropped it`) : undefined);
          else if (state.closed) {
            const why = this.lastChannelError ? `: ${this.lastChannelError}` : '';
            answer(new ChannelClosedError(`channel closed before the confirm of ${where}${why}`));
          } else answer(new PublishNackedError(`broker nacked ${where}`));
        });
        if (!ok) this.channelFull = true;
      } catch (err) {
        this.release();
        answer(new ChannelClosedError(`publish failed: ${errorMessage(err)}`));
      }
    });
  }

  /** Publish ids of mandatory messages the broker returned, until their confirm arrives. */
  private readonly returned = new Set<string>();

  /** Whether the current channel has closed; see openChannel. */
  private channelState: ChannelState = { closed: true };

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
 * worker): the core exchanges of its namespace, and the archive, are declared after every
 * (re)connect.
 */
export async function connectPublisher(
  config: { amqpUrl: string; busNamespace: string; publishHoldBack?: HoldBack },
  name: string,
  validator: MessageValidator,
  logger: Logger,
): Promise<{ connection: AmqpConnection; publisher: Publisher }> {
  const connection = new AmqpConnectionClass({ url: config.amqpUrl, name, logger });
  await connection.start();
  await connection.declareOnEveryConnect(coreTopology(config.busNamespace));
  const publisher = new Publisher(connection, validator, { namespace: config.busNamespace, holdBack: config.publishHoldBack, logger });
  await publisher.start();
  return { connection, publisher };
}
