// Rebuilds a projection's table from the whole event store, while the live table keeps
// serving (docs/event-sourcing.md#rebuilding-a-read-model). A shadow table
// (read_model.<table>_rebuild, made LIKE the live one) is filled from START in commit order,
// a large batch per readAll, folded in memory and written with a few bulk statements, each
// batch its own short transaction: a long writing transaction would hold back every readAll
// in the database. Caught up, one transaction swaps it in: it locks the live table (its
// writers and readers wait), applies what arrived meanwhile, renames the live table away and
// the shadow into its place (with the live table's index and constraint names), drops the old
// one, runs the projection's afterSwap and sets its checkpoint. Readers see the old table or
// the new one, never none. A rebuild that dies before the swap leaves the live table as it
// was, and the next one starts over; two at once of one projection: the second is refused.
import type { PoolClient } from 'pg';
import { classifyDbError, type Pool } from '../db';
import { readAll, readStream, START, streamsAfter, type Checkpoint, type Queryable, type RecordedEvent } from '../event-store';
import { lockHolders, lockProjection, REBUILD_LOCK_CLASS, saveCheckpoint, type LockHolder } from './checkpoints';
import { PROJECTION_NAMES, projectionNamed } from './index';
import { qualified, READ_MODEL_SCHEMA, type Projection } from './projection';

export interface RebuildProgress {
  projection: string;
  /** Events read from the store so far. */
  events: number;
  /** Rows written to the shadow table so far (a row written again counts again). */
  rowsWritten: number;
  elapsedMs: number;
  eventsPerSec: number;
}

export interface RebuildSummary {
  projection: string;
  events: number;
  /** Rows in the new table. */
  rows: number;
  seconds: number;
  eventsPerSec: number;
}

export interface RebuildOptions {
  /**
   * Called after each batch before the swap; a throw aborts the rebuild (the live table stays
   * as it was). Not called in the swap, which holds the live table's lock.
   */
  onProgress?(progress: RebuildProgress): void | Promise<void>;
  /** Events per readAll. Default 10000 */
  batchSize?: number;
  /**
   * How long the swap waits for the live table's lock, in ms, before it lets go (catches up
   * again, then tries anew): while it waits, every new reader of the table queues behind it.
   * Default 3000
   */
  lockTimeoutMs?: number;
  /** Swap attempts before giving up. Default 10 */
  swapAttempts?: number;
}

/** No projection of that name. */
export class UnknownProjectionError extends Error {
  override name = 'UnknownProjectionError';
  constructor(readonly projection: string) {
    super(`unknown projection "${projection}": one of ${PROJECTION_NAMES.join(', ')}`);
  }
}

/** Another rebuild of the same projection is running; the message says who. */
export class RebuildRunningError extends Error {
  override name = 'RebuildRunningError';
  constructor(
    readonly projection: string,
    readonly holders: LockHolder[],
  ) {
    const who = holders.map((h) => `pid ${h.pid}${h.applicationName ? ` (${h.applicationName})` : ''}${h.clientAddress ? ` from ${h.clientAddress}` : ''}${h.backendStart ? `, connected since ${h.backendStart.toISOString()}` : ''}`);
    super(`a rebuild of ${projection} is already running${who.length > 0 ? `: PostgreSQL backend ${who.join(', ')}` : ''}; wait for it to finish, or end that backend (pg_terminate_backend) if it is stuck`);
  }
}

/** The rebuild's shadow table (and the name the live one takes for a moment in the swap). */
export const shadowTable = (table: string): string => `${table}_rebuild`;
const oldTable = (table: string): string => `${table}_old`;

/** lock_not_available: lock_timeout ran out. */
const LOCK_TIMEOUT = '55P03';

/**
 * Rebuilds the named projection; see the file's header. Every write runs on the connection
 * that holds the rebuild's lock: were it lost, the rebuild fails with it instead of going on
 * unlocked. The next batch is read on another connection of the pool meanwhile (a pool of
 * one reads on that connection too). Its statements may run long: give it a pool made for
 * that (`createPool(url, name, { statementTimeoutMs: 30 * 60_000 })`).
 */
export async function rebuildProjection(db: Pool, name: string, options: RebuildOptions = {}): Promise<RebuildSummary> {
  const projection = projectionNamed(name);
  if (!projection) throw new UnknownProjectionError(name);
  let session: PoolClient;
  try {
    session = await db.connect();
  } catch (err) {
    throw classifyDbError(err);
  }
  let broken = false;
  try {
    const [locked] = (await session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked', [REBUILD_LOCK_CLASS, projection.name])).rows;
    if (!locked?.locked) throw new RebuildRunningError(projection.name, await lockHolders(session, REBUILD_LOCK_CLASS, projection.name));
    try {
      return await new Rebuild(db, session, projection, options).run();
    } finally {
      await session.query('SELECT pg_advisory_unlock($1, hashtext($2))', [REBUILD_LOCK_CLASS, projection.name]).catch(() => {
        broken = true; // the lock goes with the connection
      });
    }
  } catch (err) {
    throw classifyDbError(err);
  } finally {
    session.release(broken);
  }
}

class Rebuild {
  private readonly live: string;
  private readonly shadow: string;
  private readonly batchSize: number;
  private checkpoint: Checkpoint = START;
  private events = 0;
  private rowsWritten = 0;
  private readonly started = Date.now();

  constructor(
    private readonly pool: Pool,
    /** The connection that holds the rebuild's lock: every write goes through it. */
    private readonly db: PoolClient,
    private readonly projection: Projection,
    private readonly options: RebuildOptions,
  ) {
    this.live = qualified(projection.table);
    this.shadow = qualified(shadowTable(projection.table));
    this.batchSize = options.batchSize ?? 10_000;
  }

  async run(): Promise<RebuildSummary> {
    // What a killed rebuild left behind; this one holds the rebuild lock, so it is nobody's now.
    await this.db.query(`DROP TABLE IF EXISTS ${this.shadow}`);
    await this.db.query(`CREATE TABLE ${this.shadow} (LIKE ${this.live} INCLUDING ALL)`);
    let swapped = false;
    try {
      await this.catchUp();
      // Statistics before it serves: a table fresh from bulk inserts has none, and the first
      // queries on it would be planned blind.
      await this.db.query(`ANALYZE ${this.shadow}`);
      const attempts = this.options.swapAttempts ?? 10;
      for (let attempt = 1; !swapped; attempt++) {
        try {
          await this.swap();
          swapped = true;
        } catch (err) {
          if ((err as { code?: string }).code !== LOCK_TIMEOUT || attempt >= attempts) throw err;
          await this.catchUp();
        }
      }
    } finally {
      if (!swapped) await this.db.query(`DROP TABLE IF EXISTS ${this.shadow}`).catch(() => undefined);
    }
    const [count] = (await this.db.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM ${this.live}`)).rows;
    const seconds = (Date.now() - this.started) / 1000;
    return {
      projection: this.projection.name,
      events: this.events,
      rows: count?.rows ?? 0,
      seconds: Math.round(seconds * 10) / 10,
      eventsPerSec: Math.round(this.events / Math.max(seconds, 0.001)),
    };
  }

  /**
   * Reads and applies batches to the shadow until one comes back short: caught up. Outside
   * the swap each statement is its own short transaction (a batch half-written to the shadow
   * is no harm: a failed rebuild drops it), and the next batch is read on another connection
   * of the pool while this one is written: PostgreSQL reads while Node.js folds.
   */
  private async catchUp(inSwap = false): Promise<void> {
    const reader: Queryable = !inSwap && (this.pool.options.max ?? 10) >= 2 ? this.pool : this.db;
    let next = readAll(reader, this.checkpoint, this.batchSize);
    for (;;) {
      const events = await next;
      const last = events.at(-1);
      const more = events.length === this.batchSize;
      if (more && last) {
        next = readAll(reader, last.checkpoint, this.batchSize);
        // Awaited below; a failure here must not count as unhandled in the meantime.
        next.catch(() => undefined);
      }
      if (last) {
        this.rowsWritten += await this.projection.apply(this.db, this.shadow, events);
        this.checkpoint = last.checkpoint;
      }
      this.events += events.length;
      // Not under the swap's lock: a callback that read the live table would wait for itself.
      if (!inSwap) await this.progress();
      if (!more) return;
    }
  }

  private async progress(): Promise<void> {
    const elapsedMs = Date.now() - this.started;
    await this.options.onProgress?.({
      projection: this.projection.name,
      events: this.events,
      rowsWritten: this.rowsWritten,
      elapsedMs,
      eventsPerSec: Math.round(this.events / Math.max(elapsedMs / 1000, 0.001)),
    });
  }

  private async swap(): Promise<void> {
    const { table } = this.projection;
    const tx = this.db;
    // What the swap's transaction reads and writes to the shadow rolls back with it: so does where the rebuild is.
    const before = { checkpoint: this.checkpoint, events: this.events, rowsWritten: this.rowsWritten };
    await tx.query('BEGIN');
    try {
      await tx.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(this.options.lockTimeoutMs ?? 3_000))}`);
      // The runner's lock first, as its batches take them (lock, then the table): no deadlock.
      if (this.projection.checkpoint) await lockProjection(tx, this.projection.name);
      await tx.query(`LOCK TABLE ${this.live} IN ACCESS EXCLUSIVE MODE`);
      await this.catchUp(true);
      await this.applyStragglers();
      const names = await indexNames(tx, this.live);
      await tx.query(`ALTER TABLE ${this.live} RENAME TO ${oldTable(table)}`);
      await tx.query(`ALTER TABLE ${this.shadow} RENAME TO ${table}`);
      await tx.query(`DROP TABLE ${qualified(oldTable(table))}`);
      await renameIndexes(tx, this.live, names);
      await this.projection.afterSwap?.(tx, this.live);
      if (this.projection.checkpoint) await saveCheckpoint(tx, this.projection.checkpoint, this.checkpoint);
      await tx.query('COMMIT');
    } catch (err) {
      await tx.query('ROLLBACK').catch(() => undefined);
      ({ checkpoint: this.checkpoint, events: this.events, rowsWritten: this.rowsWritten } = before);
      throw err;
    }
  }

  /**
   * readAll stops at the oldest running transaction, but an event committed past it may
   * already be in the live table (the bus delivered it to the order-projection worker).
   * Under the lock, every committed event after the checkpoint is applied from its stream;
   * the projection's version check skips what the shadow has. A runner with a checkpoint
   * reads them again later, and skips them the same way.
   */
  private async applyStragglers(): Promise<void> {
    const events: RecordedEvent[] = [];
    for (const streamId of await streamsAfter(this.db, this.checkpoint)) events.push(...(await readStream(this.db, streamId)));
    if (events.length > 0) this.rowsWritten += await this.projection.apply(this.db, this.shadow, events);
  }
}

interface IndexName {
  /** The index's definition without its name and table: what identifies it across the two tables. */
  definition: string;
  index: string;
  /** The constraint it backs (a primary key, a unique constraint), whose name the index shares. */
  constraint: string | null;
}

async function indexNames(db: Queryable, table: string): Promise<IndexName[]> {
  const r = await db.query<IndexName>(
    `SELECT regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', 'CREATE \\1INDEX ON ') AS definition,
            c.relname AS index, con.conname AS constraint
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
     WHERE i.indrelid = $1::regclass ORDER BY c.relname`,
    [table],
  );
  return r.rows;
}

/** Gives the new table's indexes (and the constraints they back) the names the old one's had. */
async function renameIndexes(tx: PoolClient, table: string, names: readonly IndexName[]): Promise<void> {
  const unmatched = [...names];
  for (const current of await indexNames(tx, table)) {
    const i = unmatched.findIndex((n) => n.definition === current.definition);
    if (i < 0) continue;
    const [wanted] = unmatched.splice(i, 1);
    if (!wanted) continue;
    if (current.constraint && wanted.constraint) {
      if (current.constraint !== wanted.constraint) await tx.query(`ALTER TABLE ${table} RENAME CONSTRAINT "${current.constraint}" TO "${wanted.constraint}"`);
    } else if (current.index !== wanted.index) {
      await tx.query(`ALTER INDEX ${READ_MODEL_SCHEMA}."${current.index}" RENAME TO "${wanted.index}"`);
    }
  }
}
