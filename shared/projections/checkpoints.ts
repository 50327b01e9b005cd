// Where each projection that follows the store is (read_model.checkpoints), and the locks
// that keep writers of one projection apart. Advisory locks take two int4 keys: a class of
// ours and hashtext(<projection name>), so they never meet the one-key locks of lockKey().
import type { PoolClient } from 'pg';
import { START, type Checkpoint, type Queryable } from '../event-store';
import { qualified } from './projection';

/**
 * Held (transaction-level) by whoever writes a projection's table and checkpoint: each
 * runner's batch and a rebuild's swap. Replicas of a runner take turns, batch by batch.
 */
export const APPLY_LOCK_CLASS = 0x70726a01;
/** Held (session-level) by a rebuild for its whole run: a second rebuild of the projection is refused. */
export const REBUILD_LOCK_CLASS = 0x70726a02;

const CHECKPOINTS = qualified('checkpoints');

/** The projection's checkpoint: START when it has none yet. */
export async function readCheckpoint(db: Queryable, projection: string): Promise<Checkpoint> {
  const r = await db.query<Checkpoint>(`SELECT transaction_id::text AS "transactionId", position::text AS position FROM ${CHECKPOINTS} WHERE projection = $1`, [projection]);
  return r.rows[0] ?? START;
}

/** Saves the checkpoint, in the transaction that applied the events up to it. */
export async function saveCheckpoint(tx: Queryable, projection: string, checkpoint: Checkpoint): Promise<void> {
  await tx.query(
    `INSERT INTO ${CHECKPOINTS} (projection, transaction_id, position, updated_at) VALUES ($1, $2::xid8, $3::bigint, now())
     ON CONFLICT (projection) DO UPDATE SET transaction_id = excluded.transaction_id, position = excluded.position, updated_at = now()`,
    [projection, checkpoint.transactionId, checkpoint.position],
  );
}

/**
 * Waits for, and holds until the transaction ends, the right to write the projection. It
 * assigns no transaction id (a row lock would), so a replica waiting here holds back no
 * reader of the store (readAll stops at the oldest running transaction).
 */
export async function lockProjection(tx: PoolClient, projection: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [APPLY_LOCK_CLASS, projection]);
}

/** Who holds an advisory lock of that class and name: its backend, for a message. */
export interface LockHolder {
  pid: number;
  applicationName: string;
  clientAddress: string | null;
  backendStart: Date | null;
}

export async function lockHolders(db: Queryable, lockClass: number, name: string): Promise<LockHolder[]> {
  const r = await db.query<LockHolder>(
    `SELECT a.pid, a.application_name AS "applicationName", host(a.client_addr) AS "clientAddress", a.backend_start AS "backendStart"
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid::bigint = $1::bigint AND l.objid::bigint = (hashtext($2)::bigint & 4294967295)`,
    [lockClass, name],
  );
  return r.rows;
}
