// The project creates its database and tables itself, with versioned migrations.
import { createServer, connect } from 'node:net';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import pino from 'pino';
import { Client } from 'pg';
import { getConfig } from '../../shared/config';
import { runner } from 'node-pg-migrate';
import { createPool } from '../../shared/db';
import { migrate, MIGRATIONS_DIR } from '../../shared/db/migrate';
import { newEnvelope, stableEventId } from '../../shared/messaging/new-envelope';
import { MessageValidator } from '../../shared/messaging/validator';
import { loadOrder, loadOrderState } from '../../shared/orders/store';
import { freePort } from '../helpers/services';

describe('database migrations', function () {
  this.timeout(60_000);
  const name = `fulfillment_test_${Date.now().toString(36)}`;
  const url = new URL(getConfig().databaseUrl);
  url.pathname = `/${name}`;
  const admin = (): Client => {
    const u = new URL(url);
    u.pathname = '/postgres';
    return new Client({ connectionString: u.toString() });
  };

  after(async () => {
    const c = admin();
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });

  it('creates a missing database, applies every migration once and seeds the SKUs', async () => {
    const applied = await migrate(url.toString());
    expect(applied).to.include('0001_worker-fleet');
    expect(await migrate(url.toString())).to.deep.equal([]);
    const db = new Client({ connectionString: url.toString() });
    await db.connect();
    try {
      const stock = await db.query<{ sku: string; available: number }>('SELECT sku, available FROM inventory.stock ORDER BY sku');
      expect(stock.rows).to.have.length(11);
      expect(stock.rows[0]).to.deep.equal({ sku: 'PROD-001', available: 1_000_000 });
      expect(stock.rows.find((r) => r.sku === 'PROD-010')?.available).to.equal(1_000_000);
      expect(stock.rows.find((r) => r.sku === 'PROD-OOS')?.available).to.equal(0);
      await expect(db.query("UPDATE inventory.stock SET available = -1 WHERE sku = 'PROD-OOS'")).to.be.rejectedWith(/check constraint/);
    } finally {
      await db.end();
    }
  });

  it('lets several processes migrate at once', async () => {
    const results = await Promise.all([migrate(url.toString()), migrate(url.toString()), migrate(url.toString())]);
    expect(results.flat()).to.deep.equal([]);
  });

  it('waits at process start for a PostgreSQL that is not reachable yet, and fails at once when asked not to wait', async () => {
    // A port where PostgreSQL "comes up" (a proxy to the real one) 1.5 s after migrate starts.
    const port = await freePort();
    const later = new URL(url);
    later.port = String(port);
    const real = new URL(url);

    await expect(migrate(later.toString())).to.be.rejectedWith(/ECONNREFUSED/);

    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _enc, done) => done(void lines.push(chunk.toString())) }));
    const started = Date.now();
    const migrating = migrate(later.toString(), logger, { waitForDatabaseMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1_500));
    const proxy = createServer((socket) => {
      const upstream = connect(Number(real.port || 5432), real.hostname);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    }).listen(port, '127.0.0.1');
    try {
      expect(await migrating).to.deep.equal([]);
      expect(Date.now() - started).to.be.at.least(1_500);
      expect(lines.join('')).to.include('PostgreSQL is not reachable; waiting for it');
    } finally {
      proxy.close();
    }
  });

  it('waits out a PostgreSQL restart that cuts its connection mid-migration, whichever statement it was on (found by the chaos run)', async () => {
    // A restart terminates every backend ("terminating connection due to administrator
    // command"). Here another session does the same every 20–60 ms while a process migrates
    // again and again; node-pg-migrate rethrows some of those errors as text only.
    const killer = admin();
    await killer.connect();
    let stop = false;
    let killed = 0;
    const killing = (async () => {
      while (!stop) {
        const r = await killer.query<{ n: string }>('SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        killed += Number(r.rows[0]!.n);
        await new Promise((done) => setTimeout(done, 20 + Math.random() * 40));
      }
    })();
    try {
      for (let i = 0; i < 80; i++) expect(await migrate(url.toString(), undefined, { waitForDatabaseMs: 30_000 })).to.deep.equal([]);
    } finally {
      stop = true;
      await killing;
      await killer.end();
    }
    expect(killed, 'connections cut while migrating').to.be.at.least(5);
  });

  it('gives every order placed before the event store its stream: order.placed as the outbox had it (unsent if it was), the outcome under the saga\'s own event id', async () => {
    const name2 = `${name}_es`;
    const before = new URL(url);
    before.pathname = `/${name2}`;
    const c = admin();
    await c.connect();
    await c.query(`CREATE DATABASE "${name2}"`);
    await c.end();
    const db = new Client({ connectionString: before.toString() });
    await db.connect();
    try {
      // The database as the project left it before the event store: migrations up to 0005.
      await runner({ dbClient: db, dir: MIGRATIONS_DIR, direction: 'up', count: 5, migrationsTable: 'pgmigrations', checkOrder: true, log: () => undefined });
      const row = (id: string, status: string, reason: string | null) =>
        db.query(
          `INSERT INTO orders.orders (order_id, customer_id, items, total_amount, currency, shipping_address, payment_token, status, cancellation_reason)
           VALUES ($1, 'c-mig', '[{"sku":"PROD-001","quantity":1,"unitPrice":5}]', 5, 'EUR', '{"city":"Lyon","country":"FR"}', 'tok_ok', $2, $3)`,
          [id, status, reason],
        );
      const outbox = (id: string, sent: boolean) => {
        const envelope = newEnvelope('order.placed', { orderId: id, customerId: 'c-mig', items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 5 }], totalAmount: 5, currency: 'EUR' }, { aggregateId: id, correlationId: id });
        const v1 = { ...envelope, schemaVersion: 1 };
        return db.query('INSERT INTO orders.outbox (event_id, envelope, sent_at) VALUES ($1, $2, $3)', [v1.eventId, JSON.stringify(v1), sent ? new Date() : null]).then(() => v1);
      };
      await row('ord_mig_done', 'fulfilled', null);
      const donePlaced = await outbox('ord_mig_done', true);
      await row('ord_mig_open', 'accepted', null);
      const openPlaced = await outbox('ord_mig_open', false);
      await row('ord_mig_noout', 'cancelled', 'out_of_stock');

      await migrate(before.toString());

      const events = await db.query<{ stream_id: string; version: number; event_id: string; event_type: string; schema_version: number; sent: boolean }>(
        "SELECT stream_id, version, event_id, event_type, schema_version, sent_at IS NOT NULL AS sent FROM orders.events WHERE stream_id LIKE 'ord_mig_%' ORDER BY stream_id, version",
      );
      expect(events.rows).to.deep.equal([
        { stream_id: 'ord_mig_done', version: 1, event_id: donePlaced.eventId, event_type: 'order.placed', schema_version: 1, sent: true },
        { stream_id: 'ord_mig_done', version: 2, event_id: stableEventId('order-ord_mig_done/order.fulfilled'), event_type: 'order.fulfilled', schema_version: 1, sent: false },
        { stream_id: 'ord_mig_noout', version: 1, event_id: events.rows.find((e) => e.stream_id === 'ord_mig_noout')!.event_id, event_type: 'order.placed', schema_version: 2, sent: true },
        { stream_id: 'ord_mig_noout', version: 2, event_id: stableEventId('order-ord_mig_noout/order.cancelled'), event_type: 'order.cancelled', schema_version: 2, sent: false },
        { stream_id: 'ord_mig_open', version: 1, event_id: openPlaced.eventId, event_type: 'order.placed', schema_version: 1, sent: false },
      ]);
      const versions = await db.query('SELECT o.order_id, o.version, s.version AS stream FROM orders.orders o JOIN orders.streams s ON s.stream_id = o.order_id ORDER BY o.order_id');
      expect(versions.rows).to.deep.equal([
        { order_id: 'ord_mig_done', version: 2, stream: 2 },
        { order_id: 'ord_mig_noout', version: 2, stream: 2 },
        { order_id: 'ord_mig_open', version: 1, stream: 1 },
      ]);
      // Every backfilled envelope is one the bus takes, and the order folds from it (v1 upcast; the address from the row).
      const validator = new MessageValidator();
      for (const r of (await db.query<{ envelope: unknown }>('SELECT envelope FROM orders.events')).rows) expect(() => validator.check(r.envelope)).not.to.throw();
      const pool = createPool(before.toString(), 'test-migrations', 2);
      try {
        expect(await loadOrder(pool, 'ord_mig_open')).to.deep.include({ customerId: 'c-mig', totalAmount: 5, shippingAddress: { city: 'Lyon', country: 'FR' }, paymentToken: 'tok_ok' });
        expect((await loadOrderState(pool, 'ord_mig_noout')).state).to.deep.include({ status: 'cancelled', cancellationReason: 'out_of_stock' });
      } finally {
        await pool.end();
      }
      expect((await db.query("SELECT to_regclass('orders.outbox') AS t")).rows[0]).to.deep.equal({ t: null });
    } finally {
      await db.end();
      const d = admin();
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS "${name2}" WITH (FORCE)`);
      await d.end();
    }
  });
});
