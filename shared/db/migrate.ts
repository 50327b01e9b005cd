// Creates the database when it is missing and applies the versioned migrations in
// shared/db/migrations (node-pg-migrate, SQL files). Safe to run from several processes
// at once: node-pg-migrate holds an advisory lock while it migrates.
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { runner } from 'node-pg-migrate';
import { DependencyUnavailableError, errorMessage } from '../errors';
import { DependencyWatch } from '../observability/dependency-watch';
import type { Logger } from '../observability/logger';
import { classifyDbError, deadlineSettings } from './index';

export const MIGRATIONS_DIR = resolve(__dirname, 'migrations');

/**
 * How long one statement of a migration may run, in ms: building an index or rewriting a
 * table takes far longer than a handler's statement, and a migration that outlives this is
 * better stopped and looked at.
 */
export const MIGRATION_STATEMENT_TIMEOUT_MS = 5 * 60_000;

/** Creates the database named in the URL if it does not exist (connecting to "postgres" to do so). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  url.pathname = '/postgres';
  const admin = await connectedClient(url.toString());
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

export interface MigrateOptions {
  /**
   * How long to wait for an unreachable PostgreSQL, in ms. Default 0: fail at once (the
   * CLI). A process starting while the database restarts waits instead of exiting.
   */
  waitForDatabaseMs?: number;
}

/** How long a fleet process waits at start for PostgreSQL. */
export const STARTUP_DATABASE_WAIT_MS = 120_000;

/** Brings the database to the latest migration; returns the names of the migrations applied now. */
export async function migrate(databaseUrl: string, logger?: Logger, options: MigrateOptions = {}): Promise<string[]> {
  const deadline = Date.now() + (options.waitForDatabaseMs ?? 0);
  // Each attempt connects within the connect deadline, so a server that accepts but never
  // answers costs one deadline per attempt instead of the whole start-up.
  const watch = new DependencyWatch('postgres', logger);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await ensureDatabase(databaseUrl);
        const applied = await migrateOnce(databaseUrl, logger);
        watch.up();
        return applied;
      } catch (err) {
        // node-pg-migrate refuses (rather than waits) while another process holds its lock.
        const locked = err instanceof Error && /Another migration is already running/.test(err.message);
        const unreachable = classifyDbError(err) instanceof DependencyUnavailableError;
        if (!(locked && attempt < 100) && !(unreachable && Date.now() < deadline)) throw err;
        if (unreachable) {
          watch.down(err);
          if (attempt === 1) logger?.warn({ err: errorMessage(err) }, 'PostgreSQL is not reachable; waiting for it');
        }
        await sleep(Math.min(50 * attempt, unreachable ? 1_000 : 500));
      }
    }
  } finally {
    watch.close();
  }
}

/**
 * A client that loses its connection mid-query emits 'error' besides failing the query;
 * without a listener that would kill the process (a database restarting while it starts).
 */
async function connectedClient(databaseUrl: string): Promise<Client> {
  const client = new Client({ connectionString: databaseUrl, ...deadlineSettings({ statementTimeoutMs: MIGRATION_STATEMENT_TIMEOUT_MS }) });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function migrateOnce(databaseUrl: string, logger?: Logger): Promise<string[]> {
  const client = await connectedClient(databaseUrl);
  try {
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      checkOrder: true,
      log: (message: string) => logger?.debug({ migration: message }, 'migrate'),
    });
    const names = applied.map((m) => m.name);
    if (names.length > 0) logger?.info({ applied: names }, 'database migrated');
    return names;
  } finally {
    await client.end().catch(() => undefined);
  }
}
