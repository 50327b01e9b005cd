// The invariants a chaos run checks once the system is quiet, from the databases, the read
// model, RabbitMQ and Temporal. Each returns the violations it found, one line each.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel } from 'amqplib';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../shared/db';
import { workflowIdOf } from '../../shared/saga';
import { dlqName, type QueueSpec } from '../../shared/messaging/topology';

export type Scenario = 'tok_ok' | 'tok_flaky' | 'tok_decline' | 'PROD-OOS' | 'country XX' | 'customer cancel';

export interface PlacedOrder {
  orderId: string;
  scenario: Scenario;
  items: Array<{ sku: string; quantity: number; unitPrice: number }>;
  totalAmount: number;
}

/** The outcomes a scenario allows: a customer's cancel may come too late, after shipping. */
export const EXPECTED: Record<Scenario, string[]> = {
  tok_ok: ['fulfilled'],
  tok_flaky: ['fulfilled'],
  tok_decline: ['cancelled: payment_declined'],
  'PROD-OOS': ['cancelled: out_of_stock'],
  'country XX': ['cancelled: shipping_unavailable'],
  'customer cancel': ['cancelled: customer_cancelled', 'fulfilled'],
};

export interface Checks {
  lost: string[];
  wrongOutcome: string[];
  duplicated: string[];
  conservation: string[];
  stuck: string[];
  ordering: string[];
  /** A process that exited without being killed by the run (the supervisor hides it otherwise). */
  crashed: string[];
  /** An order of the run whose saga Temporal lost: the reconciler's pass had to start or finish it. */
  reconciled: string[];
  /** A read model that disagrees with the order's stream once the run is quiet (customer-orders). */
  projections: string[];
}

/** No violation yet, of any kind. */
export function emptyChecks(): Checks {
  return { lost: [], wrongOutcome: [], duplicated: [], conservation: [], stuck: [], ordering: [], crashed: [], reconciled: [], projections: [] };
}

interface ReadRow {
  order_id: string;
  status: string;
  cancellation_reason: string | null;
  history: Array<{ eventType: string; aggregateVersion?: number }>;
}

const outcomeOf = (status: string, reason: string | null): string => (status === 'cancelled' ? `cancelled: ${reason ?? '?'}` : status);

/**
 * Orders not yet final, in the order store or the read model, or whose last event the
 * customer-orders read model has not applied yet: empty when the run is quiet.
 */
export async function openOrders(db: Pool, ids: string[]): Promise<string[]> {
  const r = await db.query<{ order_id: string }>(
    `SELECT o.order_id FROM orders.orders o LEFT JOIN read_model.orders m USING (order_id) LEFT JOIN read_model.customer_orders c USING (order_id)
     WHERE o.order_id = ANY($1) AND (o.status = 'accepted' OR m.status IS NULL OR m.status = 'accepted' OR c.version IS DISTINCT FROM o.version)`,
    [ids],
  );
  return r.rows.map((x) => x.order_id);
}

/** The customer-orders read model holds each order of the run as its stream ends: its status, at its last version. */
export async function checkProjections(db: Pool, ids: string[], checks: Checks): Promise<void> {
  const r = await db.query<{ order_id: string; status: string; version: number; c_status: string | null; c_version: number | null }>(
    `SELECT o.order_id, o.status, o.version, c.status AS c_status, c.version AS c_version
     FROM orders.orders o LEFT JOIN read_model.customer_orders c USING (order_id)
     WHERE o.order_id = ANY($1) AND (c.status IS DISTINCT FROM o.status OR c.version IS DISTINCT FROM o.version)`,
    [ids],
  );
  for (const x of r.rows) checks.projections.push(`${x.order_id}: customer-orders ${x.c_status ?? 'missing'} v${x.c_version ?? '-'}, order store ${x.status} v${x.version}`);
}

export async function checkOutcomes(db: Pool, orders: PlacedOrder[], checks: Checks): Promise<Map<string, string>> {
  const ids = orders.map((o) => o.orderId);
  const rows = new Map((await db.query<ReadRow>('SELECT order_id, status, cancellation_reason, history FROM read_model.orders WHERE order_id = ANY($1)', [ids])).rows.map((r) => [r.order_id, r]));
  const store = new Map((await db.query<{ order_id: string; status: string }>('SELECT order_id, status FROM orders.orders WHERE order_id = ANY($1)', [ids])).rows.map((r) => [r.order_id, r.status]));
  const streams = new Map<string, string[]>();
  for (const r of (await db.query<{ stream_id: string; event_type: string }>('SELECT stream_id, event_type FROM orders.events WHERE stream_id = ANY($1) ORDER BY stream_id, version', [ids])).rows) {
    streams.set(r.stream_id, [...(streams.get(r.stream_id) ?? []), r.event_type]);
  }
  const outcomes = new Map<string, string>();
  for (const o of orders) {
    const row = rows.get(o.orderId);
    if (!row || row.status === 'accepted' || store.get(o.orderId) === 'accepted') {
      checks.lost.push(`${o.orderId} (${o.scenario}): ${row ? row.status : 'not in the read model'}, order store ${store.get(o.orderId) ?? 'missing'}`);
      continue;
    }
    const outcome = outcomeOf(row.status, row.cancellation_reason);
    outcomes.set(o.orderId, outcome);
    if (!EXPECTED[o.scenario].includes(outcome)) checks.wrongOutcome.push(`${o.orderId} (${o.scenario}): ${outcome}`);
    if (store.get(o.orderId) !== row.status) checks.wrongOutcome.push(`${o.orderId}: read model ${row.status}, order store ${store.get(o.orderId)}`);
    const versions = row.history.map((h) => h.aggregateVersion);
    if (versions.some((v, i) => v !== i + 1)) checks.ordering.push(`${o.orderId}: history versions ${JSON.stringify(versions)}`);
    // The read model holds the order's whole stream, in order: placed, a cancellation request at most, one outcome.
    const types = row.history.map((h) => h.eventType);
    const stream = streams.get(o.orderId) ?? [];
    const shape = /^order\.placed( order\.cancellation_requested)? order\.(fulfilled|cancelled)$/;
    if (!shape.test(types.join(' ')) || types.join(' ') !== stream.join(' ')) checks.ordering.push(`${o.orderId}: history ${types.join(', ')}; stream ${stream.join(', ')}`);
  }
  return outcomes;
}

export async function checkEffects(db: Pool, orders: PlacedOrder[], outcomes: Map<string, string>, checks: Checks): Promise<void> {
  const ids = orders.map((o) => o.orderId);
  const many = async (sql: string, what: string): Promise<void> => {
    for (const r of (await db.query<{ order_id: string; n: number }>(sql, [ids])).rows) checks.duplicated.push(`${r.order_id}: ${r.n} ${what}`);
  };
  await many('SELECT order_id, count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1) GROUP BY 1 HAVING count(*) > 1', 'captures');
  await many('SELECT order_id, count(*)::int AS n FROM inventory.reservations WHERE order_id = ANY($1) GROUP BY 1 HAVING count(*) > 1', 'reservations');
  await many('SELECT order_id, count(*)::int AS n FROM shipping.shipments WHERE order_id = ANY($1) GROUP BY 1 HAVING count(*) > 1', 'shipments');
  await many(
    `SELECT order_id || ' ' || kind AS order_id, count(*)::int AS n FROM notifications.notifications WHERE order_id = ANY($1) GROUP BY order_id, kind HAVING count(*) > 1`,
    'notifications of one kind',
  );
  const refunds = await db.query<{ order_id: string; refunded: string; captured: string | null }>(
    'SELECT r.order_id, r.amount AS refunded, c.amount AS captured FROM payments.refunds r LEFT JOIN payments.captures c USING (order_id) WHERE r.order_id = ANY($1)',
    [ids],
  );
  for (const r of refunds.rows) if (r.captured === null || Number(r.refunded) > Number(r.captured)) checks.duplicated.push(`${r.order_id}: refunded ${r.refunded}, captured ${r.captured ?? 'nothing'}`);

  // Each order's net effects must match its outcome.
  const state = await db.query<{ order_id: string; captured: boolean; refunded: boolean; reserved: boolean; released: boolean; shipped: boolean; shipment_cancelled: boolean }>(
    `SELECT o.order_id,
            c.order_id IS NOT NULL AS captured, f.order_id IS NOT NULL AS refunded,
            r.order_id IS NOT NULL AS reserved, r.released_at IS NOT NULL AS released,
            s.order_id IS NOT NULL AS shipped, s.status = 'cancelled' AS shipment_cancelled
       FROM unnest($1::text[]) AS o(order_id)
       LEFT JOIN payments.captures c USING (order_id) LEFT JOIN payments.refunds f USING (order_id)
       LEFT JOIN inventory.reservations r USING (order_id) LEFT JOIN shipping.shipments s USING (order_id)`,
    [ids],
  );
  for (const s of state.rows) {
    const outcome = outcomes.get(s.order_id);
    if (!outcome) continue;
    const net = { paid: s.captured && !s.refunded, reserved: s.reserved && !s.released, shipped: s.shipped && !s.shipment_cancelled };
    const want = outcome === 'fulfilled' ? { paid: true, reserved: true, shipped: true } : { paid: false, reserved: false, shipped: false };
    if (JSON.stringify(net) !== JSON.stringify(want)) checks.conservation.push(`${s.order_id} ${outcome}: ${JSON.stringify(net)}`);
  }
}

/** Stock per SKU, and the database's clock at that moment. */
export async function stockLevels(db: Pool): Promise<{ at: Date; stock: Map<string, number> }> {
  const r = await db.query<{ sku: string; available: number; at: Date }>('SELECT sku, available, now() AS at FROM inventory.stock');
  return { at: r.rows[0]?.at ?? new Date(), stock: new Map(r.rows.map((x) => [x.sku, x.available])) };
}

/**
 * How much stock orders other than the run's moved since `since`: an order that an
 * interrupted earlier run left unpublished in the chaos database's outbox is relayed by
 * this run's fleet too.
 */
export async function otherStockMoves(db: Pool, ids: string[], since: Date): Promise<Map<string, number>> {
  const r = await db.query<{ sku: string; delta: number }>(
    `SELECT i->>'sku' AS sku,
            sum(CASE WHEN r.reserved_at >= $2 THEN -(i->>'quantity')::int ELSE 0 END
              + CASE WHEN r.released_at >= $2 THEN (i->>'quantity')::int ELSE 0 END)::int AS delta
       FROM inventory.reservations r, jsonb_array_elements(r.items) AS i
      WHERE r.order_id <> ALL($1) GROUP BY 1`,
    [ids, since],
  );
  return new Map(r.rows.map((x) => [x.sku, x.delta]));
}

export function checkConservation(
  orders: PlacedOrder[],
  outcomes: Map<string, string>,
  stock: { before: Map<string, number>; after: Map<string, number>; others: Map<string, number> },
  money: { captured: number; refunded: number },
  checks: Checks,
): void {
  const reservedByFulfilled = new Map<string, number>();
  let fulfilledTotal = 0;
  for (const o of orders) {
    if (outcomes.get(o.orderId) !== 'fulfilled') continue;
    fulfilledTotal += o.totalAmount;
    for (const i of o.items) reservedByFulfilled.set(i.sku, (reservedByFulfilled.get(i.sku) ?? 0) + i.quantity);
  }
  for (const [sku, initial] of stock.before) {
    const now = stock.after.get(sku) ?? 0;
    const reserved = reservedByFulfilled.get(sku) ?? 0;
    const others = stock.others.get(sku) ?? 0;
    if (initial + others !== now + reserved) {
      checks.conservation.push(`${sku}: initial ${initial} (${others} moved by other orders) ≠ available ${now} + reserved by fulfilled orders ${reserved}`);
    }
  }
  const cents = (n: number): number => Math.round(n * 100);
  if (cents(money.captured) - cents(money.refunded) !== cents(fulfilledTotal)) {
    checks.conservation.push(`money: captured ${money.captured.toFixed(2)} − refunded ${money.refunded.toFixed(2)} ≠ fulfilled orders ${fulfilledTotal.toFixed(2)}`);
  }
}

export async function moneyOf(db: Pool, ids: string[]): Promise<{ captured: number; refunded: number }> {
  const r = await db.query<{ captured: string; refunded: string }>(
    `SELECT (SELECT coalesce(sum(amount), 0) FROM payments.captures WHERE order_id = ANY($1)) AS captured,
            (SELECT coalesce(sum(amount), 0) FROM payments.refunds WHERE order_id = ANY($1)) AS refunded`,
    [ids],
  );
  return { captured: Number(r.rows[0]!.captured), refunded: Number(r.rows[0]!.refunded) };
}

/** How long a workflow whose order is final may take to finish: its last activity's attempt timing out, and a retry. */
const WORKFLOW_FINISH_MS = 120_000;

export async function checkStuck(temporal: Client, channel: Channel, orders: PlacedOrder[], queues: QueueSpec[], checks: Checks): Promise<void> {
  // An order can be final while its workflow still runs: the Temporal worker or server died
  // after the outcome was recorded and before the activity's completion was, so the activity
  // is tried again once its attempt times out. Stuck is a workflow that does not finish.
  const statusOf = (orderId: string): Promise<string> => temporal.workflow.getHandle(workflowIdOf(orderId)).describe().then((d) => d.status.name, (err: unknown) => `unknown (${String(err)})`);
  let open = orders;
  for (const deadline = Date.now() + WORKFLOW_FINISH_MS; ; await sleep(1_000)) {
    const statuses = await Promise.all(open.map(async (o) => [o, await statusOf(o.orderId)] as const));
    open = statuses.filter(([, status]) => status !== 'COMPLETED').map(([o]) => o);
    if (open.length === 0 || Date.now() > deadline) {
      for (const [o, status] of statuses) if (status !== 'COMPLETED') checks.stuck.push(`workflow ${workflowIdOf(o.orderId)}: ${status}`);
      break;
    }
  }
  for (const q of queues) {
    for (const name of [q.name, dlqName(q.name)]) {
      const { messageCount } = await channel.checkQueue(name);
      if (messageCount > 0) checks.stuck.push(`${name}: ${messageCount} messages`);
    }
  }
}
