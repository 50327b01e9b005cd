// The metrics and readiness every process serves on METRICS_PORT (shared/runtime/metrics-server.ts).
// A real payments worker in this process, on a Redis of the test's own: a handled command, a
// duplicate, a retried one and a poison message counted by queue and outcome, the handler and
// publish histograms, the queue and DLQ depths, and /readyz following its Redis. Then the server
// as runProcess runs it, in a process of its own: its URL logged, and a port in use refused.
import { createServer, type Server, connect } from 'node:net';
import { expect } from 'chai';
import { EXIT_INCURABLE } from '../../shared/errors';
import type { Envelope } from '../../shared/events';
import { inNamespace } from '../../shared/messaging/topology';
import { createLogger } from '../../shared/observability/logger';
import { notReadyBecause, serveProcess, type ProcessServer } from '../../shared/runtime/metrics-server';
import type { RunningWorker } from '../../shared/runtime/worker';
import { paymentsWorker } from '../../workers/payments';
import { orderId, TestFleet } from '../helpers/fleet';
import { runTs, type Child } from '../helpers/processes';
import { PrivateRedis } from '../helpers/services';
import { eventually } from '../helpers/wait';

/** The value of the sample of `name` whose labels include `labels`; undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const own = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => own[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('the metrics and readiness of a process', function () {
  this.timeout(120_000);
  let fleet: TestFleet;
  let redis: PrivateRedis;
  let worker: RunningWorker;
  let server: ProcessServer;
  let queue: string;
  const base = (): string => `http://127.0.0.1:${server.port}`;
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base()}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain/);
    return res.text();
  };
  const readiness = async (): Promise<{ status: number; body: { status: string; down?: string[] } }> => {
    const res = await fetch(`${base()}/readyz`);
    return { status: res.status, body: (await res.json()) as { status: string; down?: string[] } };
  };
  const consumed = async (outcome: string): Promise<number> => sample(await scrape(), 'messages_consumed_total', { queue, outcome }) ?? 0;
  // Each scrape asks the broker for the queues' depths: a poll every 100 ms is plenty.
  const until = (outcome: string, n: number): Promise<true> => eventually(async () => (await consumed(outcome)) === n, { timeoutMs: 30_000, intervalMs: 100, what: `${n} ${outcome} on ${queue}` });

  before(async () => {
    fleet = await TestFleet.create();
    redis = await PrivateRedis.start();
    worker = await fleet.start(paymentsWorker, { redisUrl: redis.url });
    queue = inNamespace(fleet.namespace, 'payments.commands');
    // What runProcess does for every process (METRICS_PORT=0: a free port), beside a worker started in this process.
    server = await serveProcess({ port: 0, logger: createLogger('payments', 'error'), notReady: () => notReadyBecause('running', worker) });
  });
  after(async () => {
    await server?.close();
    await fleet?.cleanup();
    await redis?.stop();
  });

  it('counts each delivery by queue and outcome, times its handler, and counts and times what it publishes', async () => {
    const hitsBefore = sample(await scrape(), 'dedup_hits_total', { consumer: 'payments', state: 'done' }) ?? 0;
    const capture = (token: string): Promise<Envelope> => fleet.send('payments.capture', { orderId: orderId('metrics'), amount: 5, currency: 'EUR', paymentToken: token });

    const ok = await capture('tok_ok');
    expect((await fleet.resultOf(ok)).eventType).to.equal('payment.captured');
    await until('handled', 1); // its done marker is stored: a copy now is a duplicate, not one in progress
    await fleet.publisher.publishEnvelope(ok);
    await until('duplicate', 1);

    // Two transient failures (retried after 250 ms and 1 s), then captured.
    const flaky = await capture('tok_flaky');
    expect((await fleet.resultOf(flaky, 30_000)).eventType).to.equal('payment.captured');
    await until('handled', 2);

    await fleet.publisher.publish({
      exchange: inNamespace(fleet.namespace, 'commands'),
      routingKey: 'payments.capture',
      content: Buffer.from('{"this is": not JSON'),
      options: { messageId: `poison-${orderId()}`, contentType: 'application/json' },
    });
    await until('dead_lettered', 1);

    const text = await scrape();
    expect(sample(text, 'messages_consumed_total', { queue, outcome: 'retried' })).to.equal(2);
    expect(sample(text, 'messages_consumed_total', { queue, outcome: 'waiting_for_dependency' })).to.equal(undefined);
    // Every run of the handler: the captured one, and the flaky one's three.
    expect(sample(text, 'message_handler_duration_seconds_count', { queue, type: 'payments.capture' })).to.equal(4);
    expect(sample(text, 'message_handler_duration_seconds_bucket', { queue, type: 'payments.capture', le: '+Inf' })).to.equal(4);
    // Its results: the two captures and the duplicate's re-emitted one; the retries and the dead letter through the default exchange.
    const payments = inNamespace(fleet.namespace, 'payments');
    expect(sample(text, 'messages_published_total', { exchange: payments, outcome: 'confirmed' })).to.equal(3);
    expect(sample(text, 'publish_confirm_seconds_count', { exchange: payments })).to.equal(3);
    expect(sample(text, 'messages_published_total', { exchange: '(default)', outcome: 'confirmed' })).to.be.at.least(3);
    expect((sample(text, 'dedup_hits_total', { consumer: 'payments', state: 'done' }) ?? 0) - hitsBefore).to.equal(1);
  });

  it("reads its queue's depth and its DLQ's from the broker at each scrape", async () => {
    // The poison message of the test before is in the DLQ; the queue is empty.
    await eventually(async () => {
      const text = await scrape();
      return sample(text, 'queue_depth_messages', { queue }) === 0 && sample(text, 'dlq_depth_messages', { queue }) === 1;
    }, { intervalMs: 100, what: `depth 0 and DLQ depth 1 for ${queue}` });
  });

  it('is ready while connected and consuming, not ready naming redis while its Redis is down (holding its messages), and ready again once it is back', async () => {
    expect(await readiness()).to.deep.equal({ status: 200, body: { status: 'ready' } });
    expect((await fetch(`${base()}/healthz`)).status).to.equal(200);
    expect((await fetch(`${base()}/nothing`)).status).to.equal(404);

    await redis.stop();
    const down = await eventually(async () => {
      const answer = await readiness();
      return answer.status === 503 && answer;
    }, { what: '/readyz to answer 503' });
    expect(down.body.status).to.equal('not_ready');
    expect(down.body.down).to.include('redis');
    expect(sample(await scrape(), 'dependency_connected', { dependency: 'redis' })).to.equal(0);
    // A command meanwhile is held, not handled.
    const held = await fleet.send('payments.capture', { orderId: orderId('held'), amount: 1, currency: 'EUR', paymentToken: 'tok_ok' });
    await until('waiting_for_dependency', 1);

    await redis.start();
    expect((await fleet.resultOf(held, 30_000)).eventType).to.equal('payment.captured');
    await eventually(async () => (await readiness()).status === 200, { timeoutMs: 30_000, what: '/readyz to answer 200 again' });
    expect(await readiness()).to.deep.equal({ status: 200, body: { status: 'ready' } });
  });
});

describe('the metrics server of a process run by runProcess', function () {
  this.timeout(60_000);
  const children: Child[] = [];
  let taken: Server | undefined;
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await new Promise((done) => (taken ? taken.close(done) : done(undefined)));
    taken = undefined;
  });

  const run = (env: Record<string, string>): Child => {
    const child = runTs('test/fixtures/failing-process.ts', ['runs'], { LOG_LEVEL: 'info', ...env });
    children.push(child);
    return child;
  };

  it('listens on a free port for METRICS_PORT=0, logs its URL, and serves /metrics, /readyz and /healthz', async () => {
    const child = run({ METRICS_PORT: '0' });
    const line = await child.waitFor(/metrics on http:\/\/localhost:\d+\/metrics/);
    const port = Number(/localhost:(\d+)\//.exec(line)?.[1]);
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).to.equal(200);
    expect(await metrics.text()).to.include('# HELP dependency_connected');
    // Its main part runs and it watches no dependency.
    const ready = await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      return res.status === 200 && res.json();
    });
    expect(ready).to.deep.equal({ status: 'ready' });
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
    // Requests no route takes, and a request line no URL parser reads, get an answer; the process stays up.
    expect((await fetch(`http://127.0.0.1:${port}/orders`)).status).to.equal(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).to.equal(405);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end('GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
    expect(raw).to.match(/^HTTP\/1\.1 (400|404)/);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
    child.kill('SIGTERM');
    expect((await child.exited()).code).to.equal(0);
  });

  it('stops with one line naming METRICS_PORT and the incurable status when its port is in use, without a stack', async () => {
    taken = createServer();
    await new Promise<void>((done) => taken!.listen(0, '0.0.0.0', done));
    const port = (taken.address() as { port: number }).port;
    const child = run({ METRICS_PORT: String(port) });
    await child.waitFor(new RegExp(`^failing-process: cannot start: METRICS_PORT ${port} is in use`));
    expect(await child.exited()).to.deep.equal({ code: EXIT_INCURABLE, signal: null });
    expect(child.output.some((l) => /^\s+at /.test(l)), child.output.join('\n')).to.equal(false);
  });
});
