// A dependency that accepts connections and never answers (a broker out of file
// descriptors, a hung database): a listener of the test's own stands in for RabbitMQ,
// PostgreSQL and Redis in turn. The process under test gives up each attempt within its
// deadline, says that it waits, keeps every message, and carries on once a real server
// answers (the listener then passes new connections to it).
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { buildApp, READINESS_CHECK_DEADLINE_MS } from '../../services/order-api/app';
import { getConfig } from '../../shared/config';
import { createPool, query, withTransaction } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { createRedis, RedisDedupStore } from '../../shared/dedup';
import { DependencyUnavailableError, TransientError } from '../../shared/errors';
import { declareTopology, dlqName } from '../../shared/messaging/topology';
import { silentLogger } from '../../shared/observability/logger';
import { processRegistry } from '../../shared/observability/metrics';
import { appAuth } from '../helpers/auth';
import { paymentsTopology } from '../../workers/payments/topology';
import { captureData, TestBus } from '../helpers/bus';
import { orderId, TestFleet } from '../helpers/fleet';
import { captureLogs } from '../helpers/logs';
import { uniqueName } from '../helpers/names';
import { runTs, type Child } from '../helpers/processes';
import { BlackHole, portOf } from '../helpers/services';
import { eventually, holds } from '../helpers/wait';

const config = getConfig();
const AMQP_PORT = portOf(config.amqpUrl, 5672);
const PG_PORT = portOf(config.databaseUrl, 5432);
const REDIS_PORT = portOf(config.redisUrl, 6379);

const waitingFor = (dependency: string): RegExp => new RegExp(`"dependency":"${dependency}".*"msg":"not connected to ${dependency} for \\d+ s; waiting for it"`);

describe('a dependency that accepts connections and never answers', function () {
  this.timeout(120_000);
  let hole: BlackHole;
  beforeEach(async () => {
    hole = await BlackHole.start();
  });
  afterEach(async () => {
    await hole.close();
  });

  describe('RabbitMQ', () => {
    let fleet: TestFleet;
    const children: Child[] = [];
    beforeEach(async () => {
      fleet = await TestFleet.create();
    });
    afterEach(async () => {
      for (const c of children.splice(0)) c.kill('SIGKILL');
      await fleet.cleanup();
    });

    it('a worker abandons each connect at its deadline, says it waits, and once the broker answers connects and handles what was sent meanwhile', async () => {
      // The worker's queue exists already, so a command sent while it waits is kept for it.
      const channel = await fleet.connection.channelModel!.createChannel();
      await declareTopology(channel, paymentsTopology(fleet.namespace));
      await channel.close();
      const child = runTs('workers/payments/index.ts', [], {
        AMQP_URL: hole.url(config.amqpUrl),
        AMQP_CONNECT_TIMEOUT_MS: '2000',
        BUS_NAMESPACE: fleet.namespace,
        DATABASE_URL: fleet.config.databaseUrl,
        LOG_LEVEL: 'info',
      });
      children.push(child);

      const warning = JSON.parse(await child.waitFor(waitingFor('rabbitmq'), 30_000)) as { level: number; waitingSeconds: number; lastError?: string };
      expect(warning.level).to.equal(40);
      expect(warning.waitingSeconds).to.be.at.least(5);
      // The attempt was abandoned and another made: the listener saw a second connection.
      await eventually(() => hole.accepted >= 2, { timeoutMs: 15_000, what: 'a second connect attempt' });
      expect(child.output.some((l) => l.includes('"msg":"worker started"'))).to.equal(false, 'started without a broker');

      const command = await fleet.send('payments.capture', { orderId: orderId('hole'), amount: 5, currency: 'EUR', paymentToken: 'tok_ok' });
      const passed = Date.now();
      hole.passTo(AMQP_PORT);
      await child.waitFor(/"msg":"worker started"/, 30_000);
      // At most the stuck attempt's deadline, the back-off and the setup.
      expect(Date.now() - passed).to.be.below(20_000);
      expect((await fleet.resultOf(command)).eventType).to.equal('payment.captured');
      expect(child.output.some((l) => /"msg":"connected to rabbitmq after \d+ s"/.test(l))).to.equal(true, 'the end of the wait was not reported');
    });
  });

  describe('PostgreSQL', () => {
    it('a query fails with DependencyUnavailableError within the connect deadline, the pool says it waits, and queries work once the server answers', async () => {
      const { logger, lines } = captureLogs();
      const pool = createPool(hole.url(config.databaseUrl), 'test-black-hole', { max: 2, logger, connectTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
      try {
        const started = Date.now();
        await expect(query(pool, 'SELECT 1')).to.be.rejectedWith(DependencyUnavailableError);
        expect(Date.now() - started).to.be.below(3_000);
        await eventually(() => lines.some((l) => waitingFor('postgres').test(l)), { timeoutMs: 10_000, what: 'the pool to say it waits for postgres' });
        hole.passTo(PG_PORT);
        const rows = await eventually(() => query<{ one: number }>(pool, 'SELECT 1 AS one'), { timeoutMs: 15_000, what: 'a query once PostgreSQL answers' });
        expect(rows).to.deep.equal([{ one: 1 }]);
      } finally {
        await pool.end();
      }
    });

    it('a statement on a server that stops answering fails with DependencyUnavailableError at its deadline; one the server cancels is a TransientError', async () => {
      hole.passTo(PG_PORT);
      const pool = createPool(hole.url(config.databaseUrl), 'test-hung-server', { max: 1, connectTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
      try {
        // statement_timeout: the server answers, cancelling the statement.
        await expect(query(pool, 'SELECT pg_sleep(3)')).to.be.rejectedWith(TransientError, /57014/);
        let started = 0;
        const hung = withTransaction(pool, async (tx) => {
          await tx.query('SELECT 1');
          hole.silence(); // the server stops answering in the middle of the transaction
          started = Date.now();
          await tx.query('SELECT 1');
        });
        await expect(hung).to.be.rejectedWith(DependencyUnavailableError, /Query read timeout/);
        // The client's deadline: the statement timeout plus its 2 s margin, not for ever.
        expect(Date.now() - started).to.be.within(2_500, 5_000);
        hole.passTo(PG_PORT);
        const rows = await eventually(() => query<{ one: number }>(pool, 'SELECT 1 AS one'), { timeoutMs: 15_000, what: 'a query once PostgreSQL answers again' });
        expect(rows).to.deep.equal([{ one: 1 }]);
      } finally {
        await pool.end();
      }
    });

    it('the start-up migration abandons each attempt at the connect deadline and migrates once the server answers', async () => {
      const { logger, lines } = captureLogs();
      const migrating = migrate(hole.url(config.databaseUrl), logger, { waitForDatabaseMs: 60_000 });
      await eventually(() => hole.accepted >= 1, { what: 'a connect attempt' });
      hole.passTo(PG_PORT);
      const started = Date.now();
      expect(await migrating).to.be.an('array');
      // The stuck attempt gives up at DATABASE_CONNECT_TIMEOUT_MS; the next one reaches the server.
      expect(Date.now() - started).to.be.below(config.databaseConnectTimeoutMs + 5_000);
      expect(lines.join('')).to.include('PostgreSQL is not reachable; waiting for it');
    });
  });

  describe('Redis', () => {
    it('a dedup claim fails with DependencyUnavailableError at once, works once Redis answers, and fails within the command timeout when Redis stops answering', async () => {
      const { logger, lines } = captureLogs();
      const redis = createRedis(hole.url(config.redisUrl), 'test-black-hole', { logger, connectTimeoutMs: 1_000, commandTimeoutMs: 500 });
      const store = new RedisDedupStore(redis, { prefix: uniqueName('test.dedup') });
      const [first, second, third] = [uniqueName('m'), uniqueName('m'), uniqueName('m')];
      try {
        let started = Date.now();
        await expect(store.claim('c', first)).to.be.rejectedWith(DependencyUnavailableError);
        expect(Date.now() - started).to.be.below(1_500);
        await eventually(() => lines.some((l) => waitingFor('redis').test(l)), { timeoutMs: 10_000, what: 'the client to say it waits for redis' });

        hole.passTo(REDIS_PORT);
        const claim = await eventually(() => store.claim('c', first).catch(() => undefined), { timeoutMs: 15_000, what: 'a claim once Redis answers' });
        expect(claim.status).to.equal('claimed');

        hole.silence();
        started = Date.now();
        await expect(store.claim('c', second)).to.be.rejectedWith(DependencyUnavailableError, /Command timed out/);
        expect(Date.now() - started).to.be.below(1_500);

        // A command sent after that one timed out times out too: the client drops the hung
        // connection and connects again. (Another message: the timed-out claim may still have
        // reached Redis, leaving `second` in progress.)
        hole.passTo(REDIS_PORT);
        await eventually(() => store.claim('c', third).then((c) => c.status === 'claimed').catch(() => false), { timeoutMs: 15_000, what: 'a claim once Redis answers again' });
      } finally {
        await redis.del(store.key('c', first), store.key('c', second), store.key('c', third)).catch(() => undefined);
        redis.disconnect();
      }
    });

    it('a consumer holds every message while Redis does not answer, and handles each once when it does', async () => {
      const bus = await TestBus.create();
      try {
        const { store } = bus.dedup({ redisUrl: hole.url(config.redisUrl) });
        const handled = new Map<string, number>();
        const spec = bus.queue('redis-black-hole');
        await bus.consumer(spec, { 'payments.capture': async (e) => void handled.set(e.eventId, (handled.get(e.eventId) ?? 0) + 1) }, { dedup: store, prefetch: 5 });
        const sent: string[] = [];
        for (let i = 0; i < 10; i++) sent.push((await bus.send('payments.capture', captureData(`o-hole-${i}`))).eventId);
        // Five are held by the consumer (its prefetch), the rest wait in the queue; none is handled.
        await eventually(async () => (await bus.messageCount(spec.name)) === 5, { what: '5 messages waiting in the queue' });
        await holds(async () => handled.size === 0 && (await bus.messageCount(spec.name)) === 5, 1_500, 'nothing handled while Redis does not answer');
        expect(await bus.messageCount(dlqName(spec.name))).to.equal(0);

        hole.passTo(REDIS_PORT);
        await eventually(() => handled.size === 10, { timeoutMs: 30_000, what: 'all 10 handled once Redis answers' });
        expect([...handled.keys()].sort()).to.deep.equal([...sent].sort());
        expect([...handled.values()].every((n) => n === 1)).to.equal(true);
        expect(await bus.messageCount(dlqName(spec.name))).to.equal(0);
      } finally {
        await bus.cleanup();
      }
    });
  });

  describe('order-api', () => {
    it('answers /readyz with 503 naming postgres within its deadline, and its metrics show the outbox figures as unknown until PostgreSQL answers', async () => {
      // The pool's connect deadline (DATABASE_CONNECT_TIMEOUT_MS) is longer than the readiness deadline.
      const db = createPool(hole.url(config.databaseUrl), 'test-readyz', { max: 2 });
      const registry = new Registry();
      const { verifier, rateLimits } = await appAuth();
      const app = buildApp({
        db,
        logger: silentLogger,
        saga: { requestCancel: async () => ({ accepted: true }) },
        readiness: [{ name: 'postgres', check: async () => (await query(db, 'SELECT 1')).length === 1 }],
        verifier,
        rateLimits,
        registry,
      });
      // What order-api's METRICS_PORT serves: its process's metrics and the API's.
      const scrape = (): Promise<string> => Registry.merge([processRegistry, registry]).metrics();
      try {
        const started = Date.now();
        const res = await app.inject({ method: 'GET', url: '/readyz' });
        expect(res.statusCode).to.equal(503);
        expect(res.json()).to.deep.equal({ status: 'not_ready', down: ['postgres'] });
        expect(Date.now() - started).to.be.below(READINESS_CHECK_DEADLINE_MS + 1_000);
        const unknown = await scrape();
        // prom-client writes NaN as "Nan"; Prometheus reads either.
        expect(unknown).to.match(/^outbox_oldest_unsent_age_seconds nan$/im);
        expect(unknown).to.match(/^outbox_unsent_events nan$/im);

        hole.passTo(PG_PORT);
        await eventually(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, { timeoutMs: 20_000, what: '/readyz to answer 200 once PostgreSQL answers' });
        // Queries that waited for the pool while it was full of stuck connects may still fail.
        const metrics = await eventually(
          async () => {
            const body = await scrape();
            return /^dependency_connected\{dependency="postgres"\} 1$/m.test(body) && body;
          },
          { timeoutMs: 15_000, what: 'dependency_connected{dependency="postgres"} 1' },
        );
        expect(metrics).to.match(/^outbox_oldest_unsent_age_seconds \d+(\.\d+)?(e[+-]\d+)?$/m);
        expect(metrics).to.match(/^outbox_unsent_events \d+$/m);
      } finally {
        await app.close();
        await db.end();
      }
    });
  });
});
