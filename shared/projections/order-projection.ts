// The order read model (read_model.orders, behind GET /orders/:orderId) as a projection of
// the event store, for its rebuild. Live, the order-projection worker applies the same
// events from the bus (workers/order-projection/handler.ts); here each order's row is the
// fold of its events (shared/orders/order.ts), so a rebuilt row equals the live one: status,
// cancellation_reason, customer, items, amount, currency, version (the stream's last) and
// history (every order event, in version order).
import type { PoolClient } from 'pg';
import type { Queryable, RecordedEvent } from '../event-store';
import { evolve, type Order, type OrderState } from '../orders/order';
import { byStream, qualified, type Projection } from './projection';

interface OrderRow {
  order_id: string;
  status: OrderState['status'];
  cancellation_reason: OrderState['cancellationReason'] | null;
  customer_id: string;
  items: OrderState['items'];
  /** numeric(12, 2) as text from the driver; a number on the way in. */
  total_amount: string | number;
  currency: string;
  version: number;
  history: OrderState['history'];
}

/** The state a row holds: what the fold needs to go on from it. */
function stateOf(row: OrderRow): OrderState {
  return {
    orderId: row.order_id,
    status: row.status,
    customerId: row.customer_id,
    items: row.items,
    totalAmount: Number(row.total_amount),
    currency: row.currency,
    placedAt: row.history[0]?.occurredAt ?? '',
    cancellationRequested: row.history.some((h) => h.eventType === 'order.cancellation_requested'),
    ...(row.cancellation_reason ? { cancellationReason: row.cancellation_reason } : {}),
    history: row.history,
  };
}

function rowOf(order: OrderState, version: number): OrderRow {
  return {
    order_id: order.orderId,
    status: order.status,
    cancellation_reason: order.cancellationReason ?? null,
    customer_id: order.customerId,
    items: order.items,
    total_amount: order.totalAmount,
    currency: order.currency,
    version,
    history: order.history,
  };
}

/**
 * Folds a batch onto the rows it touches: each order's row is read once (one statement for
 * the batch), its events above the row's version folded in memory, and every changed row
 * written back with one upsert.
 */
async function apply(db: Queryable, table: string, events: readonly RecordedEvent[]): Promise<number> {
  const streams = byStream(events);
  if (streams.size === 0) return 0;
  const existing = await db.query<OrderRow>(
    `SELECT order_id, status, cancellation_reason, customer_id, items, total_amount, currency, version, history FROM ${table} WHERE order_id = ANY($1::text[])`,
    [[...streams.keys()]],
  );
  const rows = new Map(existing.rows.map((r) => [r.order_id, r]));
  const changed: OrderRow[] = [];
  for (const [orderId, stream] of streams) {
    const row = rows.get(orderId);
    let order: Order = row ? stateOf(row) : undefined;
    let version = row?.version ?? 0;
    let moved = false;
    for (const event of stream) {
      if (event.version <= version) continue;
      order = evolve(order, event);
      version = event.version;
      moved = true;
    }
    if (moved && order) changed.push(rowOf(order, version));
  }
  if (changed.length === 0) return 0;
  const written = await db.query(
    `INSERT INTO ${table} AS t (order_id, status, cancellation_reason, customer_id, items, total_amount, currency, version, history)
     SELECT r.order_id, r.status, r.cancellation_reason, r.customer_id, r.items, r.total_amount, r.currency, r.version, r.history
     FROM jsonb_to_recordset($1::jsonb) AS r(order_id text, status text, cancellation_reason text, customer_id text, items jsonb,
                                             total_amount numeric, currency text, version integer, history jsonb)
     ON CONFLICT (order_id) DO UPDATE SET
       status = excluded.status, cancellation_reason = excluded.cancellation_reason, customer_id = excluded.customer_id,
       items = excluded.items, total_amount = excluded.total_amount, currency = excluded.currency,
       version = excluded.version, history = excluded.history, updated_at = now()
     WHERE t.version < excluded.version`,
    [JSON.stringify(changed)],
  );
  return written.rowCount ?? 0;
}

/**
 * After a swap: the events the worker parked ahead of their turn (read_model.pending_events)
 * that the new rows already hold would never be applied; those above a row's version stay,
 * for the worker to apply when the gap before them is filled.
 */
async function afterSwap(tx: PoolClient, table: string): Promise<void> {
  await tx.query(`DELETE FROM ${qualified('pending_events')} p USING ${table} o WHERE o.order_id = p.order_id AND p.version <= o.version`);
}

/** No checkpoint: live, the order-projection worker applies this table from the bus. */
export const orderProjection: Projection = { name: 'order-projection', table: 'orders', apply, afterSwap };
