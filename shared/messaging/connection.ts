// One RabbitMQ connection per process that recovers by itself (amqplib's recovery) and
// re-runs every registered setup hook after each (re)connect: topology, publisher
// channel, consumers. Hooks are how channels come back after the broker closes them.
import * as amqp from 'amqplib';
import type { ChannelModel, RecoveringChannelModel } from 'amqplib';
import { EventEmitter } from 'node:events';
import { redact } from '../config';
import { errorMessage } from '../errors';
import { silentLogger, type Logger } from '../observability/logger';

export type SetupHook = (model: ChannelModel) => Promise<void>;

export interface AmqpConnectionOptions {
  /** Broker URL. */
  url: string;
  /** Shown in the management UI's connection list. Default "order-fulfillment" */
  name?: string;
  logger?: Logger;
  /** First reconnect delay in ms; doubles up to maxDelayMs. Default 100 */
  initialDelayMs?: number;
  /** Longest reconnect delay in ms. Default 5000 */
  maxDelayMs?: number;
  /** AMQP heartbeat in seconds. Default 10 */
  heartbeatSeconds?: number;
  /** Give up the first connect after this many retries (command-line tools). Default: never */
  initialMaxRetries?: number;
}

export class AmqpConnection extends EventEmitter {
  private model?: RecoveringChannelModel;
  private current?: ChannelModel;
  private readonly hooks: SetupHook[] = [];
  private closing = false;
  private readonly logger: Logger;
  private readyWaiters: Array<() => void> = [];
  private blocked = false;

  constructor(private readonly options: AmqpConnectionOptions) {
    super();
    this.logger = options.logger ?? silentLogger;
  }

  /** Connects, waiting (with back-off) until the broker answers. */
  async start(): Promise<void> {
    const url = new URL(this.options.url);
    if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(this.options.heartbeatSeconds ?? 10));
    this.model = await amqp.connect(url.toString(), {
      clientProperties: { connection_name: this.options.name ?? 'order-fulfillment' },
      recovery: {
        initialDelay: this.options.initialDelayMs ?? 100,
        maxDelay: this.options.maxDelayMs ?? 5000,
        waitForConnect: false,
        ...(this.options.initialMaxRetries === undefined ? {} : { initialMaxRetries: this.options.initialMaxRetries }),
        setup: async (model: ChannelModel) => {
          // amqplib watches a new connection only once setup is done. A socket reset while the
          // hooks run would be an unhandled 'error' event that kills the process (seen in a
          // chaos run), and a close then unseen would leave recovery holding a dead connection.
          let lost: Error | undefined;
          const onLost = (err?: Error): void => void (lost ??= err ?? new Error('connection closed'));
          model.on('error', onLost);
          model.once('close', onLost);
          this.current = model;
          for (const hook of [...this.hooks]) await hook(model);
          if (lost) throw new Error(`amqp connection lost during setup: ${errorMessage(lost)}`);
        },
      },
    });
    this.model.on('connect', (model: ChannelModel) => {
      this.current = model;
      this.logger.info({ broker: redact(this.options.url) }, 'amqp connected');
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w();
      this.emit('connect');
    });
    this.model.on('disconnect', (err: Error) => {
      this.current = undefined;
      if (!this.closing) this.logger.warn({ err: errorMessage(err) }, 'amqp connection lost; recovering');
      this.emit('disconnect');
    });
    this.model.on('connect-failed', (err: Error) => {
      this.logger.warn({ err: errorMessage(err), broker: redact(this.options.url) }, 'amqp connect failed; retrying');
    });
    this.model.on('blocked', (reason: string) => {
      this.blocked = true;
      this.logger.warn({ reason }, 'amqp connection blocked by the broker');
    });
    this.model.on('unblocked', () => {
      this.blocked = false;
      this.logger.info('amqp connection unblocked');
      this.emit('unblocked');
    });
    this.model.on('error', (err: Error) => this.logger.warn({ err: errorMessage(err) }, 'amqp connection error'));
    await this.model.waitForConnect();
  }

  /** True while a connection is open and not blocked by a resource alarm. */
  get ready(): boolean {
    return this.current !== undefined && !this.blocked;
  }

  /** The live connection, if any. */
  get channelModel(): ChannelModel | undefined {
    return this.current;
  }

  /**
   * Registers a hook that runs after every (re)connect; it also runs now if connected.
   * Returns a function that unregisters it.
   */
  async addSetup(hook: SetupHook): Promise<() => void> {
    this.hooks.push(hook);
    if (this.current) await hook(this.current);
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /** Resolves when connected, or rejects after timeoutMs. */
  waitUntilConnected(timeoutMs: number): Promise<void> {
    if (this.current) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        reject(new Error(`not connected to RabbitMQ after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.readyWaiters.push(done);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.model?.close();
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'amqp close');
    }
  }
}
