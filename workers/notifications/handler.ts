// Notifications: records what a customer would be told about their order, one row per
// event (the event id is the primary key, so a redelivered event adds nothing).
import { inject, injectable } from 'tsyringe';
import { query, type Pool } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { DataOf, EnvelopeOf } from '../../shared/events';
import type { HandlerMap, HandlerOf } from '../../shared/messaging/handler';

type Notified = 'order.placed' | 'order.cancellation_requested' | 'order.fulfilled' | 'order.cancelled' | 'payment.captured' | 'payment.declined' | 'payment.refunded' | 'shipping.scheduled' | 'shipping.failed' | 'shipping.cancelled';

const money = (amount: number, currency?: string): string => `${amount.toFixed(2)}${currency ? ` ${currency}` : ''}`;

/** The message for each event, or undefined when there is nothing to tell. */
export const MESSAGES: { [T in Notified]: (data: DataOf<T>) => string | undefined } = {
  'order.placed': (d) => `We received your order ${d.orderId} (${money(d.totalAmount, d.currency)}).`,
  'order.cancellation_requested': (d) => `We received your request to cancel order ${d.orderId}.`,
  'order.fulfilled': (d) => `Your order ${d.orderId} is complete.`,
  'order.cancelled': (d) => `Your order ${d.orderId} was cancelled (${d.reason.replace(/_/g, ' ')}).`,
  'payment.captured': (d) => `We charged ${money(d.amount, d.currency)} for order ${d.orderId}.`,
  'payment.declined': (d) => `Your payment for order ${d.orderId} was declined.`,
  'payment.refunded': (d) => (d.amount > 0 ? `We refunded ${money(d.amount, d.currency)} for order ${d.orderId}.` : undefined),
  'shipping.scheduled': (d) => `Your order ${d.orderId} ships with ${d.carrier} (shipment ${d.shipmentId}).`,
  'shipping.failed': (d) => `We cannot ship order ${d.orderId} to your address.`,
  'shipping.cancelled': (d) => `The shipment of order ${d.orderId} was cancelled.`,
};

@injectable()
export class NotificationsHandler {
  constructor(@inject(TOKENS.Db) private readonly db: Pool) {}

  readonly handlers: HandlerMap = Object.fromEntries((Object.keys(MESSAGES) as Notified[]).map((type) => [type, this.notifier(type)]));

  /** The handler of one event type: its message, recorded once per event. */
  private notifier<T extends Notified>(type: T): HandlerOf<T> {
    const messageOf: (data: DataOf<T>) => string | undefined = MESSAGES[type];
    return async (event: EnvelopeOf<T>) => {
      const message = messageOf(event.data);
      if (message === undefined) return;
      await query(
        this.db,
        'INSERT INTO notifications.notifications (event_id, order_id, kind, message) VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING',
        [event.eventId, event.data.orderId, type, message],
      );
    };
  }
}
