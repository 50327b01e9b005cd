// What a projection is (docs/event-sourcing.md#projections): a table of read_model built
// from the event store's events, a batch at a time. Its definition says which table, how a
// batch of events becomes rows, and where it keeps its checkpoint when it follows the store
// itself. The live runner (follow.ts) and a rebuild (rebuild.ts) apply batches through the
// same definition, so the rows a rebuild writes are the rows the runner writes.
import type { PoolClient } from 'pg';
import type { Queryable, RecordedEvent } from '../event-store';

export interface Projection {
  /** Its name: `npm run projections:rebuild -- <name>`, and the key of its advisory locks. */
  readonly name: string;
  /** Its table in the schema read_model (a rebuild fills read_model.<table>_rebuild). */
  readonly table: string;
  /**
   * Its row in read_model.checkpoints, when it follows the store (follow.ts); none for one
   * kept by another process (order-projection, applied from the bus by its worker).
   */
  readonly checkpoint?: string;
  /**
   * Applies a batch of events, in the store's commit order, to `table` (schema-qualified: the
   * live table or the rebuild's shadow) with a few bulk statements, never one per event.
   * Idempotent: a row changes only for events above its version, so a batch read twice (a
   * swap's catch-up, a stream read again) changes nothing the second time. Returns how many
   * rows it wrote.
   */
  apply(db: Queryable, table: string, events: readonly RecordedEvent[]): Promise<number>;
  /** Runs in a rebuild's swap, after the new table took the live one's name (same transaction). */
  afterSwap?(tx: PoolClient, table: string): Promise<void>;
}

/** The schema of every projection's table. */
export const READ_MODEL_SCHEMA = 'read_model';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/;

/** read_model.<table>; the name is checked, since it is written into SQL. */
export function qualified(table: string): string {
  if (!IDENTIFIER.test(table)) throw new Error(`not a plain table name: "${table}"`);
  return `${READ_MODEL_SCHEMA}.${table}`;
}

/**
 * A batch's events by stream, each stream's in version order. Within a stream the store's
 * commit order is its version order (each append takes the stream's row, and its transaction
 * id after it read the stream); sorting costs nothing and keeps a fold right regardless.
 */
export function byStream(events: readonly RecordedEvent[]): Map<string, RecordedEvent[]> {
  const streams = new Map<string, RecordedEvent[]>();
  for (const e of events) {
    const stream = streams.get(e.streamId);
    if (stream) stream.push(e);
    else streams.set(e.streamId, [e]);
  }
  for (const stream of streams.values()) stream.sort((a, b) => a.version - b.version);
  return streams;
}
