// LISTEN on a channel, on a connection of its own that is re-opened with back-off when it is
// lost (a database restart, an ended backend). Whoever uses it also polls: a notification
// only wakes it sooner, and none is missed for good, since each (re-)LISTEN wakes it once for
// what was committed while nobody listened. The outbox relay and the projections' runners
// listen through it, and wait between their polls with LoopPause.
import type { PoolClient } from 'pg';
import { errorMessage } from '../errors';
import { silentLogger, type Logger } from '../observability/logger';
import type { Pool } from './index';

/** Longest wait between two attempts to re-open the connection, in ms. */
const RETRY_MAX_MS = 5_000;

export interface PgListenerOptions {
  /** A plain channel name (it is written into LISTEN). */
  channel: string;
  /** Called on each notification, and once after each (re-)LISTEN. */
  onNotify(): void;
  /** Names the listener in its log lines. */
  name: string;
  logger?: Logger;
}

export class PgListener {
  private stopped = false;
  private client?: PoolClient;
  /** The (re-)LISTEN in flight, which stop() waits for: it may be holding a pool client. */
  private opening?: Promise<void>;
  private retryTimer?: NodeJS.Timeout;
  private readonly logger: Logger;

  constructor(
    private readonly db: Pool,
    private readonly options: PgListenerOptions,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(options.channel)) throw new Error(`not a plain channel name: "${options.channel}"`);
    this.logger = options.logger ?? silentLogger;
  }

  /** True while a LISTEN connection is open. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Opens the connection; a failure is retried in the background (never thrown). */
  start(): Promise<void> {
    return this.open(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.opening;
    const client = this.client;
    this.client = undefined;
    client?.release(true);
  }

  private open(attempt: number): Promise<void> {
    const opening = this.listen(attempt).finally(() => {
      if (this.opening === opening) this.opening = undefined;
    });
    this.opening = opening;
    return opening;
  }

  private async listen(attempt: number): Promise<void> {
    if (this.stopped) return;
    let client: PoolClient;
    try {
      client = await this.db.connect();
    } catch (err) {
      this.retry(attempt, err);
      return;
    }
    let released = false;
    /** Releases the client once, destroying its connection; false when it was already. */
    const release = (): boolean => {
      if (released) return false;
      released = true;
      client.release(true);
      return true;
    };
    // stop() during an await below has read no client: this one is released here, or the
    // pool's end() would wait for it for ever.
    const onLost = (err?: Error): void => {
      if (this.stopped || !release()) return;
      const wasListening = this.client === client;
      if (wasListening) this.client = undefined;
      this.retry(wasListening ? 0 : attempt, err ?? new Error('LISTEN connection ended'));
    };
    client.on('notification', () => this.options.onNotify());
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.query(`LISTEN ${this.options.channel}`);
    } catch (err) {
      if (this.stopped) release();
      else onLost(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.stopped) {
      release();
      return;
    }
    if (released) return;
    this.client = client;
    if (attempt > 0) this.logger.info({ channel: this.options.channel }, `${this.options.name}: listening again`);
    this.options.onNotify();
  }

  private retry(attempt: number, err: unknown): void {
    if (this.stopped) return;
    if (attempt === 0) this.logger.warn({ err: errorMessage(err), channel: this.options.channel }, `${this.options.name}: no LISTEN connection; polling until it is re-opened`);
    const delay = Math.min(100 * 2 ** attempt, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => void this.open(attempt + 1), delay);
  }
}

/**
 * The wait of a loop that polls and is woken: `for(ms, cutShort)` waits ms, or less once
 * cutShort() holds, checked at once and at each wake(). A loop's stop() and its notifications
 * call wake(); checking at once keeps a stop() or a notification that came while the batch
 * before ran from waiting a whole poll.
 */
export class LoopPause {
  private wakeUp?: () => void;

  wake(): void {
    this.wakeUp?.();
  }

  async for(ms: number, cutShort: () => boolean): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        if (!cutShort()) return;
        clearTimeout(timer);
        resolve();
      };
      this.wakeUp();
    });
    this.wakeUp = undefined;
  }
}
