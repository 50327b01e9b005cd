// Payments: capture and refund, idempotent per order. The database holds one capture per
// order and refunds only of what was captured; a repeated command answers with the result
// already recorded instead of acting again. A capture and a refund of one order never run
// at once (a per-order lock held across the provider call), and a refund that finds no
// capture voids the order, so a capture arriving after it is declined, not charged. The
// decisions themselves are pure functions in decisions.ts.
import { inject, injectable } from 'tsyringe';
import { lockKey, withTransaction, type Pool, type PoolClient } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import type { Envelope, EnvelopeOf } from '../../shared/events';
import type { HandlerMap, HandlerResult } from '../../shared/messaging/handler';
import { causedBy, newEnvelope } from '../../shared/messaging/new-envelope';
import { captureDecision, type Capture, type CaptureAnswer, type PaymentRecord } from './decisions';
import type { PaymentProvider } from './provider';

interface CaptureRow {
  payment_id: string;
  amount: string;
  currency: string;
}

const captureOf = (row: CaptureRow): Capture => ({ paymentId: row.payment_id, amount: Number(row.amount), currency: row.currency });

@injectable()
export class PaymentsHandler {
  constructor(
    @inject(TOKENS.Db) private readonly db: Pool,
    @inject(TOKENS.PaymentProvider) private readonly provider: PaymentProvider,
  ) {}

  readonly handlers: HandlerMap = {
    'payments.capture': (cmd) => this.capture(cmd),
    'payments.refund': (cmd) => this.refund(cmd),
  };

  async capture(cmd: EnvelopeOf<'payments.capture'>): Promise<HandlerResult> {
    const { orderId, amount, currency, paymentToken } = cmd.data;
    const answer = await withTransaction(this.db, async (tx): Promise<CaptureAnswer> => {
      await lockKey(tx, `payments:${orderId}`);
      const decision = captureDecision(await this.record(tx, orderId));
      if ('answer' in decision) return decision.answer;
      const charge = await this.provider.charge(orderId, paymentToken, amount, currency);
      if (charge.outcome === 'declined') {
        await tx.query('INSERT INTO payments.declines (order_id, reason) VALUES ($1, $2)', [orderId, charge.reason]);
        return { declined: charge.reason };
      }
      await tx.query('INSERT INTO payments.captures (order_id, payment_id, amount, currency) VALUES ($1, $2, $3, $4)', [orderId, charge.paymentId, amount, currency]);
      // As the column holds it (two decimals), so that a repeat answers the same amount.
      return { captured: { paymentId: charge.paymentId, amount: Number(amount.toFixed(2)), currency } };
    });
    return { publish: [this.resultOf(cmd, answer)] };
  }

  async refund(cmd: EnvelopeOf<'payments.refund'>): Promise<HandlerResult> {
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
      // The refund references its capture by amount: the numeric text as stored, not a float.
      await tx.query('INSERT INTO payments.refunds (order_id, amount) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING', [orderId, row.amount]);
      return captureOf(row);
    });
    const event = newEnvelope(
      'payment.refunded',
      refunded ? { orderId, amount: refunded.amount, currency: refunded.currency } : { orderId, amount: 0 },
      causedBy(cmd, orderId),
    );
    return { publish: [event] };
  }

  private async record(tx: PoolClient, orderId: string): Promise<PaymentRecord> {
    const captured = await tx.query<CaptureRow>('SELECT payment_id, amount, currency FROM payments.captures WHERE order_id = $1', [orderId]);
    const declined = await tx.query<{ reason: string }>('SELECT reason FROM payments.declines WHERE order_id = $1', [orderId]);
    const voided = await tx.query('SELECT 1 FROM payments.voids WHERE order_id = $1', [orderId]);
    return {
      ...(captured.rows[0] ? { capture: captureOf(captured.rows[0]) } : {}),
      ...(declined.rows[0] ? { declined: declined.rows[0].reason } : {}),
      voided: (voided.rowCount ?? 0) > 0,
    };
  }

  private resultOf(cmd: EnvelopeOf<'payments.capture'>, answer: CaptureAnswer): Envelope {
    const { orderId } = cmd.data;
    if ('declined' in answer) return newEnvelope('payment.declined', { orderId, reason: answer.declined }, causedBy(cmd, orderId));
    const { paymentId, amount, currency } = answer.captured;
    return newEnvelope('payment.captured', { orderId, paymentId, amount, currency }, causedBy(cmd, orderId));
  }
}
