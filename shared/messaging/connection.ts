// One RabbitMQ connection per process that recovers by itself (amqplib's recovery) and
// re-runs every registered setup hook after each (re)connect: topology, publisher
// channel, consumers. Hooks are how channels come back after the broker closes them.
// Every connect attempt has a deadline: a broker that accepts TCP but never answers would
// otherwise hold the first attempt, and with it the process, for ever. Given the nodes of a
// cluster, each attempt goes to one node, and a failed attempt or a lost connection moves
// the next attempt on to the next node: the connection fails over.
import * as amqp from 'amqplib';
import type { ChannelModel, Options, RecoveringChannelModel } from 'amqplib';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { getConfig, parseAmqpUrls, redact } from '../config';
import { BrokerRefusedError, errorMessage } from '../errors';
import { DependencyWatch } from '../observability/dependency-watch';
import { silentLogger, type Logger } from '../observability/logger';
import { declareTopology, refusalBehind, type Topology } from './topology';

/**
 * How long the setup hooks of one connect (channels, the topology: up to 24 quorum queues for
 * the read model) may take, in ms. A busy broker needs seconds; a minute means it does not answer.
 */
const SETUP_DEADLINE_MS = 60_000;

/** The setup hooks of a connect did not finish in time; the connection is dropped and made again. */
export class AmqpSetupTimeoutError extends Error {
  override name = 'AmqpSetupTimeoutError';
}

/** The connection closed, refusing nothing, while a setup hook ran on it: the hook runs again on the next one. */
class SetupConnectionLostError extends Error {
  override name = 'SetupConnectionLostError';
}

/**
 * Whether a connection's close says it was lost (its socket went, its heartbeat stopped, or the
 * broker closed it as it does for a restart or close_all_connections: 320 CONNECTION_FORCED)
 * rather than closed over a mistake of the client's (an AMQP error code), which no retry cures.
 */
function lostRatherThanRefused(closeError: unknown): boolean {
  const code = (closeError as { code?: unknown } | undefined)?.code;
  return typeof code !== 'number' || code === 320;
}

export type SetupHook = (model: ChannelModel) => Promise<void>;

/**
 * A node as amqplib's connect takes it when given an object rather than a URL string: the
 * same fields its URL parsing would produce. Every key is present (undefined when the URL
 * does not say), so that copying one node over another leaves nothing of the other behind.
 */
type NodeTarget = { [K in 'protocol' | 'hostname' | 'port' | 'username' | 'password' | 'vhost' | 'heartbeat' | 'frameMax' | 'channelMax' | 'locale']-?: Options.Connect[K] | undefined };

/** The fields of a node's URL, decoded as amqplib decodes a URL string. */
export function nodeTarget(url: string, heartbeatSeconds: number): NodeTarget {
  const u = new URL(url);
  const query = (name: string): number | undefined => (u.searchParams.has(name) ? Number(u.searchParams.get(name)) : undefined);
  const decode = (text: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      return text;
    }
  };
  // amqplib defaults to guest/guest only when the URL names neither a user nor a password.
  const credentials = u.username !== '' || u.password !== '';
  return {
    protocol: u.protocol.replace(/:$/, ''),
    hostname: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : undefined,
    username: credentials ? decode(u.username) : undefined,
    password: credentials ? decode(u.password) : undefined,
    // Still escaped: amqplib unescapes the virtual host itself ("%2F" is "/").
    vhost: u.pathname.slice(1) || undefined,
    heartbeat: query('heartbeat') ?? heartbeatSeconds,
    frameMax: query('frameMax'),
    channelMax: query('channelMax'),
    locale: u.searchParams.get('locale') ?? undefined,
  };
}

/**
 * The nodes a connection may use, and the one its next connect attempt goes to. amqplib's
 * recovery reconnects with the arguments of the first connect; given an object, it reads the
 * object's fields at each attempt. So the connection passes one object and copies the next
 * node into it between attempts.
 */
class Nodes {
  /** What amqplib reads at each attempt: a copy of the current node. */
  readonly target: NodeTarget;
  private index = 0;
  private readonly targets: NodeTarget[];

  constructor(
    readonly urls: readonly string[],
    heartbeatSeconds: number,
  ) {
    this.targets = urls.map((url) => nodeTarget(url, heartbeatSeconds));
    this.target = { ...this.targets[0]! };
  }

  /** The node the next attempt goes to (or the open connection is on), password masked. */
  get current(): string {
    return redact(this.urls[this.index]!);
  }

  /** That node did not answer, or dropped the connection: the next attempt tries the next one. */
  moveOn(): void {
    this.index = (this.index + 1) % this.urls.length;
    Object.assign(this.target, this.targets[this.index]);
  }
}

export interface AmqpConnectionOptions {
  /**
   * Broker URL; or the nodes of a cluster, as URLs separated by commas: each connect attempt
   * goes to one of them, in turn, starting with the first.
   */
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
  /**
   * How long a connect attempt may go without an answer (TCP connect and AMQP handshake)
   * before it is abandoned and retried, in ms. Default: AMQP_CONNECT_TIMEOUT_MS
   */
  connectTimeoutMs?: number;
}

export class AmqpConnection extends EventEmitter {
  private model?: RecoveringChannelModel;
  private current?: ChannelModel;
  private readonly hooks: SetupHook[] = [];
  private closing = false;
  private readonly logger: Logger;
  private readyWaiters: Array<() => void> = [];
  private blocked = false;
  private readonly watch: DependencyWatch;
  private readonly nodes: Nodes;
  /** How many connects completed their setup: every hook registered before one ran on it. */
  private connects = 0;

  constructor(private readonly options: AmqpConnectionOptions) {
    super();
    this.logger = options.logger ?? silentLogger;
    this.watch = new DependencyWatch('rabbitmq', this.logger);
    this.nodes = new Nodes(parseAmqpUrls(options.url), options.heartbeatSeconds ?? 10);
  }

  /** The node the connection is on (or tries next), password masked. */
  get node(): string {
    return this.nodes.current;
  }

  /** Connects, waiting (with back-off) until a node answers. */
  async start(): Promise<void> {
    this.watch.down();
    this.model = await amqp.connect(this.nodes.target, {
      // amqplib's socket timeout: it abandons a connect that hears nothing for this long, TCP
      // and handshake alike, and stops it once the connection is open (heartbeats take over).
      // Without it a silent broker holds the attempt for ever and recovery never retries.
      timeout: this.options.connectTimeoutMs ?? getConfig().amqpConnectTimeoutMs,
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
          // A broker that completed the handshake and then answers no call would hang the hooks,
          // and this connect, for ever: dropping the socket fails every call in flight.
          let timedOut: AmqpSetupTimeoutError | undefined;
          const deadline = setTimeout(() => {
            timedOut = new AmqpSetupTimeoutError(`the broker did not answer the setup calls within ${SETUP_DEADLINE_MS} ms`);
            (model.connection as unknown as { stream?: Socket }).stream?.destroy(timedOut);
          }, SETUP_DEADLINE_MS);
          this.current = model;
          try {
            try {
              for (const hook of [...this.hooks]) await this.runHook(model, hook);
            } catch (err) {
              throw timedOut ?? err; // the hook only saw its channel end
            } finally {
              clearTimeout(deadline);
            }
            if (lost) throw new Error(`amqp connection lost during setup: ${errorMessage(lost)}`);
          } catch (err) {
            // A failed setup leaves no live connection behind: not ready, and a hook added
            // meanwhile waits for the next connection instead of running on this dead one.
            if (this.current === model) this.current = undefined;
            throw err;
          }
        },
      },
    });
    this.model.on('connect', (model: ChannelModel) => {
      this.current = model;
      this.connects++;
      this.watch.up();
      this.logger.info({ broker: this.nodes.current }, 'amqp connected');
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w();
      this.emit('connect');
    });
    this.model.on('disconnect', (err: Error) => {
      this.current = undefined;
      if (!this.closing) {
        this.watch.down(err);
        this.logger.warn({ err: errorMessage(err), broker: this.nodes.current }, 'amqp connection lost; recovering');
      }
      // The node that dropped us is the likeliest to be down: the first attempt goes elsewhere.
      this.nodes.moveOn();
      this.emit('disconnect');
    });
    this.model.on('connect-failed', (err: Error) => {
      if (err instanceof BrokerRefusedError) this.emit('setup-refused', err);
      this.watch.down(err);
      this.logger.warn({ err: errorMessage(err), broker: this.nodes.current }, 'amqp connect failed; retrying');
      this.nodes.moveOn();
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
    const connects = this.connects;
    if (this.current) {
      try {
        await this.runHook(this.current, hook);
      } catch (err) {
        // Lost while it ran (a broker restarting as the process starts): it runs again, with
        // every other hook, on the next connection, and it has done its work once that is up.
        // A command-line tool (initialMaxRetries) fails fast instead: it has a person waiting.
        if (!(err instanceof SetupConnectionLostError) || this.options.initialMaxRetries !== undefined) throw err;
        if (this.connects === connects) await this.nextConnect();
      }
    }
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /**
   * Runs a hook. When the broker closes the whole connection over what the hook declared (an
   * unknown exchange type does), the hook only learns "Channel ended": the reason is the
   * error the connection closed with, and a refusal is thrown as the BrokerRefusedError it is.
   */
  private async runHook(model: ChannelModel, hook: SetupHook): Promise<void> {
    let onClose: (err?: unknown) => void = () => undefined;
    let connectionClosed = false;
    let closeError: unknown;
    const closed = new Promise<unknown>((done) => (onClose = done)).then((why) => {
      connectionClosed = true;
      closeError = why;
      return why;
    });
    model.once('close', onClose);
    try {
      await hook(model);
    } catch (err) {
      // The hook fails as soon as its channel goes; the close may come a moment later.
      const refusal = await refusalBehind(err, closed);
      if (refusal) throw refusal;
      if (connectionClosed && lostRatherThanRefused(closeError)) throw new SetupConnectionLostError(`the connection closed while a setup hook ran: ${errorMessage(err)}`, { cause: err });
      throw err;
    } finally {
      model.off('close', onClose);
    }
  }

  /** Declares a topology now and after every reconnect, on a channel of its own. */
  async declareOnEveryConnect(topology: Topology): Promise<void> {
    await this.addSetup(async (model) => {
      const channel = await model.createChannel();
      // A refused declare rejects with the broker's reason; without a listener amqplib would
      // also take the whole connection down over it.
      channel.on('error', () => undefined);
      await declareTopology(channel, topology);
      await channel.close();
    });
  }

  /** Resolves on the next connect, its setup done; rejects if the connection is closed first. */
  private nextConnect(): Promise<void> {
    const closedFirst = (): Error => new Error('the amqp connection was closed before it connected again');
    if (this.closing) return Promise.reject(closedFirst());
    return new Promise((resolve, reject) => {
      const settle = (err?: Error): void => {
        this.off('connect', onConnect).off('closed', onClosed).off('setup-refused', onRefused);
        if (err) reject(err);
        else resolve();
      };
      const onConnect = (): void => settle();
      const onClosed = (): void => settle(closedFirst());
      // The broker refused what a hook declares on the new connection: no retry will cure it.
      const onRefused = (err: Error): void => settle(err);
      this.on('connect', onConnect).on('closed', onClosed).on('setup-refused', onRefused);
    });
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
    this.emit('closed');
    this.watch.close();
    try {
      await this.model?.close();
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'amqp close');
    }
  }
}
