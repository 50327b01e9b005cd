// The processes of the fleet, by name and entry file: what `npm start` supervises and
// docker-compose.yml runs (one service each); and `npm start` run as a child process by
// the chaos run and the benchmarks.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel } from 'amqplib';
import { childEnvironment } from '../shared/config';
import { queueNames } from '../shared/messaging/topology';
import { fleetAccess } from './rabbitmq-definitions';

const ROOT = resolve(__dirname, '..');

export const FLEET: ReadonlyArray<readonly [name: string, file: string]> = [
  ['payments', 'workers/payments/index.ts'],
  ['inventory', 'workers/inventory/index.ts'],
  ['shipping', 'workers/shipping/index.ts'],
  ['notifications', 'workers/notifications/index.ts'],
  ['order-projection', 'workers/order-projection/index.ts'],
  ['temporal-worker', 'workers/temporal/worker.ts'],
  ['saga-bridge', 'workers/temporal/bridge-process.ts'],
  ['outbox-relay', 'services/order-api/relay.ts'],
  ['order-api', 'services/order-api/index.ts'],
];

/** `npm start` as a child process, with the pid of each process it runs. */
export class StartedFleet {
  readonly lines: string[] = [];
  readonly pids = new Map<string, number>();
  readonly exits: string[] = [];
  private readonly child;

  /** @param logFile where every line the fleet prints is also written */
  constructor(env: Record<string, string>, logFile?: string) {
    const log = logFile ? createWriteStream(logFile) : undefined;
    this.child = spawn(process.execPath, ['-r', 'ts-node/register', resolve(ROOT, 'scripts/start.ts')], { cwd: ROOT, env: childEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    const onData = (chunk: Buffer): void => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        this.lines.push(line);
        log?.write(`${line}\n`);
        const running = /^\[start\] (\S+) running \(pid (\d+)\)/.exec(line);
        if (running) this.pids.set(running[1]!, Number(running[2]));
        if (/^\[start\] \S+ exited/.test(line)) this.exits.push(line);
      }
      if (this.lines.length > 20_000) this.lines.splice(0, 10_000);
    };
    this.child.stdout.on('data', onData);
    this.child.stderr.on('data', onData);
  }

  async waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
      if (this.lines.some((l) => pattern.test(l))) return;
      if (this.child.exitCode !== null) break;
    }
    throw new Error(`the fleet did not print ${String(pattern)}; last lines:\n${this.lines.slice(-20).join('\n')}`);
  }

  /** SIGKILLs a process of the fleet; one being restarted is killed once it runs again. */
  async kill(name: string): Promise<void> {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(200)) {
      const pid = this.pids.get(name);
      try {
        if (pid) return void process.kill(pid, 'SIGKILL');
      } catch {
        // already dead: wait for its restart
      }
    }
    throw new Error(`${name} is not running`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((done) => this.child.once('exit', done));
    this.child.kill('SIGINT');
    await Promise.race([exited, sleep(60_000)]);
    this.child.kill('SIGKILL');
  }
}

/** Deletes every queue and exchange of a bus namespace. */
export async function deleteNamespace(channel: Channel, namespace: string): Promise<void> {
  for (const access of fleetAccess(namespace)) {
    for (const q of access.topology.queues) for (const name of queueNames({ exchanges: [], queues: [q] })) await channel.deleteQueue(name).catch(() => undefined);
    for (const e of access.topology.exchanges) await channel.deleteExchange(e.name).catch(() => undefined);
  }
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
