// The payment provider behind an interface, and the simulated one that implements the
// test tokens (docs/architecture.md#test-triggers) like a real provider's test cards.
import { setTimeout as sleep } from 'node:timers/promises';
import { inject, injectable } from 'tsyringe';
import type { Config } from '../../shared/config';
import { createPool, query, type Pool } from '../../shared/db';
import { TOKENS } from '../../shared/di/tokens';
import { TransientError } from '../../shared/errors';
import { chargeDecision } from './decisions';

export type ChargeResult = { outcome: 'approved'; paymentId: string } | { outcome: 'declined'; reason: string };

export interface PaymentProvider {
  /** Charges once per order (the order id is the idempotency key). Throws TransientError when unavailable. */
  charge(orderId: string, token: string, amount: number, currency: string): Promise<ChargeResult>;
}

/**
 * Answers as chargeDecision says. It keeps its call log in the database through a pool of
 * its own: it stands for an external service, and the handler holds a transaction of the
 * worker's pool while it calls.
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
    const call = row?.calls ?? 0;
    const decision = chargeDecision(token, call);
    if (decision.outcome === 'unavailable') throw new TransientError(`payment provider unavailable (call ${call} for ${orderId})`);
    if (decision.outcome === 'declined') return decision;
    return { outcome: 'approved', paymentId: `pay_${orderId}` };
  }
}
