// Real workers on a bus namespace of the test's own: its exchanges and queues carry a
// random prefix, so the test shares the broker with nothing. A probe queue collects every
// event the workers emit.
import type { Channel, GetMessage } from 'amqplib';
import { container, type DependencyContainer } from 'tsyringe';
import { getConfig, type Config } from '../../shared/config';
import { createPool, withTransaction, type Pool } from '../../shared/db';
import { appendToStream } from '../../shared/event-store';
import { migrate } from '../../shared/db/migrate';
import type { DataOf, Envelope, MessageType } from '../../shared/events';
import { EVENT_EXCHANGES } from '../../shared/events';
import { AmqpConnection } from '../../shared/messaging/connection';
import { newEnvelope, type EnvelopeContext } from '../../shared/messaging/new-envelope';
import { Publisher } from '../../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace } from '../../shared/messaging/topology';
import { databaseBeside, deleteNamespace } from '../../scripts/fleet';
import { startWorker, type RunningWorker, type WorkerDefinition, type WorkerOptions } from '../../shared/runtime/worker';
import { createLogger } from '../../shared/observability/logger';
import type { OrderDetails } from '../../shared/saga';
import { takeAll, validator } from './bus';
import { eventually } from './wait';
import { generatedNamespace } from '../../scripts/bus';

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
    databaseUrl: string,
  ) {
    // No scheduled reconciler: it would start sagas for every accepted order other tests
    // left in the shared database, on this test's Temporal server.
    this.config = { ...getConfig(), busNamespace: namespace, databaseUrl, reconcileIntervalMs: 0 };
  }

  /** @param options.databaseUrl a database of the test's own (created and migrated here; the test drops it) */
  static async create(options: { databaseUrl?: string } = {}): Promise<TestFleet> {
    const config = getConfig();
    const databaseUrl = options.databaseUrl ?? config.databaseUrl;
    await migrate(databaseUrl);
    const db = createPool(databaseUrl, 'test');
    const connection = new AmqpConnection({ url: config.amqpUrl, name: 'test-fleet' });
    await connection.start();
    const admin = await connection.channelModel!.createChannel();
    admin.on('error', () => undefined);
    const namespace = generatedNamespace('test-fleet');
    const publisher = new Publisher(connection, validator, { namespace });
    await publisher.start();
    const fleet = new TestFleet(namespace, db, connection, publisher, admin, databaseUrl);
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

  /** Starts a worker in the namespace; options.catalog runs it as a release with that catalog would. */
  async start(definition: WorkerDefinition, overrides: Partial<Config> = {}, parent: DependencyContainer = container, options: WorkerOptions = {}): Promise<RunningWorker> {
    const worker = await startWorker(definition, { ...this.config, ...overrides }, createLogger(definition.name, 'error'), parent, options);
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
    await leftBehind(await deleteNamespace(this.connection.channelModel!, this.namespace)); // every queue and exchange of the fleet's topologies
    await this.connection.close();
    await this.db.end();
  }

  /** An order in the order store alone, as if order.placed were never published; returns its id. */
  async storeOrder(order: Partial<SagaOrder> = {}, label = 'o'): Promise<string> {
    const id = orderId(label);
    await storeUnpublishedOrder(this.db, id, { ...SAGA_ORDER, ...order });
    return id;
  }

  /** What order-api and the relay do: the order in the store, then its order.placed published (the saga starter starts its saga). */
  async placeOrder(order: Partial<SagaOrder> = {}, label = 'o'): Promise<string> {
    const id = orderId(label);
    await this.publisher.publishEnvelope(await storeUnpublishedOrder(this.db, id, { ...SAGA_ORDER, ...order }));
    return id;
  }
}

/**
 * An order in the order store (its row and order.placed, the first event of its stream) that
 * no relay will publish: its event is marked sent in the same transaction. Returns that event.
 */
export async function storeUnpublishedOrder(db: Pool, id: string, o: SagaOrder): Promise<Envelope> {
  return withTransaction(db, async (tx) => {
    await tx.query(
      `INSERT INTO orders.orders (order_id, customer_id, items, total_amount, currency, shipping_address, payment_token) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [id, o.customerId, JSON.stringify(o.items), o.totalAmount, o.currency, JSON.stringify(o.shippingAddress), o.paymentToken],
    );
    const placed = newEnvelope(
      'order.placed',
      { orderId: id, customerId: o.customerId, items: o.items, totalAmount: o.totalAmount, currency: o.currency, shippingAddress: o.shippingAddress },
      { aggregateId: id, correlationId: id },
    );
    const [stored] = await appendToStream(tx, id, 0, [placed]);
    await tx.query('UPDATE orders.events SET sent_at = now() WHERE stream_id = $1', [id]);
    return stored!;
  });
}

/** An order as the saga reads it from the store, without its id. */
export type SagaOrder = Omit<OrderDetails, 'orderId'>;

/** The order the saga tests place unless they say otherwise. */
export const SAGA_ORDER: SagaOrder = {
  customerId: 'c-7',
  items: [{ sku: 'PROD-003', quantity: 2, unitPrice: 9.5 }],
  totalAmount: 19,
  currency: 'EUR',
  shippingAddress: { city: 'Berlin', country: 'DE' },
  paymentToken: 'tok_ok',
};

/** A unique order id for a test. */
export function orderId(label = 'o'): string {
  return `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Deletes every queue and exchange a fleet of `npm start` declared in the bus namespace, on a connection of its own. */
export async function deleteFleetNamespace(namespace: string, connectionName: string): Promise<void> {
  const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: connectionName });
  await connection.start();
  try {
    await leftBehind(await deleteNamespace(connection.channelModel!, namespace));
  } finally {
    await connection.close();
  }
}

/** The URL of a database of a test's own, beside the configured one: <purpose>_<time><random> (dropDatabase drops it). */
export function testDatabaseUrl(purpose: string): string {
  return databaseBeside(getConfig().databaseUrl, `${purpose}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
}

/** Drops the database a URL names (one a test made beside the configured one), connected to "postgres". */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = createPool(url.toString(), 'test-drop-database', 1);
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name.replace(/"/g, '""')}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** A test's clean-up that could not delete part of its bus namespace fails, naming what it left. */
async function leftBehind(failed: string[]): Promise<void> {
  if (failed.length > 0) throw new Error(`could not delete from the broker: ${failed.join(', ')}`);
}
