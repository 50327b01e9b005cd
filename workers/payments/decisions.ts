// The payments worker's business rules as pure functions, apart from the database and the
// broker: which charges the simulated provider approves, and what a capture answers given
// what is already recorded for the order. Unit-tested in test/unit/payments-decisions.test.ts.

/** The test tokens, like a real provider's test cards (docs/architecture.md#test-triggers). */
export const TEST_TOKENS = { ok: 'tok_ok', decline: 'tok_decline', flaky: 'tok_flaky' } as const;

export type ChargeDecision = { outcome: 'approved' } | { outcome: 'declined'; reason: string } | { outcome: 'unavailable' };

/**
 * What the simulated provider answers the `call`-th charge (1-based) of an order: tok_ok is
 * approved, tok_decline declined, tok_flaky unavailable on its first two calls and then
 * approved, and any other token declined.
 */
export function chargeDecision(token: string, call: number): ChargeDecision {
  if (token === TEST_TOKENS.decline) return { outcome: 'declined', reason: 'card_declined' };
  if (token === TEST_TOKENS.flaky && call <= 2) return { outcome: 'unavailable' };
  if (token !== TEST_TOKENS.ok && token !== TEST_TOKENS.flaky) return { outcome: 'declined', reason: 'unknown_payment_token' };
  return { outcome: 'approved' };
}

export interface Capture {
  paymentId: string;
  amount: number;
  currency: string;
}

/** What the payments schema holds for one order. */
export interface PaymentRecord {
  capture?: Capture;
  /** The reason of an earlier decline. */
  declined?: string;
  /** A refund found nothing to refund: the saga gave up on this order's payment. */
  voided: boolean;
}

export type CaptureAnswer = { captured: Capture } | { declined: string };

/**
 * A capture answers with what is recorded (a repeated command acts once), and a capture that
 * arrives after its refund never charges: it is declined as order_voided. Otherwise it charges.
 */
export function captureDecision(record: PaymentRecord): { answer: CaptureAnswer } | { charge: true } {
  if (record.capture) return { answer: { captured: record.capture } };
  if (record.declined !== undefined) return { answer: { declined: record.declined } };
  if (record.voided) return { answer: { declined: 'order_voided' } };
  return { charge: true };
}
