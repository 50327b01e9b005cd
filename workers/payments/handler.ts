// Payments: capture and refund, idempotent per order. The database holds one capture per
// order and refunds only of what was captured; a repeated command answers with the result
// already recorded instead of acting again.
import { inject, injectable } from 'tsyringe';
import { withTransaction, query, type Pool } from '../../shared/db';
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
    const earlier = await this.recorded(orderId);
    if (earlier) return { publish: [this.resultOf(cmd, earlier)] };

    const charge = await this.provider.charge(orderId, paymentToken, amount, currency);
    if (charge.outcome === 'declined') {
      await query(this.db, 'INSERT INTO payments.declines (order_id, reason) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING', [orderId, charge.reason]);
    } else {
      await query(
        this.db,
        `INSERT INTO payments.captures (order_id, payment_id, amount, currency) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id) DO NOTHING`,
        [orderId, charge.paymentId, amount, currency],
      );
    }
    // Whatever a concurrent duplicate recorded first is the answer.
    const recorded = await this.recorded(orderId);
    if (!recorded) throw new Error(`payment of ${orderId} was not recorded`);
    return { publish: [this.resultOf(cmd, recorded)] };
  }

  async refund(cmd: Envelope<DataOf<'payments.refund'>>): Promise<HandlerResult> {
    const { orderId } = cmd.data;
    const refunded = await withTransaction(this.db, async (tx) => {
      const capture = await tx.query<CaptureRow>('SELECT payment_id, amount, currency FROM payments.captures WHERE order_id = $1 FOR UPDATE', [orderId]);
      const row = capture.rows[0];
      if (!row) return undefined; // never captured: nothing to refund, nothing changes
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

  private async recorded(orderId: string): Promise<{ captured: CaptureRow } | { declined: string } | undefined> {
    const [captured] = await query<CaptureRow>(this.db, 'SELECT payment_id, amount, currency FROM payments.captures WHERE order_id = $1', [orderId]);
    if (captured) return { captured };
    const [declined] = await query<{ reason: string }>(this.db, 'SELECT reason FROM payments.declines WHERE order_id = $1', [orderId]);
    return declined ? { declined: declined.reason } : undefined;
  }

  private resultOf(cmd: Envelope<DataOf<'payments.capture'>>, recorded: { captured: CaptureRow } | { declined: string }): Envelope {
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
