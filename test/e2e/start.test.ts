// `npm start` as a user runs it: the fleet and its own Temporal dev server; orders over
// HTTP to their final states, idempotent retries, cancellation, bad input, a relay killed
// between publish and mark, the Temporal Web UI in headless Chromium, the demo, a dead
// process restarted, and Ctrl-C stopping everything.
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { expect } from 'chai';
import type { Options } from 'amqplib';
import { chromium } from 'playwright-core';
import { ulid } from 'ulid';
import { fleetAccess } from '../../scripts/rabbitmq-definitions';
import { HEADERS } from '../../shared/messaging/headers';
import { dlqName, inNamespace } from '../../shared/messaging/topology';
import { getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { workflowIdOf } from '../../shared/saga';
import { connectTemporal } from '../../shared/temporal/client';
import { TestFleet } from '../helpers/fleet';
import { malformedOrders, VALID_ORDER } from '../helpers/orders';
import { ROOT, runTs, type Child } from '../helpers/processes';
import { brokerApi, freePort } from '../helpers/services';
import { eventually } from '../helpers/wait';
import { CONSUMED_KEYS, poisonFor } from '../helpers/poison';
import { Random } from '../../scripts/random';

const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261128);

/** AMQP topic matching: `*` is one word, `#` is any number of words. */
function topicMatches(pattern: string, key: string): boolean {
  const re = pattern.split('.').map((w) => (w === '*' ? '[^.]+' : w === '#' ? '.*' : w.replace(/[-]/g, '\\$&'))).join('\\.');
  return new RegExp(`^${re}$`).test(key);
}

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
  const brokerUser = `e2e-${Date.now().toString(36)}`;
  const secrets = { amqp: `amqp-secret-${ulid()}`, db: `db-secret-${ulid()}` };

  const send = (method: string, path: string, contentType: string, body: string | Buffer): Promise<Response> => fetch(`${api}${path}`, { method, headers: { 'content-type': contentType }, body });
  const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const placeOrder = async (order: unknown, headers: Record<string, string> = {}): Promise<string> => {
    const res = await post('/orders', order, headers);
    expect(res.status).to.equal(202, await res.clone().text());
    expect(res.headers.get('location')).to.match(/^\/orders\/ord_/);
    return ((await res.json()) as { orderId: string }).orderId;
  };
  const getOrder = async (orderId: string): Promise<ReadModel | undefined> => {
    const res = await fetch(`${api}/orders/${orderId}`);
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
    const httpPort = await freePort();
    const temporalPort = await freePort();
    api = `http://127.0.0.1:${httpPort}`;
    webUi = `http://127.0.0.1:${temporalPort + 1000}`;
    env = { BUS_NAMESPACE: fleet.namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}` };
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
    start?.kill('SIGKILL');
    await temporal?.connection.close();
    await db?.end();
    await fleet?.cleanup();
    await brokerApi('DELETE', `/users/${brokerUser}`).catch(() => undefined);
  });

  it('prints where the API and the Web UI are', () => {
    expect(start!.output.join('\n')).to.match(/order-api: +http:\/\/localhost:\d+/).and.match(/Temporal Web UI: http:\/\/localhost:\d+/);
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
    const rows = await db.query("SELECT count(*)::int AS n FROM orders.outbox WHERE envelope->>'aggregateId' = $1", [first]);
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
      ['a body that is not JSON', () => send('POST', '/orders', 'application/json', '{"customerId": '), 415],
      ['invalid UTF-8', () => send('POST', '/orders', 'application/json', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 415],
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
      await db.query(`CREATE TRIGGER hold_mark BEFORE UPDATE ON orders.outbox FOR EACH ROW WHEN (NEW.envelope->'data'->>'customerId' = '${marker}') EXECUTE FUNCTION ${fn}()`);
      const orderId = await placeOrder({ ...VALID_ORDER, customerId: marker });
      expect((await finalOrder(orderId)).status).to.equal('fulfilled'); // published: the saga ran
      const stuck = await eventually(async () => {
        const r = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'outbox-relay' AND wait_event = 'advisory'");
        return r.rows[0]?.pid;
      }, { what: 'the relay waiting to mark the row' });
      const unsent = await db.query("SELECT 1 FROM orders.outbox WHERE envelope->>'aggregateId' = $1 AND sent_at IS NULL", [orderId]);
      expect(unsent.rowCount).to.equal(1);

      const relayPid = pidOf('outbox-relay');
      process.kill(relayPid, 'SIGKILL');
      await eventually(() => pidOf('outbox-relay') !== relayPid, { timeoutMs: 30_000, what: 'the relay to be restarted' });
      // PostgreSQL notices the dead client only when it next talks to it; end its stalled backend now.
      await db.query('SELECT pg_terminate_backend($1)', [stuck]);
      await db.query('DROP TRIGGER hold_mark ON orders.outbox');
      await eventually(async () => (await db.query("SELECT 1 FROM orders.outbox WHERE envelope->>'aggregateId' = $1 AND sent_at IS NOT NULL", [orderId])).rowCount === 1, {
        timeoutMs: 30_000,
        what: 'the restarted relay to publish the row again and mark it',
      });

      const order = await finalOrder(orderId);
      expect(order.history.map((h) => h.eventType)).to.deep.equal(['order.placed', 'order.fulfilled']);
      expect(await workflowRuns(orderId)).to.have.length(1);
      const count = async (table: string, id: string): Promise<number> => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE order_id = $1`, [id])).rows[0]!.n;
      for (const table of ['payments.captures', 'inventory.reservations', 'shipping.shipments']) expect(await count(table, orderId), table).to.equal(1);
      expect(await count('notifications.notifications', orderId)).to.equal(await count('notifications.notifications', fulfilledOrder));
    } finally {
      await db.query('DROP TRIGGER IF EXISTS hold_mark ON orders.outbox');
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

describe('npm start without its dependencies', function () {
  this.timeout(60_000);

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
