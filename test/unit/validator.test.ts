import { expect } from 'chai';
import { PoisonMessageError } from '../../shared/errors';
import { catalog } from '../../shared/events';
import { newEnvelope } from '../../shared/messaging/envelope';
import { MessageValidator } from '../../shared/messaging/validator';

const validator = new MessageValidator();
const capture = () => newEnvelope('payments.capture', { orderId: 'o1', amount: 19.99, currency: 'EUR', paymentToken: 'tok_ok' }, { aggregateId: 'o1' });

function reason(body: unknown): string {
  try {
    validator.parse(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
    return 'valid';
  } catch (err) {
    expect(err).to.be.instanceOf(PoisonMessageError);
    return (err as PoisonMessageError).reason;
  }
}

describe('message validation', () => {
  it('accepts a well-formed envelope and returns it', () => {
    const e = capture();
    expect(validator.parse(Buffer.from(JSON.stringify(e)))).to.deep.equal(e);
  });

  it('builds envelopes with a ULID, the latest schema version and correlation defaults', () => {
    const e = capture();
    expect(e.eventId).to.match(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(e.schemaVersion).to.equal(catalog['payments.capture'].latest);
    expect(e.correlationId).to.equal(e.eventId);
    expect(e.causationId).to.equal(e.eventId);
  });

  it('tells bad JSON, a bad envelope, an unknown type or version and a schema failure apart', () => {
    expect(reason('{"a":')).to.equal('bad_json');
    expect(reason('[1,2]')).to.equal('invalid_envelope');
    expect(reason({ ...capture(), eventId: 'not-a-ulid' })).to.equal('invalid_envelope');
    expect(reason({ ...capture(), forged: true })).to.equal('invalid_envelope');
    expect(reason({ ...capture(), eventType: 'payments.teleport' })).to.equal('unknown_type');
    expect(reason({ ...capture(), schemaVersion: 99 })).to.equal('unknown_type');
    expect(reason({ ...capture(), data: { orderId: 'o1', amount: -1, currency: 'EUR', paymentToken: 't' } })).to.equal('schema_validation');
    expect(reason({ ...capture(), data: { ...capture().data, extra: 1 } })).to.equal('schema_validation');
  });

  it('accepts money with two decimals and refuses a third', () => {
    const withAmount = (amount: number) => ({ ...capture(), data: { ...capture().data, amount } });
    expect(reason(withAmount(1234.57))).to.equal('valid');
    expect(reason(withAmount(19.999))).to.equal('schema_validation');
  });

  it('knows the exchange of every type in the catalog', () => {
    expect(validator.exchangeOf('order.placed')).to.equal('orders');
    expect(validator.exchangeOf('payments.capture')).to.equal('commands');
    expect(validator.exchangeOf('toString')).to.equal(undefined);
  });
});
