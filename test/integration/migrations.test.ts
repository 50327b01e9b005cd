// The project creates its database and tables itself, with versioned migrations.
import { createServer, connect } from 'node:net';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import pino from 'pino';
import { Client } from 'pg';
import { getConfig } from '../../shared/config';
import { migrate } from '../../shared/db/migrate';
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
});
