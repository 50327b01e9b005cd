// Shipping: schedule and cancel shipments, one per order. Scheduling fails for a country
// without a carrier; a repeated command answers with the shipment already recorded.
import { inject, injectable } from 'tsyringe';
import { query, type Pool } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { DataOf, Envelope } from '../../shared/events';
import type { Handler, HandlerResult } from '../../shared/messaging/consumer';
import { causedBy, newEnvelope } from '../../shared/messaging/envelope';
import type { CarrierDirectory } from './carriers';

@injectable()
export class ShippingHandler {
  constructor(
    @inject(TOKENS.Db) private readonly db: Pool,
    @inject(TOKENS.CarrierDirectory) private readonly carriers: CarrierDirectory,
  ) {}

  readonly handlers: Record<string, Handler> = {
    'shipping.schedule': (cmd) => this.schedule(cmd as Envelope<DataOf<'shipping.schedule'>>),
    'shipping.cancel': (cmd) => this.cancel(cmd as Envelope<DataOf<'shipping.cancel'>>),
  };

  async schedule(cmd: Envelope<DataOf<'shipping.schedule'>>): Promise<HandlerResult> {
    const { orderId, address } = cmd.data;
    const carrier = this.carriers.carrierFor(address.country);
    if (!carrier) {
      return { publish: [newEnvelope('shipping.failed', { orderId, reason: 'shipping_unavailable' }, causedBy(cmd, orderId, 1))] };
    }
    await query(
      this.db,
      `INSERT INTO shipping.shipments (order_id, shipment_id, carrier, country, city, status) VALUES ($1, $2, $3, $4, $5, 'scheduled')
       ON CONFLICT (order_id) DO NOTHING`,
      [orderId, `shp_${orderId}`, carrier, address.country, address.city],
    );
    const [shipment] = await query<{ shipment_id: string; carrier: string }>(this.db, 'SELECT shipment_id, carrier FROM shipping.shipments WHERE order_id = $1', [orderId]);
    if (!shipment) throw new Error(`shipment of ${orderId} was not recorded`);
    return {
      publish: [newEnvelope('shipping.scheduled', { orderId, shipmentId: shipment.shipment_id, carrier: shipment.carrier }, causedBy(cmd, orderId, 1))],
    };
  }

  async cancel(cmd: Envelope<DataOf<'shipping.cancel'>>): Promise<HandlerResult> {
    const { orderId } = cmd.data;
    // Cancelling a shipment that was never scheduled (or already cancelled) changes nothing.
    await query(this.db, `UPDATE shipping.shipments SET status = 'cancelled', cancelled_at = now() WHERE order_id = $1 AND status = 'scheduled'`, [orderId]);
    return { publish: [newEnvelope('shipping.cancelled', { orderId }, causedBy(cmd, orderId, 2))] };
  }
}
