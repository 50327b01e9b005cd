// What every benchmark shares: 1 KB messages, percentiles, an open-loop load generator, and
// the machine and service versions each figure is recorded with.
import { execFile } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import { newId } from '../shared/ids';
import type { Config } from '../shared/config';
import { createPool } from '../shared/db';
import type { Envelope } from '../shared/events';
import { newEnvelope } from '../shared/messaging/new-envelope';
import { findTemporalCli } from '../shared/temporal/binaries';

const run = promisify(execFile);

/** An order.placed envelope of about 1 KB (12 order lines), with a fresh id. */
export function kilobyteEvent(orderId = `bench-${newId()}`): Envelope {
  const items = Array.from({ length: 12 }, (_, i) => ({ sku: `PROD-00${(i % 9) + 1}`, quantity: (i % 5) + 1, unitPrice: 10.5 + i }));
  return newEnvelope('order.placed', { orderId, customerId: 'bench-customer-0001', items, totalAmount: 1234.5, currency: 'EUR' }, { aggregateId: orderId, aggregateVersion: 1 });
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function latencySummary(samplesMs: number[]): { p50: number; p99: number; max: number; count: number } {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const round = (n: number): number => Math.round(n * 100) / 100;
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] ?? NaN), count: sorted.length };
}

/**
 * Sends `send()` at a fixed rate for `seconds`, whatever the answers do, and measures each
 * latency from the moment the request was due: a stall delays every request behind it, and
 * that delay counts (no coordinated omission).
 */
export async function openLoop(rate: number, seconds: number, send: (i: number) => Promise<boolean>): Promise<{ latenciesMs: number[]; errors: number; sent: number }> {
  const total = Math.round(rate * seconds);
  const latenciesMs: number[] = [];
  let errors = 0;
  const start = performance.now() + 50;
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1_000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    inFlight.push(
      send(i).then(
        (ok) => {
          latenciesMs.push(performance.now() - due);
          if (!ok) errors++;
        },
        () => {
          latenciesMs.push(performance.now() - due);
          errors++;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  return { latenciesMs, errors, sent: total };
}

/**
 * Vacuums a database the benchmarks write to and delete from, before a figure measures it.
 * PostgreSQL may run without autovacuum (this machine's does not vacuum on its own): the dead rows earlier
 * runs left (3 million in orders.events after a day of runs here) had slowed the outbox
 * relay's claim and mark, p50 30 ms against 14 ms after a VACUUM.
 */
export async function vacuum(databaseUrl: string): Promise<void> {
  // Past the handlers' statement deadline: a database with millions of dead rows takes a while.
  const db = createPool(databaseUrl, 'bench-vacuum', { max: 1, statementTimeoutMs: 30 * 60_000 });
  try {
    await db.query('VACUUM (ANALYZE)');
  } finally {
    await db.end();
  }
}

/** Runs `n` tasks with at most `concurrency` at once. */
export async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, async () => {
    while (next < n) await task(next++);
  }));
}

export interface Environment {
  machine: { cores: number; cpu: string; memoryGiB: number };
  versions: { node: string; rabbitmq: string; redis: string; postgresql: string; temporal: string };
}

/** The machine and the versions of every service, as this run found them. */
export async function environment(config: Config): Promise<Environment> {
  const version = async (f: () => Promise<string>): Promise<string> => f().catch((err: unknown) => `unknown (${String(err)})`);
  const redis = new Redis(config.redisUrl, { lazyConnect: true });
  const db = createPool(config.databaseUrl, 'bench-env', 1);
  try {
    return {
      machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30) },
      versions: {
        node: process.version,
        rabbitmq: await version(async () => (await run('rabbitmqctl', ['-q', 'version'])).stdout.trim()),
        redis: await version(async () => {
          await redis.connect();
          return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
        }),
        postgresql: await version(async () => (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version),
        temporal: await version(async () => {
          const cli = findTemporalCli();
          if (!cli) return 'not installed';
          return (await run(cli.path, ['--version'])).stdout.trim();
        }),
      },
    };
  } finally {
    redis.disconnect();
    await db.end();
  }
}
