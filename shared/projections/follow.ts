// Runs a projection that follows the event store (docs/event-sourcing.md#projections): from
// its checkpoint it reads the store in commit order (readAll), a batch at a time, and applies
// each batch and saves the checkpoint after it in ONE transaction, so a crash neither applies
// a batch twice nor skips one. Caught up, it follows live: woken by the appends' NOTIFYs (after
// their commits, shared by the commits that end together; a LISTEN connection of its own,
// re-opened when lost) and polling every second besides.
//
// Replicas: each batch transaction first takes the projection's advisory lock
// (lockProjection), then reads the checkpoint. A second replica waits for the first's batch to
// commit and reads the checkpoint it saved, so replicas take turns and never apply an event
// twice; they add availability, not throughput. The lock assigns no transaction id, so a
// waiting replica does not hold back readAll for everyone else.
import { withTransaction, type Pool } from '../db';
import { LoopPause, PgListener } from '../db/listen';
import { DependencyUnavailableError, errorMessage, TransientError } from '../errors';
import { EVENTS_CHANNEL, readAll, type Checkpoint } from '../event-store';
import { silentLogger, type Logger } from '../observability/logger';
import { lockProjection, readCheckpoint, saveCheckpoint } from './checkpoints';
import { qualified, type Projection } from './projection';

/**
 * After a notification whose event readAll did not show yet: look again after these waits, in
 * ms (each at most the polling interval), about 6 s in all.
 */
const RECHECK_MS = [50, 100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000, 1_000];

export interface FollowOptions {
  /** Events read and applied per transaction. Default 2000 */
  batchSize?: number;
  /** Polling when no notification arrives, in ms. Default 1000 */
  pollMs?: number;
  /**
   * Failures in a row, other than PostgreSQL being away or a transient conflict, after which
   * the runner gives up (`ended` rejects, and its process exits 1 to be restarted). Default 5
   */
  maxFailures?: number;
  logger?: Logger;
}

/** What one batch did. */
export interface BatchResult {
  events: number;
  checkpoint: Checkpoint;
}

export class ProjectionFollower {
  private stopped = false;
  private readonly pause = new LoopPause();
  /** Set by a notification; one that arrives while a batch runs must not be lost. */
  private notified = false;
  private loop?: Promise<void>;
  private failure?: unknown;
  private readonly listener: PgListener;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly maxFailures: number;
  private readonly logger: Logger;
  private readonly checkpointName: string;
  /** Events this runner applied since it started (a replica's share when there are several). */
  eventsApplied = 0;
  /** Set once the first batch came back short: the runner has caught up with the store. */
  caughtUp?: { events: number; ms: number };

  constructor(
    private readonly db: Pool,
    private readonly projection: Projection,
    options: FollowOptions = {},
  ) {
    if (!projection.checkpoint) throw new Error(`the projection ${projection.name} keeps no checkpoint: it does not follow the store`);
    this.checkpointName = projection.checkpoint;
    this.batchSize = options.batchSize ?? 2_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.maxFailures = options.maxFailures ?? 5;
    this.logger = options.logger ?? silentLogger;
    this.listener = new PgListener(db, {
      channel: EVENTS_CHANNEL,
      name: projection.name,
      logger: this.logger,
      onNotify: () => {
        this.notified = true;
        this.pause.wake();
      },
    });
  }

  /** Starts listening and applying; resolves at once (catching up goes on in the background). */
  async start(): Promise<void> {
    await this.listener.start();
    this.loop = this.run();
  }

  /**
   * Settles when the runner stopped: resolves after stop(), rejects when it gave up (a batch
   * kept failing for another reason than PostgreSQL being away).
   */
  get ended(): Promise<void> {
    return (this.loop ?? Promise.resolve()).then(() => {
      const failure = this.failure;
      if (failure !== undefined) throw failure instanceof Error ? failure : new Error(errorMessage(failure));
    });
  }

  /** Stops after the batch in flight (which commits or rolls back as a whole). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pause.wake();
    await this.loop;
    await this.listener.stop();
  }

  /** Applies the next batch after the checkpoint and saves the checkpoint, in one transaction. */
  async applyBatch(): Promise<BatchResult> {
    const result = await withTransaction(this.db, async (tx) => {
      await lockProjection(tx, this.projection.name);
      const checkpoint = await readCheckpoint(tx, this.checkpointName);
      const events = await readAll(tx, checkpoint, this.batchSize);
      const last = events.at(-1);
      if (!last) return { events: 0, checkpoint };
      await this.projection.apply(tx, qualified(this.projection.table), events);
      await saveCheckpoint(tx, this.checkpointName, last.checkpoint);
      return { events: events.length, checkpoint: last.checkpoint };
    });
    this.eventsApplied += result.events;
    return result;
  }

  private async run(): Promise<void> {
    const started = Date.now();
    let failures = 0;
    let recheck = 0;
    while (!this.stopped) {
      try {
        const wasNotified = this.notified;
        this.notified = false;
        const { events } = await this.applyBatch();
        failures = 0;
        if (events === this.batchSize) continue;
        if (!this.caughtUp) {
          this.caughtUp = { events: this.eventsApplied, ms: Date.now() - started };
          const seconds = Math.round(this.caughtUp.ms / 100) / 10;
          this.logger.info(
            { projection: this.projection.name, events: this.caughtUp.events, seconds },
            `${this.projection.name}: caught up with the event store: ${this.caughtUp.events} events applied in ${seconds} s; following it live`,
          );
        }
        // Notified, yet nothing to read: the commit may be past readAll's horizon (another
        // transaction, in any database of the server, is still running). Look again soon
        // rather than at the next poll, for a few seconds.
        if (wasNotified && events === 0 && recheck < RECHECK_MS.length) {
          await this.pause.for(Math.min(RECHECK_MS[recheck++]!, this.pollMs), () => this.stopped || this.notified);
          this.notified = true;
          continue;
        }
        recheck = 0;
      } catch (err) {
        failures++;
        // PostgreSQL away (the pool's watch reports the wait) or a conflict: retried for as
        // long as it takes. Anything else is retried a few times, then the runner gives up.
        const retriedForEver = err instanceof DependencyUnavailableError || err instanceof TransientError;
        if (!retriedForEver && failures >= this.maxFailures) {
          this.failure = err;
          this.logger.error({ err: errorMessage(err), projection: this.projection.name, failures }, `${this.projection.name}: a batch failed ${failures} times in a row; giving up`);
          return;
        }
        this.logger.warn({ err: errorMessage(err), projection: this.projection.name, failures }, `${this.projection.name}: a batch failed; will retry`);
        await this.pause.for(Math.min(100 * 2 ** Math.min(failures, 10), 5_000), () => this.stopped);
        continue;
      }
      // A commit that notified while this batch ran ends the pause at once.
      await this.pause.for(this.pollMs, () => this.stopped || this.notified);
    }
  }
}
