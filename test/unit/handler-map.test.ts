// A handler map is typed by the catalog (the compiler checks each handler's envelope); at run
// time the consumer looks a message's handler up by its type, own keys only.
import { expect } from 'chai';
import { handlerFor, type HandlerMap } from '../../shared/messaging/handler';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { silentLogger } from '../../shared/observability/logger';

describe('handler maps', () => {
  const handled: string[] = [];
  const handlers: HandlerMap = {
    // No cast: the envelope is EnvelopeOf<'payments.refund'>, its data has orderId.
    'payments.refund': async (cmd) => void handled.push(cmd.data.orderId),
  };

  it('finds the handler of a message by its type', async () => {
    const refund = newEnvelope('payments.refund', { orderId: 'o-7' }, { aggregateId: 'o-7' });
    const handler = handlerFor(handlers, refund);
    expect(handler).to.be.a('function');
    await handler!(refund, { attempt: 1, redelivered: false, logger: silentLogger });
    expect(handled).to.deep.equal(['o-7']);
  });

  it('finds none for a type without a handler, even one named like an object\'s own key', () => {
    const capture = newEnvelope('payments.capture', { orderId: 'o-1', amount: 1, currency: 'EUR', paymentToken: 'tok_ok' }, { aggregateId: 'o-1' });
    expect(handlerFor(handlers, capture)).to.equal(undefined);
    for (const eventType of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(handlerFor(handlers, { ...capture, eventType }), eventType).to.equal(undefined);
    }
  });
});
