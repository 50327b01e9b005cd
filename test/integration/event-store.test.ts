// The event store on the real PostgreSQL: contiguous versions and a global position,
// expected-version conflicts (never an overwrite), snapshots that load exactly what the
// whole stream folds to, v1 events upcast on read, reading all streams in commit order
// without skipping a late commit, and the saga's outcome decided again after a conflict.
import { expect } from 'chai';
import { Client } from 'pg';
import { ulid } from 'ulid';
import { getConfig } from '../../shared/config';
import { createPool, MAX_NOTIFIES_IN_A_ROW, withTransaction, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { appendToStream, ConcurrencyError, EVENTS_CHANNEL, loadStream, readAll, readStream, snapshotIfDue, START, type Checkpoint } from '../../shared/event-store';
import type { Envelope } from '../../shared/events';
import { newEnvelope, stableEventId } from '../../shared/messaging/new-envelope';
import { metricValue } from '../helpers/metrics';
import { orderFold } from '../../shared/orders/order';
import { loadOrderState, placeOrder, recordOutcome } from '../../shared/orders/store';
import { VALID_ORDER } from '../helpers/orders';
import { eventually, holds } from '../helpers/wait';

describe('the event store', function () {
  this.timeout(60_000);
  let db: Pool;
  const streams: string[] = [];

  before(async () => {
    await migrate(getConfig().databaseUrl);
    db = createPool(getConfig().databaseUrl, 'test-event-store', 10);
  });
  after(async () => {
    // The streams written here directly are no orders' to publish: mark them sent.
    await db.query('UPDATE orders.events SET sent_at = now() WHERE stream_id = ANY($1) AND sent_at IS NULL', [streams]);
    await db.end();
  });

  const newStream = (): string => {
    const id = `ord_es${ulid()}`;
    streams.push(id);
    return id;
  };
  const placed = (id: string): Envelope =>
    newEnvelope('order.placed', { orderId: id, customerId: 'c-es', items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 3 }], totalAmount: 3, currency: 'EUR' }, { aggregateId: id });
  const requested = (id: string): Envelope => newEnvelope('order.cancellation_requested', { orderId: id }, { aggregateId: id });
  const append = (id: string, expected: number, events: Envelope[]) => withTransaction(db, (tx) => appendToStream(tx, id, expected, events));

  it('appends with contiguous versions from the expected one, and gives every event a growing global position', async () => {
    const id = newStream();
    const first = await append(id, 0, [placed(id)]);
    const more = await append(id, 1, [requested(id), requested(id)]);
    expect([...first, ...more].map((e) => e.aggregateVersion)).to.deep.equal([1, 2, 3]);
    const events = await readStream(db, id);
    expect(events.map((e) => e.version)).to.deep.equal([1, 2, 3]);
    const positions = events.map((e) => BigInt(e.position));
    expect(positions[0]! < positions[1]! && positions[1]! < positions[2]!).to.equal(true);
    expect(events.every((e) => e.envelope.aggregateVersion === e.version && e.envelope.aggregateId === id)).to.equal(true);
  });

  it('refuses an append at a stale or a future version with a typed conflict, and never overwrites', async () => {
    const id = newStream();
    await append(id, 0, [placed(id)]);
    await append(id, 1, [requested(id)]);
    for (const expected of [0, 1, 3]) {
      const err = await append(id, expected, [requested(id)]).catch((e: unknown) => e);
      expect(err, `expected ${expected}`).to.be.instanceOf(ConcurrencyError);
      expect(err).to.deep.include({ streamId: id, expectedVersion: expected, actualVersion: 2 });
    }
    expect((await readStream(db, id)).map((e) => e.envelope.eventType)).to.deep.equal(['order.placed', 'order.cancellation_requested']);
  });

  it('lets exactly one of many concurrent writers at the same expected version win; the others get ConcurrencyError', async () => {
    const id = newStream();
    await append(id, 0, [placed(id)]);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => append(id, 1, [requested(id)])));
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    const losers = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(losers).to.have.length(7);
    for (const l of losers) expect(l.reason).to.be.instanceOf(ConcurrencyError);
    expect((await readStream(db, id)).map((e) => e.version)).to.deep.equal([1, 2]);
  });

  it('loads a long stream from its snapshot exactly as folding every event gives, and ignores a snapshot of another fold version', async () => {
    const id = newStream();
    const every = 10;
    await withTransaction(db, async (tx) => {
      await appendToStream(tx, id, 0, [placed(id)]);
    });
    // 124 more events, a few per transaction, each append taking a snapshot when it passes a multiple of 10.
    let version = 1;
    while (version < 125) {
      const batch = Array.from({ length: Math.min(3, 125 - version) }, () => requested(id));
      await withTransaction(db, async (tx) => {
        const before = version;
        await appendToStream(tx, id, before, batch);
        version += batch.length;
        const { state } = await loadStream(tx, id, orderFold, { ignoreSnapshot: true });
        await snapshotIfDue(tx, id, orderFold, state, before, version, every);
      });
    }
    const snapshot = await db.query<{ version: number }>('SELECT version FROM orders.snapshots WHERE stream_id = $1', [id]);
    expect(snapshot.rows[0]?.version).to.be.within(118, 125);
    const withSnapshot = await loadStream(db, id, orderFold);
    const folded = await loadStream(db, id, orderFold, { ignoreSnapshot: true });
    expect(withSnapshot.version).to.equal(125);
    expect(withSnapshot).to.deep.equal(folded);
    expect(folded.state!.history).to.have.length(125);

    // A snapshot from another version of the fold is not read: the stream is folded whole.
    await db.query("UPDATE orders.snapshots SET schema = 99, state = '{\"bogus\": true}' WHERE stream_id = $1", [id]);
    expect(await loadStream(db, id, orderFold)).to.deep.equal(folded);
  });

  it('the order store takes a snapshot every EVENT_STORE_SNAPSHOT_EVERY events of an order', async () => {
    const orderId = await placeOrder(db, { customerId: 'c-es', items: VALID_ORDER.items, currency: 'EUR', shippingAddress: VALID_ORDER.shippingAddress, paymentToken: 'tok_ok' });
    streams.push(orderId);
    const every = getConfig().eventStoreSnapshotEvery;
    // A stream that long only grows by direct appends (a request is recorded once): fill it, then let the store append its outcome.
    const fill = every - 2;
    await append(orderId, 1, Array.from({ length: fill }, () => requested(orderId)));
    expect(await recordOutcome(db, orderId, { outcome: 'fulfilled' }, stableEventId(`es/${orderId}`))).to.equal('recorded');
    const snapshot = await db.query<{ version: number }>('SELECT version FROM orders.snapshots WHERE stream_id = $1', [orderId]);
    expect(snapshot.rows.map((r) => r.version)).to.deep.equal([every]);
    expect(await loadOrderState(db, orderId)).to.deep.equal(await loadStream(db, orderId, orderFold, { ignoreSnapshot: true }));
  });

  it('reads a stream written with v1 events upcast to the latest versions, and the order folds from them', async () => {
    const id = newStream();
    const v1 = (e: Envelope): Envelope => ({ ...e, schemaVersion: 1 });
    await append(id, 0, [v1(placed(id)), v1(newEnvelope('order.cancelled', { orderId: id, reason: 'out_of_stock' }, { aggregateId: id }))]);
    const stored = await db.query<{ schema_version: number }>('SELECT schema_version FROM orders.events WHERE stream_id = $1 ORDER BY version', [id]);
    expect(stored.rows.map((r) => r.schema_version)).to.deep.equal([1, 1]);
    const events = await readStream(db, id);
    expect(events.map((e) => e.envelope.schemaVersion)).to.deep.equal([2, 2]);
    const { state } = await loadOrderState(db, id);
    expect(state).to.deep.include({ status: 'cancelled', cancellationReason: 'out_of_stock', totalAmount: 3 });
  });

  it('reads all streams in commit order and never past a running transaction: a late commit of an earlier position is not skipped', async () => {
    const early = newStream();
    const late = newStream();
    // Where this test's reading starts: everything committed before it.
    let checkpoint: Checkpoint = START;
    for (let batch = await readAll(db, checkpoint, 10_000); batch.length > 0; batch = await readAll(db, checkpoint, 10_000)) checkpoint = batch[batch.length - 1]!.checkpoint;

    const slow = await db.connect();
    try {
      await slow.query('BEGIN');
      await appendToStream(slow, early, 0, [placed(early)]); // takes its position first, commits last
      await append(late, 0, [placed(late)]);
      const whileOpen = (await readAll(db, checkpoint, 10_000)).filter((e) => e.streamId === early || e.streamId === late);
      expect(whileOpen, 'nothing past the running transaction').to.deep.equal([]);
      await slow.query('COMMIT');
    } finally {
      slow.release();
    }
    // Once no older transaction runs (anywhere on the server: another client's may hold it back a moment).
    const after = await eventually(async () => {
      const mine = (await readAll(db, checkpoint, 10_000)).filter((e) => e.streamId === early || e.streamId === late);
      return mine.length > 0 ? mine : undefined;
    }, { what: 'the two events' });
    expect(after.map((e) => e.streamId)).to.deep.equal([early, late]);
  });

  it("records the saga's outcome once however often it is retried, and decides again after a concurrent cancellation request", async () => {
    const orderId = await placeOrder(db, { customerId: 'c-es', items: VALID_ORDER.items, currency: 'EUR', shippingAddress: VALID_ORDER.shippingAddress, paymentToken: 'tok_ok' });
    streams.push(orderId);
    const eventId = stableEventId(`es/${orderId}/order.cancelled`);
    const outcome = { outcome: 'cancelled', reason: 'customer_cancelled' } as const;
    // A cancellation request holds the stream: recordOutcome reads version 1, waits on the
    // stream's row, meets the conflict when the request commits, reloads and appends at 3.
    const other = await db.connect();
    let recording: Promise<string> | undefined;
    try {
      await other.query('BEGIN');
      await appendToStream(other, orderId, 1, [requested(orderId)]);
      recording = recordOutcome(db, orderId, outcome, eventId);
      await eventually(async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%orders.streams%'")).rowCount! > 0, {
        what: 'the outcome waiting on the stream',
      });
      await other.query('COMMIT');
    } finally {
      other.release();
    }
    expect(await recording).to.equal('recorded');
    expect(await recordOutcome(db, orderId, outcome, eventId)).to.equal('already_recorded');
    expect(await recordOutcome(db, orderId, { outcome: 'fulfilled' }, stableEventId(`es/${orderId}/order.fulfilled`))).to.equal('ended_otherwise');
    const events = await readStream(db, orderId);
    expect(events.map((e) => [e.version, e.envelope.eventType, e.envelope.eventId === eventId])).to.deep.equal([
      [1, 'order.placed', false],
      [2, 'order.cancellation_requested', false],
      [3, 'order.cancelled', true],
    ]);
    // The order's row moved with the stream, in the same transactions.
    const row = await db.query('SELECT status, cancellation_reason, version FROM orders.orders WHERE order_id = $1', [orderId]);
    expect(row.rows).to.deep.equal([{ status: 'cancelled', cancellation_reason: 'customer_cancelled', version: 3 }]);
  });

  it('refuses an append to an existing stream that is not its transaction\'s first write (readers of all streams would read it out of order)', async () => {
    const id = newStream();
    await append(id, 0, [placed(id)]);
    const err = await withTransaction(db, async (tx) => {
      await tx.query('UPDATE orders.streams SET version = version WHERE stream_id = $1', [id]);
      return appendToStream(tx, id, 1, [requested(id)]);
    }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error).and.have.property('message').that.matches(/first write/);
    expect((await readStream(db, id)).map((e) => e.version)).to.deep.equal([1]);
  });

  describe('notifications', () => {
    let listener: Client;
    const heard: Array<{ pid: number; at: number }> = [];

    before(async () => {
      listener = new Client({ connectionString: getConfig().databaseUrl });
      await listener.connect();
      listener.on('notification', (n) => {
        if (n.channel === EVENTS_CHANNEL) heard.push({ pid: n.processId, at: performance.now() });
      });
      await listener.query(`LISTEN ${EVENTS_CHANNEL}`);
    });
    after(() => listener.end());
    beforeEach(() => (heard.length = 0));

    /** Runs fn with a pool of its own and what its backends were heard notifying. */
    const withOwnPool = async (fn: (pool: Pool, ours: () => Promise<Array<{ at: number }>>) => Promise<void>): Promise<void> => {
      const name = `test-notify-${ulid()}`;
      const pool = createPool(getConfig().databaseUrl, name, 10);
      const ours = async (): Promise<Array<{ at: number }>> => {
        const pids = new Set((await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [name])).rows.map((r) => r.pid));
        return heard.filter((h) => pids.has(h.pid));
      };
      try {
        await fn(pool, ours);
      } finally {
        await pool.end();
      }
    };

    it('are sent by the pool once the append has committed, not in its transaction (a NOTIFY there would serialise every commit behind one lock)', () =>
      withOwnPool(async (pool, ours) => {
        const id = newStream();
        const sent: string[] = [];
        await withTransaction(pool, async (tx) => {
          const query = tx.query.bind(tx);
          // Every statement the transaction sends, recorded.
          tx.query = ((text: unknown, ...rest: unknown[]) => {
            sent.push(typeof text === 'string' ? text : JSON.stringify(text));
            return (query as (...a: unknown[]) => unknown)(text, ...rest);
          }) as typeof tx.query;
          await appendToStream(tx, id, 0, [placed(id)]);
          tx.query = query;
        });
        expect(sent.some((t) => /notify/i.test(t))).to.equal(false);
        await eventually(async () => (await ours()).length > 0, { what: 'the notification after the commit' });
      }));

    /**
     * Commits an append on pool whose NOTIFY after the commit is held until release() is
     * called: then it goes on (or fails, with fail). Resolves once that NOTIFY is held.
     */
    const appendWithHeldNotify = async (pool: Pool, { fail }: { fail: boolean }): Promise<{ release(): void }> => {
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      let held!: () => void;
      const isHeld = new Promise<void>((r) => (held = r));
      let restore!: () => void;
      const id = newStream();
      await withTransaction(pool, async (tx) => {
        const query = tx.query.bind(tx) as (...a: unknown[]) => Promise<unknown>;
        tx.query = (async (text: unknown, ...rest: unknown[]) => {
          if (typeof text !== 'string' || !text.includes('pg_notify')) return query(text, ...rest);
          const result = fail ? undefined : await query(text, ...rest);
          held();
          await gate;
          if (fail) throw new Error('the NOTIFY was lost');
          return result;
        }) as typeof tx.query;
        restore = () => (tx.query = query as typeof tx.query);
        await appendToStream(tx, id, 0, [placed(id)]);
      });
      await isHeld;
      return {
        release() {
          restore();
          open();
        },
      };
    };

    it('are coalesced: a commit that ends while another connection notifies sends none of its own, and that connection sends one more after it', () =>
      withOwnPool(async (pool, ours) => {
        const first = await appendWithHeldNotify(pool, { fail: false });
        await eventually(async () => (await ours()).length === 1, { what: "the first append's notification" });
        const id = newStream();
        await withTransaction(pool, (tx) => appendToStream(tx, id, 0, [placed(id)]));
        await holds(async () => (await ours()).length === 1, 300, 'no notification of its own for the second append');
        first.release();
        await eventually(async () => (await ours()).length === 2, { what: 'one more notification, after the second commit' });
        await holds(async () => (await ours()).length === 2, 300, 'no third notification');
      }));

    it('go back to the pool after a connection sent MAX_NOTIFIES_IN_A_ROW while commits kept asking for one more: the next goes through the pool', () =>
      withOwnPool(async (pool, ours) => {
        // The first append's connection holds each NOTIFY of its loop (a promise; the pool's
        // own queries pass a callback) until the test lets it go.
        const waiting: Array<() => void> = [];
        let holding = true;
        let loopNotifies = 0;
        let first: { query?: unknown } | undefined;
        const id = newStream();
        await withTransaction(pool, async (tx) => {
          first = tx;
          const query = tx.query.bind(tx) as (...a: unknown[]) => Promise<unknown>;
          tx.query = (async (text: unknown, ...rest: unknown[]) => {
            if (typeof text !== 'string' || !text.includes('pg_notify') || typeof rest.at(-1) === 'function') return query(text, ...rest);
            loopNotifies++;
            const result = await query(text, ...rest);
            if (holding) await new Promise<void>((go) => waiting.push(go));
            return result;
          }) as typeof tx.query;
          await appendToStream(tx, id, 0, [placed(id)]);
        });
        try {
          // While each of its NOTIFYs is held, another commit asks for one more.
          for (let sent = 1; sent <= MAX_NOTIFIES_IN_A_ROW; sent++) {
            await eventually(() => waiting.length === sent, { what: `NOTIFY ${sent} of the first connection` });
            const other = newStream();
            await withTransaction(pool, (tx) => appendToStream(tx, other, 0, [placed(other)]));
            waiting[sent - 1]!();
          }
          await eventually(async () => (await ours()).length === MAX_NOTIFIES_IN_A_ROW + 1, { what: 'one more notification, through the pool, after the last commit' });
          await holds(async () => (await ours()).length === MAX_NOTIFIES_IN_A_ROW + 1, 300, 'no further notification');
          expect(loopNotifies).to.equal(MAX_NOTIFIES_IN_A_ROW);
        } finally {
          holding = false;
          for (const go of waiting) go();
          delete first?.query; // the client's own query again
        }
      }));

    it("are not lost when a commit's own NOTIFY fails: one goes through the pool, and the failure is counted", () =>
      withOwnPool(async (pool, ours) => {
        const failures = async (): Promise<number> => (await metricValue('db_notifications_failed_total', { channel: EVENTS_CHANNEL })) ?? 0;
        const before = await failures();
        const first = await appendWithHeldNotify(pool, { fail: true });
        first.release();
        await eventually(async () => (await ours()).length === 1, { what: 'the notification sent through the pool' });
        expect(await failures()).to.equal(before + 1);
      }));

    it('are not lost when the NOTIFY the commits waited on fails: one goes through the pool', () =>
      withOwnPool(async (pool, ours) => {
        const first = await appendWithHeldNotify(pool, { fail: true });
        const id = newStream();
        await withTransaction(pool, (tx) => appendToStream(tx, id, 0, [placed(id)]));
        await holds(async () => (await ours()).length === 0, 300, 'no notification while the first one is held');
        first.release();
        await eventually(async () => (await ours()).length === 1, { what: 'the notification sent through the pool' });
      }));

    it('go inside a transaction the caller opened itself, on its commit', async () => {
      const id = newStream();
      const client = await db.connect();
      const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
      const sent: string[] = [];
      try {
        client.query = ((text: unknown, ...rest: unknown[]) => {
          sent.push(typeof text === 'string' ? text : JSON.stringify(text));
          return query(text, ...rest);
        }) as typeof client.query;
        await client.query('BEGIN');
        await appendToStream(client, id, 0, [placed(id)]);
        await client.query('COMMIT');
        const pid = (client as unknown as { processID: number }).processID;
        await eventually(() => heard.some((h) => h.pid === pid), { what: "the transaction's own notification" });
        // Its NOTIFY went between its BEGIN and its COMMIT: the caller's COMMIT sends it.
        const notify = sent.findIndex((t) => t.includes('pg_notify'));
        expect(notify).to.be.above(sent.indexOf('BEGIN'));
        expect(notify).to.be.below(sent.indexOf('COMMIT'));
      } finally {
        delete (client as { query?: unknown }).query; // the client's own query again
        client.release();
      }
    });
  });
});
