// The order read model that GET /orders/:orderId serves (shared/orders/read-model.ts reads
// it). Each order's events are applied in aggregateVersion order: a stale or repeated event
// is ignored, one that arrives ahead of its turn waits in pending_events until the gap
// before it is filled.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool, type PoolClient } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { HandlerMap } from '../../shared/messaging/handler';
import { statusSetBy, type OrderEvent } from '../../shared/orders/order';

export type ApplyOutcome = 'applied' | 'stale' | 'pending';


@injectable()
export class OrderProjection {
  constructor(@inject(TOKENS.Db) private readonly db: Pool) {}

  readonly handlers: HandlerMap = {
    'order.placed': (e) => this.apply(e).then(() => undefined),
    'order.cancellation_requested': (e) => this.apply(e).then(() => undefined),
    'order.fulfilled': (e) => this.apply(e).then(() => undefined),
    'order.cancelled': (e) => this.apply(e).then(() => undefined),
  };

  async apply(event: OrderEvent): Promise<ApplyOutcome> {
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
      // Apply whatever was waiting for this one, in order. Each was checked against its schema
      // when it arrived, before it was stored.
      for (let next = event.aggregateVersion + 1; ; next++) {
        const waiting = await tx.query<{ event: OrderEvent }>('DELETE FROM read_model.pending_events WHERE order_id = $1 AND version = $2 RETURNING event', [orderId, next]);
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

  private async applyOne(tx: PoolClient, e: OrderEvent): Promise<void> {
    const entry = JSON.stringify([{ eventType: e.eventType, occurredAt: e.occurredAt, aggregateVersion: e.aggregateVersion }]);
    if (e.eventType === 'order.placed') {
      const d = e.data;
      await tx.query(
        `INSERT INTO read_model.orders (order_id, status, customer_id, items, total_amount, currency, version, history)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [e.aggregateId, statusSetBy(e.eventType), d.customerId, JSON.stringify(d.items), d.totalAmount, d.currency, e.aggregateVersion, entry],
      );
      return;
    }
    const status = statusSetBy(e.eventType);
    const reason = e.eventType === 'order.cancelled' ? e.data.reason : null;
    await tx.query(
      `UPDATE read_model.orders
       SET status = COALESCE($2, status), cancellation_reason = COALESCE($3, cancellation_reason),
           version = $4, history = history || $5::jsonb, updated_at = now()
       WHERE order_id = $1`,
      [e.aggregateId, status, reason, e.aggregateVersion, entry],
    );
  }
}
