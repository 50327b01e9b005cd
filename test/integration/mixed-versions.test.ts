// A fleet in the middle of a rolling deploy, against the real RabbitMQ, PostgreSQL and Redis:
// the notifications worker of the previous release (built with its catalog,
// test/fixtures/catalog-previous.ts: every type at v1) and of this one (order.placed v2 with
// the shipping address, order.cancelled v2 with more reasons), and producers of both. In
// either upgrade order, and with both releases on one queue, every message is handled and none
// is dead-lettered: the older consumer reads order.placed v2 as v1 (full: the field it does
// not know dropped), the newer one upcasts v1, and order.cancelled (backward only: v2's new
// reasons mean nothing to a v1 reader) is held back to v1 by this release's producers until
// every consumer reads v2 (PUBLISH_HOLD_BACK). A v2 the mode forbids reaches the older
// consumer's DLQ as it was published, naming both versions. The relay publishes what the
// hold-back says while the event store keeps the latest.
import { expect } from 'chai';
import type { GetMessage } from 'amqplib';
import { container } from 'tsyringe';
import { OutboxRelay } from '../../services/order-api/outbox';
import { loadConfig } from '../../shared/config';
import { withTransaction } from '../../shared/db';
import { DowncastError } from '../../shared/errors';
import { appendToStream } from '../../shared/event-store';
import type { DataOf, Envelope } from '../../shared/events';
import { HEADERS } from '../../shared/messaging/headers';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { Publisher } from '../../shared/messaging/publisher';
import { dlqName } from '../../shared/messaging/topology';
import { MessageValidator } from '../../shared/messaging/validator';
import { notificationsWorker } from '../../workers/notifications';
import { catalog as previousCatalog } from '../fixtures/catalog-previous';
import { validator } from '../helpers/bus';
import { dropDatabase, orderId, testDatabaseUrl, TestFleet } from '../helpers/fleet';
import { eventually } from '../helpers/wait';

const QUEUE = 'notifications.events';

/** order.placed as this release builds it: v2, with the shipping address. */
const placed = (id: string): Envelope =>
  newEnvelope(
    'order.placed',
    { orderId: id, customerId: 'c-mv', items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 9.5 }], totalAmount: 19, currency: 'EUR', shippingAddress: { city: 'Berlin', country: 'DE' } },
    { aggregateId: id, correlationId: id },
  );

/** order.cancelled as this release builds it: v2 (a step's reason names the step). */
const cancelled = (id: string, reason: DataOf<'order.cancelled'>['reason']): Envelope =>
  newEnvelope('order.cancelled', { orderId: id, reason, ...(reason.startsWith('step_') ? { failedStep: 'reserving_stock' } : {}) }, { aggregateId: id, aggregateVersion: 2, correlationId: id });

/** The same message as the previous release builds it: v1, without what only v2 has. */
function asPrevious(envelope: Envelope): Envelope {
  const { shippingAddress: _address, failedStep: _step, ...data } = envelope.data;
  return { ...envelope, schemaVersion: 1, data };
}

function header(m: GetMessage, name: string): string {
  const v: unknown = m.properties.headers?.[name];
  return Buffer.isBuffer(v) ? v.toString() : String(v);
}

describe('a rolling deploy: consumers and producers of two releases (mixed schema versions)', function () {
  this.timeout(60_000);
  // A database of its own: a relay below publishes, and marks, what it finds unsent.
  const databaseUrl = testDatabaseUrl('mixed');
  let fleet: TestFleet;
  beforeEach(async () => {
    fleet = await TestFleet.create({ databaseUrl });
  });
  afterEach(async () => {
    await fleet.cleanup();
  });
  after(async () => {
    await dropDatabase(databaseUrl);
  });

  /** The notifications worker as the previous release runs it (its catalog), or as this one does. */
  const notifications = (release: 'previous' | 'current') => fleet.start(notificationsWorker, {}, container, release === 'previous' ? { catalog: previousCatalog } : {});

  /** A producer of this release, holding back what PUBLISH_HOLD_BACK says. */
  async function currentProducer(holdBack: string): Promise<Publisher> {
    const publisher = new Publisher(fleet.connection, validator, { namespace: fleet.namespace, holdBack: loadConfig({ PUBLISH_HOLD_BACK: holdBack }).publishHoldBack });
    await publisher.start();
    return publisher;
  }

  /** A producer of the previous release: it checks what it publishes by its own catalog (v1 only). */
  async function previousProducer(): Promise<Publisher> {
    const publisher = new Publisher(fleet.connection, new MessageValidator(previousCatalog), { namespace: fleet.namespace });
    await publisher.start();
    return publisher;
  }

  /** Waits until the notifications worker recorded every message; returns what it told, by eventId. */
  async function notified(messages: Envelope[]): Promise<Map<string, string>> {
    const ids = messages.map((m) => m.eventId);
    return eventually(
      async () => {
        const r = await fleet.db.query<{ event_id: string; message: string }>('SELECT event_id, message FROM notifications.notifications WHERE event_id = ANY($1)', [ids]);
        return r.rowCount === ids.length ? new Map(r.rows.map((row) => [row.event_id, row.message])) : undefined;
      },
      { what: `${ids.length} notifications` },
    );
  }

  /** What the probe saw on the wire of each message, by eventId. */
  async function onTheWire(messages: Envelope[]): Promise<Map<string, Envelope>> {
    const ids = new Set(messages.map((m) => m.eventId));
    return eventually(
      () => {
        const seen = new Map(fleet.events.filter((e) => ids.has(e.eventId)).map((e) => [e.eventId, e]));
        return seen.size === ids.size ? seen : undefined;
      },
      { what: `${ids.size} messages on the wire` },
    );
  }

  async function expectNothingDeadLettered(): Promise<void> {
    expect(await fleet.messageCount(dlqName(QUEUE)), 'dead-lettered').to.equal(0);
    expect(await fleet.messageCount(QUEUE), 'still queued').to.equal(0);
  }

  it('producers first: the previous release handles what this one publishes (order.placed v2 read as v1, order.cancelled held back to v1)', async () => {
    await notifications('previous');
    const producer = await currentProducer('order.cancelled@1');
    const id = orderId('mv');
    const sent = [placed(id), cancelled(id, 'out_of_stock')];
    for (const e of sent) await producer.publishEnvelope(e);

    const wire = await onTheWire(sent);
    expect(wire.get(sent[0]!.eventId)).to.deep.equal(sent[0], 'order.placed v2 goes out as it is: a v1 reader reads it');
    expect(wire.get(sent[1]!.eventId)).to.deep.equal(asPrevious(sent[1]!), 'order.cancelled is held back to v1');
    const told = await notified(sent);
    expect(told.get(sent[0]!.eventId)).to.equal(`We received your order ${id} (19.00 EUR).`);
    expect(told.get(sent[1]!.eventId)).to.equal(`Your order ${id} was cancelled (out of stock).`);
    await expectNothingDeadLettered();
  });

  it('consumers first: this release handles what the previous one publishes (v1, upcast to v2)', async () => {
    await notifications('current');
    const producer = await previousProducer();
    const id = orderId('mv');
    const sent = [asPrevious(placed(id)), asPrevious(cancelled(id, 'payment_declined'))];
    for (const e of sent) await producer.publishEnvelope(e);

    const wire = await onTheWire(sent);
    expect([...wire.values()].map((e) => e.schemaVersion)).to.deep.equal([1, 1]);
    const told = await notified(sent);
    expect(told.get(sent[0]!.eventId)).to.equal(`We received your order ${id} (19.00 EUR).`);
    expect(told.get(sent[1]!.eventId)).to.equal(`Your order ${id} was cancelled (payment declined).`);
    await expectNothingDeadLettered();
  });

  it('mid-deploy: both releases consume one queue and both publish; every message is handled, none dead-lettered', async () => {
    await notifications('previous');
    await notifications('current');
    const current = await currentProducer('order.cancelled@1');
    const previous = await previousProducer();
    const sent: Envelope[] = [];
    for (let i = 0; i < 10; i++) {
      const id = orderId('mv');
      const messages = [placed(id), cancelled(id, 'customer_cancelled')];
      const [producer, batch] = i % 2 === 0 ? [current, messages] : [previous, messages.map(asPrevious)];
      for (const e of batch) await producer.publishEnvelope(e);
      sent.push(...batch);
    }
    const told = await notified(sent);
    expect(told.size).to.equal(20);
    await expectNothingDeadLettered();
  });

  it('dead-letters a newer version the mode does not let the previous release read (order.cancelled v2, not held back), as it was published, naming both versions', async () => {
    await notifications('previous');
    const id = orderId('mv');
    const v2 = cancelled(id, 'step_timed_out');
    await fleet.publisher.publishEnvelope(v2);
    const next = placed(id);
    await fleet.publisher.publishEnvelope(next);
    await notified([next]); // the queue goes on

    const dlq = dlqName(QUEUE);
    await eventually(async () => (await fleet.messageCount(dlq)) === 1, { what: 'the dead letter' });
    const [dead] = await fleet.drain(dlq);
    expect(header(dead!, HEADERS.errorType)).to.equal('PoisonMessageError');
    expect(header(dead!, HEADERS.errorMessage)).to.match(/^unknown_version: order.cancelled v2 is newer than v1, the latest this consumer knows, and order.cancelled is backward compatible only/);
    expect(JSON.parse(dead!.content.toString())).to.deep.equal(v2);
  });

  it('the relay publishes what the hold-back says while the store keeps the latest; an event v1 cannot carry stays unsent', async () => {
    // Rows the tests before it left unsent are not this test's to publish.
    await fleet.db.query('UPDATE orders.events SET sent_at = now() WHERE sent_at IS NULL');
    await notifications('previous');
    const relay = new OutboxRelay(fleet.db, await currentProducer('order.placed@1,order.cancelled@1'), { batchSize: 50 });
    const id = orderId('mv');
    const stored = await withTransaction(fleet.db, (tx) => appendToStream(tx, id, 0, [placed(id), cancelled(id, 'out_of_stock')]));
    expect((await relay.drainOnce()).published).to.equal(2);

    const wire = await onTheWire(stored);
    expect(stored.map((e) => wire.get(e.eventId))).to.deep.equal(stored.map(asPrevious));
    const rows = await fleet.db.query<{ envelope: Envelope }>('SELECT envelope FROM orders.events WHERE stream_id = $1 ORDER BY version', [id]);
    expect(rows.rows.map((r) => r.envelope)).to.deep.equal(stored, 'the store keeps v2, the shipping address included');
    await notified(stored);
    await expectNothingDeadLettered();

    const other = orderId('mv');
    const [timedOut] = await withTransaction(fleet.db, (tx) => appendToStream(tx, other, 0, [cancelled(other, 'step_timed_out')]));
    // Committed after it, in the same batch: held back by nothing.
    const next = orderId('mv');
    const [nextPlaced] = await withTransaction(fleet.db, (tx) => appendToStream(tx, next, 0, [placed(next)]));
    try {
      expect((await relay.drainOnce()).published, 'the event after it went').to.equal(1);
      const unsent = await fleet.db.query('SELECT 1 FROM orders.events WHERE event_id = $1 AND sent_at IS NULL', [timedOut!.eventId]);
      expect(unsent.rowCount, 'not lost: still in the outbox').to.equal(1);
      expect(fleet.events.some((e) => e.eventId === timedOut!.eventId), 'nothing published').to.equal(false);
      const sent = await fleet.db.query('SELECT 1 FROM orders.events WHERE event_id = $1 AND sent_at IS NOT NULL', [nextPlaced!.eventId]);
      expect(sent.rowCount, 'the event after it is marked sent').to.equal(1);
      await eventually(() => fleet.events.some((e) => e.eventId === nextPlaced!.eventId), { what: 'the event after it on the wire' });
      // Alone in its batch, it fails the batch: the relay backs off instead of spinning on it.
      await expect(relay.drainOnce()).to.be.rejectedWith(DowncastError, /order.cancelled v2 cannot be published as v1 .*"step_timed_out" is not one of the values it allows/);
      // Running, in batches of 2 that it heads each time: a full batch goes on at once, so the
      // events behind it go out without a poll (a minute here) between batches.
      const behind: Envelope[] = [];
      for (let n = 0; n < 4; n++) {
        const o = orderId('mv');
        behind.push(...(await withTransaction(fleet.db, (tx) => appendToStream(tx, o, 0, [placed(o)]))));
      }
      const running = new OutboxRelay(fleet.db, await currentProducer('order.placed@1,order.cancelled@1'), { batchSize: 2, pollMs: 60_000 });
      await running.start();
      try {
        await eventually(() => behind.every((e) => fleet.events.some((w) => w.eventId === e.eventId)), { timeoutMs: 10_000, what: 'the events behind it, batch after batch' });
      } finally {
        await running.stop();
      }
    } finally {
      await fleet.db.query('UPDATE orders.events SET sent_at = now() WHERE event_id = $1', [timedOut!.eventId]);
    }
  });
});
