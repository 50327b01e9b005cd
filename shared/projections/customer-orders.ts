// A customer's orders, newest first (read_model.customer_orders, read by
// shared/orders/customer-orders.ts): a projection that follows the event store itself (the
// customer-orders worker runs it with follow.ts). order.placed inserts the row; order.fulfilled
// and order.cancelled set its status; order.cancellation_requested moves only its version;
// other events change nothing. A row changes only for events above its version.
import type { Queryable, RecordedEvent } from '../event-store';
import { ORDER_EVENT_TYPES, statusSetBy, type OrderEvent, type OrderStatus } from '../orders/order';
import { byStream, type Projection } from './projection';

interface Placed {
  order_id: string;
  customer_id: string;
  status: OrderStatus;
  total_amount: number;
  currency: string;
  placed_at: string;
  version: number;
}

/** The change to a row placed in an earlier batch: a new status (null: unchanged) and version. */
interface Change {
  order_id: string;
  status: OrderStatus | null;
  version: number;
}

/** Folds each order's events of the batch into a new row (its order.placed is in it) or a change. */
function fold(events: readonly RecordedEvent[]): { placed: Placed[]; changes: Change[] } {
  const placed: Placed[] = [];
  const changes: Change[] = [];
  for (const [orderId, stream] of byStream(events)) {
    let row: Placed | undefined;
    let change: Change | undefined;
    for (const event of stream) {
      const e = event.envelope as OrderEvent;
      if (!ORDER_EVENT_TYPES.includes(e.eventType)) continue;
      if (e.eventType === 'order.placed') {
        const d = e.data;
        row = { order_id: orderId, customer_id: d.customerId, status: statusSetBy(e.eventType), total_amount: d.totalAmount, currency: d.currency, placed_at: e.occurredAt, version: event.version };
        change = undefined;
        continue;
      }
      const status: OrderStatus | null = statusSetBy(e.eventType);
      if (row) row = { ...row, status: status ?? row.status, version: event.version };
      else change = { order_id: orderId, status: status ?? change?.status ?? null, version: event.version };
    }
    if (row) placed.push(row);
    else if (change) changes.push(change);
  }
  return { placed, changes };
}

/** One statement per batch: the new rows inserted, the changes applied, each only above the row's version. */
async function apply(db: Queryable, table: string, events: readonly RecordedEvent[]): Promise<number> {
  const { placed, changes } = fold(events);
  if (placed.length === 0 && changes.length === 0) return 0;
  const r = await db.query<{ written: number }>(
    `WITH changed AS (
       UPDATE ${table} AS t SET status = COALESCE(c.status, t.status), version = c.version
       FROM jsonb_to_recordset($2::jsonb) AS c(order_id text, status text, version integer)
       WHERE t.order_id = c.order_id AND t.version < c.version
       RETURNING 1
     ), inserted AS (
       INSERT INTO ${table} AS t (order_id, customer_id, status, total_amount, currency, placed_at, version)
       SELECT p.order_id, p.customer_id, p.status, p.total_amount, p.currency, p.placed_at, p.version
       FROM jsonb_to_recordset($1::jsonb) AS p(order_id text, customer_id text, status text, total_amount numeric, currency text,
                                               placed_at timestamptz, version integer)
       ON CONFLICT (order_id) DO UPDATE SET
         customer_id = excluded.customer_id, status = excluded.status, total_amount = excluded.total_amount,
         currency = excluded.currency, placed_at = excluded.placed_at, version = excluded.version
       WHERE t.version < excluded.version
       RETURNING 1
     )
     SELECT ((SELECT count(*) FROM changed) + (SELECT count(*) FROM inserted))::int AS written`,
    [JSON.stringify(placed), JSON.stringify(changes)],
  );
  return r.rows[0]?.written ?? 0;
}

export const customerOrdersProjection: Projection = { name: 'customer-orders', table: 'customer_orders', checkpoint: 'customer-orders', apply };
