// Effectively-once handling on top of at-least-once delivery (docs/architecture.md#the-guarantees, guarantee 2).
// Key `dedup:<consumer>:<messageId>`: claim with a lease, mark done (storing the outcome)
// only after the handler succeeded, release the claim when it failed. Each step is one
// atomic Lua script, so two consumers can never both own a key. A claim that finds the message
// seen before is a dedup hit (dedup_hits_total).
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import { getConfig } from '../config';
import { DependencyUnavailableError, LeaseLostError } from '../errors';
import { DependencyWatch } from '../observability/dependency-watch';
import type { Logger } from '../observability/logger';
import { processRegistry } from '../observability/metrics';

const dedupHits = new Counter<'consumer' | 'state'>({
  name: 'dedup_hits_total',
  help: "Claims that found the message seen before, by consumer (the dedup key's) and state: done (its stored outcome is re-emitted, nothing is done again) or in_progress (another delivery holds it; retried later)",
  labelNames: ['consumer', 'state'],
  registers: [processRegistry],
});

export type ClaimResult =
  | { status: 'claimed'; token: string }
  | { status: 'done'; outcome: string }
  | { status: 'in_progress' };

export interface DedupStore {
  /** How long a claim holds without being extended, in ms. */
  readonly leaseMs: number;
  /** Claims a message for handling; tells whether it is new, done (with its outcome) or being handled. */
  claim(consumer: string, messageId: string): Promise<ClaimResult>;
  /** Keeps a claim alive while a long handler runs. Returns false when the claim was lost. */
  extend(consumer: string, messageId: string, token: string): Promise<boolean>;
  /**
   * Marks the message done and stores the handler's outcome, to be re-emitted for duplicates.
   * Resolves, changing nothing, when the message is done already (this call's own earlier
   * attempt, or another delivery, marked it). Throws LeaseLostError, changing nothing, when
   * another token holds the claim or there is no claim any more.
   */
  complete(consumer: string, messageId: string, token: string, outcome: string): Promise<void>;
  /**
   * Gives up a claim after a failed handler so that a redelivery can handle it. Throws
   * LeaseLostError, changing nothing, when the token no longer owns the claim.
   */
  release(consumer: string, messageId: string, token: string): Promise<void>;
}

export interface RedisDedupOptions {
  /** How long a claim holds without being extended, in ms. Default 30000 */
  leaseMs?: number;
  /** How long a done marker (and its outcome) is kept, in ms. Default 7 days */
  doneTtlMs?: number;
  /** Key prefix. Default "dedup" */
  prefix?: string;
}

// Values: "p:<token>" while claimed, "d:<outcome>" when done. Every script that changes a
// claim first checks that the caller's token owns it: a handler that outlived its lease
// must not overwrite (or free) the claim of the delivery that took over. Done is final:
// nothing overwrites or frees a done marker.

// Claims and completions are batched: those asked for in one turn of the event loop go to
// Redis as one script call (at most MAX_BATCH keys each), so a consumer with many deliveries
// in flight pays one command, not one per message. A batch is atomic as a whole, and each
// key in it is decided exactly as it would be alone.

// KEYS the dedup keys. ARGV[1] the batch's fresh token, ARGV[2] the lease in ms. Claim i's
// token is ARGV[1] .. ':' .. i: each claim its own. A key asked for twice in one batch is
// claimed once; the other copy finds it in progress.
// Returns for each key 'c' (claimed), 'i' (in progress) or 'd:<outcome>' (done).
const CLAIM = `
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    redis.call('SET', KEYS[i], 'p:' .. ARGV[1] .. ':' .. i, 'PX', ARGV[2])
    out[i] = 'c'
  elseif string.sub(v, 1, 2) == 'd:' then out[i] = v
  else out[i] = 'i' end
end
return out`;

// KEYS[1] the dedup key. ARGV[1] the owner's token, ARGV[2] the lease in ms.
// Returns 1 when extended, 0 when the claim is not owned (expired, taken over, or done).
const EXTEND = `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

// KEYS the dedup keys. ARGV[1] how long a done marker is kept, in ms; then, for key i, its
// owner's token ARGV[2i] and the outcome ARGV[2i+1]. Returns for each key 1 when marked
// done; 2 when it was done already, changing nothing; 0 when another token holds the claim
// or there is none.
// 2 is not an error, whoever marked it: a retry of a complete that timed out finds its own
// first attempt's marker, and a delivery that outlived its lease finds the marker of the one
// that took over. Either way the message is done, and the results it published carry ids
// derived from their cause, so consumers take them once.
const COMPLETE = `
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v == 'p:' .. ARGV[2 * i] then
    redis.call('SET', KEYS[i], 'd:' .. ARGV[2 * i + 1], 'PX', ARGV[1])
    out[i] = 1
  elseif v and string.sub(v, 1, 2) == 'd:' then out[i] = 2
  else out[i] = 0 end
end
return out`;

// KEYS[1] the dedup key. ARGV[1] the owner's token.
// Returns 1 when released, 0 when the claim is not owned.
const RELEASE = `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The most keys one claim or complete script call takes: a script blocks Redis while it runs. */
const MAX_BATCH = 256;

interface DedupCommands {
  /** Arguments: the number of keys, the keys, then ARGV. */
  dedupClaim(...args: Array<string | number>): Promise<string[]>;
  dedupExtend(key: string, token: string, leaseMs: number): Promise<number>;
  dedupComplete(...args: Array<string | number>): Promise<number[]>;
  dedupRelease(key: string, token: string): Promise<number>;
}

export interface RedisOptions {
  /** How long the TCP connect may take, and then the handshake until the client is ready, in ms. Default REDIS_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
  /** How long a command waits for its answer, in ms. Default REDIS_COMMAND_TIMEOUT_MS */
  commandTimeoutMs?: number;
  /** Where the client says that Redis does not answer. Default: nowhere */
  logger?: Logger;
}

const connectTimeoutMsOf = (options: RedisOptions): number => options.connectTimeoutMs ?? getConfig().redisConnectTimeoutMs;

/** ioredis's error for a command that got no answer within commandTimeout. */
const COMMAND_TIMED_OUT = 'Command timed out';

/**
 * Creates the ioredis client the way the dedup store needs it: fail fast while disconnected,
 * and never wait for ever. ioredis's connectTimeout ends with the TCP connect, so a handshake
 * that does not reach "ready" within the same deadline drops the connection, and ioredis
 * connects again: a server that accepts and never answers is tried again.
 */
export function createRedis(url: string, connectionName = 'order-fulfillment', options: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    connectionName,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // A command whose caller gave up (timed out) must not run later on a new connection: a
    // resent claim would hold a message for a whole lease with nobody handling it.
    autoResendUnfulfilledCommands: false,
    enableAutoPipelining: true,
    connectTimeout: connectTimeoutMsOf(options),
    commandTimeout: options.commandTimeoutMs ?? getConfig().redisCommandTimeoutMs,
    retryStrategy: (times) => Math.min(100 * 2 ** times, 2_000),
  });
  const watch = new DependencyWatch('redis', options.logger);
  let lastError: Error | undefined;
  watch.down();
  // A connection whose handshake never ends (the server accepts and stays silent) is
  // dropped after the connect deadline, and ioredis connects again.
  const connectTimeoutMs = connectTimeoutMsOf(options);
  let handshake: NodeJS.Timeout | undefined;
  redis.on('connect', () => {
    clearTimeout(handshake);
    handshake = setTimeout(() => {
      if (redis.status !== 'ready' && redis.status !== 'end') redis.disconnect(true);
    }, connectTimeoutMs).unref();
  });
  redis.on('ready', () => {
    clearTimeout(handshake);
    watch.up();
  });
  redis.on('error', (err: Error) => void (lastError = err));
  redis.on('close', () => watch.down(lastError));
  redis.on('end', () => watch.close());
  // A client told to disconnect while it waits to reconnect never emits 'end' (ioredis clears
  // the timer, and its socket is closed already): its watch would speak for it for ever.
  const disconnect = redis.disconnect.bind(redis);
  redis.disconnect = (reconnect = false) => {
    if (!reconnect) watch.close();
    disconnect(reconnect);
  };
  return redis;
}

/**
 * Requests made in one turn of the event loop (up to the next process.nextTick), sent as
 * one call per MAX_BATCH of them. `send` (an async function: it never throws, it rejects)
 * answers each request in order; when the call fails, every request in it fails with the
 * same error.
 */
class Batcher<Request, Answer> {
  private queued: Array<{ request: Request; resolve: (answer: Answer) => void; reject: (err: unknown) => void }> = [];

  constructor(private readonly send: (requests: Request[]) => Promise<Answer[]>) {}

  add(request: Request): Promise<Answer> {
    return new Promise((resolve, reject) => {
      if (this.queued.length === 0) process.nextTick(() => this.flush());
      this.queued.push({ request, resolve, reject });
    });
  }

  private flush(): void {
    const queued = this.queued;
    this.queued = [];
    for (let from = 0; from < queued.length; from += MAX_BATCH) {
      const part = queued.slice(from, from + MAX_BATCH);
      this.send(part.map((q) => q.request)).then(
        (answers) => part.forEach((q, i) => q.resolve(answers[i] as Answer)),
        (err: unknown) => part.forEach((q) => q.reject(err)),
      );
    }
  }
}

export class RedisDedupStore implements DedupStore {
  private readonly redis: Redis & DedupCommands;
  readonly leaseMs: number;
  private readonly doneTtlMs: number;
  private readonly prefix: string;
  /** Each answer: the claim's token, or 'i' (in progress) or 'd:<outcome>' (done). */
  private readonly claims: Batcher<string, string>;
  private readonly completions: Batcher<{ key: string; token: string; outcome: string }, number>;

  constructor(redis: Redis, options: RedisDedupOptions = {}) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.doneTtlMs = options.doneTtlMs ?? 7 * 24 * 3600 * 1000;
    this.prefix = options.prefix ?? 'dedup';
    redis.defineCommand('dedupClaim', { lua: CLAIM });
    redis.defineCommand('dedupExtend', { numberOfKeys: 1, lua: EXTEND });
    redis.defineCommand('dedupComplete', { lua: COMPLETE });
    redis.defineCommand('dedupRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis = redis as Redis & DedupCommands;
    this.claims = new Batcher(async (keys) => {
      const token = randomUUID();
      const answers = await this.guard(this.redis.dedupClaim(keys.length, ...keys, token, this.leaseMs));
      return answers.map((answer, i) => (answer === 'c' ? `${token}:${i + 1}` : answer));
    });
    this.completions = new Batcher(async (requests) => {
      const args: Array<string | number> = [requests.length, ...requests.map((r) => r.key), this.doneTtlMs];
      for (const r of requests) args.push(r.token, r.outcome);
      return this.guard(this.redis.dedupComplete(...args));
    });
  }

  key(consumer: string, messageId: string): string {
    return `${this.prefix}:${consumer}:${messageId}`;
  }

  async claim(consumer: string, messageId: string): Promise<ClaimResult> {
    const answer = await this.claims.add(this.key(consumer, messageId));
    if (answer === 'i') {
      dedupHits.inc({ consumer, state: 'in_progress' });
      return { status: 'in_progress' };
    }
    if (answer.startsWith('d:')) {
      dedupHits.inc({ consumer, state: 'done' });
      return { status: 'done', outcome: answer.slice(2) };
    }
    return { status: 'claimed', token: answer };
  }

  async extend(consumer: string, messageId: string, token: string): Promise<boolean> {
    return (await this.guard(this.redis.dedupExtend(this.key(consumer, messageId), token, this.leaseMs))) === 1;
  }

  async complete(consumer: string, messageId: string, token: string, outcome: string): Promise<void> {
    const key = this.key(consumer, messageId);
    if ((await this.completions.add({ key, token, outcome })) === 0) throw new LeaseLostError(key);
  }

  async release(consumer: string, messageId: string, token: string): Promise<void> {
    const key = this.key(consumer, messageId);
    if ((await this.guard(this.redis.dedupRelease(key, token))) !== 1) throw new LeaseLostError(key);
  }

  /** When a command last timed out, if none has been answered since. */
  private timedOutAt?: number;

  /** Any failure of Redis (refused, closed, timed out) means: hold the message and wait for Redis. */
  private async guard<T>(command: Promise<T>): Promise<T> {
    const sentAt = Date.now();
    try {
      const answer = await command;
      this.timedOutAt = undefined;
      return answer;
    } catch (err) {
      if (err instanceof Error && err.message === COMMAND_TIMED_OUT) this.timedOut(sentAt);
      throw new DependencyUnavailableError('redis', err);
    }
  }

  /**
   * ioredis keeps using a connection whose server stopped answering, so every later command
   * would time out too; a new connection goes through the (bounded) handshake. But dropping
   * the connection fails every other command in flight on the shared client, and one slow
   * reply (with the commands pipelined behind it) does not mean a hung connection: it is
   * dropped only when a command sent after an earlier one timed out times out as well, with
   * no answer in between.
   */
  private timedOut(sentAt: number): void {
    if (this.timedOutAt === undefined || sentAt < this.timedOutAt) {
      this.timedOutAt ??= Date.now();
      return;
    }
    this.timedOutAt = undefined;
    if (this.redis.status === 'ready') this.redis.disconnect(true);
  }
}
