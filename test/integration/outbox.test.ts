// The outbox relay: each row published once even with two relays, re-published when the
// relay dies between publish and mark, woken by NOTIFY.
import { expect } from 'chai';
import type { Envelope } from '../../shared/events';
import { createPool, withTransaction, type Pool } from '../../shared/db';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { Publisher } from '../../shared/messaging/publisher';
import { OutboxRelay } from '../../services/order-api/outbox';
import { appendToStream } from '../../shared/event-store';
import { validator } from '../helpers/bus';
import { dropDatabase, orderId, testDatabaseUrl, TestFleet } from '../helpers/fleet';
import { captureLogs } from '../helpers/logs';
import { uniqueName } from '../helpers/names';
import { eventually } from '../helpers/wait';

describe('outbox relay', function () {
  this.timeout(60_000);
  // A database of its own: its relays publish, and mark, whatever they find unsent.
  const databaseUrl = testDatabaseUrl('outbox');
  let fleet: TestFleet;
  const relays: OutboxRelay[] = [];
  beforeEach(async () => {
    fleet = await TestFleet.create({ databaseUrl });
    // Rows the tests before left unsent are not this test's to publish.
    await fleet.db.query('UPDATE orders.events SET sent_at = now() WHERE sent_at IS NULL');
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await fleet.cleanup();
  });
  after(async () => {
    await dropDatabase(databaseUrl);
  });

  async function relay(options: ConstructorParameters<typeof OutboxRelay>[2] = {}, db: Pool = fleet.db): Promise<OutboxRelay> {
    const publisher = new Publisher(fleet.connection, validator, { namespace: fleet.namespace });
    await publisher.start();
    const r = new OutboxRelay(db, publisher, { batchSize: 50, pollMs: 100, ...options });
    await r.start();
    relays.push(r);
    return r;
  }

  async function placeMany(n: number): Promise<Envelope[]> {
    const events = Array.from({ length: n }, () => {
      const id = orderId('ob');
      return newEnvelope('order.placed', { orderId: id, customerId: 'c', items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1 }], totalAmount: 1, currency: 'EUR' }, { aggregateId: id, aggregateVersion: 1 });
    });
    await withTransaction(fleet.db, async (tx) => {
      for (const e of events) await appendToStream(tx, e.aggregateId, 0, [e]);
    });
    return events;
  }

  const published = (ids: Set<string>): string[] => fleet.events.map((e) => e.eventId).filter((id) => ids.has(id));

  it('publishes each row once when two relays run at once, and marks every row sent', async () => {
    await relay();
    await relay();
    const events = await placeMany(300);
    const ids = new Set(events.map((e) => e.eventId));
    await eventually(() => published(ids).length >= 300, { what: '300 events published' });
    await eventually(async () => (await fleet.db.query('SELECT 1 FROM orders.events WHERE event_id = ANY($1) AND sent_at IS NULL', [[...ids]])).rowCount === 0, { what: 'all rows marked' });
    expect(published(ids)).to.have.length(300);
    expect(new Set(published(ids)).size).to.equal(300);
  });

  it('publishes again what a relay confirmed but did not mark (it died in between)', async () => {
    let dieOnce = true;
    await relay({
      beforeMark: async () => {
        if (dieOnce) {
          dieOnce = false;
          throw new Error('relay died between publish and mark');
        }
      },
    });
    const events = await placeMany(10);
    const ids = new Set(events.map((e) => e.eventId));
    await eventually(() => published(ids).length === 20, { what: 'each event published twice' });
    await eventually(async () => (await fleet.db.query('SELECT 1 FROM orders.events WHERE event_id = ANY($1) AND sent_at IS NULL', [[...ids]])).rowCount === 0, { what: 'all rows marked' });
  });

  it('is woken by NOTIFY on commit, without waiting for its poll', async () => {
    await relay({ pollMs: 60_000 });
    const started = Date.now();
    const [event] = await placeMany(1);
    await eventually(() => published(new Set([event!.eventId])).length === 1, { timeoutMs: 5_000, what: 'the event' });
    expect(Date.now() - started).to.be.below(5_000);
  });

  it('re-opens its LISTEN connection when the backend is ended, and is woken by the next commit without waiting for its poll', async () => {
    const app = uniqueName('relay-listen');
    const db = createPool(fleet.config.databaseUrl, app);
    const { logger, lines } = captureLogs();
    try {
      const r = await relay({ pollMs: 60_000, logger }, db);
      // When each batch ended: the wake of the re-LISTEN itself drains, and an order that batch
      // took would be published without any NOTIFY.
      let drainedAt = 0;
      const drainOnce = r.drainOnce.bind(r);
      r.drainOnce = async () => {
        const batch = await drainOnce();
        drainedAt = Date.now();
        return batch;
      };
      const listeners = async (): Promise<number[]> =>
        (await fleet.db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'", [app])).rows.map((row) => row.pid);
      const [first] = await eventually(async () => ((await listeners()).length === 1 ? listeners() : undefined), { what: 'the LISTEN backend' });
      await fleet.db.query('SELECT pg_terminate_backend($1)', [first]);
      // pg_stat_activity shows LISTEN as soon as the statement starts: the relay's own line says it ran.
      const listeningAt = await eventually(() => {
        const line = lines.find((l) => l.includes('"msg":"outbox: listening again"'));
        return line === undefined ? undefined : (JSON.parse(line) as { time: number }).time;
      }, { what: 'the relay to say it listens again' });
      await eventually(() => drainedAt >= listeningAt, { what: 'the batch its re-LISTEN woke to end' });
      const [event] = await placeMany(1);
      await eventually(() => published(new Set([event!.eventId])).length === 1, { timeoutMs: 5_000, what: 'the event, without the 60 s poll' });
    } finally {
      await Promise.all(relays.splice(0).map((r) => r.stop()));
      await db.end();
    }
  });

  it('stops at once when stopped while a batch runs, not after its next poll (a flaky CI run found it)', async () => {
    let batchRunning!: () => void;
    const running = new Promise<void>((resolve) => (batchRunning = resolve));
    let endBatch!: () => void;
    const held = new Promise<void>((resolve) => (endBatch = resolve));
    const publisher = new Publisher(fleet.connection, validator, { namespace: fleet.namespace });
    await publisher.start();
    const r = new OutboxRelay(fleet.db, publisher, {
      pollMs: 60_000,
      beforeMark: async () => {
        batchRunning();
        await held;
      },
    });
    relays.push(r);
    // The batch its LISTEN wakes ends first: the next is woken by the commit's NOTIFY, and no
    // NOTIFY comes while it runs (one would send the loop round again, past the stop).
    let drained = 0;
    const drainOnce = r.drainOnce.bind(r);
    r.drainOnce = async () => {
      const batch = await drainOnce();
      drained++;
      return batch;
    };
    await r.start();
    await eventually(() => drained > 0, { what: 'the first, empty, batch' });
    await placeMany(1);
    await running;
    let stopped = false;
    void r.stop().then(() => (stopped = true));
    endBatch();
    await eventually(() => stopped, { timeoutMs: 5_000, what: 'the relay to stop' });
  });

  it('releases the LISTEN connection it was opening when stopped meanwhile, so that its pool can end', async () => {
    // One connection, held by the test: the relay's LISTEN waits for it.
    const db = createPool(fleet.config.databaseUrl, uniqueName('relay-stop'), 1);
    const held = await db.connect();
    const publisher = new Publisher(fleet.connection, validator, { namespace: fleet.namespace });
    await publisher.start();
    const r = new OutboxRelay(db, publisher, { pollMs: 60_000 });
    const starting = r.start();
    const stopping = r.stop();
    held.release();
    await Promise.all([starting, stopping]);
    let ended = false;
    void db.end().then(() => (ended = true));
    await eventually(() => ended, { timeoutMs: 5_000, what: 'the pool to end: no client left checked out' });
  });

  it('does not lose a NOTIFY that arrives while a batch is being published (a flaky CI run found it)', async () => {
    const [first] = await placeMany(1);
    let second: Envelope | undefined;
    await relay({
      pollMs: 60_000,
      beforeMark: async () => {
        if (second) return;
        [second] = await placeMany(1); // commits and notifies while this batch is still open
        await new Promise((r) => setTimeout(r, 200)); // the notification arrives before the batch ends
      },
    });
    await eventually(() => published(new Set([first!.eventId])).length === 1, { what: 'the first event' });
    await eventually(() => second !== undefined && published(new Set([second.eventId])).length === 1, { timeoutMs: 5_000, what: 'the event committed during the batch' });
  });
});
