// PostgreSQL access: a pool per process, transactions, and the mapping of driver errors
// onto the error types the consumer loop acts on (an unreachable database is
// DependencyUnavailableError: nothing is processed, nothing is lost). Connecting and every
// statement have deadlines: a server that accepts but never answers must not hang a handler.
import { Counter } from 'prom-client';
import { Pool, types, type ClientConfig, type PoolClient, type QueryResultRow } from 'pg';
import { getConfig } from '../config';
import { DependencyUnavailableError, PermanentError, TransientError } from '../errors';
import { DependencyWatch, FIRST_WARNING_MS } from '../observability/dependency-watch';
import type { Logger } from '../observability/logger';
import { processRegistry } from '../observability/metrics';

export type { Pool, PoolClient };

/** A pool, or a client of one (in a transaction). */
export type Queryable = Pool | PoolClient;

// A char(n) column (a currency, a country) comes back padded to n characters, and a padded
// value would fail the message schemas downstream. Trimmed here, once, for every query of
// the process, instead of at each place that reads one.
types.setTypeParser(types.builtins.BPCHAR, (value: string) => value.trimEnd());

/**
 * How much longer the client waits for a statement than the server's statement_timeout, in
 * ms: a live server's cancellation (57014, a TransientError) arrives first, and only a server
 * that does not answer at all meets the client's own deadline (DependencyUnavailableError).
 */
const CLIENT_WAIT_MARGIN_MS = 2_000;

export interface DbDeadlines {
  /** Opening a connection, in ms. Default DATABASE_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
  /** One statement, in ms. Default DATABASE_STATEMENT_TIMEOUT_MS (a handler's statement) */
  statementTimeoutMs?: number;
}

/** The pg client settings that carry the deadlines. */
export function deadlineSettings(deadlines: DbDeadlines = {}): Pick<ClientConfig, 'connectionTimeoutMillis' | 'statement_timeout' | 'query_timeout'> {
  const statementTimeoutMs = deadlines.statementTimeoutMs ?? getConfig().databaseStatementTimeoutMs;
  return {
    connectionTimeoutMillis: deadlines.connectTimeoutMs ?? getConfig().databaseConnectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + CLIENT_WAIT_MARGIN_MS,
  };
}

export interface PoolOptions extends DbDeadlines {
  /** Most connections at once. Default 10 */
  max?: number;
  /** Where the pool says that PostgreSQL does not answer. Default: nowhere */
  logger?: Logger;
}

/** What each pool's queries found out about the server, kept beside the pool. */
const watches = new WeakMap<Queryable, DependencyWatch>();

/**
 * A pool with a handler's deadlines unless told otherwise: a long job (a rebuild of the
 * read model, say) makes a pool of its own with `{ statementTimeoutMs: 30 * 60_000 }`.
 * A number is the pool's size (the older form).
 */
export function createPool(databaseUrl: string, applicationName: string, options: number | PoolOptions = {}): Pool {
  const opts: PoolOptions = typeof options === 'number' ? { max: options } : options;
  const { max = 10, logger, ...deadlines } = opts;
  const pool = new Pool({ connectionString: databaseUrl, application_name: applicationName, max, ...deadlineSettings(deadlines) });
  // A client that loses its connection emits 'error': an idle one through the pool, a
  // checked-out one on itself. Without listeners either would crash the process (the chaos
  // run's PostgreSQL restarts did); the query in flight fails with the error anyway.
  pool.on('error', () => undefined);
  // An ended pool no longer speaks for the process's readiness, whatever it last found.
  const watch = new DependencyWatch('postgres', logger, FIRST_WARNING_MS, () => pool.ending);
  watches.set(pool, watch);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    watch.up();
  });
  return pool;
}

/** PostgreSQL itself is away (not another dependency a transaction's code found away). */
function postgresUnavailable(err: unknown): err is DependencyUnavailableError {
  return err instanceof DependencyUnavailableError && err.dependency === 'postgres';
}

/** Tells the pool's watch what a query found: an unreachable server, or one that answers (a client has no watch of its own). */
function observe(db: Queryable, err?: unknown): void {
  const watch = watches.get(db);
  if (!watch) return;
  if (err === undefined) watch.up();
  else if (postgresUnavailable(err)) watch.down(err.cause ?? err);
}

/**
 * The driver's and the server's own words for a server that cannot be reached, stopped
 * answering or is restarting. Read from the message too, not just the code: node-pg-migrate
 * rethrows some errors as a new Error that keeps only the text ("Unable to ensure migrations
 * table: error: terminating connection due to administrator command"), and a process starting
 * while PostgreSQL restarted then exited instead of waiting (found by the chaos run).
 */
const UNREACHABLE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|^timeout expired$|^Query read timeout$|terminating connection due to administrator command|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)/i;

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300']);

/** Maps a driver error: connection trouble → DependencyUnavailableError, conflicts → TransientError. */
export function classifyDbError(err: unknown): unknown {
  // Already classified (another dependency a transaction's code found away, say): as it is.
  if (!(err instanceof Error) || err instanceof DependencyUnavailableError || err instanceof TransientError || err instanceof PermanentError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (CONNECTION_CODES.has(code) || code.startsWith('08') || UNREACHABLE.test(err.message)) {
    return new DependencyUnavailableError('postgres', err);
  }
  if (code === '40001' || code === '40P01') return new TransientError(`database conflict (${code}): ${err.message}`, { cause: err });
  // statement_timeout: the server answers but the statement took too long (a lock held long,
  // an overloaded server); another attempt later may pass.
  if (code === '57014') return new TransientError(`statement cancelled (${code}): ${err.message}`, { cause: err });
  return err;
}

/** Runs fn in a transaction; rolls back when it throws. Driver errors are classified. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    const classified = classifyDbError(err);
    observe(pool, classified);
    throw classified;
  }
  let broken = false;
  /** The NOTIFYs sent on the client after its commit: it goes back to the pool when they are done. */
  let notifying: Promise<boolean> | undefined;
  const notifies = new Set<string>();
  commitNotifies.set(client, notifies);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    observe(pool);
    if (notifies.size > 0) notifying = notifyAfterCommit(pool, client, notifies);
    return result;
  } catch (err) {
    const classified = classifyDbError(err);
    observe(pool, classified);
    if (postgresUnavailable(classified)) {
      // A ROLLBACK would wait out its own deadline on a server that does not answer; dropping
      // the connection ends the transaction on the server as well.
      broken = true;
    } else {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
    }
    throw classified;
  } finally {
    commitNotifies.delete(client);
    if (notifying) void notifying.then((ok) => client.release(!ok)).catch(() => undefined); // a release that throws (released twice) must not crash the process
    else client.release(broken);
  }
}

/** The channels each open withTransaction transaction notifies once it has committed. */
const commitNotifies = new WeakMap<PoolClient, Set<string>>();

/**
 * Notifies channel (LISTEN/NOTIFY, no payload) once tx has committed. A NOTIFY inside a
 * transaction takes a lock, one for the whole PostgreSQL cluster, that it holds until its commit
 * is on disk: every notifying transaction commits after the one before it, and the appends a
 * database took were capped at one per WAL flush. So a withTransaction transaction notifies
 * after its commit, on its own connection before it goes back to the pool (not through the
 * pool, whose queue may be long), and coalesced: while one connection of the pool notifies a
 * channel, the commits that end meanwhile only ask it for one more NOTIFY after its own.
 * Listeners treat a notification as a hint and also poll: a process that dies between its
 * commit and the NOTIFY sends none. A transaction the caller opened itself (its own BEGIN)
 * notifies inside it.
 */
export async function notifyOnCommit(tx: PoolClient, channel: string): Promise<void> {
  const notifies = commitNotifies.get(tx);
  if (notifies) notifies.add(channel);
  else {
    try {
      await tx.query(NOTIFY, [channel]);
    } catch (err) {
      throw classifyDbError(err);
    }
  }
}

const NOTIFY = "SELECT pg_notify($1, '')";

const notifyFailures = new Counter({
  name: 'db_notifications_failed_total',
  help: 'NOTIFYs after a commit that failed; one more goes through the pool, and when that fails too the listeners find those commits at their next poll',
  labelNames: ['channel'],
  registers: [processRegistry],
});

/**
 * The most NOTIFYs one connection sends in a row after its commit, its own and then those
 * the commits of others ask for: under a steady flow of commits it would never go back to
 * the pool otherwise.
 */
export const MAX_NOTIFIES_IN_A_ROW = 8;

/** Whether each channel of a pool has a connection sending its NOTIFY, and whether it must send one more. */
const notifyState = new WeakMap<Pool, Map<string, { again: boolean }>>();

/**
 * Sends the NOTIFYs of a commit on its client; false when the client failed (it is dropped
 * then). When its NOTIFY failed, or it stops with commits still asking for one more (it sent
 * MAX_NOTIFIES_IN_A_ROW), the next goes through the pool, so that no commit is left without a
 * NOTIFY after it.
 */
async function notifyAfterCommit(pool: Pool, client: PoolClient, channels: Set<string>): Promise<boolean> {
  let byChannel = notifyState.get(pool);
  if (!byChannel) notifyState.set(pool, (byChannel = new Map<string, { again: boolean }>()));
  let ok = true;
  for (const channel of channels) {
    const inFlight = byChannel.get(channel);
    if (inFlight) {
      inFlight.again = true;
      continue;
    }
    const state = { again: false };
    byChannel.set(channel, state);
    let failed = false;
    try {
      let sent = 0;
      do {
        state.again = false;
        await client.query(NOTIFY, [channel]);
      } while (state.again && ++sent < MAX_NOTIFIES_IN_A_ROW);
    } catch {
      failed = true;
      ok = false;
    } finally {
      byChannel.delete(channel);
    }
    if (failed) notifyFailures.inc({ channel });
    // A NOTIFY that fails here (the pool ended, the server away) only leaves the listeners to their next poll.
    if (failed || state.again) pool.query(NOTIFY, [channel]).catch(() => notifyFailures.inc({ channel }));
  }
  return ok;
}

/** One query, on a pool or in a transaction, with errors classified. */
export async function query<R extends QueryResultRow>(db: Queryable, text: string, values: unknown[] = []): Promise<R[]> {
  try {
    const rows = (await db.query<R>(text, values)).rows;
    observe(db);
    return rows;
  } catch (err) {
    const classified = classifyDbError(err);
    observe(db, classified);
    throw classified;
  }
}

/**
 * Holds a lock on a key (e.g. "payments:<orderId>") until the transaction ends: how a
 * worker serialises the work on one order across its replicas.
 */
export async function lockKey(tx: PoolClient, key: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
}
