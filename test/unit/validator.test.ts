// The validator: what a producer may publish (check), what a consumer's handler gets (read:
// older versions upcast, newer ones read as the latest its catalog knows when the type's mode
// allows it), and what a held-back producer puts on the wire (downcast).
import { expect } from 'chai';
import { Type } from '@sinclair/typebox';
import pino from 'pino';
import { Writable } from 'node:stream';
import { DowncastError, PoisonMessageError } from '../../shared/errors';
import { catalog, type Envelope } from '../../shared/events';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { MessageValidator } from '../../shared/messaging/validator';
import { catalog as previousCatalog } from '../fixtures/catalog-previous';

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
    expect(reason({ ...capture(), schemaVersion: 99 }), 'a command is backward compatible only').to.equal('unknown_version');
    expect(reason({ ...capture(), data: { orderId: 'o1', amount: -1, currency: 'EUR', paymentToken: 't' } })).to.equal('schema_validation');
    expect(reason({ ...capture(), data: { ...capture().data, extra: 1 } })).to.equal('schema_validation');
  });

  it('accepts money with two decimals and refuses a third', () => {
    const withAmount = (amount: number) => ({ ...capture(), data: { ...capture().data, amount } });
    expect(reason(withAmount(1234.57))).to.equal('valid');
    expect(reason(withAmount(19.999))).to.equal('schema_validation');
  });

  it('accepts order.cancelled of each version by its own schema: v1 still in flight, v2 with the new reasons', () => {
    const v2 = newEnvelope('order.cancelled', { orderId: 'o1', reason: 'step_timed_out', failedStep: 'reserving_stock' }, { aggregateId: 'o1', aggregateVersion: 2 });
    expect(v2.schemaVersion).to.equal(2);
    expect(reason(v2)).to.equal('valid');
    expect(reason({ ...v2, schemaVersion: 1, data: { orderId: 'o1', reason: 'out_of_stock' } })).to.equal('valid');
    expect(reason({ ...v2, schemaVersion: 1 }), 'v1 knows neither the new reason nor failedStep').to.equal('schema_validation');
  });

  it('knows the exchange of every type in the catalog', () => {
    expect(validator.exchangeOf('order.placed')).to.equal('orders');
    expect(validator.exchangeOf('payments.capture')).to.equal('commands');
    expect(validator.exchangeOf('toString')).to.equal(undefined);
  });

  describe('a consumer reading another version than its latest', () => {
    const orderId = 'o1';
    const placedV1 = { orderId, customerId: 'c-1', items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 9.5 }], totalAmount: 19, currency: 'EUR' };
    const placedV2 = newEnvelope('order.placed', { ...placedV1, shippingAddress: { city: 'Berlin', country: 'DE' } }, { aggregateId: orderId });
    const cancelledV2 = (reason: 'out_of_stock' | 'step_timed_out') =>
      newEnvelope('order.cancelled', { orderId, reason, ...(reason === 'step_timed_out' ? { failedStep: 'reserving_stock' } : {}) }, { aggregateId: orderId, aggregateVersion: 2 });
    const json = (e: unknown) => Buffer.from(JSON.stringify(e));

    /** A validator of the previous release, and what it logs. */
    function previousRelease(): { validator: MessageValidator; logged: Array<Record<string, unknown>> } {
      const logged: Array<Record<string, unknown>> = [];
      const sink = new Writable({ write: (chunk: Buffer, _enc, done) => done(void logged.push(JSON.parse(chunk.toString()) as Record<string, unknown>)) });
      return { validator: new MessageValidator(previousCatalog, { logger: pino({ level: 'info' }, sink) }), logged };
    }

    it('upcasts an older version to the latest: a v1 order.placed and order.cancelled reach the handler as v2', () => {
      const v1 = { ...placedV2, schemaVersion: 1, data: placedV1 };
      expect(validator.parse(json(v1))).to.deep.equal({ ...v1, schemaVersion: 2 });
      const cancelled = { ...cancelledV2('out_of_stock'), schemaVersion: 1 };
      expect(validator.parse(json(cancelled))).to.deep.equal({ ...cancelled, schemaVersion: 2 });
    });

    it('reads a newer version of a full type as its latest, the fields it does not know dropped, and says so once per type and version', () => {
      const { validator: old, logged } = previousRelease();
      const read = old.read(placedV2);
      expect(read).to.deep.equal({ ...placedV2, schemaVersion: 1, data: placedV1 });
      expect(placedV2.data, 'the message as delivered is not changed').to.have.property('shippingAddress');
      old.read(newEnvelope('order.placed', placedV2.data, { aggregateId: 'o2' }));
      expect(logged.map((l) => [l.msg, l.eventType, l.schemaVersion, l.readAs])).to.deep.equal([
        ['a newer schema version is on the wire: reading it as the latest this consumer knows, its unknown fields ignored', 'order.placed', 2, 1],
      ]);
    });

    it('dead-letters a newer version of a backward-only type, naming both versions', () => {
      const { validator: old } = previousRelease();
      expect(() => old.read(cancelledV2('out_of_stock')))
        .to.throw(PoisonMessageError, /^unknown_version: order.cancelled v2 is newer than v1, the latest this consumer knows, and order.cancelled is backward compatible only/)
        .with.property('reason', 'unknown_version');
    });

    it('dead-letters a newer version of a full type whose data its latest cannot read, naming both versions', () => {
      const fulfilled = newEnvelope('order.fulfilled', { orderId }, { aggregateId: orderId });
      expect(validator.read({ ...fulfilled, schemaVersion: 2, data: { orderId, courier: 'x' } })).to.deep.equal({ ...fulfilled, schemaVersion: 1 });
      expect(() => validator.read({ ...fulfilled, schemaVersion: 2, data: { courier: 'x' } })).to.throw(PoisonMessageError, /^schema_validation: order.fulfilled v2 read as v1, the latest this consumer knows: \/ must have required property 'orderId'/);
    });

    it('gives the handler data valid under its latest: an older field the latest dropped is dropped, and a required one no upcaster fills is poison', () => {
      const Note = Type.Object({ orderId: Type.String(), note: Type.Optional(Type.String()) }, { additionalProperties: false });
      const Bare = Type.Object({ orderId: Type.String() }, { additionalProperties: false });
      const Region = Type.Object({ orderId: Type.String(), region: Type.String() }, { additionalProperties: false });
      const own = new MessageValidator({
        'x.noted': { exchange: 'x', kind: 'event', latest: 2, compatibility: 'full', versions: { 1: Note, 2: Bare } },
        'x.placed': { exchange: 'x', kind: 'event', latest: 2, compatibility: 'forward', versions: { 1: Bare, 2: Region } },
      });
      const noted = { ...placedV2, eventType: 'x.noted', schemaVersion: 1, data: { orderId, note: 'leave at the door' } };
      expect(own.read(noted)).to.deep.equal({ ...noted, schemaVersion: 2, data: { orderId } });
      const placed = { ...placedV2, eventType: 'x.placed', schemaVersion: 1, data: { orderId } };
      expect(() => own.read(placed)).to.throw(PoisonMessageError, /^schema_validation: x.placed v1 read as v2, the latest this consumer knows: \/ must have required property 'region'/);
    });

    it('checks a message as it is for a producer: no upcast, and an unknown version refused', () => {
      const v1 = { ...placedV2, schemaVersion: 1, data: placedV1 };
      expect(validator.check(v1)).to.equal(v1);
      expect(() => validator.check({ ...placedV2, schemaVersion: 3 })).to.throw(PoisonMessageError, /^unknown_version: order.placed v3 is not in this catalog \(its latest is v2\)/);
      expect(() => previousRelease().validator.check(placedV2), 'the previous release cannot publish v2').to.throw(PoisonMessageError, /unknown_version: order.placed v2/);
    });
  });

  describe('downcast (a producer holding a type back)', () => {
    const placed = newEnvelope('order.placed', { orderId: 'o1', customerId: 'c', items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1 }], totalAmount: 1, currency: 'EUR', shippingAddress: { city: 'Berlin', country: 'DE' } }, { aggregateId: 'o1' });

    it('drops the fields the older version does not have, and leaves the envelope it was given as it was', () => {
      const held = validator.downcast(placed, 1);
      const { shippingAddress: _dropped, ...v1 } = placed.data;
      expect(held).to.deep.equal({ ...placed, schemaVersion: 1, data: v1 });
      expect(placed.schemaVersion).to.equal(2);
      expect(placed.data).to.have.property('shippingAddress');
      const cancelled = newEnvelope('order.cancelled', { orderId: 'o1', reason: 'out_of_stock', failedStep: 'reserving_stock' }, { aggregateId: 'o1', aggregateVersion: 2 });
      expect(validator.downcast(cancelled, 1).data).to.deep.equal({ orderId: 'o1', reason: 'out_of_stock' });
    });

    it('refuses data the older version cannot carry, naming the versions and the value', () => {
      const cancelled = newEnvelope('order.cancelled', { orderId: 'o1', reason: 'step_timed_out', failedStep: 'reserving_stock' }, { aggregateId: 'o1', aggregateVersion: 2 });
      expect(() => validator.downcast(cancelled, 1)).to.throw(DowncastError, 'order.cancelled v2 cannot be published as v1 (held back by PUBLISH_HOLD_BACK): /reason "step_timed_out" is not one of the values it allows');
    });

    it('leaves a message at or below the version as it is', () => {
      const v1: Envelope = { ...placed, schemaVersion: 1 };
      expect(validator.downcast(v1, 1)).to.equal(v1);
      expect(validator.downcast(placed, 2)).to.equal(placed);
      expect(validator.downcast(placed, 5)).to.equal(placed);
    });
  });
});
