// The faults a chaos run injects, on this machine's real services and the fleet's processes.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ConsumeMessage } from 'amqplib';
import type { Publisher } from '../../shared/messaging/publisher';
import type { Random } from '../random';
import { FLEET } from '../fleet';

const run = promisify(execFile);

export const FAULT_KINDS = [
  ...FLEET.map(({ name }) => `kill ${name}`),
  // SIGKILL of the fleet's Temporal dev server; `npm start` restarts it on the same file.
  'temporal server SIGKILL',
  'broker closes all connections',
  // The fleet reaches the broker through a listener that stops answering for a while, as a
  // broker out of file descriptors does: connections hang instead of closing.
  'broker stops answering',
  'broker restart',
  'redis restart',
  'postgres restart',
  'duplicate deliveries',
  // Both read models rebuilt from the event store and swapped in while orders flow.
  'projection rebuild',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * On a RabbitMQ cluster (`npm run chaos -- --cluster`) the broker faults are node kills: the
 * leader of the busiest quorum queue, and the node the fleet is connected to (each node
 * restarted before the next fault).
 */
export const CLUSTER_FAULT_KINDS: readonly FaultKind[] = [...FAULT_KINDS.filter((k) => !k.startsWith('broker ')), 'node SIGKILL: quorum leader', 'node SIGKILL: connected node'];

const SERVICES = resolve(__dirname, '../services.sh');

/** Runs a command, giving up after timeoutMs; fails with its output. */
async function sh(file: string, args: string[], timeoutMs = 180_000): Promise<void> {
  await run(file, args, { timeout: timeoutMs });
}

/** Starts whichever of the named services (default all three) is down, as `npm run setup` does. */
export async function ensureServicesUp(...services: Array<'rabbitmq' | 'redis' | 'postgres'>): Promise<void> {
  await sh('bash', [SERVICES, ...services]);
}

/** How long the broker stays silent in the fault "broker stops answering", in ms: past two missed heartbeats. */
export const BROKER_SILENCE_MS = 25_000;

export async function restartBroker(): Promise<void> {
  await sh('rabbitmqctl', ['-q', 'shutdown']);
  await ensureServicesUp('rabbitmq');
}

export async function restartRedis(): Promise<void> {
  await run('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'shutdown', 'nosave']).catch(() => undefined); // exits non-zero as the server goes
  await sleep(1_000);
  await ensureServicesUp('redis');
}

export async function restartPostgres(): Promise<void> {
  const [version] = readdirSync('/etc/postgresql');
  if (!version) throw new Error('no PostgreSQL cluster under /etc/postgresql');
  await sh('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart']);
  await ensureServicesUp('postgres');
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
export function schedule(rnd: Random, seconds: number, each: number, of: readonly FaultKind[] = FAULT_KINDS): Array<{ atMs: number; kind: FaultKind }> {
  const kinds: FaultKind[] = of.flatMap((k) => Array.from({ length: each }, () => k));
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rnd.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  // Faults land between 5% and 85% of the run, so the last orders see a fault too and the
  // system has time to recover before the end.
  const span = seconds * 1_000 * 0.8;
  return kinds.map((kind, i) => ({ atMs: Math.round(seconds * 1_000 * 0.05 + (span * (i + rnd.next())) / kinds.length), kind }));
}
