// event store: appends per second (one event per transaction, from one writer and from many
// at once, and in batches of 100), how writers racing on one stream fare (each reads,
// decides, appends at the version it read, and on a conflict reloads and tries again), and
// a rebuild of the order-projection from the whole store. The anchor is Emmett 0.42 on
// PostgreSQL, on this kind of machine: 9,862 events/s for batched appends, 991 events/s
// for a projection rebuild.
import { ulid } from 'ulid';
import type { Config } from '../shared/config';
import { createPool, withTransaction, type Pool } from '../shared/db';
import { appendToStream, ConcurrencyError, streamVersion } from '../shared/event-store';
import type { Envelope } from '../shared/events';
import { newEnvelope } from '../shared/messaging/new-envelope';
import { rebuildProjection } from '../shared/projections/rebuild';
import { latencySummary, pool } from './lib';

export interface EventStoreFigures {
  appends: { oneWriterPerSec: number; concurrentWriters: number; concurrentPerSec: number; batchSize: number; batchedPerSec: number };
  contention: { writers: number; appends: number; perSec: number; conflicts: number; retriesPerAppend: number; p50Ms: number; p99Ms: number };
  rebuild: { events: number; rows: number; seconds: number; eventsPerSec: number };
}

const CUSTOMER = 'bench-es-customer';

function placed(orderId: string): Envelope {
  return newEnvelope(
    'order.placed',
    { orderId, customerId: CUSTOMER, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 9.5 }], totalAmount: 9.5, currency: 'EUR', shippingAddress: { city: 'Lyon', country: 'FR' } },
    { aggregateId: orderId, correlationId: orderId },
  );
}
const requested = (orderId: string): Envelope => newEnvelope('order.cancellation_requested', { orderId }, { aggregateId: orderId });
const fulfilled = (orderId: string): Envelope => newEnvelope('order.fulfilled', { orderId }, { aggregateId: orderId });

const perSec = (n: number, ms: number): number => Math.round(n / (ms / 1000));

export async function benchEventStore(config: Config, sizes: { appends: number; contended: number; rebuildOrders: number }): Promise<EventStoreFigures> {
  const writers = 16;
  const db = createPool(config.databaseUrl, 'bench-event-store', { max: writers + 2, statementTimeoutMs: 600_000 });
  const streams: string[] = [];
  const newStream = (): string => {
    const id = `bench-es-${ulid()}`;
    streams.push(id);
    return id;
  };
  const appendOne = (id: string, expected: number, events: Envelope[]): Promise<Envelope[]> => withTransaction(db, (tx) => appendToStream(tx, id, expected, events));
  try {
    // One event per transaction, one writer: each a new stream (as POST /orders appends).
    let t = performance.now();
    for (let i = 0; i < sizes.appends; i++) {
      const id = newStream();
      await appendOne(id, 0, [placed(id)]);
    }
    const oneWriterPerSec = perSec(sizes.appends, performance.now() - t);

    // The same, from many writers at once.
    t = performance.now();
    await pool(sizes.appends * 4, writers, async () => {
      const id = newStream();
      await appendOne(id, 0, [placed(id)]);
    });
    const concurrentPerSec = perSec(sizes.appends * 4, performance.now() - t);

    // Batches of 100 events per transaction (Emmett's batched figure).
    const batchSize = 100;
    const batches = Math.max(1, Math.round((sizes.appends * 4) / batchSize));
    t = performance.now();
    await pool(batches, writers, async () => {
      const id = newStream();
      await appendOne(id, 0, [placed(id), ...Array.from({ length: batchSize - 1 }, () => requested(id))]);
    });
    const batchedPerSec = perSec(batches * batchSize, performance.now() - t);

    // Contention: writers race on one stream; each reads the stream's version, then appends at it
    // (what a command does after its fold; the fold's own cost is not what this measures).
    const hot = newStream();
    await appendOne(hot, 0, [placed(hot)]);
    let conflicts = 0;
    const latencies: number[] = [];
    t = performance.now();
    await pool(sizes.contended, 8, async () => {
      const began = performance.now();
      for (;;) {
        const version = await streamVersion(db, hot);
        try {
          await appendOne(hot, version, [requested(hot)]);
          break;
        } catch (err) {
          if (!(err instanceof ConcurrencyError)) throw err;
          conflicts++;
        }
      }
      latencies.push(performance.now() - began);
    });
    const contendedMs = performance.now() - t;
    const lat = latencySummary(latencies);
    const contention = {
      writers: 8,
      appends: sizes.contended,
      perSec: perSec(sizes.contended, contendedMs),
      conflicts,
      retriesPerAppend: Math.round((conflicts / sizes.contended) * 100) / 100,
      p50Ms: lat.p50,
      p99Ms: lat.p99,
    };

    // A store of orders to rebuild from: placed, half with a cancellation request, then fulfilled.
    await pool(Math.ceil(sizes.rebuildOrders / 100), writers, async () => {
      await withTransaction(db, async (tx) => {
        for (let i = 0; i < 100; i++) {
          const id = newStream();
          await appendToStream(tx, id, 0, i % 2 === 0 ? [placed(id), requested(id), fulfilled(id)] : [placed(id), fulfilled(id)]);
        }
      });
    });
    const rebuilt = await rebuildProjection(db, 'order-projection');
    const rebuild = { events: rebuilt.events, rows: rebuilt.rows, seconds: Math.round(rebuilt.seconds * 10) / 10, eventsPerSec: rebuilt.eventsPerSec };

    return { appends: { oneWriterPerSec, concurrentWriters: writers, concurrentPerSec, batchSize, batchedPerSec }, contention, rebuild };
  } finally {
    await removeStreams(db, streams).catch(() => undefined);
    await db.end();
  }
}

/** The bench's streams go, and what was projected of them: nothing is left to publish, fold or rebuild next time. */
async function removeStreams(db: Pool, streams: string[]): Promise<void> {
  for (let i = 0; i < streams.length; i += 10_000) {
    const ids = streams.slice(i, i + 10_000);
    for (const table of ['orders.events', 'orders.streams', 'orders.snapshots']) await db.query(`DELETE FROM ${table} WHERE stream_id = ANY($1)`, [ids]);
    await db.query('DELETE FROM read_model.orders WHERE order_id = ANY($1)', [ids]);
  }
}
