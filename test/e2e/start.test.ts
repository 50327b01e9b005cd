// `npm start` as a user runs it: the fleet and its own Temporal dev server, an order over
// HTTP to its final state, a dead process restarted, and Ctrl-C stopping everything.
import { expect } from 'chai';
import { inventoryTopology } from '../../workers/inventory/topology';
import { notificationsTopology } from '../../workers/notifications/topology';
import { projectionTopology } from '../../workers/order-projection/topology';
import { paymentsTopology } from '../../workers/payments/topology';
import { shippingTopology } from '../../workers/shipping/topology';
import { sagaBridgeTopology } from '../../workers/temporal/topology';
import { TestFleet } from '../helpers/fleet';
import { runTs, type Child } from '../helpers/processes';
import { freePort } from '../helpers/services';
import { eventually } from '../helpers/wait';

describe('npm start', function () {
  this.timeout(240_000);
  let fleet: TestFleet;
  let start: Child | undefined;
  let api = '';
  let env: Record<string, string> = {};

  before(async () => {
    fleet = await TestFleet.create();
    for (const t of [paymentsTopology, inventoryTopology, shippingTopology, notificationsTopology, projectionTopology, sagaBridgeTopology]) fleet.owns(t(fleet.namespace));
    const httpPort = await freePort();
    const temporalPort = await freePort();
    api = `http://127.0.0.1:${httpPort}`;
    env = { BUS_NAMESPACE: fleet.namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}` };
    start = runTs('scripts/start.ts', [], { ...env, LOG_LEVEL: 'info' });
    await start.waitFor(/Temporal dev server started/, 60_000);
    await start.waitFor(/\[order-api\].*order-api listening/, 120_000);
    await start.waitFor(/\[temporal-worker\].*temporal worker started/, 120_000);
    await start.waitFor(/\[saga-bridge\].*worker started/, 120_000);
  });
  after(async () => {
    start?.kill('SIGKILL');
    await fleet?.cleanup();
  });

  it('prints where the API and the Web UI are', () => {
    expect(start!.output.join('\n')).to.match(/order-api: +http:\/\/localhost:\d+/).and.match(/Temporal Web UI: http:\/\/localhost:\d+/);
  });

  it('takes an order placed over HTTP to fulfilled', async () => {
    const res = await fetch(`${api}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customerId: 'c-e2e', items: [{ sku: 'PROD-004', quantity: 1, unitPrice: 3.5 }], currency: 'EUR', shippingAddress: { city: 'Lyon', country: 'FR' }, paymentMethod: { token: 'tok_ok' } }),
    });
    expect(res.status).to.equal(202);
    const { orderId } = (await res.json()) as { orderId: string };
    const order = await eventually(async () => {
      const r = (await (await fetch(`${api}/orders/${orderId}`)).json()) as { status: string; history: Array<{ eventType: string }> };
      return r.status === 'fulfilled' ? r : undefined;
    }, { timeoutMs: 60_000, what: 'the order to be fulfilled' });
    expect(order.history.map((h) => h.eventType)).to.deep.equal(['order.placed', 'order.fulfilled']);
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
    const line = start!.output.find((l) => /\[start\] payments running \(pid \d+\)/.test(l));
    const pid = Number(/pid (\d+)/.exec(line ?? '')?.[1]);
    process.kill(pid, 'SIGKILL');
    await start!.waitFor(/\[start\] payments exited \(SIGKILL\); restarting/);
    await eventually(() => start!.output.filter((l) => /\[start\] payments running/.test(l)).length === 2, { timeoutMs: 30_000, what: 'payments to be restarted' });
  });

  it('stops everything on Ctrl-C and exits 0', async () => {
    start!.kill('SIGINT');
    expect(await start!.exited(60_000)).to.deep.equal({ code: 0, signal: null });
    expect(start!.output.join('\n')).to.include('[start] stopped');
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
