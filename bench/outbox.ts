// outbox: rows per second from commit to confirmed publish, and the delay between the two,
// with writers committing orders' events at a fixed rate while the relay runs; and the
// relay's drain rate from a backlog. The steady writers run in a process of their own
// (outbox-writers.ts), as order-api and the relay are two processes in the fleet.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Config } from '../shared/config';
import { createPool, withTransaction } from '../shared/db';
import { appendToStream } from '../shared/event-store';
import { AmqpConnection } from '../shared/messaging/connection';
import { Publisher } from '../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace, queueNames, type QueueSpec } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';
import { OutboxRelay } from '../services/order-api/outbox';
import { kilobyteEvent, latencySummary, pool } from './lib';
import { machineMs } from './outbox-writers';
import { generatedNamespace } from '../scripts/bus';
import { childEnvironment } from '../shared/config';

export interface OutboxFigures {
  /** writeErrors: the writers' appends that failed (they count in no figure). */
  steady: { offeredPerSec: number; seconds: number; rowsPerSec: number; p50Ms: number; p99Ms: number; rows: number; writeErrors: number };
  drain: { rows: number; rowsPerSec: number };
}

/** The backlog's writers, at once. */
const DRAIN_WRITERS = 16;

/**
 * Runs the steady writers' process; answers each event it committed with when its commit
 * returned (machineMs). A process that fails, fails the figure: the rows it committed are
 * left to the next run's first drain, outside its measurement.
 */
async function steadyWriters(config: Config, rate: number, seconds: number): Promise<{ committed: Array<[string, number]>; errors: number }> {
  const child = spawn(process.execPath, ['-r', 'ts-node/register', resolve(__dirname, 'outbox-writers.ts'), String(rate), String(seconds)], {
    env: childEnvironment({ DATABASE_URL: config.databaseUrl }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // A process that does not end within a minute past its run is stopped.
  const deadline = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1_000);
  // Its one line comes at the end: a line per commit would cost the relay's process as it runs.
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) => child.once('close', (c, s) => done([c, s])));
  clearTimeout(deadline);
  if (code !== 0) throw new Error(`bench: the outbox writers ${signal ? `were stopped by ${signal}` : `exited with ${String(code)}`}`);
  const { committed, errors } = JSON.parse(Buffer.concat(out).toString()) as { committed: Array<[string, number]>; errors: number };
  if (committed.length === 0) throw new Error(`bench: the outbox writers committed nothing (${errors} writes failed)`);
  return { committed, errors };
}

export async function benchOutbox(config: Config, rate: number, seconds: number, backlog: number): Promise<OutboxFigures> {
  const namespace = generatedNamespace('bench');
  // The drain's writers and the relay on pools of their own, as the API and the relay processes have.
  const db = createPool(config.databaseUrl, 'bench-outbox-backlog', DRAIN_WRITERS);
  const relayDb = createPool(config.databaseUrl, 'bench-outbox-relay', 4);
  const connection = new AmqpConnection({ url: config.amqpUrl, name: 'bench-outbox' });
  await connection.start();
  const admin = await connection.channelModel!.createChannel();
  const queue: QueueSpec = { name: inNamespace(namespace, 'bench.outbox'), bind: [[inNamespace(namespace, 'orders'), '#']] };
  await declareTopology(admin, { exchanges: coreExchanges(namespace), queues: [queue] });
  const publisher = new Publisher(connection, new MessageValidator(), { namespace });
  await publisher.start();
  // When the broker confirmed each event (machineMs), whoever wrote it.
  const confirmedAt = new Map<string, number>();
  const written: string[] = [];
  let relayRunning = false;
  const relay = new OutboxRelay(relayDb, publisher, {
    beforeMark: async (ids) => {
      const now = machineMs();
      for (const id of ids) confirmedAt.set(id, now);
    },
  });
  try {
    await relay.drainOnce().catch(() => undefined); // rows others left unsent go first, outside the measurement
    while ((await relay.drainOnce()).published > 0);
    confirmedAt.clear();
    await relay.start();
    relayRunning = true;

    // Steady: commits at a fixed rate, from the writers' process, while the relay runs.
    const { committed, errors } = await steadyWriters(config, rate, seconds);
    written.push(...committed.map(([id]) => id));
    const confirmedAll = (): boolean => committed.every(([id]) => confirmedAt.has(id));
    for (const deadline = Date.now() + 30_000; !confirmedAll() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    const delays = committed.flatMap(([id, t]) => (confirmedAt.has(id) ? [confirmedAt.get(id)! - t] : []));
    const first = Math.min(...committed.map(([, t]) => t));
    const last = Math.max(...committed.map(([id]) => confirmedAt.get(id) ?? -Infinity));
    const s = latencySummary(delays);
    const steady = { offeredPerSec: rate, seconds, rowsPerSec: Math.round(delays.length / ((last - first) / 1000)), p50Ms: s.p50, p99Ms: s.p99, rows: delays.length, writeErrors: errors };

    // Drain: a backlog written with the relay stopped, then published as fast as it goes.
    await relay.stop();
    relayRunning = false;
    while ((await relay.drainOnce()).published > 0); // steady rows still unconfirmed, outside the measurement
    const backlogIds: string[] = [];
    await pool(backlog, DRAIN_WRITERS, async () => {
      const e = kilobyteEvent();
      written.push(e.eventId);
      backlogIds.push(e.eventId);
      await withTransaction(db, (tx) => appendToStream(tx, e.aggregateId, 0, [e]));
    });
    const t = performance.now();
    while ((await relay.drainOnce()).published > 0);
    const drained = backlogIds.filter((id) => confirmedAt.has(id)).length;
    const drain = { rows: drained, rowsPerSec: Math.round(drained / ((performance.now() - t) / 1000)) };
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
