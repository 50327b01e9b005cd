// The order read model that GET /orders/:orderId serves. Each order's events are applied
// in aggregateVersion order: a stale or repeated event is ignored, one that arrives ahead
// of its turn waits in pending_events until the gap before it is filled.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool, type PoolClient } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { DataOf, Envelope } from '../../shared/events';
import type { Handler } from '../../shared/messaging/consumer';

export type ApplyOutcome = 'applied' | 'stale' | 'pending';

@injectable()
export class OrderProjection {
  constructor(@inject(TOKENS.Db) private readonly db: Pool) {}

  readonly handlers: Record<string, Handler> = {
    'order.placed': (e) => this.apply(e).then(() => undefined),
    'order.fulfilled': (e) => this.apply(e).then(() => undefined),
    'order.cancelled': (e) => this.apply(e).then(() => undefined),
  };

  async apply(event: Envelope): Promise<ApplyOutcome> {
    const orderId = event.aggregateId;
    return withTransaction(this.db, async (tx) => {
      await lockKey(tx, `read_model:${orderId}`);
      const current = await this.version(tx, orderId);
      if (event.aggregateVersion <= current) return 'stale';
      if (event.aggregateVersion > current + 1) {
        await tx.query('INSERT INTO read_model.pending_events (order_id, version, event) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [
          orderId,
          event.aggregateVersion,
          JSON.stringify(event),
        ]);
        return 'pending';
      }
      await this.applyOne(tx, event);
      // Apply whatever was waiting for this one, in order.
      for (let next = event.aggregateVersion + 1; ; next++) {
        const waiting = await tx.query<{ event: Envelope }>('DELETE FROM read_model.pending_events WHERE order_id = $1 AND version = $2 RETURNING event', [orderId, next]);
        const e = waiting.rows[0]?.event;
        if (!e) break;
        await this.applyOne(tx, e);
      }
      return 'applied';
    });
  }

  private async version(tx: PoolClient, orderId: string): Promise<number> {
    const r = await tx.query<{ version: number }>('SELECT version FROM read_model.orders WHERE order_id = $1', [orderId]);
    return r.rows[0]?.version ?? 0;
  }

  private async applyOne(tx: PoolClient, e: Envelope): Promise<void> {
    const entry = JSON.stringify([{ eventType: e.eventType, occurredAt: e.occurredAt, aggregateVersion: e.aggregateVersion }]);
    if (e.eventType === 'order.placed') {
      const d = e.data as DataOf<'order.placed'>;
      await tx.query(
        `INSERT INTO read_model.orders (order_id, status, customer_id, items, total_amount, currency, version, history)
         VALUES ($1, 'accepted', $2, $3, $4, $5, $6, $7)`,
        [e.aggregateId, d.customerId, JSON.stringify(d.items), d.totalAmount, d.currency, e.aggregateVersion, entry],
      );
      return;
    }
    const status = e.eventType === 'order.fulfilled' ? 'fulfilled' : e.eventType === 'order.cancelled' ? 'cancelled' : null;
    const reason = e.eventType === 'order.cancelled' ? (e.data as DataOf<'order.cancelled'>).reason : null;
    await tx.query(
      `UPDATE read_model.orders
       SET status = COALESCE($2, status), cancellation_reason = COALESCE($3, cancellation_reason),
           version = $4, history = history || $5::jsonb, updated_at = now()
       WHERE order_id = $1`,
      [e.aggregateId, status, reason, e.aggregateVersion, entry],
    );
  }
}

export interface ReadModelOrder {
  orderId: string;
  status: string;
  cancellationReason?: string;
  customerId: string;
  items: Array<{ sku: string; quantity: number; unitPrice: number }>;
  totalAmount: number;
  currency: string;
  /** In aggregateVersion order (rows written before that field was recorded lack it). */
  history: Array<{ eventType: string; occurredAt: string; aggregateVersion?: number }>;
}

/** The read model of one order, as GET /orders/:orderId returns it. */
export async function readOrder(db: Pool, orderId: string): Promise<ReadModelOrder | undefined> {
  const r = await db.query<{
    status: string;
    cancellation_reason: string | null;
    customer_id: string;
    items: ReadModelOrder['items'];
    total_amount: string;
    currency: string;
    history: ReadModelOrder['history'];
  }>('SELECT status, cancellation_reason, customer_id, items, total_amount, currency, history FROM read_model.orders WHERE order_id = $1', [orderId]);
  const row = r.rows[0];
  if (!row) return undefined;
  return {
    orderId,
    status: row.status,
    ...(row.cancellation_reason ? { cancellationReason: row.cancellation_reason } : {}),
    customerId: row.customer_id,
    items: row.items,
    totalAmount: Number(row.total_amount),
    currency: row.currency.trim(),
    history: row.history,
  };
}
