// api: POST /orders latency at a fixed rate, ours (outbox, 202) against the same flow done
// synchronously over HTTP. Each side runs in a process of its own while no consumer runs. Both
// get the same request with a customer's bearer token; only ours verifies it (api-servers.ts).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../shared/config';
import { childEnvironment } from '../shared/config';
import { devTokenFor, SCOPES } from '../shared/auth';
import { createPool, type Pool } from '../shared/db';
import { SYNC_ORDER_PREFIX } from './api-servers';
import { freeFixedPorts, portOf, release } from '../scripts/ports';
import { latencySummary, openLoop } from './lib';

const CUSTOMER = 'bench-api';
const ORDER = { customerId: CUSTOMER, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 9.99 }], currency: 'EUR', shippingAddress: { city: 'Berlin', country: 'DE' }, paymentMethod: { token: 'tok_ok' } };

/** How long a request may wait for its answer before it counts as an error. */
const REQUEST_TIMEOUT_MS = 10_000;

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
    const authorization = `Bearer ${await devTokenFor(config.auth, CUSTOMER, SCOPES.customer)}`;
    const send = async (): Promise<boolean> => {
      // A side that falls behind (the synchronous one at 1,000/s) answers late or never: past
      // REQUEST_TIMEOUT_MS a request counts as an error, so the run ends in bounded time.
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
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
  // The bench's orders, their streams and all: nothing of them is left to publish or to fold.
  for (const table of ['orders.events', 'orders.streams', 'orders.snapshots']) {
    await db.query(`DELETE FROM ${table} WHERE stream_id IN (SELECT order_id FROM orders.orders WHERE customer_id = $1)`, [CUSTOMER]);
  }
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

/** Both sides at one rate. */
export interface ApiAtRate {
  rate: number;
  seconds: number;
  ours: ApiSide;
  sync: ApiSide;
  p99Ratio: number;
}

/** A free port below the ephemeral range (a kernel-picked one could be a connection's by the time the server listens). */
async function freePort(): Promise<number> {
  const held = await freeFixedPorts();
  if (!held) throw new Error('api: no free port below the ephemeral range');
  const port = portOf(held[0]!);
  await release(held);
  return port;
}

/** Each side at `rate` (the figure), then at each of `alsoRates` (reported beside it). */
export async function benchApi(config: Config, rate: number, seconds: number, alsoRates: readonly number[] = []): Promise<ApiAtRate & { also: ApiAtRate[] }> {
  const db = createPool(config.databaseUrl, 'bench-api-cleanup', 2);
  try {
    const atRate = async (r: number): Promise<ApiAtRate> => {
      const ours = await measure(config, 'ours', await freePort(), r, seconds);
      const sync = await measure(config, 'sync', await freePort(), r, seconds);
      await cleanup(db); // each rate starts with the stock and the tables as they were
      return { rate: r, seconds, ours, sync, p99Ratio: Math.round((ours.p99Ms / sync.p99Ms) * 1000) / 1000 };
    };
    const main = await atRate(rate);
    const also: ApiAtRate[] = [];
    for (const r of alsoRates) also.push(await atRate(r));
    return { ...main, also };
  } finally {
    await cleanup(db);
    await db.end();
  }
}
