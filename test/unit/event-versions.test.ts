// Aggregate versions come from one table (shared/events/aggregate-versions.ts), and the
// envelopes producers build carry them: the read model orders each order's events by them.
import { expect } from 'chai';
import { AGGREGATE_VERSIONS, aggregateVersionOf, catalog, isMessageType } from '../../shared/events';
import { causedBy, newEnvelope } from '../../shared/messaging/new-envelope';
import { SAGA_STEPS } from '../../shared/saga';

describe('aggregate versions', () => {
  it('gives every message type of the catalog a version, 0 for commands and from 1 for events', () => {
    expect(Object.keys(AGGREGATE_VERSIONS).sort()).to.deep.equal(Object.keys(catalog).sort());
    for (const type of Object.keys(catalog).filter(isMessageType)) {
      if (catalog[type].kind === 'command') expect(aggregateVersionOf(type), type).to.equal(0);
      else expect(aggregateVersionOf(type), type).to.be.at.least(1);
    }
  });

  it('places the order: placed first, then one outcome', () => {
    expect([aggregateVersionOf('order.placed'), aggregateVersionOf('order.fulfilled'), aggregateVersionOf('order.cancelled')]).to.deep.equal([1, 2, 2]);
  });

  it("places each step's answer before its compensation's", () => {
    for (const s of SAGA_STEPS) {
      expect(aggregateVersionOf(s.ok), s.ok).to.equal(aggregateVersionOf(s.fail));
      expect(aggregateVersionOf(s.undo.ok), s.undo.ok).to.be.greaterThan(aggregateVersionOf(s.ok));
    }
  });

  it('is what newEnvelope and causedBy put in an envelope, unless a test forges a history', () => {
    const placed = newEnvelope('order.placed', { orderId: 'o1', customerId: 'c', items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1 }], totalAmount: 1, currency: 'EUR' }, { aggregateId: 'o1' });
    expect(placed.aggregateVersion).to.equal(1);
    const command = newEnvelope('payments.refund', { orderId: 'o1' }, { aggregateId: 'o1' });
    expect(command.aggregateVersion).to.equal(0);
    const refunded = newEnvelope('payment.refunded', { orderId: 'o1', amount: 0 }, causedBy(command, 'o1'));
    expect(refunded).to.include({ aggregateVersion: 2, causationId: command.eventId, correlationId: command.correlationId });
    expect(newEnvelope('order.fulfilled', { orderId: 'o1' }, { aggregateId: 'o1', aggregateVersion: 7 }).aggregateVersion).to.equal(7);
  });
});
