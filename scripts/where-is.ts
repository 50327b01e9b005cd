// npm run where-is -- <orderId> [--json]
// One screen that says where an order is and why (docs/operations.md#where-is-an-order): its
// events and whether each left the outbox, its row, its read models, its saga in Temporal
// (status, step, the pending activity with its attempts and last failure), what the workers
// recorded for it, and any dead-lettered message about it, under a one-line verdict
// (verdict() in where-is-facts.ts). It only reads: the DLQs are peeked as `npm run dlq --
// list` does, taking messages unacked and closing the channel, which puts them back.
// Exits 0 when the order is found, 1 when it is unknown or PostgreSQL cannot be read, 2 on
// bad input. Temporal or RabbitMQ unreachable is said in their sections, not an error.
import type { ChannelModel, GetMessage } from 'amqplib';
import { parseArgs } from 'node:util';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { getConfig, redact, type Config } from '../shared/config';
import { createPool, query, type Pool } from '../shared/db';
import { errorMessage } from '../shared/errors';
import type { RecordedEvent } from '../shared/event-store';
import type { Envelope } from '../shared/events';
import { upcast } from '../shared/events/upcast';
import { AmqpConnection } from '../shared/messaging/connection';
import { HEADERS, stringHeader } from '../shared/messaging/headers';
import { foldOrder, type OrderStatus } from '../shared/orders/order';
import { SAGA, workflowIdOf, type SagaStatus } from '../shared/saga';
import { connectTemporal } from '../shared/temporal/client';
import { OrderIdParams } from '../services/order-api/schemas';
import { describeDeadLetter } from './amqp-tool';
import { runCli, UsageError } from './cli';
import {
  fleetDlqs,
  queuesToCheck,
  render,
  verdict,
  type BrokerFacts,
  type DeadLetterFact,
  type PendingActivityFact,
  type QueueFact,
  type ReadModelFacts,
  type StoreFacts,
  type WhereIsFacts,
  type WorkerFacts,
  type WorkflowFacts,
} from './where-is-facts';

const USAGE = 'usage: npm run where-is -- <orderId> [--json]';
/** What the API takes as an order id in its URLs. */
const ORDER_ID = new RegExp(OrderIdParams.properties.orderId.pattern ?? '^[A-Za-z0-9_-]{1,64}$');
/** Most messages looked at per DLQ: each is held unacked until the DLQ's channel closes. */
const PEEK_LIMIT = 1_000;
/** How long each call to Temporal may take. */
const TEMPORAL_CALL_MS = 5_000;
/** How long the status query may take: it needs a Temporal worker to answer. */
const QUERY_MS = 3_000;

function parse(argv: string[]): { orderId: string; json: boolean } | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(`${errorMessage(err)}\n${USAGE}`);
  }
  if (parsed.values.help) return 'help';
  const [orderId, ...rest] = parsed.positionals;
  if (orderId === undefined) throw new UsageError(`which order? give its id\n${USAGE}`);
  if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}\n${USAGE}`);
  if (!ORDER_ID.test(orderId)) {
    const shown = JSON.stringify(orderId.length > 80 ? `${orderId.slice(0, 80)}…` : orderId);
    throw new UsageError(`${shown} is not an order id: 1 to 64 letters, digits, _ or - (e.g. ord_01JD6Y0K3W6W4M5V9X2Q8H7R1B)\n${USAGE}`);
  }
  return { orderId, json: parsed.values.json };
}

const iso = (d: Date | null | undefined): string | undefined => (d ? d.toISOString() : undefined);

// ---- PostgreSQL: the order store, the read models, the workers' tables ----

async function storeFacts(db: Pool, orderId: string): Promise<StoreFacts> {
  const rows = await query<{ version: number; event_id: string; event_type: string; occurred_at: Date; sent_at: Date | null; envelope: Envelope }>(
    db,
    'SELECT version, event_id, event_type, occurred_at, sent_at, envelope FROM orders.events WHERE stream_id = $1 ORDER BY version',
    [orderId],
  );
  const [row] = await query<{ status: OrderStatus; cancellation_reason: string | null; version: number; created_at: Date }>(
    db,
    'SELECT status, cancellation_reason, version, created_at FROM orders.orders WHERE order_id = $1',
    [orderId],
  );
  const recorded: RecordedEvent[] = rows.map((r) => ({ position: '', streamId: orderId, version: r.version, envelope: upcast(r.envelope) }));
  const order = foldOrder(recorded);
  return {
    events: rows.map((r) => ({ version: r.version, type: r.event_type, eventId: r.event_id, occurredAt: r.occurred_at.toISOString(), sentAt: iso(r.sent_at) ?? null })),
    ...(order
      ? {
          folded: {
            status: order.status,
            ...(order.cancellationReason ? { cancellationReason: order.cancellationReason } : {}),
            ...(order.failedStep ? { failedStep: order.failedStep } : {}),
            cancellationRequested: order.cancellationRequested,
            placedAt: order.placedAt,
          },
        }
      : {}),
    ...(row ? { row: { status: row.status, cancellationReason: row.cancellation_reason, version: row.version, createdAt: row.created_at.toISOString() } } : {}),
  };
}

async function readModelFacts(db: Pool, orderId: string): Promise<ReadModelFacts> {
  const [[orders], [pending], [customerOrders]] = await Promise.all([
    query<{ status: string; version: number; history_length: number; updated_at: Date }>(
      db,
      'SELECT status, version, jsonb_array_length(history) AS history_length, updated_at FROM read_model.orders WHERE order_id = $1',
      [orderId],
    ),
    query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM read_model.pending_events WHERE order_id = $1', [orderId]),
    query<{ status: string; version: number }>(db, 'SELECT status, version FROM read_model.customer_orders WHERE order_id = $1', [orderId]),
  ]);
  return {
    ...(orders ? { orders: { status: orders.status, version: orders.version, historyLength: orders.history_length, updatedAt: orders.updated_at.toISOString() } } : {}),
    pendingEvents: pending?.n ?? 0,
    ...(customerOrders ? { customerOrders: { status: customerOrders.status, version: customerOrders.version } } : {}),
  };
}

async function workerFacts(db: Pool, orderId: string): Promise<WorkerFacts> {
  const one = async <R extends object>(sql: string): Promise<R | undefined> => (await query<R & Record<string, unknown>>(db, sql, [orderId]))[0];
  const voided = async (schema: string): Promise<string | undefined> => iso((await one<{ voided_at: Date }>(`SELECT voided_at FROM ${schema}.voids WHERE order_id = $1`))?.voided_at);
  const [capture, refund, decline, calls, paymentVoid, reservation, inventoryVoid, shipment, shippingVoid, notifications] = await Promise.all([
    one<{ payment_id: string; amount: string; currency: string; captured_at: Date }>('SELECT payment_id, amount::text AS amount, currency, captured_at FROM payments.captures WHERE order_id = $1'),
    one<{ amount: string; refunded_at: Date }>('SELECT amount::text AS amount, refunded_at FROM payments.refunds WHERE order_id = $1'),
    one<{ reason: string; declined_at: Date }>('SELECT reason, declined_at FROM payments.declines WHERE order_id = $1'),
    one<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = $1'),
    voided('payments'),
    one<{ items: Array<{ sku: string; quantity: number }>; reserved_at: Date; released_at: Date | null }>('SELECT items, reserved_at, released_at FROM inventory.reservations WHERE order_id = $1'),
    voided('inventory'),
    one<{ shipment_id: string; carrier: string; country: string; city: string; status: string; scheduled_at: Date; cancelled_at: Date | null }>(
      'SELECT shipment_id, carrier, country, city, status, scheduled_at, cancelled_at FROM shipping.shipments WHERE order_id = $1',
    ),
    voided('shipping'),
    query<{ kind: string; created_at: Date }>(db, 'SELECT kind, created_at FROM notifications.notifications WHERE order_id = $1 ORDER BY created_at, kind', [orderId]),
  ]);
  return {
    payments: {
      ...(capture ? { capture: { paymentId: capture.payment_id, amount: capture.amount, currency: capture.currency, capturedAt: capture.captured_at.toISOString() } } : {}),
      ...(refund ? { refund: { amount: refund.amount, refundedAt: refund.refunded_at.toISOString() } } : {}),
      ...(decline ? { decline: { reason: decline.reason, declinedAt: decline.declined_at.toISOString() } } : {}),
      ...(calls ? { providerCalls: calls.calls } : {}),
      ...(paymentVoid ? { voidedAt: paymentVoid } : {}),
    },
    inventory: {
      ...(reservation ? { reservation: { items: reservation.items, reservedAt: reservation.reserved_at.toISOString(), releasedAt: iso(reservation.released_at) ?? null } } : {}),
      ...(inventoryVoid ? { voidedAt: inventoryVoid } : {}),
    },
    shipping: {
      ...(shipment
        ? {
            shipment: {
              shipmentId: shipment.shipment_id,
              carrier: shipment.carrier,
              country: shipment.country,
              city: shipment.city,
              status: shipment.status,
              scheduledAt: shipment.scheduled_at.toISOString(),
              cancelledAt: iso(shipment.cancelled_at) ?? null,
            },
          }
        : {}),
      ...(shippingVoid ? { voidedAt: shippingVoid } : {}),
    },
    notifications: notifications.map((n) => ({ kind: n.kind, createdAt: n.created_at.toISOString() })),
  };
}

// ---- Temporal: the saga's run ----

/** A protobuf Timestamp (seconds as a Long) as ISO 8601. */
type Timestamp = { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined;
function tsIso(ts: Timestamp): string | undefined {
  if (!ts?.seconds) return undefined;
  const seconds = typeof ts.seconds === 'number' ? ts.seconds : ts.seconds.toNumber();
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

interface Failure {
  message?: string | null;
  applicationFailureInfo?: { type?: string | null } | null;
  cause?: Failure | null;
}
function failureText(f: Failure | null | undefined): string | undefined {
  if (!f) return undefined;
  const type = f.applicationFailureInfo?.type;
  const text = `${type ? `${type}: ` : ''}${f.message ?? ''}${f.cause?.message ? ` (cause: ${f.cause.message})` : ''}`;
  return text || undefined;
}

const ACTIVITY_STATES: Record<number, PendingActivityFact['state']> = { 1: 'scheduled', 2: 'started', 3: 'cancel_requested', 4: 'paused', 5: 'pause_requested' };

function pendingOf(d: WorkflowExecutionDescription): Pick<Extract<WorkflowFacts, { state: 'found' }>, 'pendingActivities' | 'pendingWorkflowTask'> {
  const pendingActivities = (d.raw.pendingActivities ?? []).map(
    (p): PendingActivityFact => ({
      activityId: p.activityId ?? '',
      activity: p.activityType?.name ?? '(unknown)',
      state: ACTIVITY_STATES[Number(p.state)] ?? 'unknown',
      attempt: p.attempt ?? 0,
      maximumAttempts: p.maximumAttempts ?? 0,
      scheduledTime: tsIso(p.scheduledTime),
      lastStartedTime: tsIso(p.lastStartedTime),
      lastAttemptCompleteTime: tsIso(p.lastAttemptCompleteTime),
      nextAttemptScheduleTime: tsIso(p.nextAttemptScheduleTime),
      lastFailure: failureText(p.lastFailure),
    }),
  );
  const task = d.raw.pendingWorkflowTask;
  const taskState = Number(task?.state);
  return {
    pendingActivities,
    ...(task ? { pendingWorkflowTask: { state: taskState === 1 ? 'scheduled' : taskState === 2 ? 'started' : 'unknown', scheduledTime: tsIso(task.scheduledTime), attempt: task.attempt ?? 0 } } : {}),
  };
}

/** The gRPC code of a Temporal client error, if it has one. */
const grpcCode = (err: unknown): number | undefined => {
  const code = (err as { code?: unknown; cause?: { code?: unknown } })?.code ?? (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === 'number' ? code : undefined;
};

async function workflowFacts(config: Config, orderId: string): Promise<WorkflowFacts> {
  const workflowId = workflowIdOf(orderId);
  const address = config.temporalAddress;
  let client: Client;
  try {
    client = await connectTemporal(config);
  } catch (err) {
    return { state: 'unavailable', address, error: errorMessage(err) };
  }
  const within = <T>(ms: number, fn: () => Promise<T>): Promise<T> => client.connection.withDeadline(Date.now() + ms, fn);
  try {
    let d: WorkflowExecutionDescription;
    try {
      d = await within(TEMPORAL_CALL_MS, () => client.workflow.getHandle(workflowId).describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { state: 'none', workflowId };
      return { state: 'unavailable', address, error: errorMessage(err) };
    }
    const handle = client.workflow.getHandle(workflowId, d.runId);
    let saga: SagaStatus | undefined;
    let sagaError: string | undefined;
    try {
      if (d.status.name === 'RUNNING') saga = await within(QUERY_MS, () => handle.query<SagaStatus>(SAGA.statusQuery));
      else if (d.status.name === 'COMPLETED') saga = (await within(TEMPORAL_CALL_MS, () => handle.result())) as SagaStatus;
    } catch (err) {
      // DEADLINE_EXCEEDED: a query is answered by a Temporal worker, and none did.
      sagaError = grpcCode(err) === 4 ? `the ${SAGA.statusQuery} query got no answer within ${QUERY_MS / 1000} s (is the temporal-worker running?)` : errorMessage(err);
    }
    return {
      state: 'found',
      workflowId,
      runId: d.runId,
      status: d.status.name,
      taskQueue: d.taskQueue,
      startTime: d.startTime.toISOString(),
      ...(d.closeTime ? { closeTime: d.closeTime.toISOString() } : {}),
      historyLength: d.historyLength,
      ...(saga ? { saga } : {}),
      ...(sagaError ? { sagaError } : {}),
      ...pendingOf(d),
    };
  } finally {
    await client.connection.close().catch(() => undefined);
  }
}

// ---- RabbitMQ: the DLQs and the queues the pending step waits on ----

/** A queue that is not there (404 NOT_FOUND closes the channel); any other error is the broker's. */
const notFound = (err: unknown): boolean => (err as { code?: unknown })?.code === 404;

/** Where the order's id is in a message, if anywhere: its header, its envelope, or (poison) its raw body. */
function concerns(m: GetMessage, orderId: string): string | undefined {
  if (stringHeader(m.properties.headers, HEADERS.aggregateId) === orderId) return HEADERS.aggregateId;
  const text = m.content.toString('utf8');
  try {
    const body = JSON.parse(text) as { aggregateId?: unknown; data?: { orderId?: unknown } | null } | null;
    if (body?.aggregateId === orderId) return 'aggregateId';
    if (typeof body?.data === 'object' && body.data?.orderId === orderId) return 'data.orderId';
  } catch {
    // not JSON: a poison message; look for the id as a JSON string in its bytes
  }
  return text.includes(JSON.stringify(orderId)) ? 'body' : undefined;
}

/** A dead letter about the order, described as `npm run dlq -- list` describes it. */
function deadLetterOf(m: GetMessage, queue: string, dlq: string, matchedBy: string): DeadLetterFact {
  const { messageId, type, reason, attempts, deadLetteredAt } = describeDeadLetter(m);
  return { queue, dlq, messageId, type, reason, attempts, deadLetteredAt, matchedBy };
}

/**
 * Looks into every DLQ of the fleet's topologies for messages about the order. Each DLQ's
 * messages are taken unacked on a channel of its own, which is then closed: the broker puts
 * them all back, and nothing is removed.
 */
async function peekDeadLetters(model: ChannelModel, orderId: string, namespace: string): Promise<Omit<Extract<BrokerFacts, { reachable: true }>, 'reachable' | 'queues'>> {
  const deadLetters: DeadLetterFact[] = [];
  const dlqsPartlyChecked: Array<{ dlq: string; messages: number; lookedAt: number }> = [];
  let dlqsChecked = 0;
  for (const { queue, dlq } of fleetDlqs(namespace)) {
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    try {
      let messages: number;
      try {
        messages = (await channel.checkQueue(dlq)).messageCount;
      } catch (err) {
        if (notFound(err)) continue; // that worker never ran in this namespace
        throw err;
      }
      dlqsChecked++;
      const taken: GetMessage[] = [];
      while (messages > 0 && taken.length < PEEK_LIMIT) {
        const m = await channel.get(dlq, { noAck: false });
        if (!m) break;
        taken.push(m);
      }
      if (taken.length === PEEK_LIMIT && messages > PEEK_LIMIT) dlqsPartlyChecked.push({ dlq, messages, lookedAt: PEEK_LIMIT });
      for (const m of taken) {
        const matchedBy = concerns(m, orderId);
        if (matchedBy) deadLetters.push(deadLetterOf(m, queue, dlq, matchedBy));
      }
    } finally {
      await channel.close().catch(() => undefined); // returns every message taken to the DLQ
    }
  }
  return { dlqsChecked, dlqsPartlyChecked, deadLetters };
}

async function checkQueues(model: ChannelModel, names: readonly string[]): Promise<QueueFact[]> {
  const facts: QueueFact[] = [];
  for (const name of names) {
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    try {
      const q = await channel.checkQueue(name);
      facts.push({ name, exists: true, ready: q.messageCount, consumers: q.consumerCount });
    } catch (err) {
      if (!notFound(err)) throw err;
      facts.push({ name, exists: false });
    } finally {
      await channel.close().catch(() => undefined);
    }
  }
  return facts;
}

/** A connection that gives up quickly: the broker's sections say it is unreachable, the rest goes on. */
async function connectBus(config: Config): Promise<AmqpConnection | { error: string }> {
  const connection = new AmqpConnection({ url: config.amqpUrl, name: 'where-is', initialMaxRetries: 1, maxDelayMs: 500, connectTimeoutMs: 5_000 });
  try {
    await connection.start();
    return connection;
  } catch (err) {
    await connection.close().catch(() => undefined);
    return { error: `cannot reach RabbitMQ at ${redact(config.amqpUrl)}: ${errorMessage(err)}` };
  }
}

/** Temporal and RabbitMQ, each of which may be away: the DLQs are peeked while Temporal answers, then the queues the saga waits on are checked. */
async function remoteFacts(config: Config, orderId: string): Promise<{ workflow: WorkflowFacts; broker: BrokerFacts }> {
  const namespace = config.busNamespace;
  const [workflow, bus] = await Promise.all([
    workflowFacts(config, orderId),
    connectBus(config).then(async (bus) => {
      if ('error' in bus) return { bus, dead: undefined };
      try {
        const model = bus.channelModel;
        if (!model) throw new Error('the connection to RabbitMQ closed');
        return { bus, dead: await peekDeadLetters(model, orderId, namespace) };
      } catch (err) {
        return { bus, dead: { error: errorMessage(err) } };
      }
    }),
  ]);
  if ('error' in bus.bus) return { workflow, broker: { reachable: false, error: bus.bus.error } };
  const connection = bus.bus;
  try {
    if (!bus.dead || 'error' in bus.dead) return { workflow, broker: { reachable: false, error: bus.dead?.error ?? 'not connected' } };
    const model = connection.channelModel;
    if (!model) return { workflow, broker: { reachable: false, error: 'the connection to RabbitMQ closed' } };
    const queues = await checkQueues(model, queuesToCheck(workflow, namespace)).catch((err: unknown) => err as Error);
    if (queues instanceof Error) return { workflow, broker: { reachable: false, error: errorMessage(queues) } };
    return { workflow, broker: { reachable: true, queues, ...bus.dead } };
  } finally {
    await connection.close();
  }
}

runCli('where-is', async () => {
  const args = parse(process.argv.slice(2));
  if (args === 'help') {
    console.log(`${USAGE}\nWhere an order is and why: its events, read models, saga, the workers' records and dead letters (docs/operations.md#where-is-an-order).`);
    return 0;
  }
  const { orderId } = args;
  const config = getConfig();
  const db = createPool(config.databaseUrl, 'where-is', 4);
  try {
    await query(db, 'SELECT 1').catch((err: unknown) => {
      throw new Error(`PostgreSQL is not reachable at ${redact(config.databaseUrl)}: ${errorMessage(err)}; cannot tell where order ${orderId} is`);
    });
    const checkedAt = new Date().toISOString();
    const store = await storeFacts(db, orderId);
    if (!store.row && store.events.length === 0) {
      if (args.json) console.log(JSON.stringify({ orderId, found: false, verdict: 'unknown order' }, null, 2));
      console.error(`where-is: no order ${orderId} in the order store (orders.events, orders.orders) of ${redact(config.databaseUrl)}`);
      return 1;
    }
    const [readModel, workers, remote] = await Promise.all([readModelFacts(db, orderId), workerFacts(db, orderId), remoteFacts(config, orderId)]);
    const facts: WhereIsFacts = { orderId, checkedAt, namespace: config.busNamespace, store, readModel, workflow: remote.workflow, workers, broker: remote.broker };
    const said = verdict(facts);
    console.log(args.json ? JSON.stringify({ found: true, verdict: said, ...facts }, null, 2) : render(facts, said));
    return 0;
  } finally {
    await db.end();
  }
});
