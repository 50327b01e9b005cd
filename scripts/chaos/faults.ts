// The faults a chaos run injects, on this machine's real services and the fleet's processes.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ConsumeMessage } from 'amqplib';
import type { Publisher } from '../../shared/messaging/publisher';
import type { Random } from '../random';
import { FLEET } from '../fleet';

const run = promisify(execFile);

export const FAULT_KINDS = [
  ...FLEET.map(([name]) => `kill ${name}`),
  'broker closes all connections',
  'broker restart',
  'redis restart',
  'postgres restart',
  'duplicate deliveries',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Runs a command, giving up after timeoutMs; throws with its output on failure. */
async function sh(file: string, args: string[], timeoutMs = 120_000): Promise<void> {
  await run(file, args, { timeout: timeoutMs });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(250)) {
    if (await check().catch(() => false)) return;
  }
  throw new Error(`${what} did not come back within ${timeoutMs / 1000} s`);
}

const ok = (file: string, args: string[]) => async (): Promise<boolean> => {
  await run(file, args, { timeout: 5_000 });
  return true;
};

/** Starts the local RabbitMQ node and waits until it serves (the node registers with epmd first). */
async function startBroker(): Promise<void> {
  await sh('rabbitmq-server', ['-detached']);
  await until('the RabbitMQ node', ok('rabbitmqctl', ['-q', 'ping']));
  await sh('rabbitmqctl', ['-q', 'await_startup', '--timeout', '120'], 130_000);
}

export async function restartBroker(): Promise<void> {
  await sh('rabbitmqctl', ['-q', 'shutdown']);
  await startBroker();
}

export async function restartRedis(port: number): Promise<void> {
  await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'shutdown', 'nosave']).catch(() => undefined); // exits non-zero as the server goes
  await sleep(1_000);
  await sh('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no']);
  await until('Redis', ok('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping']));
}

export async function restartPostgres(): Promise<void> {
  const [version] = readdirSync('/etc/postgresql');
  if (!version) throw new Error('no PostgreSQL cluster under /etc/postgresql');
  await sh('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart']);
  await until('PostgreSQL', ok('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']));
}

/** Services a chaos run must see running at its end, restarted if a fault left one down. */
export async function ensureServicesUp(redisPort: number): Promise<void> {
  if (!(await ok('rabbitmqctl', ['-q', 'ping'])().catch(() => false))) await startBroker();
  if (!(await ok('redis-cli', ['-h', '127.0.0.1', '-p', String(redisPort), 'ping'])().catch(() => false))) {
    await sh('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no']);
  }
  if (!(await ok('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432'])().catch(() => false))) {
    const [version] = readdirSync('/etc/postgresql');
    await sh('pg_ctlcluster', ['--skip-systemctl-redirect', version ?? '15', 'main', 'start']);
  }
}

/** Messages seen on the bus, kept to be delivered again. */
export class Recorder {
  private readonly seen: ConsumeMessage[] = [];

  constructor(private readonly capacity = 5_000) {}

  record(msg: ConsumeMessage): void {
    if (this.seen.length >= this.capacity) this.seen.splice(0, this.seen.length - this.capacity + 1);
    this.seen.push(msg);
  }

  /** Publishes a sample of already handled events and commands again, ids and all. */
  async redeliver(publisher: Publisher, rnd: Random, count: number): Promise<number> {
    const sample = Array.from({ length: Math.min(count, this.seen.length) }, () => this.seen[rnd.int(0, this.seen.length - 1)]!);
    await Promise.all(sample.map((m) => publisher.publish({ exchange: m.fields.exchange, routingKey: m.fields.routingKey, content: m.content, options: { ...m.properties, headers: m.properties.headers ?? {} } })));
    return sample.length;
  }
}

/** The fault schedule: every kind at least `each` times, in a seeded order, evenly spread. */
export function schedule(rnd: Random, seconds: number, each: number): Array<{ atMs: number; kind: FaultKind }> {
  const kinds: FaultKind[] = FAULT_KINDS.flatMap((k) => Array.from({ length: each }, () => k));
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rnd.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  // Faults land between 5% and 85% of the run, so the last orders see a fault too and the
  // system has time to recover before the end.
  const span = seconds * 1_000 * 0.8;
  return kinds.map((kind, i) => ({ atMs: Math.round(seconds * 1_000 * 0.05 + (span * (i + rnd.next())) / kinds.length), kind }));
}
