// The payments worker's business rules, without a database or a broker: which charges the
// simulated provider approves (the test tokens), and what a capture answers given what is
// already recorded for the order.
import { expect } from 'chai';
import { captureDecision, chargeDecision, TEST_TOKENS, type PaymentRecord } from '../../workers/payments/decisions';

describe('payments decisions', () => {
  describe('chargeDecision: the simulated provider', () => {
    it('given tok_ok, when it is charged, then it is approved', () => {
      expect(chargeDecision(TEST_TOKENS.ok, 1)).to.deep.equal({ outcome: 'approved' });
    });

    it('given tok_decline, when it is charged, then it is declined as card_declined, every time', () => {
      for (const call of [1, 2, 3]) expect(chargeDecision(TEST_TOKENS.decline, call)).to.deep.equal({ outcome: 'declined', reason: 'card_declined' });
    });

    it('given tok_flaky, when it is charged, then the provider is unavailable twice and approves the third call', () => {
      expect([1, 2, 3, 4].map((call) => chargeDecision(TEST_TOKENS.flaky, call).outcome)).to.deep.equal(['unavailable', 'unavailable', 'approved', 'approved']);
    });

    it('given a token it does not know, when it is charged, then it is declined as unknown_payment_token', () => {
      for (const token of ['tok_other', '', 'TOK_OK']) expect(chargeDecision(token, 1)).to.deep.equal({ outcome: 'declined', reason: 'unknown_payment_token' });
    });
  });

  describe('captureDecision: a capture and what is recorded', () => {
    const nothing: PaymentRecord = { voided: false };
    const capture = { paymentId: 'pay_o1', amount: 42.5, currency: 'EUR' };

    it('given nothing recorded for the order, when a capture arrives, then it charges', () => {
      expect(captureDecision(nothing)).to.deep.equal({ charge: true });
    });

    it('given a capture recorded, when the capture arrives again, then it answers that capture without charging', () => {
      expect(captureDecision({ ...nothing, capture })).to.deep.equal({ answer: { captured: capture } });
    });

    it('given a decline recorded, when the capture arrives again, then it answers the same decline', () => {
      expect(captureDecision({ ...nothing, declined: 'card_declined' })).to.deep.equal({ answer: { declined: 'card_declined' } });
    });

    it('given a refund that came first (the order is voided), when the capture arrives, then it is declined as order_voided and nothing is charged', () => {
      expect(captureDecision({ voided: true })).to.deep.equal({ answer: { declined: 'order_voided' } });
    });

    it('given a capture and a void both recorded, when the capture arrives again, then the capture wins: it happened first', () => {
      expect(captureDecision({ capture, voided: true })).to.deep.equal({ answer: { captured: capture } });
    });
  });
});
