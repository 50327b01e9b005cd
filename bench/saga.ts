// saga: orders from POST /orders to their final state through the real fleet (`npm start`,
// its own Temporal dev server), offered at a fixed rate; completed sagas per second and the
// time each took, from the moment its POST was due to the read model's final update.
import { ulid } from 'ulid';
import type { Config } from '../shared/config';
import { createPool } from '../shared/db';
import { AmqpConnection } from '../shared/messaging/connection';
import { deleteNamespace, StartedFleet } from '../scripts/fleet';
import { latencySummary, openLoop } from './lib';

export interface SagaFigures {
  offeredPerSec: number;
  seconds: number;
  completed: number;
  completedPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
}

export async function benchSaga(config: Config, rate: number, seconds: number): Promise<SagaFigures> {
  const namespace = `bench${ulid().slice(-8).toLowerCase()}`;
  const httpPort = 43_000 + Math.floor(Math.random() * 1_000);
  const temporalPort = 33_000 + Math.floor(Math.random() * 900);
  const api = `http://127.0.0.1:${httpPort}`;
  const fleet = new StartedFleet({ BUS_NAMESPACE: namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, LOG_LEVEL: 'warn', DATABASE_URL: config.databaseUrl });
  const db = createPool(config.databaseUrl, 'bench-saga', 4);
  const customerId = `bench-saga-${ulid()}`;
  const body = JSON.stringify({ customerId, items: [{ sku: 'PROD-003', quantity: 1, unitPrice: 4.5 }], currency: 'EUR', shippingAddress: { city: 'Berlin', country: 'DE' }, paymentMethod: { token: 'tok_ok' } });
  try {
    await fleet.waitFor(/\[start\] Ctrl-C stops everything/, 180_000);
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      if (await fetch(`${api}/readyz`).then((r) => r.ok, () => false)) break;
    }
    const place = async (): Promise<boolean> => (await fetch(`${api}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status === 202;
    await openLoop(rate, 3, place); // warm-up: the workflow cache, the JIT, the pools
    const dueAt = new Map<string, number>(); // orderId → when its POST was due (epoch ms)
    const start = Date.now();
    const load = await openLoop(rate, seconds, async (i) => {
      const due = start + 50 + (i * 1_000) / rate;
      const res = await fetch(`${api}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `${customerId}-${i}` }, body });
      if (res.status !== 202) return false;
      dueAt.set(((await res.json()) as { orderId: string }).orderId, due);
      return true;
    });
    const ids = [...dueAt.keys()];
    const finals = async (): Promise<Map<string, number>> => {
      const r = await db.query<{ order_id: string; updated_at: Date }>("SELECT order_id, updated_at FROM read_model.orders WHERE order_id = ANY($1) AND status IN ('fulfilled', 'cancelled')", [ids]);
      return new Map(r.rows.map((x) => [x.order_id, x.updated_at.getTime()]));
    };
    let done = await finals();
    for (const deadline = Date.now() + 300_000; done.size < ids.length && Date.now() < deadline; done = await finals()) await new Promise((r) => setTimeout(r, 500));
    const latencies = [...done].map(([id, at]) => at - dueAt.get(id)!);
    const last = Math.max(...done.values());
    const s = latencySummary(latencies);
    return {
      offeredPerSec: rate,
      seconds,
      completed: done.size,
      completedPerSec: Math.round((done.size / ((last - start) / 1000)) * 10) / 10,
      p50Ms: s.p50,
      p99Ms: s.p99,
      maxMs: s.max,
      errors: load.errors + (ids.length - done.size),
    };
  } finally {
    await fleet.stop();
    const amqp = new AmqpConnection({ url: config.amqpUrl, name: 'bench-saga-cleanup' });
    await amqp.start();
    await deleteNamespace(await amqp.channelModel!.createChannel(), namespace);
    await amqp.close();
    await db.end();
  }
}
