// The transactional outbox: enqueue() writes an event inside the caller's transaction; the
// relay publishes unsent rows in id order with publisher confirms and marks them sent only
// after the broker confirmed them. Rows are claimed with FOR UPDATE SKIP LOCKED, so several
// relays never publish the same row; a relay that dies between publish and mark leaves the
// rows unsent and they are published again (consumers deduplicate by eventId).
import { setTimeout as sleep } from 'node:timers/promises';
import type { PoolClient } from 'pg';
import { withTransaction, type Pool } from '../../shared/db';
import { errorMessage } from '../../shared/errors';
import type { Envelope } from '../../shared/events';
import type { Publisher } from '../../shared/messaging/publisher';
import { silentLogger, type Logger } from '../../shared/observability/logger';

export const OUTBOX_CHANNEL = 'outbox';

/** Writes an event to the outbox in the caller's transaction; the relay is woken on commit. */
export async function enqueue(tx: PoolClient, envelope: Envelope): Promise<void> {
  await tx.query('INSERT INTO orders.outbox (event_id, envelope) VALUES ($1, $2)', [envelope.eventId, JSON.stringify(envelope)]);
  await tx.query(`SELECT pg_notify('${OUTBOX_CHANNEL}', '')`);
}

export interface OutboxRelayOptions {
  /** Rows claimed and published per transaction. Default 200 */
  batchSize?: number;
  /** Polling fallback when no notification arrives, in ms. Default 1000 */
  pollMs?: number;
  logger?: Logger;
  /** Called after a batch was confirmed and before it is marked sent (a seam for failure tests). */
  beforeMark?: (eventIds: string[]) => Promise<void>;
}

export class OutboxRelay {
  private stopped = false;
  private wake?: () => void;
  /** Set by a notification; one that arrives while a batch runs must not be lost. */
  private notified = false;
  private listener?: PoolClient;
  private loop?: Promise<void>;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly logger: Logger;

  constructor(
    private readonly db: Pool,
    private readonly publisher: Publisher,
    private readonly options: OutboxRelayOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 200;
    this.pollMs = options.pollMs ?? 1_000;
    this.logger = options.logger ?? silentLogger;
  }

  async start(): Promise<void> {
    await this.listen();
    this.loop = this.run();
  }

  /** LISTEN on a dedicated connection; if it drops, polling carries on and it is re-opened. */
  private async listen(): Promise<void> {
    try {
      const client = await this.db.connect();
      client.on('notification', () => {
        this.notified = true;
        this.wake?.();
      });
      client.on('error', () => undefined);
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      this.listener = client;
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'outbox: LISTEN failed; polling only');
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        this.notified = false;
        const published = await this.drainOnce();
        failures = 0;
        // More may be waiting; or a commit notified while this batch ran (no wake was set then).
        if (published === this.batchSize || this.notified) continue;
      } catch (err) {
        failures++;
        this.logger.warn({ err: errorMessage(err) }, 'outbox: batch failed; will retry');
        await sleep(Math.min(100 * 2 ** failures, 5_000));
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Claims, publishes and marks one batch; returns how many rows it published. */
  async drainOnce(): Promise<number> {
    return withTransaction(this.db, async (tx) => {
      const rows = await tx.query<{ id: string; envelope: Envelope }>(
        'SELECT id, envelope FROM orders.outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED',
        [this.batchSize],
      );
      if (rows.rows.length === 0) return 0;
      await Promise.all(rows.rows.map((r) => this.publisher.publishEnvelope(r.envelope)));
      await this.options.beforeMark?.(rows.rows.map((r) => r.envelope.eventId));
      await tx.query('UPDATE orders.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [rows.rows.map((r) => r.id)]);
      return rows.rows.length;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    this.listener?.release(true);
  }
}
