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

// KEYS[1] the dedup key. ARGV[1] a fresh token, ARGV[2] the lease in ms.
// Returns {'claimed'}, {'done', outcome} or {'in_progress'}.
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'PX', ARGV[2])
  return {'claimed'}
end
if string.sub(v, 1, 2) == 'd:' then return {'done', string.sub(v, 3)} end
if v == 'p:' .. ARGV[1] then return {'claimed'} end
return {'in_progress'}`;

// KEYS[1] the dedup key. ARGV[1] the owner's token, ARGV[2] the lease in ms.
// Returns 1 when extended, 0 when the claim is not owned (expired, taken over, or done).
const EXTEND = `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

// KEYS[1] the dedup key. ARGV[1] the owner's token, ARGV[2] the outcome, ARGV[3] how long
// the done marker is kept, in ms. Returns 1 when marked done; 2 when it was done already,
// changing nothing; 0 when another token holds the claim or there is none.
// 2 is not an error, whoever marked it: a retry of a complete that timed out finds its own
// first attempt's marker, and a delivery that outlived its lease finds the marker of the one
// that took over. Either way the message is done, and the results it published carry ids
// derived from their cause, so consumers take them once.
const COMPLETE = `
local v = redis.call('GET', KEYS[1])
if v == 'p:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'd:' .. ARGV[2], 'PX', ARGV[3])
  return 1
end
if v and string.sub(v, 1, 2) == 'd:' then return 2 end
return 0`;

// KEYS[1] the dedup key. ARGV[1] the owner's token.
// Returns 1 when released, 0 when the claim is not owned.
const RELEASE = `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface DedupCommands {
  dedupClaim(key: string, token: string, leaseMs: number): Promise<[string, string?]>;
  dedupExtend(key: string, token: string, leaseMs: number): Promise<number>;
  dedupComplete(key: string, token: string, outcome: string, ttlMs: number): Promise<number>;
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

export class RedisDedupStore implements DedupStore {
  private readonly redis: Redis & DedupCommands;
  readonly leaseMs: number;
  private readonly doneTtlMs: number;
  private readonly prefix: string;

  constructor(redis: Redis, options: RedisDedupOptions = {}) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.doneTtlMs = options.doneTtlMs ?? 7 * 24 * 3600 * 1000;
    this.prefix = options.prefix ?? 'dedup';
    redis.defineCommand('dedupClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('dedupExtend', { numberOfKeys: 1, lua: EXTEND });
    redis.defineCommand('dedupComplete', { numberOfKeys: 1, lua: COMPLETE });
    redis.defineCommand('dedupRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis = redis as Redis & DedupCommands;
  }

  key(consumer: string, messageId: string): string {
    return `${this.prefix}:${consumer}:${messageId}`;
  }

  async claim(consumer: string, messageId: string): Promise<ClaimResult> {
    const token = randomUUID();
    const [status, outcome] = await this.guard(this.redis.dedupClaim(this.key(consumer, messageId), token, this.leaseMs));
    if (status === 'claimed') return { status, token };
    dedupHits.inc({ consumer, state: status === 'done' ? 'done' : 'in_progress' });
    if (status === 'done') return { status, outcome: outcome ?? '' };
    return { status: 'in_progress' };
  }

  async extend(consumer: string, messageId: string, token: string): Promise<boolean> {
    return (await this.guard(this.redis.dedupExtend(this.key(consumer, messageId), token, this.leaseMs))) === 1;
  }

  async complete(consumer: string, messageId: string, token: string, outcome: string): Promise<void> {
    const key = this.key(consumer, messageId);
    if ((await this.guard(this.redis.dedupComplete(key, token, outcome, this.doneTtlMs))) === 0) throw new LeaseLostError(key);
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
