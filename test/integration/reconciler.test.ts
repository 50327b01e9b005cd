// The reconciler (workers/saga-bridge/reconciler.ts, `npm run reconcile`) against a real Temporal
// dev server, the real workers, RabbitMQ, Redis and a PostgreSQL database of the test's own:
// a server whose state is wiped under accepted orders (some with their payment captured), a
// saga that completed while its order reads accepted again (a restored order store), a saga
// terminated half-way, and one terminated while it compensated.
import { expect } from 'chai';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createLogger } from '../../shared/observability/logger';
import { SAGA, workflowIdOf } from '../../shared/saga';
import { devServer } from '../../shared/temporal/binaries';
import { connectTemporal, ORDER_ID_KEY } from '../../shared/temporal/client';
import { startSaga } from '../../shared/temporal/saga-start';
import { inventoryWorker } from '../../workers/inventory';
import { paymentsWorker } from '../../workers/payments';
import { shippingWorker } from '../../workers/shipping';
import { sagaBridgeWorker } from '../../workers/saga-bridge';
import { reconcileAll } from '../../workers/saga-bridge/reconciler';
import { startSagaWorker } from '../../workers/temporal/worker';
import { dropDatabase, testDatabaseUrl, SAGA_ORDER, TestFleet, type SagaOrder } from '../helpers/fleet';
import { runTs } from '../helpers/processes';
import { freePort } from '../helpers/services';
import { eventually } from '../helpers/wait';

const base = SAGA_ORDER;
const outOfStock: Partial<SagaOrder> = { items: [{ sku: 'PROD-OOS', quantity: 1, unitPrice: 5 }], totalAmount: 5 };

describe('npm run reconcile: its flags and an unreachable Temporal', function () {
  this.timeout(60_000);

  it('refuses an unknown flag with exit status 2 and its usage', async () => {
    const cli = runTs('scripts/reconcile.ts', ['--bogus']);
    expect((await cli.exited(30_000)).code).to.equal(2);
    expect(cli.output.join('\n')).to.include('usage: npm run reconcile -- [--dry-run]');
  });

  it('says Temporal is not reachable and exits 1', async () => {
    const cli = runTs('scripts/reconcile.ts', [], { TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    expect((await cli.exited(30_000)).code).to.equal(1);
    expect(cli.output.join('\n')).to.match(/reconcile: Temporal is not reachable at 127\.0\.0\.1:\d+/);
  });
});

describe('the reconciler, on a Temporal dev server and the real fleet', function () {
  this.timeout(300_000);
  // A database of the test's own: the reconciler looks at every accepted order it holds.
  const databaseUrl = testDatabaseUrl('reconcile');
  let port: number;
  let env: TestWorkflowEnvironment;
  let fleet: TestFleet;
  let client: Client;
  let sagaWorker: { stop(): Promise<void> } | undefined;

  const startServer = (): Promise<TestWorkflowEnvironment> => TestWorkflowEnvironment.createLocal({ server: devServer({ port, searchAttributes: [ORDER_ID_KEY] }) });
  const address = (): string => `127.0.0.1:${port}`;
  const startWorkerInProcess = async (): Promise<void> => {
    sagaWorker = await startSagaWorker({ ...fleet.config, temporalAddress: address() }, createLogger('temporal-worker', 'error'));
  };
  const stopWorker = async (): Promise<void> => {
    await sagaWorker?.stop();
    sagaWorker = undefined;
  };
  const cliEnv = (): Record<string, string> => ({ DATABASE_URL: databaseUrl, TEMPORAL_ADDRESS: address(), RECONCILE_GRACE_MS: '0', LOG_LEVEL: 'error' });

  before(async () => {
    port = await freePort();
    env = await startServer();
  });
  after(async () => {
    await env?.teardown();
    await dropDatabase(databaseUrl);
  });
  beforeEach(async () => {
    fleet = await TestFleet.create({ databaseUrl });
    await fleet.start(paymentsWorker, { paymentProviderLatencyMs: 100 });
    await fleet.start(shippingWorker);
    // The bridge connects by itself, as in the fleet: its client outlives a server restart.
    await fleet.start(sagaBridgeWorker, { temporalAddress: address() });
    client = await connectTemporal({ temporalAddress: address(), temporalNamespace: 'default' });
  });
  afterEach(async () => {
    await stopWorker();
    await client?.connection.close();
    await fleet.cleanup();
  });

  /** The order in the order store, as order-api writes it. */
  const storeOrder = (order: Partial<SagaOrder> = {}): Promise<string> => fleet.storeOrder(order, 'rec');
  const placeOrder = (order: Partial<SagaOrder> = {}): Promise<string> => fleet.placeOrder(order, 'rec');

  const count = async (sql: string, ids: string[]): Promise<number> => (await fleet.db.query<{ n: number }>(sql, [ids])).rows[0]!.n;
  const outcomes = async (ids: string[]): Promise<Record<string, string>> => {
    const rows = await fleet.db.query<{ order_id: string; status: string; cancellation_reason: string | null }>('SELECT order_id, status, cancellation_reason FROM orders.orders WHERE order_id = ANY($1)', [ids]);
    return Object.fromEntries(rows.rows.map((r) => [r.order_id, r.cancellation_reason ? `${r.status}: ${r.cancellation_reason}` : r.status]));
  };
  const allFinal = (ids: string[], timeoutMs = 120_000): Promise<Record<string, string>> =>
    eventually(async () => {
      const now = await outcomes(ids);
      return Object.values(now).every((o) => o !== 'accepted') ? now : undefined;
    }, { timeoutMs, intervalMs: 250, what: `orders ${ids.join(', ')} to be final` });
  /** The runs Temporal has of an order's saga (visibility lags a moment behind). */
  const runsOf = async (id: string): Promise<string[]> => {
    const runs: string[] = [];
    for await (const wf of client.workflow.list({ query: `WorkflowId = "${workflowIdOf(id)}"` })) runs.push(wf.runId);
    return runs;
  };
  /** The activities the latest run of an order's saga scheduled, in order. */
  const activities = async (id: string): Promise<string[]> => {
    const history = await client.workflow.getHandle(workflowIdOf(id)).fetchHistory();
    return (history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes?.activityType?.name ? [e.activityTaskScheduledEventAttributes.activityType.name] : []));
  };
  /** The ids of the outcome events published for an order: one id, however often it was published. */
  /** The ids of the outcome events in the order's stream. */
  const outcomeEventIds = async (id: string): Promise<string[]> =>
    (await fleet.db.query<{ event_id: string }>("SELECT event_id FROM orders.events WHERE stream_id = $1 AND event_type IN ('order.fulfilled', 'order.cancelled')", [id])).rows.map((r) => r.event_id);
  const available = async (sku: string): Promise<number> => (await fleet.db.query<{ available: number }>('SELECT available FROM inventory.stock WHERE sku = $1', [sku])).rows[0]!.available;

  it('completes each order exactly once after the server lost every saga, some with their payment captured, conserving money and stock; a dry run changes nothing, and a second pass does nothing', async () => {
    const stockBefore = await available('PROD-003');
    await startWorkerInProcess();
    // Accepted orders whose saga never started (the starter never saw order.placed).
    const neverStarted = [await storeOrder(), await storeOrder()];
    const declined = await storeOrder({ paymentToken: 'tok_decline' });
    // Orders whose saga captured the payment and then waits for the stock, whose worker is not running.
    const captured = [await placeOrder(), await placeOrder(), await placeOrder()];
    const outOfStockOrder = await placeOrder(outOfStock);
    const midway = [...captured, outOfStockOrder];
    await eventually(async () => (await count('SELECT count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1)', midway)) === midway.length, { timeoutMs: 60_000, what: 'the payments to be captured' });
    await eventually(async () => (await Promise.all(midway.map((id) => client.workflow.getHandle(workflowIdOf(id)).describe()))).every((d) => d.status.name === 'RUNNING'), { what: 'the sagas to be running' });

    // The server loses its state: a new, empty one on the same address.
    await stopWorker();
    await client.connection.close();
    await env.teardown();
    env = await startServer();
    client = await connectTemporal({ temporalAddress: address(), temporalNamespace: 'default' });
    await fleet.start(inventoryWorker);
    await startWorkerInProcess();
    const all = [...neverStarted, declined, ...midway];
    for (const id of all) await expect(client.workflow.getHandle(workflowIdOf(id)).describe()).to.be.rejectedWith(WorkflowNotFoundError);

    const dryRun = runTs('scripts/reconcile.ts', ['--dry-run'], cliEnv());
    expect((await dryRun.exited(60_000)).code).to.equal(0, dryRun.output.join('\n'));
    for (const id of all) expect(dryRun.output).to.include(`order ${id}: no workflow, order still accepted → would start its saga`);
    expect(dryRun.output.join('\n')).to.include(`reconcile: checked ${all.length} accepted orders older than 0 s: ${all.length} to start, 0 to restart, 0 to finish, 0 for an operator, 0 running, 0 errors (dry run: nothing changed)`);
    for (const id of all) await expect(client.workflow.getHandle(workflowIdOf(id)).describe()).to.be.rejectedWith(WorkflowNotFoundError);
    expect(Object.values(await outcomes(all))).to.deep.equal(all.map(() => 'accepted'));

    const pass = runTs('scripts/reconcile.ts', [], cliEnv());
    expect((await pass.exited(60_000)).code).to.equal(0, pass.output.join('\n'));
    for (const id of all) expect(pass.output).to.include(`order ${id}: no workflow, order still accepted → started its saga`);
    expect(pass.output.join('\n')).to.include(`reconcile: checked ${all.length} accepted orders older than 0 s: ${all.length} started, 0 restarted, 0 finished, 0 left for an operator`);

    // A second pass, while those sagas run or after they finished: nothing to do.
    const again = runTs('scripts/reconcile.ts', [], cliEnv());
    expect((await again.exited(60_000)).code).to.equal(0, again.output.join('\n'));
    expect(again.output.filter((l) => l.startsWith('order '))).to.deep.equal([]);
    expect(again.output.join('\n')).to.match(/0 started, 0 restarted, 0 finished, 0 left for an operator, \d+ running, 0 errors/);

    const fulfilled = [...neverStarted, ...captured];
    expect(await allFinal(all)).to.deep.equal({
      ...Object.fromEntries(fulfilled.map((id) => [id, 'fulfilled'])),
      [declined]: 'cancelled: payment_declined',
      [outOfStockOrder]: 'cancelled: out_of_stock',
    });
    // Each effect once: one capture per charged order, each charged once (the captured ones
    // were answered from the payments worker's records), the refund only of what was captured.
    expect(await count('SELECT count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1)', all)).to.equal(fulfilled.length + 1);
    const calls = await fleet.db.query<{ order_id: string; calls: number }>('SELECT order_id, calls FROM payments.provider_calls WHERE order_id = ANY($1)', [all]);
    expect(calls.rows.map((r) => r.calls)).to.deep.equal(all.map(() => 1), 'an order was charged more than once');
    const refunds = await fleet.db.query<{ order_id: string; amount: string }>('SELECT order_id, amount FROM payments.refunds WHERE order_id = ANY($1)', [all]);
    expect(refunds.rows).to.deep.equal([{ order_id: outOfStockOrder, amount: '5.00' }]);
    const money = await fleet.db.query<{ captured: string; refunded: string }>(
      'SELECT (SELECT sum(amount) FROM payments.captures WHERE order_id = ANY($1)) AS captured, (SELECT coalesce(sum(amount), 0) FROM payments.refunds WHERE order_id = ANY($1)) AS refunded',
      [all],
    );
    expect(Number(money.rows[0]!.captured) - Number(money.rows[0]!.refunded)).to.equal(fulfilled.length * base.totalAmount);
    expect(stockBefore - (await available('PROD-003'))).to.equal(fulfilled.length * 2);
    expect(await available('PROD-OOS')).to.equal(0);
    expect(await count('SELECT count(*)::int AS n FROM inventory.reservations WHERE order_id = ANY($1) AND released_at IS NULL', all)).to.equal(fulfilled.length);
    expect(await count('SELECT count(*)::int AS n FROM shipping.shipments WHERE order_id = ANY($1)', all)).to.equal(fulfilled.length);
    for (const id of all) {
      expect(await eventually(async () => ((await runsOf(id)).length > 0 ? runsOf(id) : undefined), { what: `the run of ${id} in visibility` }), id).to.have.length(1);
      expect(await outcomeEventIds(id), id).to.have.length(1);
    }
  });

  it('finishes a saga that completed while its order reads accepted again (the order store restored), recording its outcome without running a step', async () => {
    await fleet.start(inventoryWorker);
    await startWorkerInProcess();
    const ok = await placeOrder();
    const declined = await placeOrder({ paymentToken: 'tok_decline' });
    const ids = [ok, declined];
    expect(await allFinal(ids)).to.deep.equal({ [ok]: 'fulfilled', [declined]: 'cancelled: payment_declined' });
    // The order store reads final a moment before the workflow closes; a running one is no case for the reconciler.
    await Promise.all(ids.map((id) => client.workflow.getHandle(workflowIdOf(id)).result()));
    const firstEvents = await Promise.all(ids.map(outcomeEventIds));
    expect(firstEvents.map((e) => e.length)).to.deep.equal([1, 1]);
    // The order store restored from a backup taken before the outcomes: each stream back to its order.placed.
    await fleet.db.query('DELETE FROM orders.events WHERE stream_id = ANY($1) AND version > 1', [ids]);
    await fleet.db.query('UPDATE orders.streams SET version = 1 WHERE stream_id = ANY($1)', [ids]);
    await fleet.db.query("UPDATE orders.orders SET status = 'accepted', cancellation_reason = NULL, version = 1 WHERE order_id = ANY($1)", [ids]);

    const { actions } = await reconcileAll({ db: fleet.db, client }, { graceMs: 0 });
    expect(actions.filter((a) => ids.includes(a.orderId)).map(({ orderId: id, found, action }) => ({ id, found, action }))).to.have.deep.members([
      { id: ok, found: 'workflow completed (fulfilled)', action: 'finished' },
      { id: declined, found: 'workflow completed (cancelled: payment_declined)', action: 'finished' },
    ]);
    expect(await allFinal(ids)).to.deep.equal({ [ok]: 'fulfilled', [declined]: 'cancelled: payment_declined' });
    expect(await activities(ok)).to.deep.equal(['markOrderFulfilled']);
    expect(await activities(declined)).to.deep.equal(['markOrderCancelled']);
    for (const id of ids) expect(await eventually(async () => ((await runsOf(id)).length === 2 ? runsOf(id) : undefined), { what: `two runs of ${id}` })).to.have.length(2);
    // Nothing was charged again, and the outcome went out under the first run's event id.
    const calls = await fleet.db.query<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = ANY($1)', [ids]);
    expect(calls.rows.map((r) => r.calls)).to.deep.equal([1, 1]);
    expect(await count('SELECT count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1)', ids)).to.equal(1);
    expect(await Promise.all(ids.map(outcomeEventIds))).to.deep.equal(firstEvents);

    const second = await reconcileAll({ db: fleet.db, client }, { graceMs: 0 });
    expect(second.actions.filter((a) => ids.includes(a.orderId))).to.deep.equal([]);
  });

  it('restarts a saga terminated half-way, once; a run of its own that ends unfinished again is left for an operator', async () => {
    await fleet.start(inventoryWorker);
    await startWorkerInProcess();
    // tok_flaky keeps the saga in its payment step for over a second.
    const terminated = await storeOrder({ paymentToken: 'tok_flaky' });
    expect(await startSaga(client, { orderId: terminated })).to.equal('started');
    await eventually(async () => (await count('SELECT count(*)::int AS n FROM payments.provider_calls WHERE order_id = ANY($1)', [terminated])) === 1, { what: 'the capture to start' });
    await client.workflow.getHandle(workflowIdOf(terminated)).terminate('test: an operator ends it');

    const first = await reconcileAll({ db: fleet.db, client }, { graceMs: 0 });
    expect(first.actions.filter((a) => a.orderId === terminated).map((a) => [a.found, a.action])).to.deep.equal([['workflow terminated', 'restarted']]);
    expect(await allFinal([terminated])).to.deep.equal({ [terminated]: 'fulfilled' });
    expect(await count('SELECT count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1)', [terminated])).to.equal(1);
    expect(await count('SELECT count(*)::int AS n FROM shipping.shipments WHERE order_id = ANY($1)', [terminated])).to.equal(1);

    const again = await storeOrder({ paymentToken: 'tok_flaky' });
    const started = await reconcileAll({ db: fleet.db, client }, { graceMs: 0 });
    expect(started.actions.filter((a) => a.orderId === again).map((a) => a.action)).to.deep.equal(['started']);
    await client.workflow.getHandle(workflowIdOf(again)).terminate('test: it ends unfinished again');
    const left = await reconcileAll({ db: fleet.db, client }, { graceMs: 0 });
    expect(left.actions.filter((a) => a.orderId === again).map((a) => [a.found, a.action])).to.deep.equal([['workflow terminated (a run the reconciler started)', 'left for an operator']]);
    expect(await eventually(async () => ((await runsOf(again)).length > 0 ? runsOf(again) : undefined), { what: 'the run in visibility' })).to.have.length(1);
  });

  it('leaves for an operator a saga terminated after it began compensating: a new run could fulfil an order whose payment was refunded', async () => {
    await startWorkerInProcess();
    // No inventory worker: the saga captures the payment and waits in its stock step.
    const id = await placeOrder();
    await eventually(async () => (await count('SELECT count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1)', [id])) === 1, { timeoutMs: 60_000, what: 'the payment to be captured' });
    await eventually(async () => (await activities(id)).includes('reserveStock'), { what: 'the stock step to start' });
    // The customer cancels: the stock step's undo comes first, and waits for the inventory worker.
    await client.workflow.getHandle(workflowIdOf(id)).signal(SAGA.cancelSignal);
    await eventually(async () => (await activities(id)).includes('releaseStock'), { what: 'the compensations to start' });
    await client.workflow.getHandle(workflowIdOf(id)).terminate('test: an operator ends it while it compensates');

    for (const dryRun of [true, false]) {
      const { actions } = await reconcileAll({ db: fleet.db, client }, { graceMs: 0, dryRun });
      expect(actions.filter((a) => a.orderId === id).map((a) => [a.found, a.action, a.dryRun])).to.deep.equal([['workflow terminated after compensating', 'left for an operator', dryRun]]);
    }
    expect((await client.workflow.getHandle(workflowIdOf(id)).describe()).status.name).to.equal('TERMINATED');
    expect(await outcomes([id])).to.deep.equal({ [id]: 'accepted' });
    expect(await eventually(async () => ((await runsOf(id)).length > 0 ? runsOf(id) : undefined), { what: 'the run in visibility' })).to.have.length(1);
  });
});
