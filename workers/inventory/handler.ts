// Inventory: reserve all lines of an order or none, and release exactly what was
// reserved. Stock is never negative (a CHECK constraint) and never reserved twice for an
// order (the reservation's primary key); a repeated command answers with what is recorded.
// Reserve and release of one order are serialised by a per-order lock; a release that finds
// no reservation voids the order, so a reservation arriving after it takes nothing.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool, type PoolClient } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { DataOf, Envelope } from '../../shared/events';
import type { Handler, HandlerResult } from '../../shared/messaging/consumer';
import { causedBy, newEnvelope } from '../../shared/messaging/envelope';

type Line = { sku: string; quantity: number };

/** One line per SKU, sorted, so that concurrent reservations lock rows in the same order. */
export function consolidate(items: readonly Line[]): Line[] {
  const bySku = new Map<string, number>();
  for (const { sku, quantity } of items) bySku.set(sku, (bySku.get(sku) ?? 0) + quantity);
  return [...bySku.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

class OutOfStock extends Error {
  constructor(readonly skus: string[]) {
    super(`out of stock: ${skus.join(', ')}`);
  }
}

@injectable()
export class InventoryHandler {
  constructor(@inject(TOKENS.Db) private readonly db: Pool) {}

  readonly handlers: Record<string, Handler> = {
    'inventory.reserve': (cmd) => this.reserve(cmd as Envelope<DataOf<'inventory.reserve'>>),
    'inventory.release': (cmd) => this.release(cmd as Envelope<DataOf<'inventory.release'>>),
  };

  async reserve(cmd: Envelope<DataOf<'inventory.reserve'>>): Promise<HandlerResult> {
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
        const short: string[] = [];
        for (const line of lines) {
          const updated = await tx.query('UPDATE inventory.stock SET available = available - $2 WHERE sku = $1 AND available >= $2', [line.sku, line.quantity]);
          if (updated.rowCount === 0) short.push(line.sku);
        }
        if (short.length > 0) throw new OutOfStock(short); // rolls back every line: all or none
        await tx.query('INSERT INTO inventory.reservations (order_id, items) VALUES ($1, $2)', [orderId, JSON.stringify(lines)]);
        return lines;
      });
      return { publish: [newEnvelope('inventory.reserved', { orderId, items: reserved }, causedBy(cmd, orderId, 1))] };
    } catch (err) {
      if (!(err instanceof OutOfStock)) throw err;
      return { publish: [newEnvelope('inventory.rejected', { orderId, reason: 'out_of_stock', skus: err.skus }, causedBy(cmd, orderId, 1))] };
    }
  }

  async release(cmd: Envelope<DataOf<'inventory.release'>>): Promise<HandlerResult> {
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
    return { publish: [newEnvelope('inventory.released', { orderId, items: released }, causedBy(cmd, orderId, 2))] };
  }

  private async reservation(tx: PoolClient, orderId: string): Promise<{ items: Line[] } | undefined> {
    const r = await tx.query<{ items: Line[] }>('SELECT items FROM inventory.reservations WHERE order_id = $1', [orderId]);
    return r.rows[0];
  }
}
