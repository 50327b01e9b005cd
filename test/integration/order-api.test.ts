// order-api over HTTP (fastify's inject) against the real PostgreSQL: placing orders into
// the event store, idempotency, reading (now, as of a time, and the events), cancelling, a
// concurrent change (409), and bad input, as an operator (what a customer may do, and every
// refusal, are test/integration/auth.test.ts's).
import { expect } from 'chai';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Registry } from 'prom-client';
import { getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { appendToStream } from '../../shared/event-store';
import { migrate } from '../../shared/db/migrate';
import { silentLogger } from '../../shared/observability/logger';
import { newEnvelope, stableEventId } from '../../shared/messaging/new-envelope';
import { recordOutcome } from '../../shared/orders/store';
import { buildApp, type CancelResult } from '../../services/order-api/app';
import { appAuth, bearer, type Tokens } from '../helpers/auth';
import { malformedOrders, VALID_ORDER } from '../helpers/orders';
import { runTs } from '../helpers/processes';
import { eventually } from '../helpers/wait';

const valid = VALID_ORDER;

describe('order-api', function () {
  this.timeout(30_000);
  let db: Pool;
  let app: FastifyInstance;
  const cancelRequests: string[] = [];
  /** What the fake saga answers a cancel of an order with; accepted unless set. */
  const sagaAnswers = new Map<string, CancelResult>();
  let ready = true;
  const registry = new Registry();
  let auth: Awaited<ReturnType<typeof appAuth>>;
  let tokens: Tokens;
  let operator = '';

  before(async () => {
    await migrate(getConfig().databaseUrl);
    db = createPool(getConfig().databaseUrl, 'test-api');
    auth = await appAuth();
    tokens = auth.tokens;
    operator = await tokens.operator();
    app = buildApp({
      db,
      logger: silentLogger,
      saga: { requestCancel: async (id) => (cancelRequests.push(id), sagaAnswers.get(id) ?? { accepted: true }) },
      readiness: [{ name: 'postgres', check: async () => ready }],
      verifier: auth.verifier,
      rateLimits: auth.rateLimits,
      registry,
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    await db.end();
  });

  /** A request as the operator. */
  const inject = (request: InjectOptions) => app.inject({ ...request, headers: { ...bearer(operator), ...request.headers } });
  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    inject({ method: 'POST', url: '/orders', payload: JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } });

  it('accepts an order with 202, a Location, and writes the order and its order.placed in one transaction', async () => {
    const res = await post(valid);
    expect(res.statusCode).to.equal(202);
    const body = res.json<{ orderId: string; status: string }>();
    expect(body.status).to.equal('accepted');
    expect(res.headers.location).to.equal(`/orders/${body.orderId}`);
    const order = await db.query('SELECT total_amount, payment_token FROM orders.orders WHERE order_id = $1', [body.orderId]);
    expect(order.rows).to.deep.equal([{ total_amount: '44.98', payment_token: 'tok_ok' }]);
    const events = await db.query<{ version: number; sent_at: Date | null; envelope: { eventType: string; aggregateVersion: number; data: { totalAmount: number; shippingAddress: unknown } } }>(
      'SELECT version, sent_at, envelope FROM orders.events WHERE stream_id = $1',
      [body.orderId],
    );
    expect(events.rows.map((r) => [r.version, r.envelope.eventType, r.envelope.aggregateVersion, r.envelope.data.totalAmount, r.envelope.data.shippingAddress])).to.deep.equal([
      [1, 'order.placed', 1, 44.98, valid.shippingAddress],
    ]);
    // The payment token stays in the order's row: no event carries it.
    expect(JSON.stringify(events.rows)).not.to.include('tok_ok');
  });

  it('returns the same orderId for a retried request with the same Idempotency-Key, starting nothing new', async () => {
    const key = `key-${Date.now()}`;
    const first = (await post(valid, { 'idempotency-key': key })).json<{ orderId: string }>();
    const second = await post(valid, { 'idempotency-key': key });
    expect(second.statusCode).to.equal(202);
    expect(second.json<{ orderId: string }>().orderId).to.equal(first.orderId);
    const events = await db.query('SELECT 1 FROM orders.events WHERE stream_id = $1', [first.orderId]);
    expect(events.rowCount).to.equal(1);
  });

  it('serves an accepted order before the read model has it, and 404 for an unknown one', async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    const res = await inject({ method: 'GET', url: `/orders/${orderId}` });
    expect(res.statusCode).to.equal(200);
    expect(res.json()).to.deep.include({ orderId, status: 'accepted', customerId: 'cust-1', totalAmount: 44.98, currency: 'EUR' });
    expect((await inject({ method: 'GET', url: '/orders/ord_nope' })).statusCode).to.equal(404);
  });

  it('records a cancellation request once and asks the saga each time (202), and refuses a final order (409)', async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    const res = await inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    expect(res.statusCode).to.equal(202);
    expect(cancelRequests).to.include(orderId);
    expect((await inject({ method: 'POST', url: `/orders/${orderId}/cancel` })).statusCode).to.equal(202);
    expect(cancelRequests.filter((id) => id === orderId)).to.have.length(2);
    const types = await db.query<{ event_type: string }>('SELECT event_type FROM orders.events WHERE stream_id = $1 ORDER BY version', [orderId]);
    expect(types.rows.map((r) => r.event_type)).to.deep.equal(['order.placed', 'order.cancellation_requested']);
    expect(await recordOutcome(db, orderId, { outcome: 'fulfilled' }, stableEventId(`test/${orderId}`))).to.equal('recorded');
    const final = await inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    expect(final.statusCode).to.equal(409);
    expect(final.json()).to.deep.include({ error: 'order_final' });
    expect((await inject({ method: 'POST', url: '/orders/ord_nope/cancel' })).statusCode).to.equal(404);
  });

  it('answers 409 with the reason, not 202, when the saga refuses the cancellation', async () => {
    const shipped = (await post(valid)).json<{ orderId: string }>().orderId;
    const finished = (await post(valid)).json<{ orderId: string }>().orderId;
    sagaAnswers.set(shipped, { accepted: false, reason: 'already_shipped', message: 'the shipment is already scheduled' });
    sagaAnswers.set(finished, { accepted: false, reason: 'no_saga', message: 'the order has no running saga' });

    const tooLate = await inject({ method: 'POST', url: `/orders/${shipped}/cancel` });
    expect(tooLate.statusCode).to.equal(409);
    expect(tooLate.json()).to.deep.equal({ error: 'cannot_cancel', reason: 'already_shipped', message: 'the shipment is already scheduled' });
    const noSaga = await inject({ method: 'POST', url: `/orders/${finished}/cancel` });
    expect(noSaga.statusCode).to.equal(409);
    expect(noSaga.json()).to.deep.include({ error: 'order_final', reason: 'no_saga' });
    expect(cancelRequests).to.include.members([shipped, finished]);
  });

  it("answers 409 concurrent_modification when another writer appends to the order between the request's read and its write", async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    // Another writer holds the stream: it has read version 1 and appended, not yet committed.
    const other = await db.connect();
    try {
      await other.query('BEGIN');
      await appendToStream(other, orderId, 1, [newEnvelope('order.cancellation_requested', { orderId }, { aggregateId: orderId })]);
      const request = inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
      // The request read version 1 and waits on the stream's row; then the other commits.
      await eventually(async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%orders.streams%'")).rowCount! > 0, {
        what: 'the request waiting on the stream',
      });
      await other.query('COMMIT');
      const res = await request;
      expect(res.statusCode).to.equal(409);
      expect(res.json()).to.deep.include({ error: 'concurrent_modification' });
    } finally {
      other.release();
    }
    expect(cancelRequests).not.to.include(orderId);
    // Nothing was overwritten: the stream holds the other writer's event, once.
    const versions = await db.query('SELECT version, event_type FROM orders.events WHERE stream_id = $1 ORDER BY version', [orderId]);
    expect(versions.rows).to.deep.equal([
      { version: 1, event_type: 'order.placed' },
      { version: 2, event_type: 'order.cancellation_requested' },
    ]);
  });

  it('serves the order\'s events in version order, and 404 for an unknown order', async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    await inject({ method: 'POST', url: `/orders/${orderId}/cancel` });
    await recordOutcome(db, orderId, { outcome: 'cancelled', reason: 'customer_cancelled' }, stableEventId(`test/${orderId}`));
    const res = await inject({ method: 'GET', url: `/orders/${orderId}/events` });
    expect(res.statusCode).to.equal(200);
    const body = res.json<{ orderId: string; version: number; events: Array<{ version: number; eventType: string; occurredAt: string; data: Record<string, unknown> }> }>();
    expect(body.orderId).to.equal(orderId);
    expect(body.version).to.equal(3);
    expect(body.events.map((e) => [e.version, e.eventType])).to.deep.equal([
      [1, 'order.placed'],
      [2, 'order.cancellation_requested'],
      [3, 'order.cancelled'],
    ]);
    expect(body.events[0]!.data).to.deep.include({ orderId, customerId: 'cust-1', totalAmount: 44.98 });
    expect(body.events[2]!.data).to.deep.equal({ orderId, reason: 'customer_cancelled' });
    expect((await inject({ method: 'GET', url: '/orders/ord_nope/events' })).statusCode).to.equal(404);
  });

  it("pages a customer's orders newest first with ?limit= and the cursor it gives, and answers 400 for a bad limit or a cursor it did not issue", async () => {
    const customerId = `c-api-page-${Date.now().toString(36)}`;
    const placedAt = (s: number) => new Date(Date.UTC(2026, 10, 29, 10, 0, s)).toISOString();
    for (const [id, s] of [['ord_page_a', 1], ['ord_page_b', 2], ['ord_page_c', 3]] as const) {
      await db.query(
        `INSERT INTO read_model.customer_orders (order_id, customer_id, status, total_amount, currency, placed_at, version) VALUES ($1 || $2, $2, 'fulfilled', 5, 'EUR', $3, 2)`,
        [id, customerId, placedAt(s)],
      );
    }
    try {
      const first = await inject({ method: 'GET', url: `/customers/${customerId}/orders?limit=2` });
      expect(first.statusCode).to.equal(200);
      const page = first.json<{ orders: Array<{ orderId: string; placedAt: string }>; nextCursor?: string }>();
      expect(page.orders.map((o) => [o.orderId, o.placedAt])).to.deep.equal([
        [`ord_page_c${customerId}`, placedAt(3)],
        [`ord_page_b${customerId}`, placedAt(2)],
      ]);
      const next = await inject({ method: 'GET', url: `/customers/${customerId}/orders?limit=2&cursor=${page.nextCursor!}` });
      expect(next.json()).to.deep.equal({ customerId, orders: [{ orderId: `ord_page_a${customerId}`, status: 'fulfilled', totalAmount: 5, currency: 'EUR', placedAt: placedAt(1) }] });
      expect((await inject({ method: 'GET', url: `/customers/${customerId}/orders` })).json<{ orders: unknown[] }>().orders).to.have.length(3);
      for (const bad of ['limit=0', 'limit=101', 'limit=two', 'cursor=bm90LW91cnM', 'colour=red']) {
        const res = await inject({ method: 'GET', url: `/customers/${customerId}/orders?${bad}` });
        expect(res.statusCode, bad).to.equal(400);
        expect(res.json(), bad).to.deep.include({ error: 'validation_failed' });
      }
    } finally {
      await db.query('DELETE FROM read_model.customer_orders WHERE customer_id = $1', [customerId]);
    }
  });

  it('serves the order as it stood at ?asOf, folded from its events: 404 before it existed, 400 for a malformed time', async () => {
    const { orderId } = (await post(valid)).json<{ orderId: string }>();
    const placedAt = new Date((await db.query<{ t: Date }>("SELECT occurred_at AS t FROM orders.events WHERE stream_id = $1 AND version = 1", [orderId])).rows[0]!.t);
    await new Promise((r) => setTimeout(r, 20));
    const between = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await recordOutcome(db, orderId, { outcome: 'fulfilled' }, stableEventId(`test/${orderId}`));

    const then = await inject({ method: 'GET', url: `/orders/${orderId}?asOf=${between.toISOString()}` });
    expect(then.statusCode).to.equal(200);
    expect(then.json()).to.deep.include({ orderId, status: 'accepted', customerId: 'cust-1', totalAmount: 44.98, currency: 'EUR' });
    expect(then.json<{ history: unknown[] }>().history).to.have.length(1);
    const now = await inject({ method: 'GET', url: `/orders/${orderId}?asOf=${new Date(Date.now() + 1000).toISOString()}` });
    expect(now.json()).to.deep.include({ status: 'fulfilled' });
    expect(now.json<{ history: Array<{ eventType: string }> }>().history.map((h) => h.eventType)).to.deep.equal(['order.placed', 'order.fulfilled']);
    const before = await inject({ method: 'GET', url: `/orders/${orderId}?asOf=${new Date(placedAt.getTime() - 1).toISOString()}` });
    expect(before.statusCode).to.equal(404);
    for (const bad of ['yesterday', '2026-13-01T00:00:00Z', '2026-11-29', '', '2026-11-28T23:59:60Z']) {
      const res = await inject({ method: 'GET', url: `/orders/${orderId}?asOf=${encodeURIComponent(bad)}` });
      expect(res.statusCode, bad).to.equal(400);
      expect(res.json(), bad).to.deep.include({ error: 'validation_failed' });
    }
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

  it('always lets a client over real HTTP read the 413 of a 5 MB body, never a reset (Node fetch saw EPIPE in 1 of 3 tries)', async () => {
    const server = buildApp({ db, logger: silentLogger, saga: { requestCancel: async () => ({ accepted: true }) }, readiness: [], verifier: auth.verifier, rateLimits: auth.rateLimits });
    const url = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      // The client must be another process: in one event loop the race never shows.
      const client = runTs('test/fixtures/post-large-body.ts', [`${url}/orders`, String(5 * 1024 * 1024), '20', operator]);
      const { code } = await client.exited(60_000);
      expect(client.output.join('\n')).to.contain('413 413 413 413 413 413 413 413 413 413 413 413 413 413 413 413 413 413 413 413');
      expect(code).to.equal(0);
    } finally {
      await server.close();
    }
  });

  it('answers 400 with a clear message for malformed JSON declared as JSON, and for an empty body', async () => {
    const notJson = await inject({ method: 'POST', url: '/orders', payload: '{"customerId": ', headers: { 'content-type': 'application/json' } });
    expect(notJson.statusCode).to.equal(400);
    const body = notJson.json<{ error: string; message: string; details: Array<{ field: string; message: string }> }>();
    expect(body).to.include({ error: 'invalid_json' }).and.to.have.property('message').that.matches(/not valid JSON: /);
    expect(body.details).to.deep.equal([{ field: 'body', message: body.message }]);
    const empty = await inject({ method: 'POST', url: '/orders', payload: '', headers: { 'content-type': 'application/json' } });
    expect(empty.statusCode).to.equal(400);
    expect(empty.json<{ error: string }>().error).to.equal('invalid_json');
  });

  it('answers 415 for a body not declared as JSON', async () => {
    const text = await inject({ method: 'POST', url: '/orders', payload: 'customerId=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(text.statusCode).to.equal(415);
    const plain = await inject({ method: 'POST', url: '/orders', payload: JSON.stringify(valid), headers: { 'content-type': 'text/plain' } });
    expect(plain.statusCode).to.equal(415);
  });

  it('answers 400, not a 503, for an order id with a NUL or other odd characters (found by the fuzzer)', async () => {
    for (const url of ['/orders/%00', '/orders/a%00b/cancel', '/orders/%F0%9F%98%80', "/orders/ord_'%20OR%201=1"]) {
      const res = await inject({ method: url.endsWith('/cancel') ? 'POST' : 'GET', url });
      expect(res.statusCode, url).to.equal(400);
      expect(res.json<{ error: string }>().error).to.equal('validation_failed');
    }
  });

  it('answers 404 for unknown routes and wrong methods, and keeps serving valid orders', async () => {
    expect((await inject({ method: 'DELETE', url: '/orders' })).statusCode).to.equal(404);
    expect((await inject({ method: 'GET', url: '/nope' })).statusCode).to.equal(404);
    expect((await post(valid)).statusCode).to.equal(202);
  });

  it('reports health and readiness with what is down, and counts requests in its registry (served on METRICS_PORT), not on its port', async () => {
    expect((await inject({ method: 'GET', url: '/healthz' })).statusCode).to.equal(200);
    expect((await inject({ method: 'GET', url: '/readyz' })).json()).to.deep.equal({ status: 'ready', down: [] });
    ready = false;
    const notReady = await inject({ method: 'GET', url: '/readyz' });
    ready = true;
    expect(notReady.statusCode).to.equal(503);
    expect(notReady.json()).to.deep.equal({ status: 'not_ready', down: ['postgres'] });
    expect((await inject({ method: 'GET', url: '/metrics' })).statusCode).to.equal(404);
    const metrics = { body: await registry.metrics() };
    expect(metrics.body).to.match(/http_requests_total\{method="POST",route="\/orders",status="202"\} \d+/);
    expect(metrics.body).to.include('http_request_duration_seconds_bucket');
  });
});
