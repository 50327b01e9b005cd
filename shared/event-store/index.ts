// The event store (docs/event-sourcing.md): streams of events in PostgreSQL (orders.events),
// each with contiguous versions 1, 2, 3, … and a global position across all streams. An
// append names the version its writer expected and fails with ConcurrencyError when another
// writer got there first; nothing is ever overwritten. The store is also the outbox: an
// appended event is unsent until the relay (services/order-api/outbox.ts) publishes it with
// a confirm, in the trace it was appended in (the W3C trace context of the appending span is
// kept beside the envelope, which stays as the schema says). Reads upcast each event to the
// schema version producers write now, so a fold only ever sees the latest version of each
// type. Generic: nothing here knows the order.
import { notifyOnCommit, query, type PoolClient, type Queryable } from '../db';
import type { Envelope } from '../events';
import { upcast } from '../events/upcast';
import { activeTraceContext } from '../observability/trace-context';

/** The channel an append notifies on after its commit: the relay and the projections listen on it. */
export const EVENTS_CHANNEL = 'outbox';

/** Pool or transaction: reads work on either. */
export type { Queryable } from '../db';

/** Another writer appended to the stream since this one read it: reload, decide again. */
export class ConcurrencyError extends Error {
  constructor(
    readonly streamId: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(`stream ${streamId} is at version ${actualVersion}, not the expected ${expectedVersion}`);
    this.name = 'ConcurrencyError';
  }
}

/** An event as stored: its stream, version and global position, its envelope upcast. */
export interface RecordedEvent<E extends Envelope = Envelope> {
  /** Global position (bigint, as text: it may pass 2^53). */
  position: string;
  streamId: string;
  version: number;
  envelope: E;
}

/** How a stream's state is built: a pure fold of its events (from `initial`). */
export interface Fold<S> {
  initial: S;
  evolve(state: S, event: RecordedEvent): S;
  /**
   * The version of the state's shape: a snapshot written by another is ignored (the stream is
   * folded from its start), so changing the fold never reads a stale snapshot.
   */
  snapshotSchema: number;
}

/** The streams with an event after the checkpoint (in commit order), running transactions' included. */
export async function streamsAfter(db: Queryable, after: Checkpoint): Promise<string[]> {
  const rows = await query<{ stream_id: string }>(db, 'SELECT DISTINCT e.stream_id FROM orders.events e WHERE (e.transaction_id, e.position) > ($1::xid8, $2::bigint)', [
    after.transactionId,
    after.position,
  ]);
  return rows.map((r) => r.stream_id);
}

/** The stream's version: 0 for a stream that has no events. */
export async function streamVersion(db: Queryable, streamId: string): Promise<number> {
  const [row] = await query<{ version: number }>(db, 'SELECT version FROM orders.streams WHERE stream_id = $1', [streamId]);
  return row?.version ?? 0;
}

/**
 * Appends events to a stream inside the caller's transaction, when the stream is at
 * expectedVersion (0: the stream must not exist yet). Each envelope takes its version in the
 * stream as its aggregateVersion. Throws ConcurrencyError otherwise: the transaction should
 * then roll back, and the writer reload and decide again. Returns the appended envelopes.
 */
export async function appendToStream(tx: PoolClient, streamId: string, expectedVersion: number, envelopes: readonly Envelope[]): Promise<Envelope[]> {
  if (envelopes.length === 0) return [];
  if (expectedVersion > 0) {
    // Readers of all streams go in transaction order: an append after a write of the same
    // transaction (whose id came first) could be read before the version it follows.
    const [own] = await query<{ xid: string | null }>(tx, 'SELECT pg_current_xact_id_if_assigned()::text AS xid', []);
    if (own?.xid) throw new Error(`append to ${streamId}: an append to an existing stream must be its transaction's first write`);
  }
  const next = expectedVersion + envelopes.length;
  // The stream's move and its events in one statement: the events go in only when the stream moved.
  const moveStream =
    expectedVersion === 0
      ? 'INSERT INTO orders.streams (stream_id, version) VALUES ($1, $9) ON CONFLICT DO NOTHING RETURNING version'
      : 'UPDATE orders.streams SET version = $9 WHERE stream_id = $1 AND version = $10 RETURNING version';
  const stamped = envelopes.map((e, i) => ({ ...e, aggregateId: streamId, aggregateVersion: expectedVersion + i + 1 }));
  const inserted = await query(
    tx,
    `WITH moved AS (${moveStream})
     INSERT INTO orders.events (stream_id, version, event_id, event_type, schema_version, occurred_at, envelope, trace_context)
     SELECT $1, e.version, e.event_id, e.event_type, e.schema_version, e.occurred_at, e.envelope, $8::jsonb
     FROM moved, unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::jsonb[])
       AS e(version, event_id, event_type, schema_version, occurred_at, envelope)
     ORDER BY e.version
     RETURNING 1`,
    [
      streamId,
      stamped.map((e) => e.aggregateVersion),
      stamped.map((e) => e.eventId),
      stamped.map((e) => e.eventType),
      stamped.map((e) => e.schemaVersion),
      stamped.map((e) => e.occurredAt),
      stamped.map((e) => JSON.stringify(e)),
      // The writer's trace (the request, the saga's activity): the relay publishes the events in it.
      activeTraceContext() ?? null,
      next,
      ...(expectedVersion === 0 ? [] : [expectedVersion]),
    ],
  );
  if (inserted.length === 0) throw new ConcurrencyError(streamId, expectedVersion, await streamVersion(tx, streamId));
  await notifyOnCommit(tx, EVENTS_CHANNEL);
  return stamped;
}

interface EventRow {
  position: string;
  stream_id: string;
  version: number;
  envelope: Envelope;
}

const toRecorded = (r: EventRow): RecordedEvent => ({ position: r.position, streamId: r.stream_id, version: r.version, envelope: upcast(r.envelope) });

export interface ReadStreamOptions {
  /** The first version to read. Default 1 */
  fromVersion?: number;
  /** Only the events that occurred at or before this time. */
  until?: Date;
}

/** A stream's events in version order, upcast; empty for an unknown stream. */
export async function readStream(db: Queryable, streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
  const rows = await query<EventRow>(
    db,
    `SELECT e.position::text AS position, e.stream_id, e.version, e.envelope FROM orders.events e
     WHERE e.stream_id = $1 AND e.version >= $2 AND ($3::timestamptz IS NULL OR e.occurred_at <= $3)
     ORDER BY e.version`,
    [streamId, options.fromVersion ?? 1, options.until ?? null],
  );
  return rows.map(toRecorded);
}

/** The state of a stream and its version (0 and the fold's initial state for an unknown stream). */
export interface Loaded<S> {
  state: S;
  version: number;
}

export interface LoadOptions {
  /** The state as it stood at this time: folded from the start, without the snapshot. */
  until?: Date;
  /** Fold every event, ignoring the snapshot (for tests that compare the two). */
  ignoreSnapshot?: boolean;
}

/** Loads a stream's state: from its snapshot and the events after it, or from its start. */
export async function loadStream<S>(db: Queryable, streamId: string, fold: Fold<S>, options: LoadOptions = {}): Promise<Loaded<S>> {
  let state = fold.initial;
  let version = 0;
  if (!options.until && !options.ignoreSnapshot) {
    const [snapshot] = await query<{ version: number; state: S }>(db, 'SELECT version, state FROM orders.snapshots WHERE stream_id = $1 AND schema = $2', [
      streamId,
      fold.snapshotSchema,
    ]);
    if (snapshot) ({ state, version } = snapshot);
  }
  for (const event of await readStream(db, streamId, { fromVersion: version + 1, until: options.until })) {
    state = fold.evolve(state, event);
    version = event.version;
  }
  return { state, version };
}

/**
 * After an append that took a stream from `from` to `to`: stores the state as a snapshot when
 * the append crossed a multiple of `every` (0 turns snapshots off).
 */
export async function snapshotIfDue<S>(tx: PoolClient, streamId: string, fold: Fold<S>, state: S, from: number, to: number, every: number): Promise<boolean> {
  if (every <= 0 || Math.floor(to / every) === Math.floor(from / every)) return false;
  await query(
    tx,
    `INSERT INTO orders.snapshots (stream_id, version, schema, state) VALUES ($1, $2, $3, $4)
     ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema = excluded.schema, state = excluded.state, taken_at = now()
     WHERE orders.snapshots.version < excluded.version OR orders.snapshots.schema <> excluded.schema`,
    [streamId, to, fold.snapshotSchema, JSON.stringify(state)],
  );
  return true;
}

/** Where a reader of all streams is: the last event it read, in commit order. */
export interface Checkpoint {
  /** The transaction that appended it (xid8, as text). */
  transactionId: string;
  position: string;
}

export const START: Checkpoint = { transactionId: '0', position: '0' };

/**
 * The next events of all streams after `after`, in commit order ((transaction, position)),
 * at most `limit`, and never past a transaction still running: a reader that saves the last
 * one's checkpoint misses nothing and reads nothing twice.
 */
export async function readAll(db: Queryable, after: Checkpoint, limit: number): Promise<Array<RecordedEvent & { checkpoint: Checkpoint }>> {
  const rows = await query<EventRow & { transaction_id: string }>(
    db,
    // Ordered by the columns (e.*), not by the text aliases of the same names: '100' < '11'.
    `SELECT e.position::text AS position, e.transaction_id::text AS transaction_id, e.stream_id, e.version, e.envelope FROM orders.events e
     WHERE (e.transaction_id, e.position) > ($1::xid8, $2::bigint) AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.transaction_id, e.position LIMIT $3`,
    [after.transactionId, after.position, limit],
  );
  return rows.map((r) => ({ ...toRecorded(r), checkpoint: { transactionId: r.transaction_id, position: r.position } }));
}
