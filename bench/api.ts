// api: POST /orders latency at a fixed rate, ours (outbox, 202) against the same flow done
// synchronously over HTTP. Each side runs in a process of its own while no consumer runs.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../shared/config';
import { childEnvironment } from '../shared/config';
import { createPool, type Pool } from '../shared/db';
import { SYNC_ORDER_PREFIX } from './api-servers';
import { latencySummary, openLoop } from './lib';

const CUSTOMER = 'bench-api';
const ORDER = { customerId: CUSTOMER, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 9.99 }], currency: 'EUR', shippingAddress: { city: 'Berlin', country: 'DE' }, paymentMethod: { token: 'tok_ok' } };

export interface ApiSide {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
}

async function measure(config: Config, mode: 'ours' | 'sync', port: number, rate: number, seconds: number): Promise<ApiSide> {
  const env = childEnvironment({ LOG_LEVEL: 'silent', DATABASE_URL: config.databaseUrl });
  const child = spawn(process.execPath, ['-r', 'ts-node/register', resolve(__dirname, 'api-servers.ts'), mode, String(port)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((done, fail) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('listening') && done());
      child.once('exit', (code) => fail(new Error(`the ${mode} server exited (${String(code)})`)));
    });
    const url = `http://127.0.0.1:${port}/orders`;
    const body = JSON.stringify(ORDER);
    const send = async (): Promise<boolean> => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      return res.status === 202 || res.status === 201;
    };
    await openLoop(rate, Math.min(3, seconds), send); // warm-up: JIT, connection pools
    const { latenciesMs, errors, sent } = await openLoop(rate, seconds, send);
    const s = latencySummary(latenciesMs);
    return { p50Ms: s.p50, p99Ms: s.p99, maxMs: s.max, requests: sent, errors };
  } finally {
    child.kill('SIGTERM');
    await sleep(200);
  }
}

/** Removes what both sides wrote, and gives the synchronous side's reserved stock back. */
async function cleanup(db: Pool): Promise<void> {
  await db.query(`DELETE FROM orders.outbox WHERE sent_at IS NULL AND envelope->'data'->>'customerId' = $1`, [CUSTOMER]);
  await db.query(`DELETE FROM orders.orders WHERE customer_id = $1`, [CUSTOMER]);
  const like = `${SYNC_ORDER_PREFIX}%`;
  await db.query(
    `UPDATE inventory.stock s SET available = s.available + r.quantity
       FROM (SELECT i->>'sku' AS sku, sum((i->>'quantity')::int) AS quantity
               FROM inventory.reservations, jsonb_array_elements(items) AS i
              WHERE order_id LIKE $1 AND released_at IS NULL GROUP BY 1) r
      WHERE s.sku = r.sku`,
    [like],
  );
  for (const table of ['inventory.reservations', 'shipping.shipments', 'payments.captures', 'payments.provider_calls']) await db.query(`DELETE FROM ${table} WHERE order_id LIKE $1`, [like]);
}

export async function benchApi(config: Config, rate: number, seconds: number): Promise<{ rate: number; seconds: number; ours: ApiSide; sync: ApiSide; p99Ratio: number }> {
  const db = createPool(config.databaseUrl, 'bench-api-cleanup', 2);
  try {
    const port = 41_000 + Math.floor(Math.random() * 1_000);
    const ours = await measure(config, 'ours', port, rate, seconds);
    const sync = await measure(config, 'sync', port + 10, rate, seconds);
    return { rate, seconds, ours, sync, p99Ratio: Math.round((ours.p99Ms / sync.p99Ms) * 1000) / 1000 };
  } finally {
    await cleanup(db);
    await db.end();
  }
}
