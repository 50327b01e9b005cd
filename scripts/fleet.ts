// The processes of the fleet, one definition each: its name, entry file, npm script, what it
// does on the broker (its topology, whether it consumes, the exchanges it publishes to) and how
// many replicas a deployment runs. `npm start` supervises them, docker-compose.yml runs them
// (one service each, checked against this list by test/unit/fleet.test.ts), and the broker's
// users and permissions derive from them (scripts/rabbitmq-definitions.ts). Also `npm start`
// run as a child process by the chaos run, the benchmarks and the tests. Where each copy serves
// its metrics (METRICS_PORT) follows from its place here (fleetCopies).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel, ChannelModel } from 'amqplib';
import { childEnvironment } from '../shared/config';
import { errorMessage } from '../shared/errors';
import { queueNames, type Topology, coreTopology } from '../shared/messaging/topology';
import { inventoryTopology } from '../workers/inventory/topology';
import { notificationsTopology } from '../workers/notifications/topology';
import { projectionTopology } from '../workers/order-projection/topology';
import { paymentsTopology } from '../workers/payments/topology';
import { sagaBridgeTopology } from '../workers/saga-bridge/topology';
import { shippingTopology } from '../workers/shipping/topology';
import { UsageError } from './cli';

const ROOT = resolve(__dirname, '..');

/** What a process does on the broker. */
export interface BrokerRole {
  /** The exchanges and queues it declares, inside a bus namespace. */
  topology(namespace: string): Topology;
  /** It consumes its topology's queues (and so also publishes retries via the default exchange). */
  consumes: boolean;
  /** The exchanges it publishes to, without the namespace. */
  publishes: readonly string[];
}

/** One process of the fleet. */
export interface ProcessDefinition {
  /** Its name: the log prefix under `npm start`, its broker user, its compose service. */
  name: string;
  /** Its entry file, from the project's root. */
  file: string;
  /** The package.json script that runs it (`npm run <script>` is `ts-node <file>`), and that compose runs. */
  script: string;
  /** What it does on the broker; none for a process that never connects to it. */
  broker?: BrokerRole;
  /** How many copies a deployment runs (compose's `deploy.replicas`); `npm start` runs one unless `--replicas` says otherwise. */
  replicas: number;
  /**
   * The variable of the port it listens on: one copy per machine, so `npm start` cannot run
   * replicas of it. Its metrics are on its METRICS_PORT, as every process's.
   */
  listensOn?: 'HTTP_PORT';
}

const publisherOnly = (publishes: string[]): BrokerRole => ({ topology: coreTopology, consumes: false, publishes });
const consumer = (topology: (namespace: string) => Topology, publishes: string[]): BrokerRole => ({ topology, consumes: true, publishes });

export const FLEET: readonly ProcessDefinition[] = [
  { name: 'payments', file: 'workers/payments/index.ts', script: 'worker:payments', broker: consumer(paymentsTopology, ['payments']), replicas: 1 },
  { name: 'inventory', file: 'workers/inventory/index.ts', script: 'worker:inventory', broker: consumer(inventoryTopology, ['inventory']), replicas: 1 },
  { name: 'shipping', file: 'workers/shipping/index.ts', script: 'worker:shipping', broker: consumer(shippingTopology, ['shipping']), replicas: 1 },
  { name: 'notifications', file: 'workers/notifications/index.ts', script: 'worker:notifications', broker: consumer(notificationsTopology, []), replicas: 1 },
  // Two, so that its partitions have a replica to move to (single active consumer per partition).
  { name: 'order-projection', file: 'workers/order-projection/index.ts', script: 'worker:order-projection', broker: consumer(projectionTopology, []), replicas: 2 },
  // Follows the event store in PostgreSQL, not the bus: no broker role.
  { name: 'customer-orders', file: 'workers/customer-orders/index.ts', script: 'worker:customer-orders', replicas: 1 },
  { name: 'temporal-worker', file: 'workers/temporal/worker.ts', script: 'worker:temporal', broker: publisherOnly(['commands']), replicas: 1 },
  { name: 'saga-bridge', file: 'workers/saga-bridge/index.ts', script: 'worker:saga-bridge', broker: consumer(sagaBridgeTopology, []), replicas: 1 },
  { name: 'outbox-relay', file: 'services/order-api/relay.ts', script: 'relay', broker: publisherOnly(['orders']), replicas: 1 },
  // It only appends to the event store; the relay publishes.
  { name: 'order-api', file: 'services/order-api/index.ts', script: 'api', replicas: 1, listensOn: 'HTTP_PORT' },
];

/** The most copies of one process `npm start` runs: they share this machine's cores. */
export const MAX_REPLICAS = 16;

/** The process of that name; undefined when the fleet has none. */
export const processNamed = (name: string): ProcessDefinition | undefined => FLEET.find((p) => p.name === name);

/** The names `npm start` gives the copies of a process: its own name for one, `<name>#1`… for several. */
export function replicaNames(name: string, count: number): string[] {
  return count === 1 ? [name] : Array.from({ length: count }, (_, i) => `${name}#${i + 1}`);
}

/** One copy of a process of the fleet that `npm start` runs. */
export interface FleetCopy {
  /** Its name under `npm start` (replicaNames). */
  name: string;
  process: ProcessDefinition;
  /** Which of several copies it is (FLEET_REPLICA); undefined when it runs alone. */
  replica?: { index: number; count: number };
  /** Its METRICS_PORT (0: a free one). */
  metricsPort: number;
}

/**
 * The copies `npm start` runs, in FLEET order (copies of a process together), with their
 * METRICS_PORT: the first (or only) copy of the process at index i of FLEET gets base + i, so a
 * process keeps its port whatever runs beside it; the further copies (#2, #3, …) get the ports
 * after the fleet's, base + FLEET.length on, in FLEET order. Base 0 gives every copy 0: a free port.
 */
export function fleetCopies(replicas: ReadonlyMap<string, number>, metricsPortBase: number): FleetCopy[] {
  let extra = 0;
  const portOf = (slot: number): number => {
    const port = metricsPortBase === 0 ? 0 : metricsPortBase + slot;
    if (port > 65_535) throw new UsageError(`METRICS_PORT_BASE ${metricsPortBase} leaves no port for every copy (up to ${port}); take a lower one, or 0 for free ports`);
    return port;
  };
  return FLEET.flatMap((process, i) => {
    const count = replicas.get(process.name) ?? 1;
    return replicaNames(process.name, count).map((name, k) => ({
      name,
      process,
      ...(count > 1 ? { replica: { index: k + 1, count } } : {}),
      metricsPort: portOf(k === 0 ? i : FLEET.length + extra++),
    }));
  });
}

/** What `npm start` prints of where each copy's metrics are, one line each. */
export function metricsLines(copies: readonly FleetCopy[]): string[] {
  return copies.map((copy) => `[start] ${copy.name} metrics: http://localhost:${copy.metricsPort}/metrics`);
}

/**
 * `--replicas payments=3,inventory=2`: how many copies of each named process to run. Names
 * must be the fleet's, each once, with a whole number from 1 to MAX_REPLICAS; a process that
 * listens on a port runs once. Throws a UsageError that says what is wrong.
 */
export function parseReplicas(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  const known = FLEET.map((p) => p.name).join(', ');
  for (const entry of text.split(',').map((e) => e.trim())) {
    const match = /^([a-z][a-z-]*)=(\d+)$/.exec(entry);
    if (!match) throw new UsageError(`--replicas takes name=count pairs separated by commas, e.g. payments=3,inventory=2 (got "${entry}")`);
    const name = match[1]!;
    const countText = match[2]!;
    const process = processNamed(name);
    if (!process) throw new UsageError(`--replicas: the fleet has no process "${name}" (it has ${known})`);
    if (counts.has(name)) throw new UsageError(`--replicas: "${name}" is given twice`);
    const count = Number(countText);
    if (count < 1 || count > MAX_REPLICAS) throw new UsageError(`--replicas: the count of "${name}" must be a whole number from 1 to ${MAX_REPLICAS} (got ${countText})`);
    if (count > 1 && process.listensOn) throw new UsageError(`--replicas: ${name} listens on ${process.listensOn}, one port per machine; run more of it behind a load balancer`);
    counts.set(name, count);
  }
  return counts;
}

/** `npm start` as a child process, with the pid of each process it runs. */
export class StartedFleet {
  readonly lines: string[] = [];
  readonly pids = new Map<string, number>();
  /** `[start]`'s line for each exit of a process (exitLine: with its cause unless a signal ended it). */
  readonly exits: string[] = [];
  private readonly child;
  /** A folder of its own for the Temporal state, when the caller named no file: removed by stop(). */
  private readonly ownDataDir?: string;

  /**
   * @param env changes to this process's environment. Without TEMPORAL_DB_FILE the fleet's
   *   dev server keeps its state in a temporary file of its own: two dev servers must never
   *   share one (the default one is a running `npm start`'s). Without METRICS_PORT_BASE its
   *   processes serve their metrics on free ports (the default ones may be a running `npm start`'s).
   * @param logFile where every line the fleet prints is also written
   * @param args arguments of `npm start`, e.g. `--replicas payments=2`
   */
  constructor(env: Record<string, string>, logFile?: string, args: readonly string[] = []) {
    const log = logFile ? createWriteStream(logFile) : undefined;
    this.ownDataDir = env.TEMPORAL_DB_FILE ? undefined : mkdtempSync(join(tmpdir(), 'fleet-temporal-'));
    const temporalState: Record<string, string> = this.ownDataDir ? { TEMPORAL_DB_FILE: join(this.ownDataDir, 'temporal.sqlite') } : {};
    this.child = spawn(process.execPath, ['-r', 'ts-node/register', resolve(ROOT, 'scripts/start.ts'), ...args], { cwd: ROOT, env: childEnvironment({ METRICS_PORT_BASE: '0', ...env, ...temporalState }), stdio: ['ignore', 'pipe', 'pipe'] });
    // A partial line of its own for each stream: a line split across chunks is joined whole.
    const partial = { stdout: '', stderr: '' };
    const onData = (stream: keyof typeof partial) => (chunk: Buffer): void => {
      const lines = (partial[stream] + chunk.toString()).split('\n');
      partial[stream] = lines.pop() ?? '';
      for (const line of lines) {
        this.lines.push(line);
        log?.write(`${line}\n`);
        const running = /^\[start\] (\S+) running \(pid (\d+)\)/.exec(line);
        if (running) this.pids.set(running[1]!, Number(running[2]));
        if (/^\[start\] \S+ (exited|failed \d+ times)/.test(line)) this.exits.push(line);
      }
      if (this.lines.length > 20_000) this.lines.splice(0, 10_000);
    };
    this.child.stdout.on('data', onData('stdout'));
    this.child.stderr.on('data', onData('stderr'));
  }

  async waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
      if (this.lines.some((l) => pattern.test(l))) return;
      if (this.child.exitCode !== null) break;
    }
    throw new Error(`the fleet did not print ${String(pattern)}; last lines:\n${this.lines.slice(-20).join('\n')}`);
  }

  /** The pid of a process of the fleet, by its name under `npm start`; a process run as several replicas answers for its first. */
  pidOf(name: string): number | undefined {
    return this.pids.get(name) ?? this.pids.get(`${name}#1`);
  }

  /**
   * SIGKILLs a process of the fleet (the dev server is `temporal`; one replica is `payments#2`,
   * and `payments` the first of several); one being restarted is killed once it runs again.
   * Returns the pid it killed.
   */
  async kill(name: string): Promise<number> {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(200)) {
      const pid = this.pidOf(name);
      try {
        if (pid) {
          process.kill(pid, 'SIGKILL');
          return pid;
        }
      } catch {
        // already dead: wait for its restart
      }
    }
    throw new Error(`${name} is not running`);
  }

  /** SIGKILLs a process of the fleet and waits until `npm start` runs it again. */
  async killAndAwaitRestart(name: string, timeoutMs = 60_000): Promise<void> {
    const killed = await this.kill(name);
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
      const pid = this.pidOf(name);
      if (pid !== undefined && pid !== killed) return;
    }
    throw new Error(`${name} was not restarted within ${timeoutMs / 1000} s`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((done) => this.child.once('exit', done));
      this.child.kill('SIGINT');
      await Promise.race([exited, sleep(60_000)]);
      this.child.kill('SIGKILL');
    }
    if (this.ownDataDir) rmSync(this.ownDataDir, { recursive: true, force: true });
  }
}

/**
 * Deletes every queue and exchange of a bus namespace. A delete that fails closes its
 * channel, so the next one gets a fresh channel; what could not be deleted is returned, for
 * the caller to say (a namespace left behind keeps its quorum queues' files open).
 */
export async function deleteNamespace(model: ChannelModel, namespace: string): Promise<string[]> {
  const failed: string[] = [];
  let channel: Channel | undefined;
  const attempt = async (name: string, op: (c: Channel) => Promise<unknown>): Promise<void> => {
    try {
      if (!channel) {
        channel = await model.createChannel();
        channel.on('error', () => undefined); // the failing operation rejects with it
      }
      await op(channel);
    } catch (err) {
      channel = undefined;
      failed.push(`${name} (${errorMessage(err)})`);
    }
  };
  for (const process of FLEET) {
    const topology = process.broker?.topology(namespace);
    if (!topology) continue;
    for (const name of queueNames(topology)) await attempt(name, (c) => c.deleteQueue(name));
    for (const e of topology.exchanges) await attempt(e.name, (c) => c.deleteExchange(e.name));
  }
  await channel?.close().catch(() => undefined);
  return failed;
}

/**
 * A database beside the configured one (`<name>_<suffix>`), for runs that start a fleet of
 * their own: its outbox relay must not publish, into another bus namespace, the rows of a
 * fleet that shares the configured database. The project creates it on migration.
 */
export function databaseBeside(databaseUrl: string, suffix: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `${url.pathname.replace(/\/$/, '') || '/fulfillment'}_${suffix}`;
  return url.toString();
}
