// Real workers on a bus namespace of the test's own: its exchanges and queues carry a
// random prefix, so the test shares the broker with nothing. A probe queue collects every
// event the workers emit.
import type { Channel, GetMessage } from 'amqplib';
import { container, type DependencyContainer } from 'tsyringe';
import { getConfig, type Config } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import type { DataOf, Envelope, MessageType } from '../../shared/events';
import { EVENT_EXCHANGES } from '../../shared/events';
import { AmqpConnection } from '../../shared/messaging/connection';
import { newEnvelope, type EnvelopeContext } from '../../shared/messaging/envelope';
import { Publisher } from '../../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace } from '../../shared/messaging/topology';
import { deleteNamespace } from '../../scripts/fleet';
import { startWorker, type RunningWorker, type WorkerDefinition } from '../../shared/messaging/worker';
import { createLogger } from '../../shared/observability/logger';
import { takeAll, validator } from './bus';
import { eventually } from './wait';

export class TestFleet {
  readonly config: Config;
  readonly events: Envelope[] = [];
  private readonly workers: RunningWorker[] = [];
  private probeQueue = '';

  private constructor(
    readonly namespace: string,
    readonly db: Pool,
    readonly connection: AmqpConnection,
    readonly publisher: Publisher,
    private readonly admin: Channel,
  ) {
    this.config = { ...getConfig(), busNamespace: namespace };
  }

  static async create(): Promise<TestFleet> {
    const config = getConfig();
    await migrate(config.databaseUrl);
    const db = createPool(config.databaseUrl, 'test');
    const connection = new AmqpConnection({ url: config.amqpUrl, name: 'test-fleet' });
    await connection.start();
    const admin = await connection.channelModel!.createChannel();
    admin.on('error', () => undefined);
    const namespace = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const publisher = new Publisher(connection, validator, { namespace });
    await publisher.start();
    const fleet = new TestFleet(namespace, db, connection, publisher, admin);
    await fleet.startProbe();
    return fleet;
  }

  /** A queue bound to every event exchange of the namespace, collecting what the workers emit. */
  private async startProbe(): Promise<void> {
    await declareTopology(this.admin, { exchanges: coreExchanges(this.namespace), queues: [] });
    const { queue } = await this.admin.assertQueue('', { exclusive: true, autoDelete: true });
    this.probeQueue = queue;
    for (const exchange of EVENT_EXCHANGES) await this.admin.bindQueue(queue, inNamespace(this.namespace, exchange), '#');
    await this.admin.consume(queue, (msg) => {
      if (!msg) return;
      try {
        this.events.push(JSON.parse(msg.content.toString()) as Envelope);
      } catch {
        // not JSON: a poison message a test sent on purpose
      }
    }, { noAck: true });
  }

  async start(definition: WorkerDefinition, overrides: Partial<Config> = {}, parent: DependencyContainer = container): Promise<RunningWorker> {
    const worker = await startWorker(definition, { ...this.config, ...overrides }, createLogger(definition.name, 'error'), parent);
    this.workers.push(worker);
    return worker;
  }

  /** Publishes a command or event of the catalog into the namespace; returns its envelope. */
  async send<T extends MessageType>(type: T, data: DataOf<T>, ctx: Partial<EnvelopeContext> = {}): Promise<Envelope<DataOf<T>>> {
    const orderId = (data as { orderId?: string }).orderId ?? 'none';
    const envelope = newEnvelope(type, data, { aggregateId: orderId, ...ctx });
    await this.publisher.publishEnvelope(envelope);
    return envelope;
  }

  /** Events emitted so far that were caused by the given message. */
  causedBy(cause: { eventId: string }): Envelope[] {
    return this.events.filter((e) => e.causationId === cause.eventId);
  }

  /** Waits for the first event caused by the given message, and returns it. */
  async resultOf(cause: { eventId: string }, timeoutMs = 20_000): Promise<Envelope> {
    return eventually(() => this.causedBy(cause)[0], { timeoutMs, what: `a result of ${cause.eventId}` });
  }

  /** Takes every message now in a queue of the namespace (acking them). */
  drain(queue: string): Promise<GetMessage[]> {
    return takeAll(this.admin, inNamespace(this.namespace, queue));
  }

  async messageCount(queue: string): Promise<number> {
    return (await this.admin.checkQueue(inNamespace(this.namespace, queue))).messageCount;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.connection.waitUntilConnected(15_000);
    const ch = await this.connection.channelModel!.createChannel();
    ch.on('error', () => undefined);
    await deleteNamespace(ch, this.namespace); // every queue and exchange of the fleet's topologies
    await this.connection.close();
    await this.db.end();
  }
}

/** A unique order id for a test. */
export function orderId(label = 'o'): string {
  return `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
