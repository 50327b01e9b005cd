// outbox: rows per second from commit to confirmed publish, and the delay between the two,
// with writers committing orders' events at a fixed rate while the relay runs; and the
// relay's drain rate from a backlog.
import type { Config } from '../shared/config';
import { createPool, withTransaction } from '../shared/db';
import { appendToStream } from '../shared/event-store';
import { AmqpConnection } from '../shared/messaging/connection';
import { Publisher } from '../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace, queueNames, type QueueSpec } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';
import { OutboxRelay } from '../services/order-api/outbox';
import { kilobyteEvent, latencySummary, openLoop, pool } from './lib';
import { generatedNamespace } from '../scripts/bus';

export interface OutboxFigures {
  steady: { offeredPerSec: number; seconds: number; rowsPerSec: number; p50Ms: number; p99Ms: number; rows: number };
  drain: { rows: number; rowsPerSec: number };
}

export async function benchOutbox(config: Config, rate: number, seconds: number, backlog: number): Promise<OutboxFigures> {
  const namespace = generatedNamespace('bench');
  // Writers and the relay on pools of their own, as the API and the relay processes have.
  const db = createPool(config.databaseUrl, 'bench-outbox-writers', 40);
  const relayDb = createPool(config.databaseUrl, 'bench-outbox-relay', 4);
  const connection = new AmqpConnection({ url: config.amqpUrl, name: 'bench-outbox' });
  await connection.start();
  const admin = await connection.channelModel!.createChannel();
  const queue: QueueSpec = { name: inNamespace(namespace, 'bench.outbox'), bind: [[inNamespace(namespace, 'orders'), '#']] };
  await declareTopology(admin, { exchanges: coreExchanges(namespace), queues: [queue] });
  const publisher = new Publisher(connection, new MessageValidator(), { namespace });
  await publisher.start();
  const committedAt = new Map<string, number>();
  const confirmedAt = new Map<string, number>();
  const mine = new Set<string>();
  const written: string[] = [];
  let relayRunning = false;
  const relay = new OutboxRelay(relayDb, publisher, {
    beforeMark: async (ids) => {
      const now = performance.now();
      for (const id of ids) if (mine.has(id)) confirmedAt.set(id, now);
    },
  });
  const write = async (): Promise<void> => {
    const e = kilobyteEvent();
    mine.add(e.eventId);
    written.push(e.eventId);
    // An append to a new stream, in a transaction of its own, as POST /orders makes one.
    await withTransaction(db, (tx) => appendToStream(tx, e.aggregateId, 0, [e]));
    committedAt.set(e.eventId, performance.now());
  };
  try {
    await relay.drainOnce().catch(() => undefined); // rows others left unsent go first, outside the measurement
    while ((await relay.drainOnce()).published > 0);
    await relay.start();
    relayRunning = true;

    // Steady: commits at a fixed rate while the relay runs.
    await openLoop(rate, seconds, async () => {
      await write();
      return true;
    });
    for (const deadline = Date.now() + 30_000; confirmedAt.size < mine.size && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    const delays = [...committedAt].flatMap(([id, t]) => (confirmedAt.has(id) ? [confirmedAt.get(id)! - t] : []));
    const first = Math.min(...committedAt.values());
    const last = Math.max(...confirmedAt.values());
    const s = latencySummary(delays);
    const steady = { offeredPerSec: rate, seconds, rowsPerSec: Math.round(confirmedAt.size / ((last - first) / 1000)), p50Ms: s.p50, p99Ms: s.p99, rows: confirmedAt.size };

    // Drain: a backlog written with the relay stopped, then published as fast as it goes.
    await relay.stop();
    relayRunning = false;
    mine.clear();
    confirmedAt.clear();
    await pool(backlog, 16, write);
    const drainer = new OutboxRelay(relayDb, publisher, {
      beforeMark: async (ids) => {
        for (const id of ids) if (mine.has(id)) confirmedAt.set(id, performance.now());
      },
    });
    const t = performance.now();
    while (confirmedAt.size < mine.size) if ((await drainer.drainOnce()).published === 0) break;
    const drain = { rows: confirmedAt.size, rowsPerSec: Math.round(confirmedAt.size / ((performance.now() - t) / 1000)) };
    return { steady, drain };
  } finally {
    if (relayRunning) await relay.stop();
    await db.query('DELETE FROM orders.streams WHERE stream_id IN (SELECT stream_id FROM orders.events WHERE event_id = ANY($1))', [written]);
    await db.query('DELETE FROM orders.events WHERE event_id = ANY($1)', [written]);
    for (const q of queueNames({ exchanges: [], queues: [queue] })) await admin.deleteQueue(q).catch(() => undefined);
    for (const e of coreExchanges(namespace)) await admin.deleteExchange(e.name).catch(() => undefined);
    await connection.close();
    await db.end();
    await relayDb.end();
  }
}
