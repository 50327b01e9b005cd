// Inventory: reserve all lines of an order or none, and release exactly what was
// reserved. Stock is never negative (a CHECK constraint) and never reserved twice for an
// order (the reservation's primary key); a repeated command answers with what is recorded.
// Reserve and release of one order are serialised by a per-order lock; a release that finds
// no reservation voids the order, so a reservation arriving after it takes nothing. The
// decisions themselves are pure functions in decisions.ts.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool, type PoolClient } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { EnvelopeOf } from '../../shared/events';
import type { HandlerMap, HandlerResult } from '../../shared/messaging/handler';
import { causedBy, newEnvelope } from '../../shared/messaging/new-envelope';
import { consolidate, reservationDecision, type Line } from './decisions';

class OutOfStock extends Error {
  constructor(readonly skus: string[]) {
    super(`out of stock: ${skus.join(', ')}`);
  }
}

@injectable()
export class InventoryHandler {
  constructor(@inject(TOKENS.Db) private readonly db: Pool) {}

  readonly handlers: HandlerMap = {
    'inventory.reserve': (cmd) => this.reserve(cmd),
    'inventory.release': (cmd) => this.release(cmd),
  };

  async reserve(cmd: EnvelopeOf<'inventory.reserve'>): Promise<HandlerResult> {
    const { orderId } = cmd.data;
    const lines = consolidate(cmd.data.items);
    try {
      const reserved = await withTransaction(this.db, async (tx) => {
        // The order's lock: a concurrent duplicate waits here, then finds the reservation.
        await lockKey(tx, `inventory:${orderId}`);
        const existing = await this.reservation(tx, orderId);
        if (existing) return existing.items;
        // Released before it was reserved (the saga gave up on this step): reserve nothing.
        if ((await tx.query('SELECT 1 FROM inventory.voids WHERE order_id = $1', [orderId])).rowCount) throw new OutOfStock([]);
        // Every reservation locks its rows in one order (PostgreSQL locks them after the sort),
        // so concurrent orders cannot deadlock; and what is read is what the updates change.
        const stock = await tx.query<{ sku: string; available: number }>(
          'SELECT sku, available FROM inventory.stock WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE',
          [lines.map((l) => l.sku)],
        );
        const decision = reservationDecision(lines, new Map(stock.rows.map((r) => [r.sku, r.available])));
        if ('short' in decision) throw new OutOfStock(decision.short);
        for (const line of decision.reserve) {
          await tx.query('UPDATE inventory.stock SET available = available - $2 WHERE sku = $1', [line.sku, line.quantity]);
        }
        await tx.query('INSERT INTO inventory.reservations (order_id, items) VALUES ($1, $2)', [orderId, JSON.stringify(decision.reserve)]);
        return decision.reserve;
      });
      return { publish: [newEnvelope('inventory.reserved', { orderId, items: reserved }, causedBy(cmd, orderId))] };
    } catch (err) {
      if (!(err instanceof OutOfStock)) throw err;
      return { publish: [newEnvelope('inventory.rejected', { orderId, reason: 'out_of_stock', skus: err.skus }, causedBy(cmd, orderId))] };
    }
  }

  async release(cmd: EnvelopeOf<'inventory.release'>): Promise<HandlerResult> {
    const { orderId } = cmd.data;
    const released = await withTransaction(this.db, async (tx) => {
      await lockKey(tx, `inventory:${orderId}`); // waits for a reservation in flight
      const freed = await tx.query<{ items: Line[] }>(
        'UPDATE inventory.reservations SET released_at = now() WHERE order_id = $1 AND released_at IS NULL RETURNING items',
        [orderId],
      );
      const items = freed.rows[0]?.items;
      if (!items) {
        const earlier = await this.reservation(tx, orderId);
        if (earlier) return earlier.items; // released before
        // Never reserved: nothing to give back, and a reservation that comes later must take nothing.
        await tx.query('INSERT INTO inventory.voids (order_id) VALUES ($1) ON CONFLICT (order_id) DO NOTHING', [orderId]);
        return [];
      }
      for (const line of items) {
        await tx.query('UPDATE inventory.stock SET available = available + $2 WHERE sku = $1', [line.sku, line.quantity]);
      }
      return items;
    });
    return { publish: [newEnvelope('inventory.released', { orderId, items: released }, causedBy(cmd, orderId))] };
  }

  private async reservation(tx: PoolClient, orderId: string): Promise<{ items: Line[] } | undefined> {
    const r = await tx.query<{ items: Line[] }>('SELECT items FROM inventory.reservations WHERE order_id = $1', [orderId]);
    return r.rows[0];
  }
}
