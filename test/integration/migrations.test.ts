// The project creates its database and tables itself, with versioned migrations.
import { expect } from 'chai';
import { Client } from 'pg';
import { getConfig } from '../../shared/config';
import { migrate } from '../../shared/db/migrate';

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
});
