// `npm start` as a user runs it: the fleet and its own Temporal dev server; each process's
// metrics and readiness where npm start says they are; orders over
// HTTP to their final states, idempotent retries, cancellation, bad input, a relay killed
// between publish and mark, the Temporal Web UI in headless Chromium, the demo, a dead
// process restarted, and Ctrl-C stopping everything. Then the sagas in flight surviving a
// SIGKILL of the dev server and a restart of `npm start`, and the scheduled reconciler.
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { expect } from 'chai';
import type { Options } from 'amqplib';
import { chromium } from 'playwright-core';
import { ulid } from 'ulid';
import { fleetAccess } from '../../scripts/rabbitmq-definitions';
import { HEADERS } from '../../shared/messaging/headers';
import { dlqName, inNamespace, topicMatches } from '../../shared/messaging/topology';
import { getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { workflowIdOf } from '../../shared/saga';
import { connectTemporal } from '../../shared/temporal/client';
import { FLEET } from '../../scripts/fleet';
import { deleteFleetNamespace, dropDatabase, testDatabaseUrl, storeUnpublishedOrder, TestFleet } from '../helpers/fleet';
import { asOperator, bearer, fleetTokens, NO_RATE_LIMITS } from '../helpers/auth';
import { malformedOrders, VALID_ORDER } from '../helpers/orders';
import { ROOT, runTs, type Child } from '../helpers/processes';
import { BlackHole, brokerApi, freePort } from '../helpers/services';
import { eventually } from '../helpers/wait';
import { CONSUMED_KEYS, poisonFor } from '../helpers/poison';
import { Random } from '../../scripts/random';
import { generatedNamespace } from '../../scripts/bus';

const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261128);

interface ReadModel {
  orderId: string;
  status: string;
  cancellationReason?: string;
  customerId: string;
  totalAmount: number;
  history: Array<{ eventType: string; occurredAt: string }>;
}

const ARTIFACTS = resolve(ROOT, 'test-artifacts');
const isFinal = (o: ReadModel): boolean => o.status === 'fulfilled' || o.status === 'cancelled';

describe('npm start', function () {
  this.timeout(240_000);
  let fleet: TestFleet;
  let start: Child | undefined;
  let api = '';
  let webUi = '';
  let env: Record<string, string> = {};
  let db: Pool;
  let temporal: Client;
  let fulfilledOrder = '';
  let temporalDir = '';
  /** When this suite began: the orders it places are the ones placed since. */
  let suiteStarted = new Date();
  const brokerUser = `e2e-${Date.now().toString(36)}`;
  const secrets = { amqp: `amqp-secret-${ulid()}`, db: `db-secret-${ulid()}` };

  // As an operator, who may place and read any customer's orders; what a customer may is test/integration/auth.test.ts's.
  const send = async (method: string, path: string, contentType: string, body: string | Buffer): Promise<Response> =>
    fetch(`${api}${path}`, { method, headers: { 'content-type': contentType, ...(await asOperator()) }, body });
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(await asOperator()), ...headers }, body: JSON.stringify(body) });
  const placeOrder = async (order: unknown, headers: Record<string, string> = {}): Promise<string> => {
    const res = await post('/orders', order, headers);
    expect(res.status).to.equal(202, await res.clone().text());
    expect(res.headers.get('location')).to.match(/^\/orders\/ord_/);
    return ((await res.json()) as { orderId: string }).orderId;
  };
  const getOrder = async (orderId: string): Promise<ReadModel | undefined> => {
    const res = await fetch(`${api}/orders/${orderId}`, { headers: await asOperator() });
    return res.status === 200 ? ((await res.json()) as ReadModel) : undefined;
  };
  const finalOrder = (orderId: string): Promise<ReadModel> =>
    eventually(async () => {
      const order = await getOrder(orderId);
      return order && isFinal(order) ? order : undefined;
    }, { timeoutMs: 60_000, what: `order ${orderId} to reach a final state` });
  /** The workflow runs Temporal knows for an order, found by its OrderId search attribute. */
  const workflowRuns = async (orderId: string): Promise<string[]> => {
    const runs: string[] = [];
    for await (const wf of temporal.workflow.list({ query: `OrderId = '${orderId}'` })) runs.push(`${wf.workflowId}/${wf.runId}`);
    return runs;
  };
  const pidOf = (name: string): number => {
    const lines = start!.output.filter((l) => l.startsWith(`[start] ${name} running (pid `));
    return Number(/pid (\d+)/.exec(lines[lines.length - 1] ?? '')?.[1]);
  };

  before(async () => {
    fleet = await TestFleet.create();
    suiteStarted = new Date();
    const httpPort = await freePort();
    const temporalPort = await freePort();
    api = `http://127.0.0.1:${httpPort}`;
    webUi = `http://127.0.0.1:${temporalPort + 1000}`;
    temporalDir = mkdtempSync(join(tmpdir(), 'e2e-temporal-'));
    // Its Temporal state in a file of its own (the default one is a running `npm start`'s), and
    // no scheduled reconciler: the shared database holds accepted orders other tests left, whose
    // sagas are on no Temporal server (a test of the reconciler has a database of its own).
    env = {
      BUS_NAMESPACE: fleet.namespace,
      HTTP_PORT: String(httpPort),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      TEMPORAL_DB_FILE: join(temporalDir, 'temporal.sqlite'),
      RECONCILE_INTERVAL_MS: '0',
      // No rate limits: the tests poll orders faster than a client may (the limits are auth.test.ts's).
      RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '0',
      RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '0',
      METRICS_PORT_BASE: '0', // free metrics ports: the default ones may be a running `npm start`'s
    };
    // The fleet connects with credentials of its own, so the logs can be searched for them.
    await brokerApi('PUT', `/users/${brokerUser}`, { password: secrets.amqp, tags: '' });
    await brokerApi('PUT', `/permissions/%2F/${brokerUser}`, { configure: '.*', write: '.*', read: '.*' });
    const dbUrl = new URL(getConfig().databaseUrl);
    dbUrl.password = secrets.db; // trust authentication ignores it, the logs must not show it
    start = runTs('scripts/start.ts', [], {
      ...env,
      LOG_LEVEL: 'debug',
      AMQP_URL: `amqp://${brokerUser}:${secrets.amqp}@127.0.0.1:5672`,
      DATABASE_URL: dbUrl.toString(),
    });
    await start.waitFor(/Temporal dev server started/, 60_000);
    await start.waitFor(/\[order-api\].*order-api listening/, 120_000);
    await start.waitFor(/\[temporal-worker\].*temporal worker started/, 120_000);
    await start.waitFor(/\[saga-bridge\].*worker started/, 120_000);
    await start.waitFor(/\[outbox-relay\].*outbox relay started/, 120_000);
    db = createPool(getConfig().databaseUrl, 'test-e2e');
    temporal = await connectTemporal({ ...getConfig(), temporalAddress: env.TEMPORAL_ADDRESS! });
  });
  after(async () => {
    // Ctrl-C, as a user stops it: a SIGKILL of npm start alone would leave its processes running.
    start?.kill('SIGINT');
    await start?.exited(60_000).catch(() => start?.kill('SIGKILL'));
    await temporal?.connection.close();
    await db?.end();
    await fleet?.cleanup();
    await brokerApi('DELETE', `/users/${brokerUser}`).catch(() => undefined);
    if (temporalDir) rmSync(temporalDir, { recursive: true, force: true });
  });

  it('prints where the API and the Web UI are, and how to get a token', () => {
    expect(start!.output.join('\n')).to.match(/order-api: +http:\/\/localhost:\d+/).and.match(/Temporal Web UI: http:\/\/localhost:\d+/).and.match(/\[start\] a token: npm run -s token -- --customer <customerId>/);
  });

  it('takes a token of the development key only: none or a bad one is 401, a customer sees its own orders only, and the API port serves no metrics', async () => {
    expect((await fetch(`${api}/orders/ord_unknown`)).status).to.equal(401);
    expect((await fetch(`${api}/orders/ord_unknown`, { headers: bearer('not.a.token') })).status).to.equal(401);
    const own = (await fleetTokens()).customer('c-e2e-auth');
    const placed = await fetch(`${api}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(await own) }, body: JSON.stringify({ ...VALID_ORDER, customerId: 'c-e2e-auth' }) });
    expect(placed.status).to.equal(202);
    const { orderId } = (await placed.json()) as { orderId: string };
    expect((await fetch(`${api}/orders/${orderId}`, { headers: bearer(await (await fleetTokens()).customer('c-e2e-other')) })).status).to.equal(404);
    await eventually(async () => (await fetch(`${api}/orders/${orderId}`, { headers: bearer(await own) })).status === 200, { timeoutMs: 30_000, what: 'the customer to read its order' });
    expect((await fetch(`${api}/metrics`)).status).to.equal(404);
  });

  it('prints where each process serves its metrics, and each answers /metrics and, once it runs, /readyz with 200', async () => {
    const urls = start!.output.flatMap((l) => {
      const m = /^\[start\] (\S+) metrics: (http:\/\/localhost:\d+)\/metrics$/.exec(l);
      return m ? [[m[1]!, m[2]!] as const] : [];
    });
    expect(urls.map(([name]) => name).sort()).to.deep.equal(FLEET.map((p) => p.name).sort());
    for (const [name, url] of urls) {
      const local = url.replace('localhost', '127.0.0.1');
      expect((await fetch(`${local}/metrics`)).status, `${name}'s /metrics`).to.equal(200);
      await eventually(async () => (await fetch(`${local}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 500, what: `${name}'s /readyz to answer 200` });
    }
  });

  it('takes one order per trigger to its outcome, and GET /orders/:orderId shows its history', async () => {
    const base = { ...VALID_ORDER, customerId: 'c-e2e-triggers' };
    const cases: Array<[trigger: string, order: object, status: string, reason?: string]> = [
      ['tok_ok', base, 'fulfilled'],
      ['tok_flaky', { ...base, paymentMethod: { token: 'tok_flaky' } }, 'fulfilled'],
      ['tok_decline', { ...base, paymentMethod: { token: 'tok_decline' } }, 'cancelled', 'payment_declined'],
      ['PROD-OOS', { ...base, items: [{ sku: 'PROD-OOS', quantity: 1, unitPrice: 5 }] }, 'cancelled', 'out_of_stock'],
      ['country XX', { ...base, shippingAddress: { city: 'Nowhere', country: 'XX' } }, 'cancelled', 'shipping_unavailable'],
    ];
    const ids = await Promise.all(cases.map(([, order]) => placeOrder(order)));
    const orders = await Promise.all(ids.map(finalOrder));
    cases.forEach(([trigger, , status, reason], i) => {
      const order = orders[i]!;
      expect({ status: order.status, reason: order.cancellationReason }, trigger).to.deep.equal({ status, reason });
      expect(order.customerId).to.equal('c-e2e-triggers');
      expect(order.history.map((h) => h.eventType), trigger).to.deep.equal(['order.placed', status === 'fulfilled' ? 'order.fulfilled' : 'order.cancelled']);
      expect(Date.parse(order.history[1]!.occurredAt)).to.be.at.least(Date.parse(order.history[0]!.occurredAt));
    });
    fulfilledOrder = ids[0]!;
  });

  it('answers the same Idempotency-Key twice with the same orderId and starts one workflow', async () => {
    const key = `idem-${Date.now().toString(36)}`;
    const order = { ...VALID_ORDER, customerId: 'c-e2e-idem' };
    const first = await placeOrder(order, { 'idempotency-key': key });
    const second = await placeOrder(order, { 'idempotency-key': key });
    expect(second).to.equal(first);
    expect((await finalOrder(first)).status).to.equal('fulfilled');
    expect(await eventually(async () => ((await workflowRuns(first)).length > 0 ? workflowRuns(first) : undefined), { what: 'the workflow in visibility' })).to.deep.equal([
      `${workflowIdOf(first)}/${(await temporal.workflow.getHandle(workflowIdOf(first)).describe()).runId}`,
    ]);
    const rows = await db.query("SELECT count(*)::int AS n FROM orders.events WHERE stream_id = $1 AND event_type = 'order.placed'", [first]);
    expect(rows.rows[0]).to.deep.equal({ n: 1 });
  });

  it('cancels an order before shipping with customer_cancelled, and answers 409 once it is final', async () => {
    // tok_flaky keeps the saga in its payment step for over a second.
    const orderId = await placeOrder({ ...VALID_ORDER, customerId: 'c-e2e-cancel', paymentMethod: { token: 'tok_flaky' } });
    expect((await post(`/orders/${orderId}/cancel`, {})).status).to.equal(202);
    const order = await finalOrder(orderId);
    expect({ status: order.status, reason: order.cancellationReason }).to.deep.equal({ status: 'cancelled', reason: 'customer_cancelled' });
    expect((await db.query('SELECT 1 FROM shipping.shipments WHERE order_id = $1', [orderId])).rowCount).to.equal(0);
    const again = await post(`/orders/${orderId}/cancel`, {});
    expect(again.status).to.equal(409);
    expect(((await post(`/orders/${fulfilledOrder}/cancel`, {})).status)).to.equal(409);
    expect((await post('/orders/ord_unknown/cancel', {})).status).to.equal(404);
  });

  it('answers every kind of malformed request with a 4xx and a clear message, and stays up', async () => {
    const requests: Array<[what: string, send: () => Promise<Response>, status: number]> = [
      ...malformedOrders().map(([what, body, status]): [string, () => Promise<Response>, number] => [what, () => post('/orders', body), status]),
      ['a body over the size limit', () => post('/orders', { ...VALID_ORDER, customerId: 'x'.repeat(2_000_000) }), 413],
      ['a body that is not JSON', () => send('POST', '/orders', 'application/json', '{"customerId": '), 400],
      ['invalid UTF-8', () => send('POST', '/orders', 'application/json', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 400],
      ['a form body', () => send('POST', '/orders', 'application/x-www-form-urlencoded', 'customerId=1'), 415],
      ['a text/plain body', () => send('POST', '/orders', 'text/plain', JSON.stringify(VALID_ORDER)), 415],
      ['a wrong method', () => send('PUT', '/orders', 'application/json', JSON.stringify(VALID_ORDER)), 404],
    ];
    expect(requests.length).to.be.at.least(30);
    for (const [what, send, status] of requests) {
      const res = await send();
      const body = (await res.json()) as { error?: string; message?: string; details?: Array<{ field: string; message: string }> };
      expect(res.status, what).to.equal(status);
      expect(body.error, what).to.be.a('string');
      if (status === 400) expect(body.details?.[0]?.message, what).to.be.a('string').and.not.equal('');
    }
    expect((await fetch(`${api}/healthz`)).status).to.equal(200);
    expect(await finalOrder(await placeOrder({ ...VALID_ORDER, customerId: 'c-e2e-after-bad-input' }))).to.include({ status: 'fulfilled' });
    expect(start!.output.filter((l) => l.startsWith('[start] order-api running'))).to.have.length(1, 'order-api never restarted');
  });

  it('dead-letters malformed messages on every consumed routing key, with their reasons, while valid orders complete and no process dies', async () => {
    const rnd = new Random(FUZZ_SEED);
    const reusedId = ulid();
    const perKey = 60;
    // Where each message lands: every queue bound to its exchange and key; the read model's
    // partition queues (behind the consistent-hash exchange) count as one.
    const expected = new Map<string, number>();
    const queues = fleetAccess(fleet.namespace).flatMap((a) => a.topology.queues);
    const groupOf = (queue: string): string => queue.replace(/\.p\d+$/, '.partitions');
    const kinds = new Map<string, number>();
    const messages: Array<{ exchange: string; routingKey: string; content: Buffer; options: Options.Publish }> = [];
    for (const [exchange, key] of CONSUMED_KEYS) {
      const targets = new Set<string>();
      for (const q of queues) {
        for (const [source, pattern] of q.bind) if (source === inNamespace(fleet.namespace, exchange) && topicMatches(pattern, key)) targets.add(q.name);
      }
      if (exchange === 'orders' && key.startsWith('order.')) targets.add(inNamespace(fleet.namespace, 'order-projection.partitions'));
      expect(targets.size, `${exchange} ${key} has consumers`).to.be.greaterThan(0);
      for (let i = 0; i < perKey; i++) {
        const poison = poisonFor(key, rnd, reusedId);
        const kind = poison.kind.replace(/ without \w+/, ' without a field');
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        messages.push({ exchange: inNamespace(fleet.namespace, exchange), routingKey: key, content: poison.content, options: poison.options });
        for (const t of targets) expected.set(t, (expected.get(t) ?? 0) + 1);
      }
    }
    expect(messages.length).to.be.at.least(1_000);

    const placing = Promise.all(Array.from({ length: 10 }, (_, i) => placeOrder({ ...VALID_ORDER, customerId: `c-e2e-amqp-fuzz-${i}` })));
    await Promise.all(messages.map((m) => fleet.publisher.publish(m)));
    const valid = await placing;

    const dlqCount = async (group: string): Promise<number> => {
      const members = group.endsWith('.partitions') ? queues.filter((q) => groupOf(q.name) === group).map((q) => q.name) : [group];
      let n = 0;
      for (const q of members) n += await fleet.messageCount(dlqName(q.slice(fleet.namespace.length + 1)));
      return n;
    };
    for (const [group, count] of expected) {
      await eventually(async () => (await dlqCount(group)) >= count, { timeoutMs: 120_000, what: `${count} messages in the DLQ of ${group}` });
      expect(await dlqCount(group), group).to.equal(count);
    }
    const reasons = new Map<string, number>();
    for (const q of queues) {
      for (const m of await fleet.drain(dlqName(q.name.slice(fleet.namespace.length + 1)))) {
        const headers = m.properties.headers ?? {};
        expect(headers[HEADERS.errorType], `${q.name}: error type`).to.be.a('string');
        const reason = String(headers[HEADERS.errorMessage]).split(':')[0]!;
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
    }
    console.log(`      ${messages.length} malformed messages, ${[...expected.values()].reduce((a, b) => a + b, 0)} dead-lettered copies; kinds: ${JSON.stringify(Object.fromEntries(kinds))}; reasons: ${JSON.stringify(Object.fromEntries(reasons))}`);
    for (const order of await Promise.all(valid.map(finalOrder))) expect(order.status).to.equal('fulfilled');
    expect(start!.output.filter((l) => / exited \(/.test(l))).to.deep.equal([], 'no process died');
  });

  it('completes an order once when the relay is killed between publish and mark', async () => {
    // A trigger holds the relay's "mark sent" of this one order on an advisory lock the test
    // owns, so the relay is killed after the broker confirmed the event and before the mark.
    const marker = `c-e2e-relay-${Date.now().toString(36)}`;
    const lockId = 72_0001;
    const gate = await db.connect();
    const fn = `orders.hold_mark_${marker.replace(/\W/g, '_')}`;
    try {
      await gate.query('SELECT pg_advisory_lock($1)', [lockId]);
      await db.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(${lockId}); RETURN NEW; END $$`);
      await db.query(`CREATE TRIGGER hold_mark BEFORE UPDATE ON orders.events FOR EACH ROW WHEN (NEW.envelope->'data'->>'customerId' = '${marker}') EXECUTE FUNCTION ${fn}()`);
      const orderId = await placeOrder({ ...VALID_ORDER, customerId: marker });
      // Published: the saga ran, and recorded the outcome (which waits for the relay to publish it).
      await eventually(async () => (await db.query<{ status: string }>('SELECT status FROM orders.orders WHERE order_id = $1', [orderId])).rows[0]?.status === 'fulfilled', {
        timeoutMs: 60_000,
        what: 'the saga to fulfil the order',
      });
      const stuck = await eventually(async () => {
        const r = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'outbox-relay' AND wait_event = 'advisory'");
        return r.rows[0]?.pid;
      }, { what: 'the relay waiting to mark the row' });
      const unsent = await db.query('SELECT version FROM orders.events WHERE stream_id = $1 AND sent_at IS NULL ORDER BY version', [orderId]);
      expect(unsent.rows).to.deep.equal([{ version: 1 }, { version: 2 }]);

      const relayPid = pidOf('outbox-relay');
      process.kill(relayPid, 'SIGKILL');
      await eventually(() => pidOf('outbox-relay') !== relayPid, { timeoutMs: 30_000, what: 'the relay to be restarted' });
      // PostgreSQL notices the dead client only when it next talks to it; end its stalled backend now.
      await db.query('SELECT pg_terminate_backend($1)', [stuck]);
      await db.query('DROP TRIGGER hold_mark ON orders.events');
      await eventually(async () => (await db.query('SELECT 1 FROM orders.events WHERE stream_id = $1 AND sent_at IS NOT NULL', [orderId])).rowCount === 2, {
        timeoutMs: 30_000,
        what: 'the restarted relay to publish the events again and mark them',
      });

      const order = await finalOrder(orderId);
      expect(order.history.map((h) => h.eventType)).to.deep.equal(['order.placed', 'order.fulfilled']);
      expect(await workflowRuns(orderId)).to.have.length(1);
      const count = async (table: string, id: string): Promise<number> => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE order_id = $1`, [id])).rows[0]!.n;
      for (const table of ['payments.captures', 'inventory.reservations', 'shipping.shipments']) expect(await count(table, orderId), table).to.equal(1);
      expect(await count('notifications.notifications', orderId)).to.equal(await count('notifications.notifications', fulfilledOrder));
    } finally {
      await db.query('DROP TRIGGER IF EXISTS hold_mark ON orders.events');
      await db.query(`DROP FUNCTION IF EXISTS ${fn}()`);
      await gate.query('SELECT pg_advisory_unlock_all()');
      gate.release();
    }
  });

  it('shows a finished order\'s workflow with its activity names in the Temporal Web UI (headless Chromium)', async () => {
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${webUi}/namespaces/default/workflows/${workflowIdOf(fulfilledOrder)}`);
      await page.getByText(/^completed$/i).first().waitFor({ timeout: 30_000 });
      // markOrderFulfilled appears only in the history (the result lists the other steps).
      for (const activity of ['loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment', 'markOrderFulfilled']) {
        await page.getByText(activity, { exact: true }).first().waitFor({ timeout: 30_000 });
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      const file = resolve(ARTIFACTS, 'temporal-web-ui-workflow.png');
      await page.screenshot({ path: file, fullPage: true });
      expect(statSync(file).size).to.be.greaterThan(20_000);
    } finally {
      await browser.close();
    }
  });

  it('`npm run demo` takes every trigger and a customer cancellation to the expected outcome', async () => {
    const demo = runTs('scripts/demo.ts', [], env);
    const { code } = await demo.exited(120_000);
    const out = demo.output.join('\n');
    expect(code).to.equal(0, out);
    for (const scenario of ['tok_ok', 'tok_flaky', 'tok_decline', 'PROD-OOS', 'country XX', 'customer cancel']) expect(out).to.include(scenario);
    expect(out).to.match(/country XX +ord_\w+ +cancelled: shipping_unavailable +cancelled: shipping_unavailable +yes +releaseStock, refundPayment/);
    expect(out).to.include('/namespaces/default/workflows/order-ord_');
  });

  it('rebuilds the order-projection from the event store while the fleet runs: every GET /orders/:orderId answers as before', async () => {
    // Every order this run placed: each trigger, a customer cancellation, the demo's.
    const ids = (await db.query<{ order_id: string }>('SELECT order_id FROM orders.orders WHERE created_at >= $1', [suiteStarted])).rows.map((r) => r.order_id);
    const answers = async (): Promise<unknown[]> => Promise.all(ids.map(async (id) => (await fetch(`${api}/orders/${id}`, { headers: await asOperator() })).json()));
    const before = await answers();
    expect(ids.length).to.be.at.least(10);
    expect(JSON.stringify(before)).to.include('order.cancellation_requested');
    const rebuild = runTs('scripts/projections-rebuild.ts', ['order-projection'], env);
    const { code } = await rebuild.exited(120_000);
    expect(code).to.equal(0, rebuild.output.join('\n'));
    expect(rebuild.output.join('\n')).to.match(/rebuilt order-projection: \d+ events/);
    expect(await answers()).to.deep.equal(before);
  });

  it('lists a customer\'s orders, newest first, from the customer-orders read model the fleet keeps', async () => {
    const placed = (
      await db.query<{ stream_id: string }>(
        "SELECT stream_id FROM orders.events WHERE event_type = 'order.placed' AND envelope->'data'->>'customerId' = 'c-e2e-triggers' AND occurred_at >= $1 ORDER BY occurred_at DESC, stream_id DESC",
        [suiteStarted],
      )
    ).rows.map((r) => r.stream_id);
    // Every page, through the cursor each gives (earlier runs on this database placed orders for this customer too).
    const all = async (): Promise<Array<{ orderId: string; status: string }>> => {
      const orders: Array<{ orderId: string; status: string }> = [];
      for (let cursor: string | undefined, first = true; first || cursor; first = false) {
        const res = await fetch(`${api}/customers/c-e2e-triggers/orders?limit=100${cursor ? `&cursor=${cursor}` : ''}`, { headers: bearer(await (await fleetTokens()).customer('c-e2e-triggers')) });
        expect(res.status).to.equal(200);
        const body = (await res.json()) as { orders: Array<{ orderId: string; status: string }>; nextCursor?: string };
        orders.push(...body.orders);
        cursor = body.nextCursor;
      }
      return orders;
    };
    const mine = new Set(placed);
    const listed = await eventually(async () => {
      const orders = (await all()).filter((o) => mine.has(o.orderId));
      return orders.length === placed.length && orders.every((o) => o.status !== 'accepted') ? orders : undefined;
    }, { timeoutMs: 30_000, what: 'the customer\'s orders of this run, final' });
    expect(placed).to.have.length(5);
    expect(listed.map((o) => o.orderId)).to.deep.equal(placed);
  });

  it('restarts a process that dies', async () => {
    process.kill(pidOf('payments'), 'SIGKILL');
    await start!.waitFor(/\[start\] payments exited \(SIGKILL\); restarting/);
    await eventually(() => start!.output.filter((l) => /\[start\] payments running/.test(l)).length === 2, { timeoutMs: 30_000, what: 'payments to be restarted' });
  });

  it('connects to the broker as the user its environment names (so the log check below means something)', async () => {
    const fleetNames = ['payments', 'inventory', 'shipping', 'notifications', 'order-projection', 'saga-bridge', 'temporal-worker', 'outbox-relay'];
    const connectedAs = async (): Promise<string[]> => {
      const connections = (await brokerApi('GET', '/connections?columns=user,client_properties')) as Array<{ user: string; client_properties: { connection_name?: string } }>;
      return connections.filter((c) => c.user === brokerUser).map((c) => c.client_properties.connection_name ?? '');
    };
    // payments was just restarted by the test before: the management API lists it a moment later.
    await eventually(async () => {
      const connected = await connectedAs();
      return fleetNames.every((n) => connected.includes(n));
    }, {
      timeoutMs: 30_000,
      what: 'every process connected as the configured user',
    });
    expect(await connectedAs()).to.include.members(fleetNames);
  });

  it('stops everything on Ctrl-C and exits 0', async () => {
    start!.kill('SIGINT');
    expect(await start!.exited(60_000)).to.deep.equal({ code: 0, signal: null });
    expect(start!.output.join('\n')).to.include('[start] stopped');
  });

  it('never wrote a password to its logs, at debug level, in the whole run', () => {
    const log = start!.output.join('\n');
    expect(log.length).to.be.greaterThan(100_000);
    expect(log).to.not.include(secrets.amqp);
    expect(log).to.not.include(secrets.db);
  });
});

describe('npm start keeps every saga when its Temporal dev server or npm start itself restarts', function () {
  this.timeout(360_000);
  let fleet: TestFleet;
  let start: Child | undefined;
  let api = '';
  let env: Record<string, string> = {};
  let db: Pool;
  let temporal: Client;
  let temporalDir = '';
  // A database of its own, so that the fleet's scheduled reconciler sees only this test's orders.
  const databaseUrl = testDatabaseUrl('e2e_restart');

  const placeOrder = async (token: string): Promise<string> => {
    const headers = { 'content-type': 'application/json', ...bearer(await (await fleetTokens()).customer('c-e2e-restart')) };
    const res = await fetch(`${api}/orders`, { method: 'POST', headers, body: JSON.stringify({ ...VALID_ORDER, customerId: 'c-e2e-restart', paymentMethod: { token } }) });
    expect(res.status).to.equal(202, await res.clone().text());
    return ((await res.json()) as { orderId: string }).orderId;
  };
  const statusOf = async (orderId: string): Promise<string | undefined> => {
    const res = await fetch(`${api}/orders/${orderId}`, { headers: await asOperator() }).catch(() => undefined);
    return res?.status === 200 ? ((await res.json()) as ReadModel).status : undefined;
  };
  const finalStatus = (orderId: string): Promise<string> =>
    eventually(async () => {
      const status = await statusOf(orderId);
      return status === 'fulfilled' || status === 'cancelled' ? status : undefined;
    }, { timeoutMs: 180_000, intervalMs: 250, what: `order ${orderId} to reach a final state` });
  /** The run of each order's saga, once it has one. */
  const runsOf = (orderIds: string[]): Promise<string[]> =>
    eventually(async () => {
      const descriptions = await Promise.all(orderIds.map((id) => temporal.workflow.getHandle(workflowIdOf(id)).describe()));
      return descriptions.map((d) => d.runId);
    }, { timeoutMs: 30_000, what: 'a saga for each order' });
  const pidOf = (name: string): number => {
    const lines = start!.output.filter((l) => l.startsWith(`[start] ${name} running (pid `));
    return Number(/pid (\d+)/.exec(lines[lines.length - 1] ?? '')?.[1]);
  };
  const startFleet = async (): Promise<Child> => {
    const child = runTs('scripts/start.ts', [], env);
    await child.waitFor(/Temporal dev server started/, 60_000);
    await child.waitFor(/\[order-api\].*order-api listening/, 120_000);
    await child.waitFor(/\[temporal-worker\].*temporal worker started/, 120_000);
    await child.waitFor(/\[saga-bridge\].*worker started/, 120_000);
    await child.waitFor(/\[outbox-relay\].*outbox relay started/, 120_000);
    return child;
  };

  before(async () => {
    fleet = await TestFleet.create({ databaseUrl });
    const httpPort = await freePort();
    const temporalPort = await freePort();
    api = `http://127.0.0.1:${httpPort}`;
    temporalDir = mkdtempSync(join(tmpdir(), 'e2e-temporal-'));
    env = {
      BUS_NAMESPACE: fleet.namespace,
      HTTP_PORT: String(httpPort),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      TEMPORAL_DB_FILE: join(temporalDir, 'temporal.sqlite'),
      DATABASE_URL: databaseUrl,
      RECONCILE_INTERVAL_MS: '1000',
      ...NO_RATE_LIMITS,
      RECONCILE_GRACE_MS: '3000',
    };
    start = await startFleet();
    db = createPool(databaseUrl, 'test-e2e-restart');
    temporal = await connectTemporal({ ...getConfig(), temporalAddress: env.TEMPORAL_ADDRESS! });
  });
  after(async () => {
    start?.kill('SIGINT');
    await start?.exited(60_000).catch(() => start?.kill('SIGKILL'));
    await temporal?.connection.close();
    await db?.end();
    await fleet?.cleanup();
    if (temporalDir) rmSync(temporalDir, { recursive: true, force: true });
    await dropDatabase(databaseUrl);
  });

  it('restarts the SIGKILLed dev server on the same file: every order in flight completes with its one saga, and the Temporal worker waits instead of exiting in a loop', async () => {
    const ids = await Promise.all(['tok_ok', 'tok_ok', 'tok_ok', 'tok_flaky', 'tok_flaky', 'tok_flaky'].map(placeOrder));
    const runs = await runsOf(ids);
    const killed = pidOf('temporal');
    process.kill(killed, 'SIGKILL');
    await start!.waitFor(/^\[start\] temporal exited \(SIGKILL\); restarting/, 30_000);
    await eventually(() => pidOf('temporal') !== killed, { timeoutMs: 30_000, what: 'the dev server to be restarted' });
    for (const id of ids) expect(await finalStatus(id), id).to.equal('fulfilled');
    // The same run of each saga finished what it had started: nothing was lost or started again.
    expect(await runsOf(ids)).to.deep.equal(runs);
    const exits = start!.output.filter((l) => /^\[start\] \S+ (exited|failed \d+ times)/.test(l));
    expect(exits.filter((l) => l.startsWith('[start] temporal-worker exited')).length).to.be.at.most(1, exits.join('\n'));
    expect(exits.filter((l) => / failed \d+ times /.test(l))).to.deep.equal([]);
    expect(statSync(env.TEMPORAL_DB_FILE!).size).to.be.greaterThan(0);
  });

  it('keeps the sagas in flight across a restart of npm start itself (Ctrl-C, then npm start on the same file)', async () => {
    const ids = await Promise.all(['tok_flaky', 'tok_flaky', 'tok_flaky', 'tok_flaky'].map(placeOrder));
    const runs = await runsOf(ids);
    start!.kill('SIGINT');
    expect(await start!.exited(60_000)).to.deep.equal({ code: 0, signal: null });
    start = await startFleet();
    for (const id of ids) expect(await finalStatus(id), id).to.equal('fulfilled');
    expect(await runsOf(ids)).to.deep.equal(runs);
  });

  it('runs the reconciler on a schedule: an accepted order without a saga gets one', async () => {
    // Written to the order store alone (no order.placed): only the reconciler can start its saga.
    // The read model never sees it (it waits for the order.placed it never got), so the order
    // store tells the outcome.
    const orderId = `ord_e2e_reconcile_${Date.now().toString(36)}`;
    await storeUnpublishedOrder(db, orderId, {
      customerId: 'c-e2e-reconcile',
      items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 5 }],
      totalAmount: 5,
      currency: 'EUR',
      shippingAddress: { city: 'Berlin', country: 'DE' },
      paymentToken: 'tok_ok',
    });
    await start!.waitFor(new RegExp(`\\[saga-bridge\\].*reconciler: order ${orderId}: no workflow, order still accepted → started its saga`), 60_000);
    await eventually(async () => (await db.query<{ status: string }>('SELECT status FROM orders.orders WHERE order_id = $1', [orderId])).rows[0]?.status === 'fulfilled', {
      timeoutMs: 60_000,
      what: 'the reconciled order to be fulfilled',
    });
    expect((await temporal.workflow.getHandle(workflowIdOf(orderId)).describe()).memo).to.deep.equal({ startedBy: 'reconciler' });
  });
});

describe('npm start without its dependencies', function () {
  this.timeout(60_000);

  it('names, once, a process that has not reached a dependency in 30 s (Redis accepts connections and never answers)', async function () {
    this.timeout(120_000);
    const hole = await BlackHole.start();
    const temporalDir = mkdtempSync(join(tmpdir(), 'e2e-silent-redis-'));
    // A test fleet's namespace (t<time><random>), so that a killed run's queues are found stale too.
    const namespace = generatedNamespace('test-fleet', 'sr');
    const child = runTs('scripts/start.ts', [], {
      REDIS_URL: hole.url(getConfig().redisUrl),
      BUS_NAMESPACE: namespace,
      HTTP_PORT: String(await freePort()),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      TEMPORAL_DB_FILE: join(temporalDir, 'temporal.sqlite'),
      RECONCILE_INTERVAL_MS: '0',
      // No rate limits: the tests poll orders faster than a client may (the limits are auth.test.ts's).
      RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '0',
      RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '0',
      METRICS_PORT_BASE: '0',
    });
    try {
      const line = await child.waitFor(/^\[start\] payments has not reached redis in 30 s/, 90_000);
      expect(line).to.include('its warnings say why');
      // It said why before that, in its own warning.
      expect(child.output.some((l) => l.startsWith('[payments]') && l.includes('not connected to redis for'))).to.equal(true);
      // The processes that do not use Redis are not named.
      expect(child.output.some((l) => /^\[start\] order-api has not reached/.test(l))).to.equal(false);
    } finally {
      child.kill('SIGINT');
      await child.exited(60_000).catch(() => child.kill('SIGKILL'));
      await hole.close();
      rmSync(temporalDir, { recursive: true, force: true });
      // The fleet declared its queues (quorum queues, each holding files open) before it found Redis silent.
      await deleteFleetNamespace(namespace, 'test-e2e-silent-redis-cleanup');
    }
  });

  it('says which dependency is not reachable and how to start it, and exits 1', async () => {
    const child = runTs('scripts/start.ts', [], { AMQP_URL: 'amqp://guest:secret@127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:2' });
    expect((await child.exited(30_000)).code).to.equal(1);
    const out = child.output.join('\n');
    expect(out).to.include('RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:1').and.include('docker compose up -d rabbitmq');
    expect(out).to.include('Redis is not reachable at redis://127.0.0.1:2').and.include('docker compose up -d redis');
    expect(out).to.not.include('PostgreSQL is not reachable');
    expect(out).to.not.include('secret');
  });
});
