// Shipping: schedule and cancel shipments, one per order. Scheduling fails for a country
// without a carrier; a repeated command answers with the shipment already recorded.
// Schedule and cancel of one order are serialised by a per-order lock; a cancel that finds
// no shipment voids the order, so a schedule arriving after it ships nothing.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { EnvelopeOf } from '../../shared/events';
import type { HandlerMap, HandlerResult } from '../../shared/messaging/handler';
import { causedBy, newEnvelope } from '../../shared/messaging/new-envelope';
import type { CarrierDirectory } from './carriers';

@injectable()
export class ShippingHandler {
  constructor(
    @inject(TOKENS.Db) private readonly db: Pool,
    @inject(TOKENS.CarrierDirectory) private readonly carriers: CarrierDirectory,
  ) {}

  readonly handlers: HandlerMap = {
    'shipping.schedule': (cmd) => this.schedule(cmd),
    'shipping.cancel': (cmd) => this.cancel(cmd),
  };

  async schedule(cmd: EnvelopeOf<'shipping.schedule'>): Promise<HandlerResult> {
    const { orderId, address } = cmd.data;
    const carrier = this.carriers.carrierFor(address.country);
    const shipment = await withTransaction(this.db, async (tx) => {
      await lockKey(tx, `shipping:${orderId}`);
      if (!carrier || (await tx.query('SELECT 1 FROM shipping.voids WHERE order_id = $1', [orderId])).rowCount) return undefined;
      await tx.query(
        `INSERT INTO shipping.shipments (order_id, shipment_id, carrier, country, city, status) VALUES ($1, $2, $3, $4, $5, 'scheduled')
         ON CONFLICT (order_id) DO NOTHING`,
        [orderId, `shp_${orderId}`, carrier, address.country, address.city],
      );
      const r = await tx.query<{ shipment_id: string; carrier: string }>('SELECT shipment_id, carrier FROM shipping.shipments WHERE order_id = $1', [orderId]);
      return r.rows[0];
    });
    if (!shipment) {
      return { publish: [newEnvelope('shipping.failed', { orderId, reason: 'shipping_unavailable' }, causedBy(cmd, orderId))] };
    }
    return {
      publish: [newEnvelope('shipping.scheduled', { orderId, shipmentId: shipment.shipment_id, carrier: shipment.carrier }, causedBy(cmd, orderId))],
    };
  }

  async cancel(cmd: EnvelopeOf<'shipping.cancel'>): Promise<HandlerResult> {
    const { orderId } = cmd.data;
    await withTransaction(this.db, async (tx) => {
      await lockKey(tx, `shipping:${orderId}`);
      const cancelled = await tx.query(`UPDATE shipping.shipments SET status = 'cancelled', cancelled_at = now() WHERE order_id = $1 AND status = 'scheduled'`, [orderId]);
      const exists = cancelled.rowCount || (await tx.query('SELECT 1 FROM shipping.shipments WHERE order_id = $1', [orderId])).rowCount;
      // Never scheduled: nothing to cancel, and a schedule that comes later must ship nothing.
      if (!exists) await tx.query('INSERT INTO shipping.voids (order_id) VALUES ($1) ON CONFLICT (order_id) DO NOTHING', [orderId]);
    });
    return { publish: [newEnvelope('shipping.cancelled', { orderId }, causedBy(cmd, orderId))] };
  }
}
