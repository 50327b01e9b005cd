// Effectively-once handling on top of at-least-once delivery (DESIGN.md guarantee 2).
// Key `dedup:<consumer>:<messageId>`: claim with a lease, mark done (storing the outcome)
// only after the handler succeeded, release the claim when it failed. Each step is one
// atomic Lua script, so two consumers can never both own a key.
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { DependencyUnavailableError } from '../errors';

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
  /** Marks the message done and stores the handler's outcome, to be re-emitted for duplicates. */
  complete(consumer: string, messageId: string, token: string, outcome: string): Promise<void>;
  /** Gives up a claim after a failed handler so that a redelivery can handle it. */
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

// Values: "p:<token>" while claimed, "d:<outcome>" when done.
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'PX', ARGV[2])
  return {'claimed'}
end
if string.sub(v, 1, 2) == 'd:' then return {'done', string.sub(v, 3)} end
if v == 'p:' .. ARGV[1] then return {'claimed'} end
return {'in_progress'}`;

const EXTEND = `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const COMPLETE = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 2) == 'd:' then return 0 end
redis.call('SET', KEYS[1], 'd:' .. ARGV[2], 'PX', ARGV[3])
return 1`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface DedupCommands {
  dedupClaim(key: string, token: string, leaseMs: number): Promise<[string, string?]>;
  dedupExtend(key: string, token: string, leaseMs: number): Promise<number>;
  dedupComplete(key: string, token: string, outcome: string, ttlMs: number): Promise<number>;
  dedupRelease(key: string, token: string): Promise<number>;
}

/** Creates the ioredis client the way the dedup store needs it: fail fast while disconnected. */
export function createRedis(url: string, connectionName = 'order-fulfillment'): Redis {
  return new Redis(url, {
    connectionName,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(100 * 2 ** times, 2_000),
  });
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
    const [status, outcome] = await guard(this.redis.dedupClaim(this.key(consumer, messageId), token, this.leaseMs));
    if (status === 'claimed') return { status, token };
    if (status === 'done') return { status, outcome: outcome ?? '' };
    return { status: 'in_progress' };
  }

  async extend(consumer: string, messageId: string, token: string): Promise<boolean> {
    return (await guard(this.redis.dedupExtend(this.key(consumer, messageId), token, this.leaseMs))) === 1;
  }

  async complete(consumer: string, messageId: string, token: string, outcome: string): Promise<void> {
    await guard(this.redis.dedupComplete(this.key(consumer, messageId), token, outcome, this.doneTtlMs));
  }

  async release(consumer: string, messageId: string, token: string): Promise<void> {
    await guard(this.redis.dedupRelease(this.key(consumer, messageId), token));
  }
}

async function guard<T>(command: Promise<T>): Promise<T> {
  try {
    return await command;
  } catch (err) {
    throw new DependencyUnavailableError('redis', err);
  }
}
