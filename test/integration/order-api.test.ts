// order-api over HTTP (fastify's inject) against the real PostgreSQL: placing orders with
// the outbox, idempotency, reading, cancelling, and bad input.
import { expect } from 'chai';
import type { FastifyInstance } from 'fastify';
import { getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { silentLogger } from '../../shared/observability/logger';
import { buildApp } from '../../services/order-api/app';
import { malformedOrders, VALID_ORDER } from '../helpers/orders';

const valid = VALID_ORDER;

describe('order-api', function () {
  this.timeout(30_000);
  let db: Pool;
  let app: FastifyInstance;
  const cancelRequests: string[] = [];
  let ready = true;

  before(async () => {
    await migrate(getConfig().databaseUrl);
    db = createPool(getConfig().databaseUrl, 'test-api');
    app = buildApp({
      db,
      logger: silentLogger,
      saga: { requestCancel: async (id) => (cancelRequests.push(id), true) },
      readiness: [{ name: 'postgres', check: async () => ready }],
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    await db.end();
  });

  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/orders', payload: JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } });

  it('accepts an order with 202, a Location, and writes the order and its order.placed in one transaction', async () => {
    const res = await post(valid);
    expect(res.statusCode).to.equal(202);
    const body = res.json<{ orderId: string; status: string }>();
    expect(body.status).to.equal('accepted');
    expect(res.headers.location).to.equal(`/orders/${body.orderId}`);
    const order = await db.query('SELECT total_amount, payment_token FROM orders.orders WHERE order_id = $1', [body.orderId]);
    expect(order.rows).to.deep.equal([{ total_amount: '44.98', payment_token: 'tok_ok' }]);
    const outbox = await db.query<{ envelope: { eventType: string; aggregateVersion: number; data: { totalAmount: number } } }>(
      "SELECT envelope FROM orders.outbox WHERE envelope->>'aggregateId' = $1",
      [body.orderId],
    );
    expect(outbox.rows.map((r) => [r.envelope.eventType, r.envelope.aggregateVersion, r.envelope.data.totalAmount])).to.deep.equal([['order.placed', 1, 44.98]]);
  });

  it('returns the same orderId for a retried request with the same Idempotency-Key, starting nothing new', async () => {
    const key = `key-${Date.now()}`;
    const first = (await post(valid, { 'idempotency-key': key })).json<{ orderId: string }>();
    const second = await post(valid, { 'idempotency-key': key });
    expect(second.statusCode).to.equal(202);
    expect(second.json<{ orderId: string }>().orderId).to.equal(first.orderId);
    const outbox = await db.query("SELECT 1 FROM orders.outbox WHERE envelope->>'aggregateId' = $1", [first.orderId]);
    expect(outbox.rowCount).to.equal(1);
  });

  it('serves an accepted order before the read model has it, and 404 for an unknown one', async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    const res = await app.inject({ method: 'GET', url: `/orders/${orderId}` });
    expect(res.statusCode).to.equal(200);
    expect(res.json()).to.deep.include({ orderId, status: 'accepted', customerId: 'cust-1', totalAmount: 44.98, currency: 'EUR' });
    expect((await app.inject({ method: 'GET', url: '/orders/ord_nope' })).statusCode).to.equal(404);
  });

  it('asks the saga to cancel an order that is not final (202), and refuses a final one (409)', async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    const res = await app.inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    expect(res.statusCode).to.equal(202);
    expect(cancelRequests).to.include(orderId);
    await db.query("UPDATE orders.orders SET status = 'fulfilled' WHERE order_id = $1", [orderId]);
    expect((await app.inject({ method: 'POST', url: `/orders/${orderId}/cancel` })).statusCode).to.equal(409);
    expect((await app.inject({ method: 'POST', url: '/orders/ord_nope/cancel' })).statusCode).to.equal(404);
  });

  for (const [what, payload, status] of malformedOrders(valid)) {
    it(`answers ${status} with the failing fields for ${what}`, async () => {
      const res = await post(payload);
      expect(res.statusCode).to.equal(status, res.body);
      const body = res.json<{ error: string; details?: Array<{ field: string; message: string }> }>();
      expect(body.error).to.equal('validation_failed');
      expect(body.details?.length ?? 0).to.be.greaterThan(0);
    });
  }

  it('answers 413 for a body over the size limit', async () => {
    const res = await post({ ...valid, customerId: 'x'.repeat(100_000) });
    expect(res.statusCode).to.equal(413);
    expect(res.json()).to.deep.include({ error: 'payload_too_large' });
  });

  it('answers 415 for a body that is not JSON, or not declared as JSON', async () => {
    const notJson = await app.inject({ method: 'POST', url: '/orders', payload: '{"customerId": ', headers: { 'content-type': 'application/json' } });
    expect(notJson.statusCode).to.equal(415);
    const text = await app.inject({ method: 'POST', url: '/orders', payload: 'customerId=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(text.statusCode).to.equal(415);
    const plain = await app.inject({ method: 'POST', url: '/orders', payload: JSON.stringify(valid), headers: { 'content-type': 'text/plain' } });
    expect(plain.statusCode).to.equal(415);
  });

  it('answers 400, not a 503, for an order id with a NUL or other odd characters (found by the fuzzer)', async () => {
    for (const url of ['/orders/%00', '/orders/a%00b/cancel', '/orders/%F0%9F%98%80', "/orders/ord_'%20OR%201=1"]) {
      const res = await app.inject({ method: url.endsWith('/cancel') ? 'POST' : 'GET', url });
      expect(res.statusCode, url).to.equal(400);
      expect(res.json<{ error: string }>().error).to.equal('validation_failed');
    }
  });

  it('answers 404 for unknown routes and wrong methods, and keeps serving valid orders', async () => {
    expect((await app.inject({ method: 'DELETE', url: '/orders' })).statusCode).to.equal(404);
    expect((await app.inject({ method: 'GET', url: '/nope' })).statusCode).to.equal(404);
    expect((await post(valid)).statusCode).to.equal(202);
  });

  it('reports health, readiness with what is down, and Prometheus metrics', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).to.equal(200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).to.deep.equal({ status: 'ready', down: [] });
    ready = false;
    const notReady = await app.inject({ method: 'GET', url: '/readyz' });
    ready = true;
    expect(notReady.statusCode).to.equal(503);
    expect(notReady.json()).to.deep.equal({ status: 'not_ready', down: ['postgres'] });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).to.match(/http_requests_total\{method="POST",route="\/orders",status="202"\} \d+/);
    expect(metrics.body).to.include('http_request_duration_seconds_bucket');
  });
});
