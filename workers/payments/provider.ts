// The payment provider behind an interface, and the simulated one that implements the
// test tokens of DESIGN.md like a real provider's test cards.
import { setTimeout as sleep } from 'node:timers/promises';
import { inject, injectable } from 'tsyringe';
import type { Config } from '../../shared/config';
import { createPool, query, type Pool } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import { TransientError } from '../../shared/errors';

export type ChargeResult = { outcome: 'approved'; paymentId: string } | { outcome: 'declined'; reason: string };

export interface PaymentProvider {
  /** Charges once per order (the order id is the idempotency key). Throws TransientError when unavailable. */
  charge(orderId: string, token: string, amount: number, currency: string): Promise<ChargeResult>;
}

export const TEST_TOKENS = { ok: 'tok_ok', decline: 'tok_decline', flaky: 'tok_flaky' } as const;

/**
 * tok_ok approves; tok_decline declines; tok_flaky is unavailable for the first two calls per
 * order. It keeps its call log in the database through a pool of its own: it stands for an
 * external service, and the handler holds a transaction of the worker's pool while it calls.
 */
@injectable()
export class SimulatedPaymentProvider implements PaymentProvider {
  private readonly latencyMs: number;
  private readonly db: Pool;

  constructor(@inject(TOKENS.Config) config: Pick<Config, 'paymentProviderLatencyMs' | 'databaseUrl'>) {
    this.latencyMs = config.paymentProviderLatencyMs;
    this.db = createPool(config.databaseUrl, 'payment-provider', 10);
  }

  async close(): Promise<void> {
    await this.db.end();
  }

  async charge(orderId: string, token: string, _amount: number, _currency: string): Promise<ChargeResult> {
    const [row] = await query<{ calls: number }>(
      this.db,
      `INSERT INTO payments.provider_calls (order_id, calls) VALUES ($1, 1)
       ON CONFLICT (order_id) DO UPDATE SET calls = payments.provider_calls.calls + 1
       RETURNING calls`,
      [orderId],
    );
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    if (token === TEST_TOKENS.decline) return { outcome: 'declined', reason: 'card_declined' };
    if (token === TEST_TOKENS.flaky && (row?.calls ?? 0) <= 2) {
      throw new TransientError(`payment provider unavailable (call ${row?.calls ?? 0} for ${orderId})`);
    }
    if (token !== TEST_TOKENS.ok && token !== TEST_TOKENS.flaky) return { outcome: 'declined', reason: 'unknown_payment_token' };
    return { outcome: 'approved', paymentId: `pay_${orderId}` };
  }
}
