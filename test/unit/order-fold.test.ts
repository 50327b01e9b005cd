// The order as a pure fold of its events, its decisions, and upcasting: no services.
import { expect } from 'chai';
import type { RecordedEvent } from '../../shared/event-store';
import { catalog, isMessageType, type Envelope } from '../../shared/events';
import { UPCASTERS, upcast } from '../../shared/events/upcast';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { MessageValidator } from '../../shared/messaging/validator';
import { decideCancellationRequest, decideOutcome, foldOrder, type OrderState } from '../../shared/orders/order';

const orderId = 'ord_fold';
const placedData = { orderId, customerId: 'c-1', items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 5 }], totalAmount: 10, currency: 'EUR' };

/** A stream of the given envelopes, versions 1, 2, 3, … read back as the store does (upcast). */
const stream = (...envelopes: Envelope[]): RecordedEvent[] =>
  envelopes.map((e, i) => ({ position: String(i + 1), streamId: orderId, version: i + 1, envelope: upcast({ ...e, aggregateVersion: i + 1 }) }));

describe('the order, folded from its events', () => {
  it('is nothing before order.placed, and accepted with its details after it', () => {
    expect(foldOrder([])).to.equal(undefined);
    expect(foldOrder(stream(newEnvelope('order.fulfilled', { orderId }, { aggregateId: orderId })))).to.equal(undefined);
    const placed = newEnvelope('order.placed', { ...placedData, shippingAddress: { city: 'Lyon', country: 'FR' } }, { aggregateId: orderId });
    const order = foldOrder(stream(placed))!;
    expect(order).to.deep.include({ orderId, status: 'accepted', customerId: 'c-1', totalAmount: 10, currency: 'EUR', cancellationRequested: false, placedAt: placed.occurredAt });
    expect(order.shippingAddress).to.deep.equal({ city: 'Lyon', country: 'FR' });
    expect(order.history).to.deep.equal([{ eventType: 'order.placed', occurredAt: placed.occurredAt, aggregateVersion: 1 }]);
  });

  it('takes a cancellation request, then the outcome, each in its history at its version', () => {
    const order = foldOrder(
      stream(
        newEnvelope('order.placed', placedData, { aggregateId: orderId }),
        newEnvelope('order.cancellation_requested', { orderId }, { aggregateId: orderId }),
        newEnvelope('order.cancelled', { orderId, reason: 'step_failed', failedStep: 'reserving_stock' }, { aggregateId: orderId }),
      ),
    )!;
    expect(order).to.deep.include({ status: 'cancelled', cancellationRequested: true, cancellationReason: 'step_failed', failedStep: 'reserving_stock' });
    expect(order.history.map((h) => [h.eventType, h.aggregateVersion])).to.deep.equal([
      ['order.placed', 1],
      ['order.cancellation_requested', 2],
      ['order.cancelled', 3],
    ]);
  });

  it('folds a stream written with v1 events, upcast on read to the versions the fold expects', () => {
    const v1 = (e: Envelope): Envelope => ({ ...e, schemaVersion: 1 });
    const events = stream(
      v1(newEnvelope('order.placed', placedData, { aggregateId: orderId })),
      v1(newEnvelope('order.cancelled', { orderId, reason: 'out_of_stock' }, { aggregateId: orderId })),
    );
    expect(events.map((e) => e.envelope.schemaVersion)).to.deep.equal([catalog['order.placed'].latest, catalog['order.cancelled'].latest]);
    const order = foldOrder(events)!;
    expect(order).to.deep.include({ status: 'cancelled', cancellationReason: 'out_of_stock', customerId: 'c-1', totalAmount: 10 });
    expect(order.shippingAddress).to.equal(undefined); // v1 had none
  });

  it('decides: a cancellation request is recorded once and refused on a final order; an outcome is recorded once, and the first stands', () => {
    const accepted = foldOrder(stream(newEnvelope('order.placed', placedData, { aggregateId: orderId })))!;
    const requested: OrderState = { ...accepted, cancellationRequested: true };
    const fulfilled: OrderState = { ...accepted, status: 'fulfilled' };
    expect([decideCancellationRequest(accepted), decideCancellationRequest(requested), decideCancellationRequest(fulfilled)]).to.deep.equal(['record', 'already_requested', 'final']);
    expect(decideOutcome(accepted, { outcome: 'fulfilled' })).to.equal('record');
    expect(decideOutcome(fulfilled, { outcome: 'fulfilled' })).to.equal('already_recorded');
    expect(decideOutcome(fulfilled, { outcome: 'cancelled', reason: 'customer_cancelled' })).to.equal('ended_otherwise');
  });
});

describe('upcasting', () => {
  const validator = new MessageValidator();

  it('brings each older version of order.placed and order.cancelled (the types with one) to the latest, valid under its schema', () => {
    // An example of each version is the latest's data, valid under the older schema by the
    // evolution rules only where it has no newer field: the fixtures name one per type.
    const examples: Record<string, Record<string, unknown>> = {
      'order.placed': placedData,
      'order.cancelled': { orderId, reason: 'payment_declined' },
    };
    for (const [type, data] of Object.entries(examples)) {
      if (!isMessageType(type)) throw new Error(type);
      for (let v = 1; v < catalog[type].latest; v++) {
        const up = upcast({ ...newEnvelope(type, data as never, { aggregateId: orderId }), schemaVersion: v });
        expect(up.schemaVersion, `${type} v${v}`).to.equal(catalog[type].latest);
        expect(() => validator.check(up), `${type} v${v}`).not.to.throw();
      }
    }
  });

  it('has steps only for types and versions the catalog has, and leaves the latest and unknown types as they are', () => {
    for (const [type, steps] of Object.entries(UPCASTERS)) {
      expect(isMessageType(type), type).to.equal(true);
      for (const v of Object.keys(steps ?? {})) expect(Number(v), `${type} step ${v}`).to.be.within(1, catalog[type as keyof typeof catalog].latest - 1);
    }
    const latest = newEnvelope('order.fulfilled', { orderId }, { aggregateId: orderId });
    expect(upcast(latest)).to.equal(latest);
    const unknown = { ...latest, eventType: 'order.teleported', schemaVersion: 1 };
    expect(upcast(unknown)).to.equal(unknown);
  });
});
