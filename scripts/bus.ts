// npm run bus -- stale [--delete] [--force] [--older-than <duration>] [--prefix <p>]
// Tests, chaos runs and benchmarks that are killed leave their namespaced exchanges and
// queues on the broker; hundreds of quorum queues later a local broker ran out of file
// descriptors and stopped completing handshakes. `stale` lists the namespaces that no one
// consumes from, whose queues hold no message and that are older than --older-than
// (default 1h); --delete deletes them. A live run can have no consumer for a while (a chaos
// run restarts its broker), but its queues then hold what it has not consumed yet: a
// namespace with messages is kept unless --force. The event archive, a stream, is a record
// rather than work waiting: what it holds keeps nothing. --prefix keeps to the namespaces
// whose names start with it (a test deletes only its own fixtures).
//
// Only names that these runs generate are ever considered, never the real fleet's
// (payments.commands and the like) nor a BUS_NAMESPACE a person chose:
//   t<time><tag>.*           a test's fleet (generatedNamespace; tag: up to 4 of [0-9a-z])
//   test.<purpose>.<time><hex>[.dlq|.wait.<ms>ms]   a test's own queue or exchange (test/helpers/names.ts)
//   chaos<seed><time>.*      a chaos run (generatedNamespace)
//   bench<time><hex>.*       a benchmark (generatedNamespace); an older benchmark's bench<random>
//                            carries no time, so it counts as stale only with --older-than 0
// <time> is Date.now() in base 36, which is how a namespace's age is known without the
// management plugin. The queues are read with rabbitmqctl (on the broker's machine) and
// deleted over AMQP, after their consumers and messages are counted once more.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs, promisify } from 'node:util';
import type { Channel } from 'amqplib';
import { getConfig, parseAmqpUrls, redact } from '../shared/config';
import { errorMessage } from '../shared/errors';
import { AmqpConnection } from '../shared/messaging/connection';
import { runCli, UsageError } from './cli';

const run = promisify(execFile);

const USAGE = 'usage: npm run bus -- stale [--delete] [--force] [--older-than <duration: 90s, 30m, 1h, 2d; default 1h>] [--prefix <namespace prefix>]';

/** How old a namespace without consumers must be to count as stale, by default, in ms. */
export const DEFAULT_OLDER_THAN_MS = 3_600_000;
/** How long one rabbitmqctl listing may take by default, in ms (it starts an Erlang VM: a second or two). */
const RABBITMQCTL_TIMEOUT_MS = 60_000;
/** A time read from a name must fall after this, or the name is not one of ours. */
const EARLIEST = Date.UTC(2020, 0, 1);
/** ... and before now plus this (clocks of two machines differ), in ms. */
const CLOCK_SKEW_MS = 86_400_000;

export type NamespaceKind = 'test-fleet' | 'test' | 'chaos' | 'bench';

export interface BrokerQueue {
  name: string;
  consumers: number;
  messages: number;
  /** "quorum", "classic" or "stream", as rabbitmqctl says. */
  type?: string;
}

/** Messages waiting for a consumer: a stream (the event archive) keeps what it holds whoever reads it. */
const waiting = (q: BrokerQueue): number => (q.type === 'stream' ? 0 : q.messages);

export interface Namespace {
  /** The namespace, or for a test's own queue or exchange its base name. */
  key: string;
  kind: NamespaceKind;
  /** When it was made, read from the name; undefined when the name carries no time. */
  createdAt?: number;
  queues: BrokerQueue[];
  exchanges: string[];
}

function timeOf(base36: string, now: number): number | undefined {
  const t = parseInt(base36, 36);
  return t >= EARLIEST && t <= now + CLOCK_SKEW_MS ? t : undefined;
}

/**
 * The name of a namespace a run makes, as namespaceOf reads its kind and age back: a test
 * fleet's t<time><tag> (tag: up to 4 of [0-9a-z], random unless given), a chaos run's
 * chaos<seed><time>, a benchmark's bench<time><4 hex>.
 */
export function generatedNamespace(kind: 'test-fleet' | 'chaos' | 'bench', tag?: string, now = Date.now()): string {
  const time = now.toString(36);
  if (kind === 'bench') return `bench${time}${randomBytes(2).toString('hex')}`;
  if (kind === 'chaos') return `chaos${tag ?? ''}${time}`;
  const own = tag ?? randomBytes(2).toString('hex');
  if (!/^[0-9a-z]{0,4}$/.test(own)) throw new Error(`a test fleet's namespace tag is up to 4 of [0-9a-z], not "${own}"`);
  return `t${time}${own}`;
}

const TEST_NAME = /^(test\.[A-Za-z0-9_-]+\.([0-9a-z]{8})[0-9a-f]{6})(?:\.(?:dlq|wait\.\d+ms))?$/;
const BUS_NAMESPACES: ReadonlyArray<readonly [NamespaceKind, RegExp]> = [
  ['test-fleet', /^t([0-9a-z]{8})[0-9a-z]{0,4}$/],
  ['chaos', /^chaos[0-9a-z]*?([0-9a-z]{8})$/],
  ['bench', /^bench([0-9a-z]{8})[0-9a-f]{4}$/],
  ['bench', /^bench[0-9a-z]{8}$/], // before its name carried its time
];

/** Which generated namespace a queue or exchange belongs to; undefined for every other name. */
export function namespaceOf(name: string, now = Date.now()): Omit<Namespace, 'queues' | 'exchanges'> | undefined {
  const test = TEST_NAME.exec(name);
  if (test) {
    const createdAt = timeOf(test[2]!, now);
    return createdAt === undefined ? undefined : { key: test[1]!, kind: 'test', createdAt };
  }
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) return undefined; // a namespace always prefixes something
  const prefix = name.slice(0, dot);
  for (const [kind, pattern] of BUS_NAMESPACES) {
    const match = pattern.exec(prefix);
    if (!match) continue;
    if (match[1] === undefined) return { key: prefix, kind };
    const createdAt = timeOf(match[1], now);
    return createdAt === undefined ? undefined : { key: prefix, kind, createdAt };
  }
  return undefined;
}

/** The generated namespaces among the broker's queues and exchanges. */
export function groupNamespaces(queues: readonly BrokerQueue[], exchanges: readonly string[], now = Date.now()): Namespace[] {
  const byKey = new Map<string, Namespace>();
  const entry = (name: string): Namespace | undefined => {
    const ns = namespaceOf(name, now);
    if (!ns) return undefined;
    let found = byKey.get(ns.key);
    if (!found) byKey.set(ns.key, (found = { ...ns, queues: [], exchanges: [] }));
    return found;
  };
  for (const q of queues) entry(q.name)?.queues.push(q);
  for (const e of exchanges) entry(e)?.exchanges.push(e);
  return [...byKey.values()].sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0) || a.key.localeCompare(b.key));
}

/**
 * Stale: nobody consumes from any of its queues, none of them holds a message waiting (unless
 * `force`; a stream's do not count), and it is older than olderThanMs (of unknown age: only
 * when that is 0).
 */
export function isStale(ns: Namespace, olderThanMs: number, now = Date.now(), force = false): boolean {
  if (ns.queues.some((q) => q.consumers > 0)) return false;
  if (!force && ns.queues.some((q) => waiting(q) > 0)) return false;
  if (ns.createdAt === undefined) return olderThanMs === 0;
  return now - ns.createdAt >= olderThanMs;
}

/** "90s", "30m", "1h", "2d", "500ms", "0" → ms. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`--older-than must be a duration such as 90s, 30m, 1h or 2d (got "${text}")\n${USAGE}`);
  const units: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return Number(match[1]) * (units[match[2] ?? 's'] ?? 1_000);
}

function formatAge(ms: number | undefined): string {
  if (ms === undefined) return 'unknown';
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours}h ${minutes % 60}m` : `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** The virtual host of an AMQP URL (of its first node, when it lists a cluster's), as rabbitmqctl names it. */
function vhostOf(amqpUrl: string): string {
  return decodeURIComponent(new URL(parseAmqpUrls(amqpUrl)[0]!).pathname.slice(1)) || '/';
}

async function rabbitmqctl(args: string[], timeoutMs: number): Promise<unknown[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('rabbitmqctl', ['-q', ...args, '--formatter', 'json'], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }));
  } catch (err) {
    const missing = (err as { code?: unknown }).code === 'ENOENT';
    throw new Error(
      missing
        ? 'rabbitmqctl is not on PATH: this tool reads the queues with rabbitmqctl, so run it on the broker\'s machine (with Docker Compose, rabbitmqctl is inside the rabbitmq container)'
        : `rabbitmqctl ${args[0] ?? ''} failed: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  // Some versions print a banner before the JSON even with -q; a list streams one object a line.
  const start = stdout.indexOf('[');
  try {
    const parsed: unknown = JSON.parse(start < 0 ? '[]' : stdout.slice(start));
    if (Array.isArray(parsed)) return parsed as unknown[];
  } catch {
    // not one JSON document: read it line by line below
  }
  const rows = stdout.split('\n').map((l) => l.trim().replace(/^,/, '')).filter((l) => l.startsWith('{'));
  try {
    return rows.map((l) => JSON.parse(l) as unknown);
  } catch {
    throw new Error(`rabbitmqctl ${args[0] ?? ''} did not print JSON: ${stdout.slice(0, 200)}`);
  }
}

/** Every queue (with its consumers and messages) and exchange of the virtual host. */
export async function listBroker(vhost: string, timeoutMs = RABBITMQCTL_TIMEOUT_MS): Promise<{ queues: BrokerQueue[]; exchanges: string[] }> {
  const [queues, exchanges] = await Promise.all([
    rabbitmqctl(['list_queues', '-p', vhost, 'name', 'consumers', 'messages', 'type'], timeoutMs),
    rabbitmqctl(['list_exchanges', '-p', vhost, 'name'], timeoutMs),
  ]);
  const row = (r: unknown): Record<string, unknown> => (typeof r === 'object' && r !== null ? (r as Record<string, unknown>) : {});
  const name = (r: Record<string, unknown>): string => (typeof r.name === 'string' ? r.name : '');
  return {
    queues: queues.map(row).map((r) => ({ name: name(r), consumers: Number(r.consumers) || 0, messages: Number(r.messages) || 0, ...(typeof r.type === 'string' ? { type: r.type } : {}) })),
    exchanges: exchanges.map(row).map(name),
  };
}

export interface StaleReport {
  stale: Namespace[];
  /** Generated namespaces that are consumed from or too young. */
  kept: Namespace[];
}

export interface StaleOptions {
  olderThanMs: number;
  amqpUrl?: string;
  /** Only these kinds of namespace. Default: every kind */
  kinds?: readonly NamespaceKind[];
  /** Only the namespaces whose name starts with this. */
  prefix?: string;
  /** Counts namespaces whose queues hold messages as stale too. */
  force?: boolean;
  now?: number;
  timeoutMs?: number;
}

export async function findStale(options: StaleOptions): Promise<StaleReport> {
  const now = options.now ?? Date.now();
  const { queues, exchanges } = await listBroker(vhostOf(options.amqpUrl ?? getConfig().amqpUrl), options.timeoutMs);
  const all = groupNamespaces(queues, exchanges, now).filter(
    (ns) => (!options.kinds || options.kinds.includes(ns.kind)) && (options.prefix === undefined || ns.key.startsWith(options.prefix)),
  );
  const stale = (ns: Namespace): boolean => isStale(ns, options.olderThanMs, now, options.force);
  return { stale: all.filter(stale), kept: all.filter((ns) => !stale(ns)) };
}

/** A channel for one operation after another; a failed operation closes it, and the next gets a fresh one. */
class Admin {
  private channel?: Channel;

  constructor(private readonly connection: AmqpConnection) {}

  private async open(): Promise<Channel> {
    if (this.channel) return this.channel;
    const model = this.connection.channelModel;
    if (!model) throw new Error('not connected to RabbitMQ');
    const channel = await model.createChannel();
    channel.on('error', () => undefined); // a 404 or 406 closes the channel; the operation fails with it
    this.channel = channel;
    return channel;
  }

  async do<T>(op: (channel: Channel) => Promise<T>): Promise<T> {
    try {
      return await op(await this.open());
    } catch (err) {
      this.channel = undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.channel?.close().catch(() => undefined);
  }
}

/**
 * Deletes the queues and exchanges of stale namespaces. Each namespace's consumers and
 * messages are counted once more right before: one that a run started consuming from, or
 * publishing to, since the listing is kept (with `force`, messages do not keep it).
 */
export async function deleteNamespaces(
  namespaces: readonly Namespace[],
  options: { amqpUrl?: string; connectTimeoutMs?: number; force?: boolean } = {},
): Promise<{ deleted: Namespace[]; skipped: Namespace[] }> {
  const amqpUrl = options.amqpUrl ?? getConfig().amqpUrl;
  const connection = new AmqpConnection({ url: amqpUrl, name: 'bus-cli', initialMaxRetries: 3, maxDelayMs: 1_000, connectTimeoutMs: options.connectTimeoutMs });
  try {
    await connection.start();
  } catch (err) {
    throw new Error(`cannot reach RabbitMQ at ${redact(amqpUrl)} (${errorMessage(err)})`, { cause: err });
  }
  const admin = new Admin(connection);
  const deleted: Namespace[] = [];
  const skipped: Namespace[] = [];
  try {
    for (const ns of namespaces) {
      let inUse = false;
      for (const q of ns.queues) {
        const found = await admin.do((ch) => ch.checkQueue(q.name)).catch(() => undefined); // gone already
        if (found && (found.consumerCount > 0 || (!options.force && waiting({ ...q, messages: found.messageCount }) > 0))) inUse = true;
      }
      if (inUse) {
        skipped.push(ns);
        continue;
      }
      for (const q of ns.queues) await admin.do((ch) => ch.deleteQueue(q.name));
      for (const e of ns.exchanges) await admin.do((ch) => ch.deleteExchange(e));
      deleted.push(ns);
    }
  } finally {
    await admin.close();
    await connection.close();
  }
  return { deleted, skipped };
}

function table(namespaces: readonly Namespace[], now: number): string {
  const rows = [
    ['namespace', 'kind', 'age', 'queues', 'exchanges', 'messages'],
    ...namespaces.map((ns) => [
      ns.key,
      ns.kind,
      formatAge(ns.createdAt === undefined ? undefined : now - ns.createdAt),
      String(ns.queues.length),
      String(ns.exchanges.length),
      String(ns.queues.reduce((n, q) => n + q.messages, 0)),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i >= 3 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function totals(namespaces: readonly Namespace[]): string {
  const queues = namespaces.reduce((n, ns) => n + ns.queues.length, 0);
  const exchanges = namespaces.reduce((n, ns) => n + ns.exchanges.length, 0);
  const messages = namespaces.reduce((n, ns) => n + ns.queues.reduce((m, q) => m + q.messages, 0), 0);
  return `${namespaces.length} namespace(s): ${queues} queue(s), ${exchanges} exchange(s), ${messages} message(s)`;
}

function parse(argv: string[]): { olderThanMs: number; delete: boolean; force: boolean; prefix?: string } {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      delete: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      'older-than': { type: 'string', default: '1h' },
      prefix: { type: 'string' },
    },
    strict: true,
    allowPositionals: true,
  });
  const [command, ...rest] = positionals;
  if (command !== 'stale') throw new UsageError(`unknown command "${command ?? ''}"\n${USAGE}`);
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"\n${USAGE}`);
  if (values.prefix === '') throw new UsageError(`--prefix must not be empty\n${USAGE}`);
  return { olderThanMs: parseDuration(values['older-than']), delete: values.delete, force: values.force, prefix: values.prefix };
}

if (require.main === module) {
  runCli('bus', async () => {
    const args = parse(process.argv.slice(2));
    const now = Date.now();
    const { stale, kept } = await findStale({ olderThanMs: args.olderThanMs, now, force: args.force, prefix: args.prefix });
    const inUse = `${kept.length} other generated namespace(s)${args.prefix === undefined ? '' : ` starting with ${args.prefix}`} kept: consumed from, ${args.force ? '' : 'holding messages (--force to include them), '}or younger than --older-than`;
    if (stale.length === 0) {
      console.log(`no stale namespace; ${inUse}`);
      return 0;
    }
    console.log(table(stale, now));
    if (!args.delete) {
      console.log(`stale: ${totals(stale)}; ${inUse}. Run with --delete to delete them.`);
      return 0;
    }
    const { deleted, skipped } = await deleteNamespaces(stale, { force: args.force });
    console.log(`deleted ${totals(deleted)}${skipped.length > 0 ? `; kept ${skipped.map((ns) => ns.key).join(', ')}: consumed from${args.force ? '' : ' or published to'} since the listing` : ''}`);
    return 0;
  });
}
