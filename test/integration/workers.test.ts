// Each worker's commands by each outcome, through the real bus, RabbitMQ, Redis and PostgreSQL.
import { expect } from 'chai';
import Redis from 'ioredis';
import type { Envelope } from '../../shared/events';
import { inventoryWorker } from '../../workers/inventory';
import { notificationsWorker } from '../../workers/notifications';
import { paymentsWorker } from '../../workers/payments';
import { shippingWorker } from '../../workers/shipping';
import { orderId, TestFleet } from '../helpers/fleet';
import { eventually } from '../helpers/wait';

const replyTo = { workflowId: 'order-x', activityId: '7' };

/** The result carries the command's correlation: correlationId, causationId = command id, replyTo. */
function expectCorrelated(result: Envelope, command: Envelope): void {
  expect(result.correlationId).to.equal(command.correlationId);
  expect(result.causationId).to.equal(command.eventId);
  expect(result.replyTo).to.deep.equal(command.replyTo);
}

describe('worker fleet', function () {
  this.timeout(60_000);
  let fleet: TestFleet;
  beforeEach(async () => {
    fleet = await TestFleet.create();
  });
  afterEach(async () => {
    await fleet.cleanup();
  });

  describe('payments', () => {
    beforeEach(async () => {
      await fleet.start(paymentsWorker);
    });

    it('captures with tok_ok', async () => {
      const id = orderId();
      const cmd = await fleet.send('payments.capture', { orderId: id, amount: 42.5, currency: 'EUR', paymentToken: 'tok_ok' }, { replyTo, correlationId: 'corr-1' });
      const result = await fleet.resultOf(cmd);
      expect(result.eventType).to.equal('payment.captured');
      expect(result.data).to.deep.equal({ orderId: id, paymentId: `pay_${id}`, amount: 42.5, currency: 'EUR' });
      expectCorrelated(result, cmd);
      const rows = await fleet.db.query('SELECT amount FROM payments.captures WHERE order_id = $1', [id]);
      expect(rows.rows).to.deep.equal([{ amount: '42.50' }]);
    });

    it('declines tok_decline without retrying it', async () => {
      const id = orderId();
      const cmd = await fleet.send('payments.capture', { orderId: id, amount: 10, currency: 'EUR', paymentToken: 'tok_decline' }, { replyTo });
      const result = await fleet.resultOf(cmd);
      expect(result.eventType).to.equal('payment.declined');
      expect(result.data).to.deep.equal({ orderId: id, reason: 'card_declined' });
      expectCorrelated(result, cmd);
      const calls = await fleet.db.query<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = $1', [id]);
      expect(calls.rows[0]?.calls).to.equal(1);
      expect((await fleet.db.query('SELECT 1 FROM payments.captures WHERE order_id = $1', [id])).rowCount).to.equal(0);
    });

    it('retries tok_flaky through two transient failures, then captures once', async () => {
      const id = orderId();
      const cmd = await fleet.send('payments.capture', { orderId: id, amount: 5, currency: 'USD', paymentToken: 'tok_flaky' });
      const result = await fleet.resultOf(cmd, 30_000);
      expect(result.eventType).to.equal('payment.captured');
      const calls = await fleet.db.query<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = $1', [id]);
      expect(calls.rows[0]?.calls).to.equal(3);
      expect(fleet.causedBy(cmd)).to.have.length(1);
    });

    it('refunds exactly what was captured, once', async () => {
      const id = orderId();
      await fleet.resultOf(await fleet.send('payments.capture', { orderId: id, amount: 19.99, currency: 'EUR', paymentToken: 'tok_ok' }));
      const refund = await fleet.send('payments.refund', { orderId: id }, { replyTo });
      const result = await fleet.resultOf(refund);
      expect(result.eventType).to.equal('payment.refunded');
      expect(result.data).to.deep.equal({ orderId: id, amount: 19.99, currency: 'EUR' });
      expectCorrelated(result, refund);
      const again = await fleet.resultOf(await fleet.send('payments.refund', { orderId: id }));
      expect(again.data).to.deep.equal(result.data);
      const rows = await fleet.db.query('SELECT amount FROM payments.refunds WHERE order_id = $1', [id]);
      expect(rows.rows).to.deep.equal([{ amount: '19.99' }]);
    });

    it('succeeds in refunding an order that was never captured, and changes nothing', async () => {
      const id = orderId();
      const result = await fleet.resultOf(await fleet.send('payments.refund', { orderId: id }));
      expect(result.eventType).to.equal('payment.refunded');
      expect(result.data).to.deep.equal({ orderId: id, amount: 0 });
      expect((await fleet.db.query('SELECT 1 FROM payments.refunds WHERE order_id = $1', [id])).rowCount).to.equal(0);
    });

    it('emits the same result event, id and all, for a command handled again after Redis lost its dedup marker (found by the chaos run)', async () => {
      const id = orderId();
      const cmd = await fleet.send('payments.capture', { orderId: id, amount: 3, currency: 'EUR', paymentToken: 'tok_ok' }, { replyTo });
      const first = await fleet.resultOf(cmd);
      const redis = new Redis(fleet.config.redisUrl);
      try {
        expect(await redis.del(`dedup:payments:${cmd.eventId}`)).to.equal(1); // what a Redis restart does
      } finally {
        redis.disconnect();
      }
      await fleet.publisher.publishEnvelope(cmd);
      const results = await eventually(() => (fleet.causedBy(cmd).length === 2 ? fleet.causedBy(cmd) : undefined), { what: 'a second result' });
      expect(results[1]!.eventId).to.equal(first.eventId);
      expect(results[1]!.data).to.deep.equal(first.data);
    });

    it('charges once for a capture delivered five times, and emits the same result five times', async () => {
      const id = orderId();
      const cmd = await fleet.send('payments.capture', { orderId: id, amount: 7.25, currency: 'EUR', paymentToken: 'tok_ok' }, { replyTo });
      for (let i = 0; i < 4; i++) await fleet.publisher.publishEnvelope(cmd);
      const results = await eventually(() => (fleet.causedBy(cmd).length === 5 ? fleet.causedBy(cmd) : undefined), { what: 'five results' });
      for (const r of results) expect(r).to.deep.equal(results[0]);
      const calls = await fleet.db.query<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = $1', [id]);
      expect(calls.rows[0]?.calls).to.equal(1);
      expect((await fleet.db.query('SELECT 1 FROM payments.captures WHERE order_id = $1', [id])).rowCount).to.equal(1);
    });

    it('charges nothing for a capture that arrives after its refund (the saga gave up on it)', async () => {
      const id = orderId();
      expect((await fleet.resultOf(await fleet.send('payments.refund', { orderId: id }))).data).to.deep.equal({ orderId: id, amount: 0 });
      const late = await fleet.resultOf(await fleet.send('payments.capture', { orderId: id, amount: 9, currency: 'EUR', paymentToken: 'tok_ok' }));
      expect(late.eventType).to.equal('payment.declined');
      expect((await fleet.db.query('SELECT 1 FROM payments.provider_calls WHERE order_id = $1', [id])).rowCount).to.equal(0);
    });

    it('refunds a capture that was still in flight when the refund arrived', async () => {
      const id = orderId();
      // Both at once: the refund waits for the capture of the same order, then refunds it.
      const [capture, refund] = await Promise.all([
        fleet.send('payments.capture', { orderId: id, amount: 4, currency: 'EUR', paymentToken: 'tok_ok' }),
        fleet.send('payments.refund', { orderId: id }),
      ]);
      const captured = await fleet.resultOf(capture);
      const refunded = await fleet.resultOf(refund);
      const charged = captured.eventType === 'payment.captured' ? 4 : 0;
      expect((refunded.data as { amount: number }).amount).to.equal(charged, 'money captured and not refunded');
    });

    it('answers a second capture command for a captured order with the recorded capture, charging nothing', async () => {
      const id = orderId();
      const first = await fleet.resultOf(await fleet.send('payments.capture', { orderId: id, amount: 3, currency: 'EUR', paymentToken: 'tok_ok' }));
      const second = await fleet.resultOf(await fleet.send('payments.capture', { orderId: id, amount: 3, currency: 'EUR', paymentToken: 'tok_ok' }));
      expect(second.data).to.deep.equal(first.data);
      const calls = await fleet.db.query<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = $1', [id]);
      expect(calls.rows[0]?.calls).to.equal(1);
    });
  });

  describe('inventory', () => {
    let sku: string;
    beforeEach(async () => {
      await fleet.start(inventoryWorker);
      sku = `T-${Math.random().toString(36).slice(2, 10).toUpperCase()}`;
      await fleet.db.query('INSERT INTO inventory.stock (sku, available) VALUES ($1, 100)', [sku]);
    });
    afterEach(async () => {
      await fleet.db.query('DELETE FROM inventory.stock WHERE sku = $1', [sku]);
    });
    const stock = async (s: string): Promise<number> =>
      (await fleet.db.query<{ available: number }>('SELECT available FROM inventory.stock WHERE sku = $1', [s])).rows[0]?.available ?? NaN;

    it('reserves every line of an order', async () => {
      const id = orderId();
      const cmd = await fleet.send('inventory.reserve', { orderId: id, items: [{ sku, quantity: 3 }, { sku: 'PROD-001', quantity: 1 }, { sku, quantity: 2 }] }, { replyTo });
      const result = await fleet.resultOf(cmd);
      expect(result.eventType).to.equal('inventory.reserved');
      expect(result.data).to.deep.equal({ orderId: id, items: [{ sku: 'PROD-001', quantity: 1 }, { sku, quantity: 5 }] });
      expectCorrelated(result, cmd);
      expect(await stock(sku)).to.equal(95);
    });

    it('rejects an order with a line out of stock, and reserves none of its lines', async () => {
      const id = orderId();
      const cmd = await fleet.send('inventory.reserve', { orderId: id, items: [{ sku, quantity: 1 }, { sku: 'PROD-OOS', quantity: 1 }] }, { replyTo });
      const result = await fleet.resultOf(cmd);
      expect(result.eventType).to.equal('inventory.rejected');
      expect(result.data).to.deep.equal({ orderId: id, reason: 'out_of_stock', skus: ['PROD-OOS'] });
      expectCorrelated(result, cmd);
      expect(await stock(sku)).to.equal(100);
      expect(await stock('PROD-OOS')).to.equal(0);
    });

    it('releases after a reservation and restores the stock exactly', async () => {
      const id = orderId();
      await fleet.resultOf(await fleet.send('inventory.reserve', { orderId: id, items: [{ sku, quantity: 40 }] }));
      expect(await stock(sku)).to.equal(60);
      const release = await fleet.send('inventory.release', { orderId: id }, { replyTo });
      const result = await fleet.resultOf(release);
      expect(result.eventType).to.equal('inventory.released');
      expect(result.data).to.deep.equal({ orderId: id, items: [{ sku, quantity: 40 }] });
      expectCorrelated(result, release);
      expect(await stock(sku)).to.equal(100);
      await fleet.resultOf(await fleet.send('inventory.release', { orderId: id })); // a second release gives nothing back twice
      expect(await stock(sku)).to.equal(100);
    });

    it('reserves nothing for a reservation that arrives after its release', async () => {
      const id = orderId();
      await fleet.resultOf(await fleet.send('inventory.release', { orderId: id }));
      const late = await fleet.resultOf(await fleet.send('inventory.reserve', { orderId: id, items: [{ sku, quantity: 5 }] }));
      expect(late.eventType).to.equal('inventory.rejected');
      expect(await stock(sku)).to.equal(100);
    });

    it('releases without a reservation, changing nothing', async () => {
      const id = orderId();
      const result = await fleet.resultOf(await fleet.send('inventory.release', { orderId: id }));
      expect(result.data).to.deep.equal({ orderId: id, items: [] });
      expect(await stock(sku)).to.equal(100);
    });

    it('of 200 concurrent reservations for 100 units, exactly 100 succeed and the stock ends at 0', async function () {
      this.timeout(120_000);
      const commands = await Promise.all(
        Array.from({ length: 200 }, () => fleet.send('inventory.reserve', { orderId: orderId('c'), items: [{ sku, quantity: 1 }] })),
      );
      const results = await eventually(
        () => {
          const all = commands.map((c) => fleet.causedBy(c)[0]);
          return all.every(Boolean) ? (all as Envelope[]) : undefined;
        },
        { timeoutMs: 60_000, what: '200 results' },
      );
      expect(results.filter((r) => r.eventType === 'inventory.reserved')).to.have.length(100);
      expect(results.filter((r) => r.eventType === 'inventory.rejected')).to.have.length(100);
      expect(await stock(sku)).to.equal(0);
      const reservations = await fleet.db.query(`SELECT count(*)::int AS n FROM inventory.reservations WHERE items @> $1::jsonb`, [JSON.stringify([{ sku }])]);
      expect(reservations.rows[0]).to.deep.equal({ n: 100 });
    });
  });

  describe('shipping', () => {
    beforeEach(async () => {
      await fleet.start(shippingWorker);
    });

    it('schedules a shipment with the carrier of the country', async () => {
      const id = orderId();
      const cmd = await fleet.send('shipping.schedule', { orderId: id, address: { city: 'Berlin', country: 'DE' } }, { replyTo });
      const result = await fleet.resultOf(cmd);
      expect(result.eventType).to.equal('shipping.scheduled');
      expect(result.data).to.deep.equal({ orderId: id, shipmentId: `shp_${id}`, carrier: 'DHL' });
      expectCorrelated(result, cmd);
    });

    it('ships nothing for a schedule that arrives after its cancel', async () => {
      const id = orderId();
      await fleet.resultOf(await fleet.send('shipping.cancel', { orderId: id }));
      const late = await fleet.resultOf(await fleet.send('shipping.schedule', { orderId: id, address: { city: 'Berlin', country: 'DE' } }));
      expect(late.eventType).to.equal('shipping.failed');
      expect((await fleet.db.query('SELECT 1 FROM shipping.shipments WHERE order_id = $1', [id])).rowCount).to.equal(0);
    });

    it('fails for country XX, which has no carrier', async () => {
      const id = orderId();
      const cmd = await fleet.send('shipping.schedule', { orderId: id, address: { city: 'Nowhere', country: 'XX' } }, { replyTo });
      const result = await fleet.resultOf(cmd);
      expect(result.eventType).to.equal('shipping.failed');
      expect(result.data).to.deep.equal({ orderId: id, reason: 'shipping_unavailable' });
      expectCorrelated(result, cmd);
      expect((await fleet.db.query('SELECT 1 FROM shipping.shipments WHERE order_id = $1', [id])).rowCount).to.equal(0);
    });

    it('cancels a scheduled shipment, and a cancel of nothing changes nothing', async () => {
      const id = orderId();
      await fleet.resultOf(await fleet.send('shipping.schedule', { orderId: id, address: { city: 'Paris', country: 'FR' } }));
      const cancel = await fleet.send('shipping.cancel', { orderId: id }, { replyTo });
      const result = await fleet.resultOf(cancel);
      expect(result.eventType).to.equal('shipping.cancelled');
      expectCorrelated(result, cancel);
      const row = await fleet.db.query('SELECT status FROM shipping.shipments WHERE order_id = $1', [id]);
      expect(row.rows).to.deep.equal([{ status: 'cancelled' }]);
      const none = orderId();
      expect((await fleet.resultOf(await fleet.send('shipping.cancel', { orderId: none }))).eventType).to.equal('shipping.cancelled');
      expect((await fleet.db.query('SELECT 1 FROM shipping.shipments WHERE order_id = $1', [none])).rowCount).to.equal(0);
    });
  });

  describe('notifications', () => {
    it('records one notification per event, never two for a redelivered event', async () => {
      await fleet.start(notificationsWorker);
      const id = orderId();
      const placed = await fleet.send(
        'order.placed',
        { orderId: id, customerId: 'c-1', items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 5 }], totalAmount: 10, currency: 'EUR' },
        { aggregateVersion: 1 },
      );
      await fleet.send('payment.captured', { orderId: id, paymentId: 'p', amount: 10, currency: 'EUR' });
      await fleet.send('payment.refunded', { orderId: id, amount: 0 }); // nothing to tell
      await fleet.send('shipping.scheduled', { orderId: id, shipmentId: 's', carrier: 'DHL' });
      await fleet.publisher.publishEnvelope(placed); // redelivered
      const rows = await eventually(
        async () => {
          const r = await fleet.db.query<{ kind: string; message: string }>('SELECT kind, message FROM notifications.notifications WHERE order_id = $1 ORDER BY created_at', [id]);
          return r.rowCount === 3 ? r.rows : undefined;
        },
        { what: 'three notifications' },
      );
      expect(rows.map((r) => r.kind)).to.have.members(['order.placed', 'payment.captured', 'shipping.scheduled']);
      expect(rows.find((r) => r.kind === 'payment.captured')?.message).to.equal(`We charged 10.00 EUR for order ${id}.`);
      expect(await fleet.messageCount('notifications.events')).to.equal(0);
      const count = await fleet.db.query('SELECT 1 FROM notifications.notifications WHERE order_id = $1', [id]);
      expect(count.rowCount).to.equal(3);
    });
  });
});
