// The saga end to end on the Temporal dev server, with the real workers, reply bridge,
// saga starter, RabbitMQ, Redis and PostgreSQL.
import { expect } from 'chai';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { container } from 'tsyringe';
import { TOKENS } from '../../shared/di/tokens';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { workflowIdOf, type SagaStatus } from '../../shared/saga';
import { devServer } from '../../shared/temporal/binaries';
import { ORDER_ID_KEY } from '../../shared/temporal/client';
import { createLogger } from '../../shared/observability/logger';
import { inventoryWorker } from '../../workers/inventory';
import { paymentsWorker } from '../../workers/payments';
import { shippingWorker } from '../../workers/shipping';
import { sagaBridgeWorker } from '../../workers/saga-bridge';
import { startSagaWorker } from '../../workers/temporal/worker';
import { TemporalSagaControl } from '../../services/order-api/saga-control';
import { orderId, SAGA_ORDER, TestFleet, type SagaOrder } from '../helpers/fleet';
import { runTs, type Child } from '../helpers/processes';
import { eventually, holds } from '../helpers/wait';

const base = SAGA_ORDER;

describe('the saga on the Temporal dev server, with the real fleet', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let fleet: TestFleet;
  const children: Child[] = [];
  let sagaWorker: { stop(): Promise<void> } | undefined;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({ server: devServer({ searchAttributes: [ORDER_ID_KEY] }) });
  });
  after(async () => {
    await env?.teardown();
  });
  beforeEach(async () => {
    fleet = await TestFleet.create();
    const temporal = { temporalAddress: env.address };
    await fleet.start(paymentsWorker, { paymentProviderLatencyMs: 300 });
    await fleet.start(inventoryWorker);
    await fleet.start(shippingWorker);
    const withClient = container.createChildContainer();
    withClient.register(TOKENS.TemporalClient, { useValue: env.client });
    await fleet.start(sagaBridgeWorker, temporal, withClient);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await sagaWorker?.stop();
    sagaWorker = undefined;
    await fleet.cleanup();
  });

  const startSagaWorkerInProcess = async (): Promise<void> => {
    sagaWorker = await startSagaWorker({ ...fleet.config, temporalAddress: env.address }, createLogger('temporal-worker', 'error'));
  };

  /** The order in the order store, as order-api writes it. */
  const storeOrder = (order: Partial<SagaOrder> = {}): Promise<string> => fleet.storeOrder(order, 'saga');
  const placeOrder = (order: Partial<SagaOrder> = {}): Promise<string> => fleet.placeOrder(order, 'saga');

  async function result(id: string): Promise<SagaStatus> {
    const handle = env.client.workflow.getHandle(workflowIdOf(id));
    await eventually(() => handle.describe().then(() => true), { what: `workflow ${workflowIdOf(id)} to exist` });
    return (await handle.result()) as SagaStatus;
  }

  /** The saga's activities in its history's order: each remote one scheduled, each local one's marker (loadOrder). */
  async function activities(id: string): Promise<string[]> {
    const history = await env.client.workflow.getHandle(workflowIdOf(id)).fetchHistory();
    return (history.events ?? []).flatMap((e) => {
      const scheduled = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (scheduled) return [scheduled];
      const marker = e.markerRecordedEventAttributes;
      if (marker?.markerName !== 'core_local_activity') return [];
      const data = marker.details?.data?.payloads?.[0]?.data;
      return data ? [`local ${(JSON.parse(Buffer.from(data).toString()) as { activity_type: string }).activity_type}`] : [];
    });
  }

  it('takes one order per test trigger (docs/architecture.md#test-triggers) to its final state, with the expected activities and compensations', async () => {
    await startSagaWorkerInProcess();
    const ok = await placeOrder();
    const declined = await placeOrder({ paymentToken: 'tok_decline' });
    const oos = await placeOrder({ items: [{ sku: 'PROD-OOS', quantity: 1, unitPrice: 5 }], totalAmount: 5 });
    const noCarrier = await placeOrder({ shippingAddress: { city: 'Nowhere', country: 'XX' } });

    expect(await result(ok)).to.deep.include({ outcome: 'fulfilled', compensationsRun: [] });
    expect(await activities(ok)).to.deep.equal(['local loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment', 'markOrderFulfilled']);

    expect(await result(declined)).to.deep.include({ outcome: 'cancelled', cancellationReason: 'payment_declined', compensationsRun: [] });
    expect(await activities(declined)).to.deep.equal(['local loadOrder', 'capturePayment', 'markOrderCancelled']);

    expect(await result(oos)).to.deep.include({ outcome: 'cancelled', cancellationReason: 'out_of_stock', compensationsRun: ['refundPayment'] });
    expect(await activities(oos)).to.deep.equal(['local loadOrder', 'capturePayment', 'reserveStock', 'refundPayment', 'markOrderCancelled']);

    expect(await result(noCarrier)).to.deep.include({ outcome: 'cancelled', cancellationReason: 'shipping_unavailable', compensationsRun: ['releaseStock', 'refundPayment'] });
    expect(await activities(noCarrier)).to.deep.equal(['local loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment', 'releaseStock', 'refundPayment', 'markOrderCancelled']);

    // The effects in the databases match: money back and stock back for the XX order.
    const refunds = await fleet.db.query<{ amount: string }>('SELECT amount FROM payments.refunds WHERE order_id = ANY($1) ORDER BY amount', [[oos, noCarrier]]);
    expect(refunds.rows.map((r) => r.amount)).to.deep.equal(['5.00', '19.00']);
    const released = await fleet.db.query('SELECT 1 FROM inventory.reservations WHERE order_id = $1 AND released_at IS NOT NULL', [noCarrier]);
    expect(released.rowCount).to.equal(1);
    const statuses = await fleet.db.query<{ order_id: string; status: string }>('SELECT order_id, status FROM orders.orders WHERE order_id = ANY($1)', [[ok, declined]]);
    expect(Object.fromEntries(statuses.rows.map((r) => [r.order_id, r.status]))).to.deep.equal({ [ok]: 'fulfilled', [declined]: 'cancelled' });
  });

  it('finds an order by its OrderId search attribute', async () => {
    await startSagaWorkerInProcess();
    const id = await placeOrder();
    await result(id);
    const found = await eventually(async () => {
      const ids: string[] = [];
      for await (const wf of env.client.workflow.list({ query: `OrderId = "${id}"` })) ids.push(wf.workflowId);
      return ids.length > 0 ? ids : undefined;
    }, { what: 'the workflow in visibility' });
    expect(found).to.deep.equal([workflowIdOf(id)]);
  });

  it('starts one workflow when the same order.placed is published five times', async () => {
    await startSagaWorkerInProcess();
    const id = await placeOrder();
    const placed = newEnvelope('order.placed', { orderId: id, customerId: base.customerId, items: base.items, totalAmount: base.totalAmount, currency: base.currency }, { aggregateId: id, aggregateVersion: 1 });
    for (let i = 0; i < 4; i++) await fleet.publisher.publishEnvelope(i % 2 === 0 ? placed : { ...placed, eventId: newEnvelope('order.fulfilled', { orderId: id }, { aggregateId: id }).eventId });
    expect(await result(id)).to.deep.include({ outcome: 'fulfilled' });
    await eventually(async () => (await fleet.messageCount('saga-starter.orders')) === 0, { what: 'the starter to drain its queue' });
    const runs: string[] = [];
    for await (const wf of env.client.workflow.list({ query: `WorkflowId = "${workflowIdOf(id)}"` })) runs.push(wf.runId);
    expect(runs).to.have.length(1);
    expect((await fleet.db.query('SELECT 1 FROM payments.captures WHERE order_id = $1', [id])).rowCount).to.equal(1);
  });

  it('cancels an order on the customer’s request before shipping, compensating what was done', async () => {
    await startSagaWorkerInProcess();
    const id = await placeOrder();
    // Ask while the payment is being captured (the provider takes 300 ms).
    await eventually(async () => (await fleet.db.query('SELECT 1 FROM payments.provider_calls WHERE order_id = $1', [id])).rowCount === 1, { what: 'the capture to start' });
    expect(await new TemporalSagaControl(env.client).requestCancel(id)).to.deep.equal({ accepted: true });
    expect(await result(id)).to.deep.include({ outcome: 'cancelled', cancellationReason: 'customer_cancelled', compensationsRun: ['refundPayment'] });
    const refund = await fleet.db.query<{ amount: string }>('SELECT amount FROM payments.refunds WHERE order_id = $1', [id]);
    expect(refund.rows).to.deep.equal([{ amount: '19.00' }]);
    expect(await new TemporalSagaControl(env.client).requestCancel(id)).to.deep.include({ accepted: false, reason: 'no_saga' }, 'a finished saga cannot be cancelled');
  });

  it('cancels an order whose saga the starter has not started yet: the cancel starts it (update-with-start)', async () => {
    await startSagaWorkerInProcess();
    const id = await storeOrder(); // no order.placed: the saga starter never sees it
    expect(await new TemporalSagaControl(env.client).requestCancel(id)).to.deep.equal({ accepted: true });
    expect(await result(id)).to.deep.include({ outcome: 'cancelled', cancellationReason: 'customer_cancelled', compensationsRun: [] });
    expect((await fleet.db.query('SELECT 1 FROM payments.provider_calls WHERE order_id = $1', [id])).rowCount).to.equal(0, 'nothing was charged');
  });

  it('acks and logs a result for an activity that no longer waits, without retrying it', async () => {
    const id = orderId('late');
    await fleet.publisher.publishEnvelope(
      newEnvelope('payment.captured', { orderId: id, paymentId: 'p', amount: 1, currency: 'EUR' }, { aggregateId: id, replyTo: { workflowId: workflowIdOf(id), activityId: '2' } }),
    );
    await fleet.publisher.publishEnvelope(
      newEnvelope('payment.declined', { orderId: id, reason: 'card_declined' }, { aggregateId: id, replyTo: { workflowId: workflowIdOf(id), activityId: '2' } }),
    );
    await eventually(async () => (await fleet.messageCount('saga-bridge.replies')) === 0, { what: 'the bridge to take both' });
    // A retry would pass through the wait queue (250 ms) again and again.
    await holds(async () => (await fleet.messageCount('saga-bridge.replies.wait.250ms')) === 0, 1_500, 'no retry of the late reply');
    expect(await fleet.messageCount('saga-bridge.replies.dlq')).to.equal(0);
  });

  it('completes a saga, each effect once, when the Temporal worker is killed mid-saga and restarted', async () => {
    const spawnWorker = (): Child => {
      const child = runTs('workers/temporal/worker.ts', [], { TEMPORAL_ADDRESS: env.address, BUS_NAMESPACE: fleet.namespace, LOG_LEVEL: 'info' });
      children.push(child);
      return child;
    };
    const first = spawnWorker();
    await first.waitFor(/temporal worker started/, 60_000);
    const id = await placeOrder();
    // Kill it while the payment is being captured (the provider takes 300 ms).
    await eventually(async () => (await fleet.db.query('SELECT 1 FROM payments.provider_calls WHERE order_id = $1', [id])).rowCount === 1, { what: 'the capture to start' });
    first.kill('SIGKILL');
    await first.exited();
    const second = spawnWorker();
    await second.waitFor(/temporal worker started/, 60_000);
    expect(await result(id)).to.deep.include({ outcome: 'fulfilled', compensationsRun: [] });
    for (const table of ['payments.captures', 'payments.provider_calls', 'inventory.reservations', 'shipping.shipments']) {
      expect((await fleet.db.query(`SELECT 1 FROM ${table} WHERE order_id = $1`, [id])).rowCount).to.equal(1, table);
    }
    const calls = await fleet.db.query<{ calls: number }>('SELECT calls FROM payments.provider_calls WHERE order_id = $1', [id]);
    expect(calls.rows[0]?.calls).to.equal(1, 'the payment was charged more than once');
  });
});
