// Control of the real services for failure tests: the broker's connections, a private
// Redis server that a test may stop and start without touching the shared one, and a
// listener that accepts connections and never answers, standing in for any of them.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { eventually } from './wait';

export { BlackHole } from '../../scripts/black-hole';

const run = promisify(execFile);

/** What `rabbitmqctl close_all_connections` does to every client of the broker. */
export async function closeAllBrokerConnections(reason = 'test: broker closes all connections'): Promise<void> {
  await run('rabbitmqctl', ['close_all_connections', reason], { timeout: 30_000 });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A redis-server of the test's own, on a free port, keeping nothing on disk. */
export class PrivateRedis {
  private process?: ChildProcess;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    this.process = child;
    await eventually(
      async () => {
        const { stdout } = await run('redis-cli', ['-p', String(this.port), 'ping']);
        return stdout.trim() === 'PONG';
      },
      { what: `redis-server on port ${this.port}` },
    );
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** The RabbitMQ management HTTP API of the local broker, as its administrator (guest). */
export async function brokerApi(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:15672/api${path}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  const text = await res.text();
  return text ? (JSON.parse(text) as unknown) : undefined;
}

/** The port of a service URL, with the scheme's default when it names none. */
export function portOf(serverUrl: string, defaultPort: number): number {
  const port = new URL(serverUrl).port;
  return port ? Number(port) : defaultPort;
}
