// Creates the database when it is missing and applies the versioned migrations in
// shared/db/migrations (node-pg-migrate, SQL files). Safe to run from several processes
// at once: node-pg-migrate holds an advisory lock while it migrates.
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../observability/logger';

export const MIGRATIONS_DIR = resolve(__dirname, 'migrations');

/** Creates the database named in the URL if it does not exist (connecting to "postgres" to do so). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) {
      try {
        await admin.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } catch (err) {
        // Another process created it at the same moment.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
  } finally {
    await admin.end();
  }
}

/** Brings the database to the latest migration; returns the names of the migrations applied now. */
export async function migrate(databaseUrl: string, logger?: Logger): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  // node-pg-migrate refuses (rather than waits) while another process holds its lock.
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(databaseUrl, logger);
    } catch (err) {
      if (!(err instanceof Error && /Another migration is already running/.test(err.message)) || attempt >= 100) throw err;
      await sleep(Math.min(50 * attempt, 500));
    }
  }
}

async function migrateOnce(databaseUrl: string, logger?: Logger): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    log: (message: string) => logger?.debug({ migration: message }, 'migrate'),
  });
  const names = applied.map((m) => m.name);
  if (names.length > 0) logger?.info({ applied: names }, 'database migrated');
  return names;
}
