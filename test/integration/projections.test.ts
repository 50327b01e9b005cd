// Projections of the event store (docs/event-sourcing.md#projections), on a database of this
// file's own (a rebuild reads the whole store and swaps whole tables): the customer-orders
// runner catches up from history, follows live, resumes from its checkpoint and shares the
// work between replicas without applying an event twice; a customer's orders page newest
// first with an opaque cursor; a rebuild of either projection gives the rows the live
// projection has, serves from the live table meanwhile, leaves it as it was when aborted, and
// refuses to run twice at once; the CLI's usage, refusal and summary.
import { Writable } from 'node:stream';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { expect } from 'chai';
import pino from 'pino';
import { Client } from 'pg';
import { ulid } from 'ulid';
import { getConfig, type Config } from '../../shared/config';
import { createPool, withTransaction, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { appendToStream, readAll, readStream, START, type Checkpoint } from '../../shared/event-store';
import type { Envelope } from '../../shared/events';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { CustomerOrders, encodeCursor, InvalidCursorError, readCustomerOrders } from '../../shared/orders/customer-orders';
import type { OrderEvent } from '../../shared/orders/order';
import { readOrder } from '../../shared/orders/read-model';
import { placeOrder, recordOutcome, requestCancellation, type NewOrder } from '../../shared/orders/store';
import { APPLY_LOCK_CLASS, REBUILD_LOCK_CLASS, readCheckpoint } from '../../shared/projections/checkpoints';
import { customerOrdersProjection } from '../../shared/projections/customer-orders';
import { ProjectionFollower } from '../../shared/projections/follow';
import { RebuildRunningError, rebuildProjection, shadowTable } from '../../shared/projections/rebuild';
import { startCustomerOrders } from '../../workers/customer-orders';
import { OrderProjection } from '../../workers/order-projection/handler';
import { dropDatabase, testDatabaseUrl } from '../helpers/fleet';
import { runTs } from '../helpers/processes';
import { eventually } from '../helpers/wait';

const CHECKPOINT = 'customer-orders';

/** A logger whose lines a test can read. */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => done(void lines.push(chunk.toString())) }));
  return { logger, lines };
}

describe('projections of the event store', function () {
  this.timeout(120_000);
  const databaseUrl = testDatabaseUrl('proj');
  const config: Config = { ...getConfig(), databaseUrl };
  let db: Pool;

  /** 120 orders appended in one transaction first of all: positions 1 to 120, which as text sort 100 before 11. */
  const bulkCustomer = `cust-bulk-${ulid()}`;
  before(async () => {
    await migrate(databaseUrl);
    db = createPool(databaseUrl, 'test-projections', { max: 10, statementTimeoutMs: 60_000 });
    await withTransaction(db, async (tx) => {
      for (let i = 0; i < 120; i++) {
        const id = `ord_bulk${ulid()}`;
        const placed = newEnvelope('order.placed', { orderId: id, customerId: bulkCustomer, items: [{ sku: 'PROD-003', quantity: 1, unitPrice: 1 }], totalAmount: 1, currency: 'EUR' }, { aggregateId: id });
        await appendToStream(tx, id, 0, [placed]);
      }
    });
  });
  after(async () => {
    await db?.end();
    await dropDatabase(databaseUrl);
  });

  const order = (customerId: string, unitPrice = 12.5): NewOrder => ({
    customerId,
    items: [{ sku: 'PROD-001', quantity: 2, unitPrice }],
    currency: 'EUR',
    shippingAddress: { city: 'Berlin', country: 'DE' },
    paymentToken: 'tok_ok',
  });

  /** An order through the order store, taken as far as `to`; returns its id. */
  async function place(customerId: string, to: 'accepted' | 'requested' | 'fulfilled' | 'cancelled' | 'requested-then-cancelled' = 'accepted', unitPrice = 12.5): Promise<string> {
    const id = await placeOrder(db, order(customerId, unitPrice));
    if (to === 'requested' || to === 'requested-then-cancelled') expect(await requestCancellation(db, id)).to.equal('recorded');
    if (to === 'fulfilled') expect(await recordOutcome(db, id, { outcome: 'fulfilled' }, ulid())).to.equal('recorded');
    if (to === 'cancelled') expect(await recordOutcome(db, id, { outcome: 'cancelled', reason: 'payment_declined' }, ulid())).to.equal('recorded');
    if (to === 'requested-then-cancelled') expect(await recordOutcome(db, id, { outcome: 'cancelled', reason: 'customer_cancelled' }, ulid())).to.equal('recorded');
    return id;
  }

  /** An order whose events were written with the oldest schemas (order.placed and order.cancelled v1): read upcast. */
  async function placeWithOldSchemas(customerId: string): Promise<string> {
    const id = `ord_${ulid()}`;
    const placed: Envelope = {
      ...newEnvelope('order.placed', { orderId: id, customerId, items: [{ sku: 'PROD-002', quantity: 1, unitPrice: 7.25 }], totalAmount: 7.25, currency: 'USD' }, { aggregateId: id }),
      schemaVersion: 1,
    };
    const cancelled: Envelope = { ...newEnvelope('order.cancelled', { orderId: id, reason: 'out_of_stock' }, { aggregateId: id }), schemaVersion: 1 };
    await withTransaction(db, (tx) => appendToStream(tx, id, 0, [placed, cancelled]));
    return id;
  }

  /** What the bus does for the order-projection worker: each of the orders' events applied, in order. */
  async function applyLive(ids: readonly string[]): Promise<void> {
    const projection = new OrderProjection(db);
    for (const id of ids) for (const e of await readStream(db, id)) await projection.apply(e.envelope as OrderEvent);
  }

  /** Runs batches of the customer-orders projection until the store has no more. */
  async function followToEnd(): Promise<number> {
    const follower = new ProjectionFollower(db, customerOrdersProjection, { batchSize: 50 });
    while ((await follower.applyBatch()).events > 0);
    return follower.eventsApplied;
  }

  /** The store's last checkpoint (what a projection that applied everything has). */
  async function endOfStore(): Promise<{ checkpoint: Checkpoint; events: number }> {
    let checkpoint = START;
    let events = 0;
    for (;;) {
      const batch = await readAll(db, checkpoint, 1_000);
      events += batch.length;
      const last = batch.at(-1);
      if (!last) return { checkpoint, events };
      checkpoint = last.checkpoint;
    }
  }

  type Row = Record<string, unknown> & { order_id: string; version: number };
  const customerOrderRows = async (ids: readonly string[]): Promise<Row[]> =>
    (await db.query<Row>('SELECT * FROM read_model.customer_orders WHERE order_id = ANY($1) ORDER BY order_id', [ids])).rows;
  /** Everything but updated_at (when the row was last written). */
  const orderRows = async (ids: readonly string[]): Promise<Row[]> =>
    (
      await db.query<Row>(
        'SELECT order_id, status, cancellation_reason, customer_id, items, total_amount, currency, version, history FROM read_model.orders WHERE order_id = ANY($1) ORDER BY order_id',
        [ids],
      )
    ).rows;
  const streamVersions = async (ids: readonly string[]) =>
    Object.fromEntries((await db.query<{ stream_id: string; version: number }>('SELECT stream_id, version FROM orders.streams WHERE stream_id = ANY($1)', [ids])).rows.map((r) => [r.stream_id, r.version]));

  describe('the customer-orders runner', () => {
    it('lists the orders placed before its first start once started, then new ones live, and logs that it caught up', async () => {
      // Its first start: no checkpoint, an empty table.
      await db.query('DELETE FROM read_model.checkpoints WHERE projection = $1', [CHECKPOINT]);
      await db.query('TRUNCATE read_model.customer_orders');
      const customer = `cust-${ulid()}`;
      const before = [await place(customer, 'fulfilled'), await place(customer, 'requested'), await place(customer, 'requested-then-cancelled'), await place(customer)];
      const { logger, lines } = capturingLogger();
      // Polling only once a minute: a new order shows up within seconds only through LISTEN/NOTIFY.
      const running = await startCustomerOrders(config, logger, { pollMs: 60_000 });
      try {
        const page = await eventually(async () => {
          const p = await readCustomerOrders(db, customer);
          return p.orders.length === before.length ? p : undefined;
        }, { what: 'the orders placed before the start' });
        expect(Object.fromEntries(page.orders.map((o) => [o.orderId, o.status]))).to.deep.equal({
          [before[0]!]: 'fulfilled',
          [before[1]!]: 'accepted',
          [before[2]!]: 'cancelled',
          [before[3]!]: 'accepted',
        });
        expect(page.orders[0]).to.include({ totalAmount: 25, currency: 'EUR' });
        await eventually(() => lines.some((l) => /caught up with the event store: \d+ events applied in [\d.]+ s/.test(l)), { what: 'the caught-up line' });

        const live = await place(customer, 'fulfilled');
        const fresh = await eventually(async () => (await readCustomerOrders(db, customer)).orders.find((o) => o.orderId === live && o.status === 'fulfilled'), {
          timeoutMs: 15_000,
          what: 'an order placed after the start, through NOTIFY',
        });
        expect(fresh.orderId).to.equal(live);
      } finally {
        await running.stop();
      }
    });

    it('applies every event once, in small batches, across positions whose digits change within one transaction', async () => {
      await db.query('DELETE FROM read_model.checkpoints WHERE projection = $1', [CHECKPOINT]);
      await db.query('TRUNCATE read_model.customer_orders');
      const end = await endOfStore();
      const follower = new ProjectionFollower(db, customerOrdersProjection, { batchSize: 7 });
      while ((await follower.applyBatch()).events > 0);
      expect(follower.eventsApplied, 'every event of the store, once').to.equal(end.events);
      expect((await readCheckpoint(db, CHECKPOINT)).position).to.equal(end.checkpoint.position);
      const bulk = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM read_model.customer_orders WHERE customer_id = $1', [bulkCustomer]);
      expect(bulk.rows[0]?.n).to.equal(120);
    });

    it('resumes from its checkpoint after a restart: no event applied twice, none missed', async () => {
      const customer = `cust-${ulid()}`;
      const first = [await place(customer), await place(customer, 'requested')];
      let running = await startCustomerOrders(config, capturingLogger().logger);
      await eventually(async () => (await readCustomerOrders(db, customer)).orders.length === 2, { what: 'the first orders' });
      await eventually(async () => {
        const end = await endOfStore();
        return (await readCheckpoint(db, CHECKPOINT)).position === end.checkpoint.position;
      }, { what: 'the runner to reach the end of the store' });
      await running.stop();

      // While it is stopped: two new orders (1 event each) and the outcomes of the first two (1 each).
      const stoppedAt = await readCheckpoint(db, CHECKPOINT);
      const later = [await place(customer), await place(customer)];
      expect(await recordOutcome(db, first[0]!, { outcome: 'fulfilled' }, ulid())).to.equal('recorded');
      expect(await recordOutcome(db, first[1]!, { outcome: 'cancelled', reason: 'customer_cancelled' }, ulid())).to.equal('recorded');
      const end = await endOfStore();

      running = await startCustomerOrders(config, capturingLogger().logger);
      try {
        await eventually(async () => (await readCheckpoint(db, CHECKPOINT)).position === end.checkpoint.position, { what: 'the runner to catch up again' });
        expect(running.follower.eventsApplied, 'the events appended while it was stopped, each once').to.equal(4);
        expect(BigInt(end.checkpoint.position) > BigInt(stoppedAt.position)).to.equal(true);
        const ids = [...first, ...later];
        const rows = await customerOrderRows(ids);
        const versions = await streamVersions(ids);
        expect(rows.map((r) => [r.order_id, r.version])).to.deep.equal(ids.map((id) => [id, versions[id]]).sort());
        const statuses = Object.fromEntries((await readCustomerOrders(db, customer)).orders.map((o) => [o.orderId, o.status]));
        expect(statuses).to.deep.equal({ [first[0]!]: 'fulfilled', [first[1]!]: 'cancelled', [later[0]!]: 'accepted', [later[1]!]: 'accepted' });
      } finally {
        await running.stop();
      }
    });

    it('shares the work between two replicas without applying any event twice', async () => {
      const customer = `cust-${ulid()}`;
      for (let i = 0; i < 20; i++) await place(customer, i % 2 ? 'fulfilled' : 'accepted');
      await db.query('DELETE FROM read_model.checkpoints WHERE projection = $1', [CHECKPOINT]);
      await db.query('TRUNCATE read_model.customer_orders');
      const end = await endOfStore();
      // The projection's lock held here until both replicas wait for it, so that both run from
      // the start; small batches, so that they take turns many times.
      const holder = await db.connect();
      const replicas = [new ProjectionFollower(db, customerOrdersProjection, { batchSize: 7 }), new ProjectionFollower(db, customerOrdersProjection, { batchSize: 7 })];
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [APPLY_LOCK_CLASS, customerOrdersProjection.name]);
        await Promise.all(replicas.map((r) => r.start()));
        await eventually(
          async () => {
            const waiting = await db.query(
              "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
              [APPLY_LOCK_CLASS],
            );
            return waiting.rowCount === 2;
          },
          { what: 'both replicas to wait for the lock' },
        );
        await holder.query('COMMIT');
        await eventually(async () => (await readCheckpoint(db, CHECKPOINT)).position === end.checkpoint.position, { what: 'the replicas to reach the end of the store' });
        await eventually(() => replicas.every((r) => r.caughtUp !== undefined), { what: 'both replicas to catch up' });
        expect(replicas[0]!.eventsApplied + replicas[1]!.eventsApplied, 'every event of the store applied once').to.equal(end.events);
        expect(replicas.every((r) => r.eventsApplied > 0), 'both took turns').to.equal(true);
      } finally {
        holder.release(true); // its connection closed: no transaction of the test's left open on a failure
        await Promise.all(replicas.map((r) => r.stop()));
      }
      expect((await readCustomerOrders(db, customer, { limit: 100 })).orders).to.have.length(20);
    });

    it('runs as a process of the fleet: logs that it caught up, follows, and stops cleanly on SIGTERM', async () => {
      const customer = `cust-${ulid()}`;
      const id = await place(customer, 'fulfilled');
      const child = runTs('workers/customer-orders/index.ts', [], { DATABASE_URL: databaseUrl, LOG_LEVEL: 'info' });
      try {
        await child.waitFor(/caught up with the event store/, 60_000);
        await eventually(async () => (await readCustomerOrders(db, customer)).orders.some((o) => o.orderId === id), { what: 'the order through the process' });
        const next = await place(customer);
        await eventually(async () => (await readCustomerOrders(db, customer)).orders.some((o) => o.orderId === next), { what: 'a new order through the process' });
      } finally {
        child.kill('SIGTERM');
      }
      expect((await child.exited(30_000)).code).to.equal(0);
    });
  });

  describe("a customer's orders, paged", () => {
    const customer = `cust-page-${ulid()}`;
    const ids: string[] = [];
    before(async () => {
      // 25 orders, in pairs placed at the same instant: the order id breaks the tie.
      const base = Date.parse('2026-03-01T10:00:00.000Z');
      for (let i = 0; i < 25; i++) {
        const id = `ord_page${String(i).padStart(2, '0')}${ulid()}`;
        ids.push(id);
        await db.query(
          `INSERT INTO read_model.customer_orders (order_id, customer_id, status, total_amount, currency, placed_at, version) VALUES ($1, $2, $3, $4, 'EUR', $5, 1)`,
          [id, customer, i % 3 === 0 ? 'fulfilled' : 'accepted', 10 + i, new Date(base + Math.floor(i / 2) * 60_000).toISOString()],
        );
      }
      await db.query(
        `INSERT INTO read_model.customer_orders (order_id, customer_id, status, total_amount, currency, placed_at, version) VALUES ($1, 'cust-someone-else', 'accepted', 1, 'EUR', now(), 1)`,
        [`ord_other${ulid()}`],
      );
    });

    it('answers newest first, and its cursors cover every order exactly once', async () => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await readCustomerOrders(db, customer, { limit: 7, ...(cursor ? { cursor } : {}) });
        expect(page.customerId).to.equal(customer);
        expect(page.orders.length).to.be.at.most(7);
        seen.push(...page.orders.map((o) => o.orderId));
        cursor = page.nextCursor;
        pages++;
      } while (cursor);
      expect(pages).to.equal(4);
      const newestFirst = [...ids].sort((a, b) => {
        const [ta, tb] = [Math.floor(ids.indexOf(a) / 2), Math.floor(ids.indexOf(b) / 2)];
        return tb - ta || (a < b ? 1 : -1);
      });
      expect(seen).to.deep.equal(newestFirst);
    });

    it('gives 20 by default, with the fields and formats of its schema', async () => {
      const page = await readCustomerOrders(db, customer);
      expect(page.orders).to.have.length(20);
      expect(page.nextCursor).to.be.a('string');
      const ajv = new Ajv({ strict: false });
      addFormats(ajv);
      const valid = ajv.validate(CustomerOrders, page);
      expect(valid, ajv.errorsText()).to.equal(true);
      expect(page.orders[0]).to.deep.include({ status: 'fulfilled', totalAmount: 34, currency: 'EUR', placedAt: '2026-03-01T10:12:00.000Z' });
      expect((await readCustomerOrders(db, `cust-nobody-${ulid()}`)).orders).to.deep.equal([]);
    });

    it('refuses a cursor it did not issue with InvalidCursorError', async () => {
      const bad = [
        'not base64!',
        Buffer.from('not json').toString('base64url'),
        Buffer.from('{"placedAt":"2026-03-01T10:00:00Z"}').toString('base64url'),
        Buffer.from('["yesterday","ord_1"]').toString('base64url'),
        Buffer.from('["2026-03-01T10:00:00Z",7]').toString('base64url'),
        Buffer.from('["2026-13-45T10:00:00Z","ord_1"]').toString('base64url'),
      ];
      for (const cursor of bad) {
        const err = await readCustomerOrders(db, customer, { cursor }).catch((e: unknown) => e);
        expect(err, cursor).to.be.instanceOf(InvalidCursorError);
        expect((err as InvalidCursorError).code).to.equal('invalid_cursor');
      }
      // A well-formed one that no row matches is just a position: an empty last page.
      const early = await readCustomerOrders(db, customer, { cursor: encodeCursor({ placedAt: '2000-01-01T00:00:00Z', orderId: 'ord_x' }) });
      expect(early.orders).to.deep.equal([]);
      expect(early.nextCursor).to.equal(undefined);
    });
  });

  describe('a rebuild', () => {
    /** Orders of every kind, in both live tables: the order-projection's (as the bus applies them) and the runner's. */
    async function ordersInBothTables(): Promise<string[]> {
      const customer = `cust-${ulid()}`;
      const ids = [
        await place(customer),
        await place(customer, 'requested'),
        await place(customer, 'fulfilled', 3.33),
        await place(customer, 'cancelled'),
        await place(customer, 'requested-then-cancelled'),
        await placeWithOldSchemas(customer),
      ];
      await applyLive(ids);
      await followToEnd();
      return ids;
    }

    it('of customer-orders and of order-projection gives the rows the live projections have, and keeps the index names', async () => {
      const ids = await ordersInBothTables();
      const [customerRows, rows] = [await customerOrderRows(ids), await orderRows(ids)];
      expect(customerRows).to.have.length(ids.length);
      expect(rows).to.have.length(ids.length);
      expect(rows.find((r) => r.order_id === ids[5])).to.include({ status: 'cancelled', cancellation_reason: 'out_of_stock' });

      const customers = await rebuildProjection(db, 'customer-orders', { batchSize: 7 });
      expect(customers).to.include({ projection: 'customer-orders' });
      expect(customers.events).to.equal((await endOfStore()).events);
      expect(await customerOrderRows(ids)).to.deep.equal(customerRows);
      expect((await readCheckpoint(db, CHECKPOINT)).position).to.equal((await endOfStore()).checkpoint.position);
      const bulk = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM read_model.customer_orders WHERE customer_id = $1', [bulkCustomer]);
      expect(bulk.rows[0]?.n, 'the orders of the first transaction').to.equal(120);

      const orders = await rebuildProjection(db, 'order-projection');
      expect(orders.rows).to.be.at.least(ids.length);
      expect(await orderRows(ids)).to.deep.equal(rows);

      const indexes = await db.query<{ tablename: string; indexname: string }>(
        "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'read_model' AND tablename IN ('orders', 'customer_orders') ORDER BY indexname",
      );
      expect(indexes.rows.map((r) => r.indexname)).to.deep.equal(['customer_orders_by_customer', 'customer_orders_pkey', 'orders_pkey']);
      const leftovers = await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'read_model' AND (tablename LIKE '%\\_rebuild' OR tablename LIKE '%\\_old')");
      expect(leftovers.rows).to.deep.equal([]);
    });

    it('serves from the live table while it runs', async () => {
      const ids = await ordersInBothTables();
      const before = await readOrder(db, ids[2]!);
      expect(before?.status).to.equal('fulfilled');
      let checks = 0;
      await rebuildProjection(db, 'order-projection', {
        batchSize: 5,
        onProgress: async () => {
          const shadow = await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`read_model.${shadowTable('orders')}`]);
          expect(shadow.rows[0]?.t, 'the shadow table exists').to.be.a('string');
          expect(await readOrder(db, ids[2]!)).to.deep.equal(before);
          checks++;
        },
      });
      expect(checks).to.be.greaterThan(2);
      expect(await readOrder(db, ids[2]!)).to.deep.equal(before);
    });

    it('drops the pending events the new rows hold, and keeps those above them', async () => {
      const [id] = await ordersInBothTables();
      const ahead = newEnvelope('order.fulfilled', { orderId: id! }, { aggregateId: id!, aggregateVersion: 9 });
      const stale = newEnvelope('order.fulfilled', { orderId: id! }, { aggregateId: id!, aggregateVersion: 1 });
      for (const e of [ahead, stale]) await db.query('INSERT INTO read_model.pending_events (order_id, version, event) VALUES ($1, $2, $3)', [id, e.aggregateVersion, JSON.stringify(e)]);
      await rebuildProjection(db, 'order-projection');
      const pending = await db.query<{ version: number }>('SELECT version FROM read_model.pending_events WHERE order_id = $1', [id]);
      expect(pending.rows.map((r) => r.version)).to.deep.equal([9]);
      await db.query('DELETE FROM read_model.pending_events WHERE order_id = $1', [id]);
    });

    it('aborted midway leaves the live table as it was, and the next one succeeds', async () => {
      const ids = await ordersInBothTables();
      const rows = await customerOrderRows(ids);
      const checkpoint = await readCheckpoint(db, CHECKPOINT);
      const aborted = await rebuildProjection(db, 'customer-orders', {
        batchSize: 5,
        onProgress: (p) => {
          if (p.events >= 10) throw new Error('aborted by the test');
        },
      }).catch((e: unknown) => e);
      expect(aborted).to.be.instanceOf(Error).with.property('message', 'aborted by the test');
      expect(await customerOrderRows(ids)).to.deep.equal(rows);
      expect(await readCheckpoint(db, CHECKPOINT)).to.deep.equal(checkpoint);
      const shadow = await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`read_model.${shadowTable('customer_orders')}`]);
      expect(shadow.rows[0]?.t).to.equal(null);
      await rebuildProjection(db, 'customer-orders');
      expect(await customerOrderRows(ids)).to.deep.equal(rows);
    });

    it('starts over from a shadow table a killed rebuild left behind', async () => {
      const ids = await ordersInBothTables();
      const rows = await customerOrderRows(ids);
      const shadow = `read_model.${shadowTable('customer_orders')}`;
      await db.query(`CREATE TABLE ${shadow} (LIKE read_model.customer_orders INCLUDING ALL)`);
      await db.query(`INSERT INTO ${shadow} (order_id, customer_id, status, total_amount, currency, placed_at, version) VALUES ('ord_junk', 'cust-junk', 'accepted', 1, 'EUR', now(), 99)`);
      await rebuildProjection(db, 'customer-orders');
      expect(await customerOrderRows(ids)).to.deep.equal(rows);
      expect(await customerOrderRows(['ord_junk'])).to.deep.equal([]);
    });

    it('refuses to run while another rebuild of the same projection runs, and says who runs it', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let paused!: () => void;
      const isPaused = new Promise<void>((resolve) => (paused = resolve));
      const first = rebuildProjection(db, 'customer-orders', {
        batchSize: 5,
        onProgress: async () => {
          paused();
          await gate;
        },
      });
      try {
        await isPaused;
        const second = await rebuildProjection(db, 'customer-orders').catch((e: unknown) => e);
        expect(second).to.be.instanceOf(RebuildRunningError);
        expect((second as Error).message).to.match(/a rebuild of customer-orders is already running: PostgreSQL backend pid \d+ \(test-projections\)/);
        // Another projection is another lock.
        await rebuildProjection(db, 'order-projection');
      } finally {
        release();
      }
      expect((await first).projection).to.equal('customer-orders');
      await rebuildProjection(db, 'customer-orders');
    });
  });

  describe('npm run projections:rebuild', () => {
    it('refuses a missing or unknown name with exit 2, listing the names', async () => {
      for (const args of [[], ['no-such-projection']]) {
        const child = runTs('scripts/projections-rebuild.ts', args, { DATABASE_URL: databaseUrl });
        expect((await child.exited(30_000)).code, args.join(' ')).to.equal(2);
        const output = child.output.join('\n');
        expect(output).to.include('order-projection').and.include('customer-orders');
        if (args.length > 0) expect(output).to.include('unknown projection "no-such-projection"');
      }
    });

    it('rebuilds and prints its summary; exits 1 when another rebuild holds the projection', async () => {
      const done = runTs('scripts/projections-rebuild.ts', ['customer-orders'], { DATABASE_URL: databaseUrl });
      expect((await done.exited(60_000)).code).to.equal(0);
      expect(done.output).to.satisfy((lines: string[]) => lines.some((l) => /^rebuilt customer-orders: \d+ events, \d+ rows in [\d.]+ s \(\d+ events\/s\)$/.test(l)));

      const holder = new Client({ connectionString: databaseUrl, application_name: 'rebuild-holder-test' });
      await holder.connect();
      try {
        await holder.query('SELECT pg_advisory_lock($1, hashtext($2))', [REBUILD_LOCK_CLASS, 'customer-orders']);
        const refused = runTs('scripts/projections-rebuild.ts', ['customer-orders'], { DATABASE_URL: databaseUrl });
        expect((await refused.exited(60_000)).code).to.equal(1);
        expect(refused.output.join('\n')).to.match(/already running: PostgreSQL backend pid \d+ \(rebuild-holder-test\)/);
      } finally {
        await holder.end();
      }
    });
  });
});
