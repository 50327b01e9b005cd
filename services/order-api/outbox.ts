// The outbox relay. The event store is the outbox (shared/event-store): an append writes its
// events unsent in the writer's transaction and notifies; the relay publishes unsent events
// in position order with publisher confirms and marks them sent only after the broker
// confirmed them. Rows are claimed with FOR UPDATE SKIP LOCKED, so several relays never
// publish the same event; a relay that dies between publish and mark leaves the events
// unsent and they are published again (consumers deduplicate by eventId). Each event is
// published in the trace it was appended in (its stored trace context), whichever batch takes it.
import { Counter } from 'prom-client';
import { EVENTS_CHANNEL } from '../../shared/event-store';
import { withTransaction, type Pool } from '../../shared/db';
import { LoopPause, PgListener } from '../../shared/db/listen';
import { errorMessage } from '../../shared/errors';
import type { Envelope } from '../../shared/events';
import type { Publisher } from '../../shared/messaging/publisher';
import { silentLogger, type Logger } from '../../shared/observability/logger';
import { withTraceContext, type TraceCarrier } from '../../shared/observability/trace-context';
import { processRegistry } from '../../shared/observability/metrics';

/** The relay's rate; its backlog is outbox-metrics.ts's gauges. */
const relayed = new Counter({
  name: 'outbox_events_published_total',
  help: 'Events the relay published from the outbox with a confirm and marked sent (committed)',
  registers: [processRegistry],
});

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
  private readonly pause = new LoopPause();
  /** Set by a notification; one that arrives while a batch runs must not be lost. */
  private notified = false;
  private readonly listener: PgListener;
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
    // An append's NOTIFY (after its commit, shared by the commits that end together) wakes the loop; so does every (re-)LISTEN, for what was committed while nobody listened.
    this.listener = new PgListener(db, {
      channel: EVENTS_CHANNEL,
      name: 'outbox',
      logger: this.logger,
      onNotify: () => {
        this.notified = true;
        this.pause.wake();
      },
    });
  }

  async start(): Promise<void> {
    await this.listener.start();
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        this.notified = false;
        const { claimed } = await this.drainOnce();
        failures = 0;
        // More may be waiting: a full batch, even one with an event that could not go out. (A
        // commit that notified while this batch ran ends the pause below at once.)
        if (claimed === this.batchSize) continue;
      } catch (err) {
        failures++;
        this.logger.warn({ err: errorMessage(err) }, 'outbox: batch failed; will retry');
        await this.pause.for(Math.min(100 * 2 ** failures, 5_000), () => this.stopped);
        continue;
      }
      await this.pause.for(this.pollMs, () => this.stopped || this.notified);
    }
  }

  /**
   * Claims, publishes and marks one batch; returns how many rows it claimed and published. The rows the
   * broker confirmed are marked sent even when others failed: those stay unsent, so one event
   * that cannot go out (one PUBLISH_HOLD_BACK cannot carry, say) holds back no other. A batch
   * that published some says so in a warning and the relay goes on at its pace; one that
   * published none throws its first failure, and the relay backs off.
   */
  async drainOnce(): Promise<{ claimed: number; published: number }> {
    const { claimed, published, failure } = await withTransaction(this.db, async (tx) => {
      const rows = await tx.query<{ id: string; envelope: Envelope; trace_context: TraceCarrier | null }>(
        'SELECT position AS id, envelope, trace_context FROM orders.events WHERE sent_at IS NULL ORDER BY position LIMIT $1 FOR UPDATE SKIP LOCKED',
        [this.batchSize],
      );
      if (rows.rows.length === 0) return { claimed: 0, published: 0, failure: undefined };
      // Each event's publish span is a child of the span that appended it: one order, one trace.
      const results = await Promise.allSettled(rows.rows.map((r) => withTraceContext(r.trace_context, () => this.publisher.publishEnvelope(r.envelope))));
      const sent = rows.rows.filter((_, i) => results[i]!.status === 'fulfilled');
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      await this.options.beforeMark?.(sent.map((r) => r.envelope.eventId));
      if (sent.length > 0) await tx.query('UPDATE orders.events SET sent_at = now() WHERE position = ANY($1::bigint[])', [sent.map((r) => r.id)]);
      return { claimed: rows.rows.length, published: sent.length, failure: failed };
    });
    relayed.inc(published);
    if (failure && published === 0) throw failure.reason;
    if (failure) this.logger.warn({ err: errorMessage(failure.reason), published }, 'outbox: an event of the batch could not go out; it stays unsent');
    return { claimed, published };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause.wake();
    await this.listener.stop();
    await this.loop;
  }
}
