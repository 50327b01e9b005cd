// PostgreSQL access: a pool per process, transactions, and the mapping of driver errors
// onto the error types the consumer loop acts on (an unreachable database is
// DependencyUnavailableError: nothing is processed, nothing is lost).
import { Pool, type PoolClient, type QueryResultRow } from 'pg';
import { DependencyUnavailableError, TransientError } from '../errors';

export type { Pool, PoolClient };

export function createPool(databaseUrl: string, applicationName: string, max = 10): Pool {
  const pool = new Pool({ connectionString: databaseUrl, application_name: applicationName, max, connectionTimeoutMillis: 5_000 });
  // A client that loses its connection emits 'error': an idle one through the pool, a
  // checked-out one on itself. Without listeners either would crash the process (the chaos
  // run's PostgreSQL restarts did); the query in flight fails with the error anyway.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => void client.on('error', () => undefined));
  return pool;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300']);

/** Maps a driver error: connection trouble → DependencyUnavailableError, conflicts → TransientError. */
export function classifyDbError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: string }).code ?? '';
  if (CONNECTION_CODES.has(code) || code.startsWith('08') || /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(err.message)) {
    return new DependencyUnavailableError('postgres', err);
  }
  if (code === '40001' || code === '40P01') return new TransientError(`database conflict (${code}): ${err.message}`, { cause: err });
  return err;
}

/** Runs fn in a transaction; rolls back when it throws. Driver errors are classified. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw classifyDbError(err);
  }
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    throw classifyDbError(err);
  } finally {
    client.release(broken);
  }
}

/** One query outside a transaction, with errors classified. */
export async function query<R extends QueryResultRow>(pool: Pool, text: string, values: unknown[] = []): Promise<R[]> {
  try {
    return (await pool.query<R>(text, values)).rows;
  } catch (err) {
    throw classifyDbError(err);
  }
}

/**
 * Holds a lock on a key (e.g. "payments:<orderId>") until the transaction ends: how a
 * worker serialises the work on one order across its replicas.
 */
export async function lockKey(tx: PoolClient, key: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
}
