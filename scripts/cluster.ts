// npm run cluster -- up|down [--purge]|status: a 3-node RabbitMQ cluster on this machine, for
// running the fleet as it runs on a cluster (AMQP_URL lists every node) and for breaking it:
// the cluster test and `npm run chaos -- --cluster` SIGKILL its nodes.
//
// Each node is the installed RabbitMQ started directly (/usr/lib/rabbitmq/bin/rabbitmq-server:
// the /usr/sbin wrapper switches to the rabbitmq user and writes under /var), with a name,
// ports, data, logs, pid file, plugins, configuration and environment file of its own (the
// system's rabbitmq-env.conf names the system node), and one Erlang cookie shared through the
// HOME every node and every rabbitmqctl call of it gets. Nodes 2 and 3 then join node 1. The
// data stays under <DATA_DIR>/rabbitmq-cluster, so `up` after `down` brings the same cluster
// back, queues and messages included. The system broker (5672) is not touched; the nodes
// share its epmd.
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { getConfig, systemPath } from '../shared/config';
import { errorMessage } from '../shared/errors';
import { REQUIRED_PLUGINS } from './broker-plugins';
import { runCli, UsageError } from './cli';

const run = promisify(execFile);

/** The installed RabbitMQ's own scripts (not the /usr/sbin wrappers). */
const RABBITMQ_BIN = '/usr/lib/rabbitmq/bin';
const SERVER = join(RABBITMQ_BIN, 'rabbitmq-server');

export const CLUSTER_SIZE = 3;
/** Node i (1-based) listens for AMQP on FIRST_AMQP_PORT + i - 1, and so on. */
const FIRST_AMQP_PORT = 5701;
const FIRST_DIST_PORT = 25701;
const FIRST_MANAGEMENT_PORT = 15701;
/** The host part of the node names: the one the system node uses (rabbit@localhost), which epmd on 127.0.0.1 serves. */
const NODE_HOST = 'localhost';

/** How long a node may take to boot (three boot at once on a small machine). */
const NODE_START_MS = 180_000;
/** How long a graceful stop may take before the node is killed. */
const NODE_STOP_MS = 60_000;
/** One rabbitmqctl call. */
const CTL_TIMEOUT_MS = 60_000;

/** The plugins every node gets: what the fleet needs, and the management UI. */
const PLUGINS = [...new Set([...REQUIRED_PLUGINS, 'rabbitmq_management'])];

export class ClusterError extends Error {
  override name = 'ClusterError';
}

export interface ClusterNode {
  /** 1-based */
  index: number;
  /** Erlang node name, e.g. rabbit-c1@localhost */
  name: string;
  amqpPort: number;
  distPort: number;
  managementPort: number;
  /** Its data, logs and configuration. */
  dir: string;
  /** Its AMQP URL (guest may connect from this machine). */
  url: string;
}

export interface NodeStatus {
  node: ClusterNode;
  pid?: number;
  running: boolean;
  /** The cluster's members and running members as this node sees them (when it answers). */
  members?: string[];
  runningMembers?: string[];
}

export interface QueueInfo {
  name: string;
  type: string;
  leader: string;
  members: string[];
  online: string[];
  messages: number;
}

/** The local cluster under <dataDir>/rabbitmq-cluster. */
export class LocalCluster {
  readonly base: string;
  readonly nodes: readonly ClusterNode[];
  private readonly home: string;

  constructor(dataDir: string = getConfig().dataDir) {
    this.base = join(dataDir, 'rabbitmq-cluster');
    this.home = join(this.base, 'home');
    this.nodes = Array.from({ length: CLUSTER_SIZE }, (_, i) => {
      const index = i + 1;
      const amqpPort = FIRST_AMQP_PORT + i;
      return {
        index,
        name: `rabbit-c${index}@${NODE_HOST}`,
        amqpPort,
        distPort: FIRST_DIST_PORT + i,
        managementPort: FIRST_MANAGEMENT_PORT + i,
        dir: join(this.base, `rabbit-c${index}`),
        url: `amqp://guest:guest@127.0.0.1:${amqpPort}`,
      };
    });
  }

  /** AMQP_URL for the cluster: every node, the first one first. */
  get amqpUrl(): string {
    return this.amqpUrlFrom(1);
  }

  /** AMQP_URL listing every node, starting with node `first`: processes given it connect there first. */
  amqpUrlFrom(first: number): string {
    return [...this.nodes.slice(first - 1), ...this.nodes.slice(0, first - 1)].map((n) => n.url).join(',');
  }

  node(index: number): ClusterNode {
    const node = this.nodes[index - 1];
    if (!node) throw new ClusterError(`the cluster has nodes 1 to ${CLUSTER_SIZE}, not ${index}`);
    return node;
  }

  /** The node of an Erlang node name (rabbit-c2@localhost) or an AMQP port. */
  nodeNamed(nameOrPort: string | number): ClusterNode | undefined {
    return this.nodes.find((n) => n.name === nameOrPort || n.amqpPort === nameOrPort);
  }

  /** The environment of a node's server and of every rabbitmqctl call of it. */
  private env(node: ClusterNode): NodeJS.ProcessEnv {
    return {
      PATH: systemPath(),
      // The Erlang cookie is read from $HOME/.erlang.cookie, by the nodes and by the CLI.
      HOME: this.home,
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      RABBITMQ_NODENAME: node.name,
      RABBITMQ_NODE_PORT: String(node.amqpPort),
      RABBITMQ_DIST_PORT: String(node.distPort),
      RABBITMQ_MNESIA_BASE: join(node.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(node.dir, 'log'),
      RABBITMQ_PID_FILE: this.pidFile(node),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(node.dir, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: join(node.dir, 'rabbitmq.conf'),
      RABBITMQ_CONFIG_FILES: join(node.dir, 'conf.d', '*.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(node.dir, 'advanced.config'),
      // The system's rabbitmq-env.conf sets NODENAME=rabbit@localhost: each node reads its own.
      RABBITMQ_CONF_ENV_FILE: join(node.dir, 'rabbitmq-env.conf'),
    };
  }

  private pidFile(node: ClusterNode): string {
    return join(node.dir, 'rabbitmq.pid');
  }

  /** Writes a node's files; the cookie is made once and kept (running nodes hold it). */
  private prepare(node: ClusterNode): void {
    mkdirSync(this.home, { recursive: true });
    const cookie = join(this.home, '.erlang.cookie');
    // Erlang refuses a cookie file that others may read.
    if (!existsSync(cookie)) writeFileSync(cookie, randomBytes(24).toString('hex').toUpperCase(), { mode: 0o400 });
    for (const sub of ['mnesia', 'log', 'conf.d']) mkdirSync(join(node.dir, sub), { recursive: true });
    writeFileSync(join(node.dir, 'enabled_plugins'), `[${PLUGINS.join(',')}].\n`);
    writeFileSync(
      join(node.dir, 'rabbitmq.conf'),
      [
        `# ${node.name}, written by npm run cluster`,
        `listeners.tcp.local = 127.0.0.1:${node.amqpPort}`,
        'management.tcp.ip = 127.0.0.1',
        `management.tcp.port = ${node.managementPort}`,
        // A node that finds itself in a minority pauses instead of diverging; it resumes when it sees the majority again.
        'cluster_partition_handling = pause_minority',
        '',
      ].join('\n'),
    );
    // As the system's rabbitmq-env.conf, without its node name: epmd and distribution on the loopback.
    writeFileSync(join(node.dir, 'rabbitmq-env.conf'), ['ERL_EPMD_ADDRESS=127.0.0.1', 'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"', ''].join('\n'));
  }

  /** The OS pid of a node's Erlang VM, when it runs (its pid file names a live process of that node). */
  pidOf(node: ClusterNode): number | undefined {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile(node), 'utf8').trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
    } catch {
      return undefined;
    }
    // A pid file left by a killed node may name a pid the system gave to another process since.
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`RABBITMQ_NODENAME=${node.name}`)) return undefined;
    } catch {
      // no /proc to ask: the live pid will do
    }
    return pid;
  }

  /** rabbitmqctl (or another CLI tool of the installation) against a node; its standard output. */
  async ctl(node: ClusterNode, args: string[], options: { tool?: string; timeoutMs?: number } = {}): Promise<string> {
    try {
      const { stdout } = await run(join(RABBITMQ_BIN, options.tool ?? 'rabbitmqctl'), ['-n', node.name, ...args], {
        env: this.env(node),
        timeout: options.timeoutMs ?? CTL_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    } catch (err) {
      const said = `${(err as { stderr?: string }).stderr ?? ''} ${(err as { stdout?: string }).stdout ?? ''}`.replace(/\s+/g, ' ').trim();
      throw new ClusterError(`${options.tool ?? 'rabbitmqctl'} -n ${node.name} ${args.join(' ')}: ${said.slice(0, 500) || errorMessage(err)}`, { cause: err });
    }
  }

  private async answers(node: ClusterNode): Promise<boolean> {
    return this.ctl(node, ['-q', 'ping'], { timeoutMs: 15_000 }).then(
      () => true,
      () => false,
    );
  }

  /** Each node's state, and the cluster as each running node sees it. */
  async status(): Promise<NodeStatus[]> {
    return Promise.all(
      this.nodes.map(async (node): Promise<NodeStatus> => {
        const pid = this.pidOf(node);
        if (pid === undefined || !(await this.answers(node))) return { node, pid, running: false };
        type Seen = { disk_nodes?: string[]; running_nodes?: string[] };
        const seen = await this.ctl(node, ['-q', 'cluster_status', '--formatter', 'json']).then(
          (out): Seen => JSON.parse(out) as Seen,
          (): Seen => ({}),
        );
        return { node, pid, running: true, members: seen.disk_nodes, runningMembers: seen.running_nodes };
      }),
    );
  }

  /** Starts a node that is not running, in the background; resolves once it has booted. */
  async start(node: ClusterNode): Promise<void> {
    if (this.pidOf(node) !== undefined) {
      // Running, or still booting: a second VM of the same node would only fail; wait for this one.
      await this.ctl(node, ['-q', 'wait', this.pidFile(node), '--timeout', String(NODE_START_MS / 1000)], { timeoutMs: NODE_START_MS + CTL_TIMEOUT_MS });
      await this.ctl(node, ['-q', 'await_startup'], { timeoutMs: NODE_START_MS });
      return;
    }
    this.prepare(node);
    // A killed node leaves its pid file: `wait` would watch that dead pid instead of the new one.
    rmSync(this.pidFile(node), { force: true });
    const consoleLog = join(node.dir, 'log', 'console.log');
    const out = openSync(consoleLog, 'a');
    // Detached: the node outlives this process, as `rabbitmq-server -detached` would, with its output in a file.
    const child = spawn(SERVER, [], { env: this.env(node), detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    let exit: string | undefined;
    const exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        exit = signal ?? `code ${String(code)}`;
        resolve();
      }),
    );
    // One `wait` polls the pid file and then the node itself: cheaper than a CLI call per poll.
    const booted = this.ctl(node, ['-q', 'wait', this.pidFile(node), '--timeout', String(NODE_START_MS / 1000)], { timeoutMs: NODE_START_MS + CTL_TIMEOUT_MS });
    booted.catch(() => undefined); // the race below reports it, or the exit does
    try {
      await Promise.race([booted, exited]);
    } catch (err) {
      throw new ClusterError(`${node.name} did not start: ${errorMessage(err)}\n${this.tail(consoleLog)}`, { cause: err });
    }
    if (exit !== undefined) throw new ClusterError(`${node.name} exited (${exit}) as it started:\n${this.tail(consoleLog)}`);
    await this.ctl(node, ['-q', 'await_startup'], { timeoutMs: NODE_START_MS });
  }

  private tail(file: string, lines = 20): string {
    try {
      return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return `(no ${file})`;
    }
  }

  /**
   * Starts every node that is not running (all at once: a node that was not the last to stop
   * waits for the others to boot), then has nodes 2 and 3 join node 1 unless they are members.
   * Returns the nodes it started.
   */
  async up(say: (line: string) => void = () => undefined): Promise<ClusterNode[]> {
    const before = await this.status();
    const down = before.filter((s) => !s.running).map((s) => s.node);
    if (down.length > 0) say(`starting ${down.map((n) => n.name).join(', ')} (data in ${this.base})`);
    await Promise.all(down.map((node) => this.start(node)));
    const first = this.node(1);
    for (const node of this.nodes.slice(1)) {
      const { members = [] } = (await this.status())[node.index - 1]!;
      if (members.includes(first.name)) continue;
      say(`${node.name} joins ${first.name}`);
      await this.ctl(node, ['-q', 'stop_app']);
      await this.ctl(node, ['-q', 'reset']);
      await this.ctl(node, ['-q', 'join_cluster', first.name]);
      await this.ctl(node, ['-q', 'start_app']);
      await this.ctl(node, ['-q', 'await_startup']);
    }
    const after = await this.status();
    const problem = clusterProblem(after);
    if (problem) throw new ClusterError(problem);
    return down;
  }

  /** SIGKILLs a node's Erlang VM (as a crash would) and waits until it is gone; returns its pid. */
  async kill(node: ClusterNode): Promise<number> {
    const pid = this.pidOf(node);
    if (pid === undefined) throw new ClusterError(`${node.name} is not running`);
    process.kill(pid, 'SIGKILL');
    for (const deadline = Date.now() + NODE_STOP_MS; this.alive(pid); await sleep(50)) {
      if (Date.now() > deadline) throw new ClusterError(`${node.name} (pid ${pid}) did not die`);
    }
    return pid;
  }

  private alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops a node gracefully, killing it if it does not stop in time. */
  async stop(node: ClusterNode): Promise<void> {
    const pid = this.pidOf(node);
    if (pid === undefined) return;
    await this.ctl(node, ['-q', 'stop', this.pidFile(node)], { timeoutMs: NODE_STOP_MS }).catch(() => undefined);
    if (this.alive(pid)) await this.kill(node).catch(() => undefined);
  }

  async down(options: { purge?: boolean } = {}): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.stop(node)));
    if (options.purge) rmSync(this.base, { recursive: true, force: true });
  }

  /** Every queue as a running node sees it (`name` starting with the prefix, when given). */
  async queues(prefix = ''): Promise<QueueInfo[]> {
    const node = await this.anyRunning();
    const out = await this.ctl(node, ['-q', 'list_queues', 'name', 'type', 'leader', 'members', 'online', 'messages', '--formatter', 'json']);
    const rows = JSON.parse(out) as Array<Partial<QueueInfo> & { members?: string[] | string; online?: string[] | string }>;
    const list = (v: string[] | string | undefined): string[] => (Array.isArray(v) ? v : v ? [v] : []);
    return rows
      .filter((r) => typeof r.name === 'string' && r.name.startsWith(prefix))
      .map((r) => ({ name: r.name!, type: String(r.type ?? ''), leader: String(r.leader ?? ''), members: list(r.members), online: list(r.online), messages: Number(r.messages ?? 0) }));
  }

  /** How many client connections each running node has, by node index. */
  async connectionsByNode(): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    const seen = new Set<string>();
    for (const { node, running } of await this.status()) {
      if (!running) continue;
      const rows = JSON.parse(await this.ctl(node, ['-q', 'list_connections', 'name', 'port', '--formatter', 'json'])) as Array<{ name?: string; port?: number }>;
      for (const r of rows) {
        const owner = r.port === undefined ? undefined : this.nodeNamed(Number(r.port));
        if (!owner || seen.has(String(r.name))) continue;
        seen.add(String(r.name));
        counts.set(owner.index, (counts.get(owner.index) ?? 0) + 1);
      }
    }
    return counts;
  }

  private async anyRunning(): Promise<ClusterNode> {
    for (const node of this.nodes) if (this.pidOf(node) !== undefined && (await this.answers(node))) return node;
    throw new ClusterError('no node of the cluster is running (npm run cluster -- up)');
  }
}

/** What keeps the nodes from being one cluster of every node, running; undefined when they are. */
export function clusterProblem(status: readonly NodeStatus[]): string | undefined {
  const down = status.filter((s) => !s.running).map((s) => s.node.name);
  if (down.length > 0) return `not running: ${down.join(', ')}`;
  const names = status.map((s) => s.node.name).sort();
  for (const s of status) {
    const running = [...(s.runningMembers ?? [])].sort();
    if (JSON.stringify(running) !== JSON.stringify(names)) return `${s.node.name} sees the running nodes ${running.join(', ') || 'none'}, not ${names.join(', ')}`;
  }
  return undefined;
}

const USAGE = 'usage: npm run cluster -- up | down [--purge] | status';

if (require.main === module) {
  runCli('cluster', async () => {
    const { values, positionals } = parseArgs({ args: process.argv.slice(2), options: { purge: { type: 'boolean', default: false } }, strict: true, allowPositionals: true });
    const [command, ...extra] = positionals;
    if (!command || extra.length > 0 || !['up', 'down', 'status'].includes(command)) throw new UsageError(USAGE);
    if (values.purge && command !== 'down') throw new UsageError(`--purge goes with down\n${USAGE}`);
    if (!existsSync(SERVER)) throw new ClusterError(`RabbitMQ is not installed here (no ${SERVER})`);
    const cluster = new LocalCluster();
    const say = (line: string): void => console.log(`cluster: ${line}`);
    if (command === 'up') {
      const started = await cluster.up(say);
      say(started.length === 0 ? 'the cluster is already up' : `up: ${cluster.nodes.map((n) => n.name).join(', ')}`);
      for (const n of cluster.nodes) say(`  ${n.name}  amqp 127.0.0.1:${n.amqpPort}  management http://127.0.0.1:${n.managementPort} (guest/guest)`);
      console.log(`AMQP_URL=${cluster.amqpUrl}`);
      return 0;
    }
    if (command === 'down') {
      await cluster.down({ purge: values.purge });
      say(values.purge ? `stopped every node and deleted ${cluster.base}` : `stopped every node; its data stays in ${cluster.base} (--purge deletes it)`);
      return 0;
    }
    const status = await cluster.status();
    for (const s of status) {
      say(`  ${s.node.name}  ${s.running ? `running (pid ${s.pid})` : 'not running'}  amqp 127.0.0.1:${s.node.amqpPort}  management http://127.0.0.1:${s.node.managementPort}`);
    }
    const seen = status.find((s) => s.running);
    if (seen) say(`members: ${(seen.members ?? []).join(', ')}; running: ${(seen.runningMembers ?? []).join(', ')}`);
    const problem = clusterProblem(status);
    say(problem ? `not a whole cluster: ${problem}` : `${CLUSTER_SIZE} nodes, one cluster`);
    console.log(`AMQP_URL=${cluster.amqpUrl}`);
    return problem ? 1 : 0;
  });
}
