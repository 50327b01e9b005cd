// The order read model: per-order aggregateVersion order, stale and repeated events
// ignored, out-of-order arrival, and partitioning by order id.
import { expect } from 'chai';
import type { Envelope } from '../../shared/events';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { inNamespace } from '../../shared/messaging/topology';
import { readOrder } from '../../shared/orders/read-model';
import type { OrderEvent } from '../../shared/orders/order';
import { OrderProjection } from '../../workers/order-projection/handler';
import { projectionWorker } from '../../workers/order-projection';
import { PARTITIONS } from '../../workers/order-projection/topology';
import { orderId, TestFleet } from '../helpers/fleet';
import { eventually } from '../helpers/wait';

function lifecycle(id: string, outcome: 'fulfilled' | 'cancelled'): OrderEvent[] {
  const placed = newEnvelope(
    'order.placed',
    { orderId: id, customerId: 'c-9', items: [{ sku: 'PROD-002', quantity: 1, unitPrice: 12.5 }], totalAmount: 12.5, currency: 'EUR' },
    { aggregateId: id, aggregateVersion: 1 },
  );
  const final =
    outcome === 'fulfilled'
      ? newEnvelope('order.fulfilled', { orderId: id }, { aggregateId: id, aggregateVersion: 2 })
      : newEnvelope('order.cancelled', { orderId: id, reason: 'out_of_stock' }, { aggregateId: id, aggregateVersion: 2 });
  return [placed, final];
}

/** Deterministic shuffle (a seeded LCG), so a failure can be reproduced. */
function shuffle<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('order read model', function () {
  this.timeout(60_000);
  let fleet: TestFleet;
  beforeEach(async () => {
    fleet = await TestFleet.create();
  });
  afterEach(async () => {
    await fleet.cleanup();
  });

  it('applies an event that arrives early once the one before it arrives, and ignores repeats', async () => {
    const projection = new OrderProjection(fleet.db);
    const id = orderId('rm');
    const [placed, cancelled] = lifecycle(id, 'cancelled') as [OrderEvent, OrderEvent];
    expect(await projection.apply(cancelled)).to.equal('pending');
    expect(await readOrder(fleet.db, id)).to.equal(undefined);
    expect(await projection.apply(placed)).to.equal('applied');
    expect(await projection.apply(placed)).to.equal('stale');
    expect(await projection.apply(cancelled)).to.equal('stale');
    const order = await readOrder(fleet.db, id);
    expect(order).to.deep.include({ orderId: id, status: 'cancelled', cancellationReason: 'out_of_stock', customerId: 'c-9', totalAmount: 12.5, currency: 'EUR' });
    expect(order?.history.map((h) => h.eventType)).to.deep.equal(['order.placed', 'order.cancelled']);
    const pending = await fleet.db.query('SELECT 1 FROM read_model.pending_events WHERE order_id = $1', [id]);
    expect(pending.rowCount).to.equal(0);
  });

  it('records the reason of order.cancelled of either version: v1, and v2 with a step that timed out', async () => {
    const projection = new OrderProjection(fleet.db);
    const [v1Id, v2Id] = [orderId('rm-v1'), orderId('rm-v2')];
    const [placedV1, cancelled] = lifecycle(v1Id, 'cancelled') as [OrderEvent, OrderEvent];
    const [placedV2] = lifecycle(v2Id, 'cancelled') as [OrderEvent];
    const v1: OrderEvent = { ...cancelled, eventType: 'order.cancelled', schemaVersion: 1, data: { orderId: v1Id, reason: 'payment_declined' } };
    const v2 = newEnvelope('order.cancelled', { orderId: v2Id, reason: 'step_timed_out', failedStep: 'reserving_stock' }, { aggregateId: v2Id, aggregateVersion: 2 });
    for (const e of [placedV1, v1, placedV2, v2]) expect(await projection.apply(e)).to.equal('applied');
    expect(await readOrder(fleet.db, v1Id)).to.deep.include({ status: 'cancelled', cancellationReason: 'payment_declined' });
    expect(await readOrder(fleet.db, v2Id)).to.deep.include({ status: 'cancelled', cancellationReason: 'step_timed_out' });
  });

  it('ends right when each order’s events arrive shuffled and duplicated through the bus', async () => {
    await fleet.start(projectionWorker);
    const orders = Array.from({ length: 30 }, (_, i) => ({ id: orderId(`rm${i}`), outcome: i % 3 === 0 ? ('cancelled' as const) : ('fulfilled' as const) }));
    const events = orders.flatMap((o) => lifecycle(o.id, o.outcome));
    const deliveries = shuffle([...events, ...events, ...events.filter((_, i) => i % 4 === 0)], 42);
    for (const e of deliveries) await fleet.publisher.publishEnvelope(e);

    for (const o of orders) {
      const order = await eventually(async () => {
        const r = await readOrder(fleet.db, o.id);
        return r && r.status !== 'accepted' ? r : undefined;
      }, { what: `order ${o.id} to reach its final state` });
      expect(order.status).to.equal(o.outcome);
      expect(order.history.map((h) => h.eventType)).to.deep.equal(['order.placed', `order.${o.outcome}`]);
      expect(order.history.map((h) => h.aggregateVersion)).to.deep.equal([1, 2]);
    }
    const versions = await fleet.db.query<{ version: number }>('SELECT version FROM read_model.orders WHERE order_id = ANY($1)', [orders.map((o) => o.id)]);
    expect(versions.rows.every((r) => r.version === 2)).to.equal(true);
    const pending = await fleet.db.query('SELECT 1 FROM read_model.pending_events WHERE order_id = ANY($1)', [orders.map((o) => o.id)]);
    expect(pending.rowCount).to.equal(0);
  });

  it('routes every event of one order to the same single-active-consumer partition', async () => {
    // Declare the topology without consuming, then look at where each order's events landed.
    const worker = await fleet.start(projectionWorker);
    await Promise.all(worker.consumers.map((c) => c.stop()));
    const orders = Array.from({ length: 40 }, (_, i) => orderId(`p${i}`));
    for (const id of orders) for (const e of lifecycle(id, 'fulfilled')) await fleet.publisher.publishEnvelope(e);

    const partitionOf = new Map<string, Set<number>>();
    let seen = 0;
    const ch = await fleet.connection.channelModel!.createChannel();
    try {
      for (let p = 0; p < PARTITIONS; p++) {
        // basic.get is refused on single-active-consumer queues; consume instead.
        await ch.consume(inNamespace(fleet.namespace, `order-projection.p${p}`), (m) => {
          if (!m) return;
          const e = JSON.parse(m.content.toString()) as Envelope;
          partitionOf.set(e.aggregateId, (partitionOf.get(e.aggregateId) ?? new Set()).add(p));
          seen++;
        }, { noAck: true });
      }
      await eventually(() => seen === orders.length * 2, { what: 'every event in some partition' });
    } finally {
      await ch.close();
    }
    expect([...partitionOf.keys()]).to.have.members(orders);
    for (const [id, partitions] of partitionOf) expect(partitions.size).to.equal(1, `order ${id} was split across partitions`);
    const used = new Set([...partitionOf.values()].flatMap((s) => [...s]));
    expect(used.size).to.be.greaterThan(1, 'all orders went to one partition: the hash is not spreading');
  });
});
