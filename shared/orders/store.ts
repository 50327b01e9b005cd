// The order store (owned by order-api; docs/event-sourcing.md): each order is a stream of
// events in the event store, and its state a fold of them (order.ts). Every change appends
// with the version the writer read, and writes orders.orders, the order's current state, in
// the same transaction: an inline projection that holds the idempotency keys, the index the
// reconciler reads and the payment token, which no event carries (the events are published
// and archived; the token goes only to the payments worker, in its command).
import type { PoolClient } from 'pg';
import { newId } from '../ids';
import { getConfig } from '../config';
import { query, withTransaction, type Pool } from '../db';
import { appendToStream, ConcurrencyError, loadStream, snapshotIfDue, type Loaded, type Queryable } from '../event-store';
import type { Envelope } from '../events';
import { newEnvelope } from '../messaging/new-envelope';
import type { OrderDetails } from '../saga';
import { decideCancellationRequest, decideOutcome, evolve, orderFold, type Order, type OrderState, type Outcome } from './order';

export type StoredStatus = OrderState['status'];

/** What POST /orders takes: the order and how it is paid. */
export interface NewOrder {
  customerId: string;
  items: OrderDetails['items'];
  currency: string;
  shippingAddress: OrderDetails['shippingAddress'];
  paymentToken: string;
}

/** The order's state and its stream's version; state undefined for an unknown order. */
export async function loadOrderState(db: Queryable, orderId: string, asOf?: Date): Promise<Loaded<Order>> {
  return loadStream(db, orderId, orderFold, asOf ? { until: asOf } : {});
}

/** Appends to the order's stream, updates its current state and takes a snapshot when due, in tx. */
async function append(tx: PoolClient, loaded: Loaded<Order>, orderId: string, events: Envelope[]): Promise<OrderState> {
  const appended = await appendToStream(tx, orderId, loaded.version, events);
  let state = loaded.state;
  let version = loaded.version;
  for (const envelope of appended) state = evolve(state, { position: '', streamId: orderId, version: ++version, envelope });
  if (!state) throw new Error(`order ${orderId}: events appended before order.placed`);
  await tx.query('UPDATE orders.orders SET status = $2, cancellation_reason = $3, version = $4, updated_at = now() WHERE order_id = $1', [
    orderId,
    state.status,
    state.cancellationReason ?? null,
    version,
  ]);
  await snapshotIfDue(tx, orderId, orderFold, state, loaded.version, version, getConfig().eventStoreSnapshotEvery);
  return state;
}

/**
 * Places an order: its row and its order.placed, the first event of its stream, in one
 * transaction. The same idempotency key again, for the same customer, gives the first order's
 * id and appends nothing; a key is a customer's own (another's same key places a new order).
 */
export async function placeOrder(db: Pool, order: NewOrder, idempotencyKey?: string): Promise<string> {
  const orderId = `ord_${newId()}`;
  const totalAmount = Math.round(order.items.reduce((sum, i) => sum + i.quantity * i.unitPrice * 100, 0)) / 100;
  return withTransaction(db, async (tx) => {
    const inserted = await tx.query(
      `INSERT INTO orders.orders (order_id, customer_id, items, total_amount, currency, shipping_address, payment_token, idempotency_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (customer_id, idempotency_key) DO NOTHING`,
      [orderId, order.customerId, JSON.stringify(order.items), totalAmount, order.currency, JSON.stringify(order.shippingAddress), order.paymentToken, idempotencyKey ?? null],
    );
    if (inserted.rowCount === 0) {
      // A retried request: the same order, nothing new started.
      const existing = await tx.query<{ order_id: string }>('SELECT order_id FROM orders.orders WHERE customer_id = $1 AND idempotency_key = $2', [order.customerId, idempotencyKey]);
      return existing.rows[0]!.order_id;
    }
    const placed = newEnvelope(
      'order.placed',
      { orderId, customerId: order.customerId, items: order.items, totalAmount, currency: order.currency, shippingAddress: order.shippingAddress },
      { aggregateId: orderId, correlationId: orderId },
    );
    await append(tx, { state: undefined, version: 0 }, orderId, [placed]);
    return orderId;
  });
}

/** The whole order, as the saga needs it, or undefined for an unknown order. */
export async function loadOrder(db: Pool, orderId: string): Promise<OrderDetails | undefined> {
  const { state } = await loadOrderState(db, orderId);
  if (!state) return undefined;
  const [row] = await query<{ payment_token: string; shipping_address: OrderDetails['shippingAddress'] }>(
    db,
    'SELECT payment_token, shipping_address FROM orders.orders WHERE order_id = $1',
    [orderId],
  );
  if (!row) return undefined;
  const { customerId, items, totalAmount, currency } = state;
  // An order.placed v1 has no address: the row has it.
  return { orderId, customerId, items, totalAmount, currency, shippingAddress: state.shippingAddress ?? row.shipping_address, paymentToken: row.payment_token };
}

/** The order's current status (its row), or undefined for an unknown order. */
export async function storedStatus(db: Pool, orderId: string): Promise<StoredStatus | undefined> {
  const [row] = await query<{ status: StoredStatus }>(db, 'SELECT status FROM orders.orders WHERE order_id = $1', [orderId]);
  return row?.status;
}

export type CancellationRequest = 'recorded' | 'already_requested' | { final: StoredStatus } | 'unknown';

/**
 * Records a customer's request to cancel (order.cancellation_requested) on an accepted order.
 * With customerId, another customer's order is 'unknown', as one that does not exist.
 * Throws ConcurrencyError when the stream moved since it was read: the API answers 409.
 */
export async function requestCancellation(db: Pool, orderId: string, customerId?: string): Promise<CancellationRequest> {
  return withTransaction(db, async (tx) => {
    const loaded = await loadOrderState(tx, orderId);
    const order = loaded.state;
    if (!order || (customerId !== undefined && order.customerId !== customerId)) return 'unknown';
    const decision = decideCancellationRequest(order);
    if (decision === 'final') return { final: order.status };
    if (decision === 'already_requested') return 'already_requested';
    await append(tx, loaded, orderId, [newEnvelope('order.cancellation_requested', { orderId }, { aggregateId: orderId, correlationId: orderId })]);
    return 'recorded';
  });
}

/** How often recordOutcome reloads and decides again when another writer moved the stream. */
const OUTCOME_ATTEMPTS = 5;

/**
 * Records the saga's outcome (order.fulfilled or order.cancelled, under eventId: the same on
 * every retry of the activity). A retried activity finds it recorded and appends nothing; a
 * concurrent append (a cancellation request) makes it reload and decide again.
 */
export async function recordOutcome(db: Pool, orderId: string, outcome: Outcome, eventId: string): Promise<'recorded' | 'already_recorded' | 'ended_otherwise' | 'unknown'> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await withTransaction(db, async (tx) => {
        const loaded = await loadOrderState(tx, orderId);
        if (!loaded.state) return 'unknown';
        const decision = decideOutcome(loaded.state, outcome);
        if (decision !== 'record') return decision;
        const ctx = { aggregateId: orderId, correlationId: orderId, eventId };
        const event =
          outcome.outcome === 'fulfilled'
            ? newEnvelope('order.fulfilled', { orderId }, ctx)
            : newEnvelope('order.cancelled', { orderId, reason: outcome.reason, ...(outcome.failedStep ? { failedStep: outcome.failedStep } : {}) }, ctx);
        await append(tx, loaded, orderId, [event]);
        return 'recorded';
      });
    } catch (err) {
      if (!(err instanceof ConcurrencyError) || attempt >= OUTCOME_ATTEMPTS) throw err;
    }
  }
}
