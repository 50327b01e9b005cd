// Payments: capture and refund, idempotent per order. The database holds one capture per
// order and refunds only of what was captured; a repeated command answers with the result
// already recorded instead of acting again. A capture and a refund of one order never run
// at once (a per-order lock held across the provider call), and a refund that finds no
// capture voids the order, so a capture arriving after it is declined, not charged.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool, type PoolClient } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { DataOf, Envelope } from '../../shared/events';
import type { Handler, HandlerResult } from '../../shared/messaging/consumer';
import { causedBy, newEnvelope } from '../../shared/messaging/envelope';
import type { PaymentProvider } from './provider';

interface CaptureRow {
  payment_id: string;
  amount: string;
  currency: string;
}

type Recorded = { captured: CaptureRow } | { declined: string };

@injectable()
export class PaymentsHandler {
  constructor(
    @inject(TOKENS.Db) private readonly db: Pool,
    @inject(TOKENS.PaymentProvider) private readonly provider: PaymentProvider,
  ) {}

  readonly handlers: Record<string, Handler> = {
    'payments.capture': (cmd) => this.capture(cmd as Envelope<DataOf<'payments.capture'>>),
    'payments.refund': (cmd) => this.refund(cmd as Envelope<DataOf<'payments.refund'>>),
  };

  async capture(cmd: Envelope<DataOf<'payments.capture'>>): Promise<HandlerResult> {
    const { orderId, amount, currency, paymentToken } = cmd.data;
    const recorded = await withTransaction(this.db, async (tx): Promise<Recorded> => {
      await lockKey(tx, `payments:${orderId}`);
      const earlier = await this.recorded(tx, orderId);
      if (earlier) return earlier;
      const charge = await this.provider.charge(orderId, paymentToken, amount, currency);
      if (charge.outcome === 'declined') {
        await tx.query('INSERT INTO payments.declines (order_id, reason) VALUES ($1, $2)', [orderId, charge.reason]);
        return { declined: charge.reason };
      }
      await tx.query('INSERT INTO payments.captures (order_id, payment_id, amount, currency) VALUES ($1, $2, $3, $4)', [orderId, charge.paymentId, amount, currency]);
      return { captured: { payment_id: charge.paymentId, amount: amount.toFixed(2), currency } };
    });
    return { publish: [this.resultOf(cmd, recorded)] };
  }

  async refund(cmd: Envelope<DataOf<'payments.refund'>>): Promise<HandlerResult> {
    const { orderId } = cmd.data;
    const refunded = await withTransaction(this.db, async (tx) => {
      await lockKey(tx, `payments:${orderId}`);
      const capture = await tx.query<CaptureRow>('SELECT payment_id, amount, currency FROM payments.captures WHERE order_id = $1', [orderId]);
      const row = capture.rows[0];
      if (!row) {
        // Never captured: nothing to refund, and a capture that comes later must not charge.
        await tx.query('INSERT INTO payments.voids (order_id) VALUES ($1) ON CONFLICT (order_id) DO NOTHING', [orderId]);
        return undefined;
      }
      await tx.query('INSERT INTO payments.refunds (order_id, amount) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING', [orderId, row.amount]);
      return row;
    });
    const event = newEnvelope(
      'payment.refunded',
      refunded ? { orderId, amount: Number(refunded.amount), currency: refunded.currency.trim() } : { orderId, amount: 0 },
      causedBy(cmd, orderId, 2),
    );
    return { publish: [event] };
  }

  private async recorded(tx: PoolClient, orderId: string): Promise<Recorded | undefined> {
    const captured = await tx.query<CaptureRow>('SELECT payment_id, amount, currency FROM payments.captures WHERE order_id = $1', [orderId]);
    if (captured.rows[0]) return { captured: captured.rows[0] };
    const declined = await tx.query<{ reason: string }>('SELECT reason FROM payments.declines WHERE order_id = $1', [orderId]);
    if (declined.rows[0]) return { declined: declined.rows[0].reason };
    const voided = await tx.query('SELECT 1 FROM payments.voids WHERE order_id = $1', [orderId]);
    return voided.rowCount ? { declined: 'order_voided' } : undefined;
  }

  private resultOf(cmd: Envelope<DataOf<'payments.capture'>>, recorded: Recorded): Envelope {
    const { orderId } = cmd.data;
    if ('declined' in recorded) {
      return newEnvelope('payment.declined', { orderId, reason: recorded.declined }, causedBy(cmd, orderId, 1));
    }
    const c = recorded.captured;
    return newEnvelope(
      'payment.captured',
      { orderId, paymentId: c.payment_id, amount: Number(c.amount), currency: c.currency.trim() },
      causedBy(cmd, orderId, 1),
    );
  }
}
