// npm run chaos -- [--orders N] [--seconds S] [--seed X] [--out FILE]
// Starts the fleet (as `npm start` does, on a bus namespace of its own), places N orders at
// a steady rate over S seconds with a seeded mix of every trigger and some customer
// cancellations, injects faults at seeded moments (SIGKILL of every process, the broker
// closing all connections and restarting, Redis and PostgreSQL restarts, duplicate
// deliveries), waits until the system is quiet, then checks that nothing was lost, nothing
// happened twice, stock and money add up, nothing is stuck and every history is in order.
// Prints a report, writes it as JSON, and exits 1 on any violation.
// It restarts the local RabbitMQ, Redis and PostgreSQL: run it on a development machine.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { getConfig } from '../../shared/config';
import { createPool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { EVENT_EXCHANGES, COMMAND_EXCHANGE } from '../../shared/events';
import { AmqpConnection } from '../../shared/messaging/connection';
import { Publisher } from '../../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace, queueNames } from '../../shared/messaging/topology';
import { MessageValidator } from '../../shared/messaging/validator';
import { silentLogger } from '../../shared/observability/logger';
import { connectTemporal } from '../../shared/temporal/client';
import { runCli, UsageError, wholeNumber } from '../cli';
import { databaseBeside, deleteNamespace, StartedFleet } from '../fleet';
import { fleetAccess } from '../rabbitmq-definitions';
import { Random } from '../random';
import { checkConservation, checkEffects, checkOutcomes, checkStuck, moneyOf, openOrders, otherStockMoves, stockLevels, type Checks, type PlacedOrder, type Scenario } from './checks';
import { ensureServicesUp, FAULT_KINDS, Recorder, restartBroker, restartPostgres, restartRedis, schedule, type FaultKind } from './faults';

const ROOT = resolve(__dirname, '../..');
const USAGE = 'usage: npm run chaos -- [--orders N] [--seconds S] [--seed X] [--out FILE]';

interface Args {
  orders: number;
  seconds: number;
  seed: number;
  out: string;
}

function parse(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { orders: { type: 'string', default: '100' }, seconds: { type: 'string', default: '60' }, seed: { type: 'string', default: '1' }, out: { type: 'string' } },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  const seed = wholeNumber('seed', values.seed, 0, 2 ** 32 - 1, USAGE);
  return {
    orders: wholeNumber('orders', values.orders, 1, 1_000_000, USAGE),
    seconds: wholeNumber('seconds', values.seconds, 10, 86_400, USAGE),
    seed,
    out: resolve(values.out ?? resolve(ROOT, 'test-artifacts', `chaos-${seed}.json`)),
  };
}

/** The order mix: every trigger of DESIGN.md, and customer cancellations. */
const MIX: Array<[Scenario, number]> = [['tok_ok', 0.5], ['tok_flaky', 0.15], ['tok_decline', 0.08], ['PROD-OOS', 0.07], ['country XX', 0.08], ['customer cancel', 0.12]];

function orderFor(scenario: Scenario, rnd: Random, customerId: string): { body: Record<string, unknown>; items: PlacedOrder['items']; totalAmount: number } {
  const items = Array.from({ length: rnd.int(1, 3) }, () => ({ sku: `PROD-00${rnd.int(1, 9)}`, quantity: rnd.int(1, 5), unitPrice: rnd.int(100, 9_999) / 100 }));
  if (scenario === 'PROD-OOS') items.push({ sku: 'PROD-OOS', quantity: 1, unitPrice: 5 });
  const token = scenario === 'tok_decline' ? 'tok_decline' : scenario === 'tok_flaky' || scenario === 'customer cancel' ? 'tok_flaky' : 'tok_ok';
  const body = { customerId, items, currency: 'EUR', shippingAddress: { city: 'Chaosville', country: scenario === 'country XX' ? 'XX' : rnd.pick(['DE', 'FR', 'NL']) }, paymentMethod: { token } };
  return { body, items, totalAmount: Math.round(items.reduce((s, i) => s + i.quantity * i.unitPrice * 100, 0)) / 100 };
}

/** A client that retries through API restarts: the same Idempotency-Key makes the retry safe. */
async function request(url: string, init: RequestInit, accept: (status: number) => boolean, deadlineMs: number): Promise<Response | undefined> {
  for (let delay = 100; Date.now() < deadlineMs; delay = Math.min(delay * 2, 2_000)) {
    try {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
      if (accept(res.status)) return res;
    } catch {
      // the API is down or restarting
    }
    await sleep(delay);
  }
  return undefined;
}

runCli('chaos', async () => {
  const args = parse(process.argv.slice(2));
  const config = getConfig();
  // It restarts the services scripts/services.sh runs: the local ones on their default ports.
  for (const [name, url, port] of [['AMQP_URL', config.amqpUrl, '5672'], ['REDIS_URL', config.redisUrl, '6379'], ['DATABASE_URL', config.databaseUrl, '5432']] as const) {
    const u = new URL(url);
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) || (u.port || port) !== port) throw new UsageError(`chaos restarts the local services on their default ports; ${name} must point at 127.0.0.1:${port}`);
  }
  const rnd = new Random(args.seed);
  const runId = `chaos${args.seed.toString(36)}${Date.now().toString(36)}`;
  const namespace = runId;
  const httpPort = 20_000 + rnd.int(0, 9_999);
  const temporalPort = 31_000 + rnd.int(0, 999);
  const api = `http://127.0.0.1:${httpPort}`;
  await ensureServicesUp();
  // A database of the run's own: its relay drains whatever outbox it sees.
  const databaseUrl = databaseBeside(config.databaseUrl, 'chaos');
  await migrate(databaseUrl, silentLogger);
  const db = createPool(databaseUrl, 'chaos');

  // A recovering connection that records what flows on the bus, to deliver some of it again.
  const amqp = new AmqpConnection({ url: config.amqpUrl, name: 'chaos' });
  await amqp.start();
  const recorder = new Recorder();
  await amqp.addSetup(async (model) => {
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    await declareTopology(channel, { exchanges: coreExchanges(namespace), queues: [] });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    for (const exchange of [...EVENT_EXCHANGES, COMMAND_EXCHANGE]) await channel.bindQueue(queue, inNamespace(namespace, exchange), '#');
    await channel.consume(queue, (m) => m && recorder.record(m), { noAck: true });
  });
  const publisher = new Publisher(amqp, new MessageValidator(), { namespace });
  await publisher.start();

  console.log(`chaos: seed ${args.seed}, ${args.orders} orders over ${args.seconds} s, bus namespace ${namespace}`);
  mkdirSync(dirname(args.out), { recursive: true });
  const logFile = args.out.replace(/\.json$/, '') + '.log';
  const fleet = new StartedFleet({ BUS_NAMESPACE: namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`, LOG_LEVEL: 'warn', DATABASE_URL: databaseUrl }, logFile);
  const faults = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, 0]));
  const faultErrors: string[] = [];
  const placed: PlacedOrder[] = [];
  const notAccepted: string[] = [];
  const checks: Checks = { lost: [], wrongOutcome: [], duplicated: [], conservation: [], stuck: [], ordering: [], crashed: [] };
  let quietMs: number;
  try {
    await fleet.waitFor(/\[start\] Ctrl-C stops everything/, 180_000);
    if (!(await request(`${api}/readyz`, {}, (s) => s === 200, Date.now() + 120_000))) throw new Error(`order-api is not ready at ${api}`);
    const before = await stockLevels(db);
    const t0 = Date.now();

    // Orders at a steady rate; each retried through outages with its own Idempotency-Key.
    const customerId = `c-${runId}`;
    const placing = Array.from({ length: args.orders }, (_, i) => {
      const r = rnd.next();
      let acc = 0;
      const scenario = MIX.find(([, p]) => (acc += p) > r)?.[0] ?? 'tok_ok';
      const order = orderFor(scenario, rnd, customerId);
      const cancelAfterMs = rnd.int(100, 1_000);
      return (async () => {
        await sleep(t0 + (i * args.seconds * 1_000) / args.orders - Date.now());
        const res = await request(`${api}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `${runId}-${i}` }, body: JSON.stringify(order.body) }, (s) => s === 202 || (s >= 400 && s < 500), Date.now() + 120_000);
        if (res?.status !== 202) return void notAccepted.push(`order #${i} (${scenario}): ${res ? `${res.status} ${await res.text()}` : 'no answer'}`);
        const { orderId } = (await res.json()) as { orderId: string };
        placed.push({ orderId, scenario, items: order.items, totalAmount: order.totalAmount });
        if (scenario === 'customer cancel') {
          await sleep(cancelAfterMs);
          await request(`${api}/orders/${orderId}/cancel`, { method: 'POST' }, (s) => s === 202 || s === 409, Date.now() + 120_000);
        }
      })();
    });

    // Faults at seeded moments, one at a time.
    const plan = schedule(rnd, args.seconds, Math.max(1, Math.floor(args.seconds / 4 / FAULT_KINDS.length)));
    for (const { atMs, kind } of plan) {
      await sleep(t0 + atMs - Date.now());
      const started = Date.now();
      try {
        if (kind.startsWith('kill ')) await fleet.kill(kind.slice(5));
        else if (kind === 'broker closes all connections') await new Promise<void>((done, fail) => spawn('rabbitmqctl', ['-q', 'close_all_connections', 'chaos']).on('exit', (c) => (c === 0 ? done() : fail(new Error(`rabbitmqctl exited ${c}`)))));
        else if (kind === 'broker restart') await restartBroker();
        else if (kind === 'redis restart') await restartRedis();
        else if (kind === 'postgres restart') await restartPostgres();
        else await recorder.redeliver(publisher, rnd, 25);
        faults.set(kind, (faults.get(kind) ?? 0) + 1);
        console.log(`chaos: ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${kind} (${Date.now() - started} ms)`);
      } catch (err) {
        faultErrors.push(`${kind}: ${String(err)}`);
      }
    }
    await Promise.all(placing);

    // Quiet: every accepted order final, and every queue of the namespace empty.
    const queues = fleetAccess(namespace).flatMap((a) => a.topology.queues);
    const quietStart = Date.now();
    await amqp.waitUntilConnected(120_000); // the last fault may have been the broker's
    const admin = await amqp.channelModel!.createChannel();
    admin.on('error', () => undefined);
    const queueDepth = async (): Promise<number> => {
      let n = 0;
      for (const q of queues) for (const name of queueNames({ exchanges: [], queues: [q] })) n += (await admin.checkQueue(name)).messageCount;
      return n;
    };
    for (const deadline = Date.now() + 300_000; Date.now() < deadline; await sleep(1_000)) {
      const open = await openOrders(db, placed.map((o) => o.orderId)).catch(() => ['?']);
      if (open.length === 0 && (await queueDepth().catch(() => 1)) === 0) break;
    }
    quietMs = Date.now() - quietStart;

    const ids = placed.map((o) => o.orderId);
    const outcomes = await checkOutcomes(db, placed, checks);
    await checkEffects(db, placed, outcomes, checks);
    const after = await stockLevels(db);
    checkConservation(placed, outcomes, { before: before.stock, after: after.stock, others: await otherStockMoves(db, ids, before.at) }, await moneyOf(db, ids), checks);
    const temporal = await connectTemporal({ ...config, temporalAddress: `127.0.0.1:${temporalPort}` });
    await checkStuck(temporal, admin, placed, queues, checks);
    await temporal.connection.close();

    checks.crashed.push(...fleet.exits.filter((line) => !line.includes('exited (SIGKILL)')));
    await deleteNamespace(admin, namespace);
  } finally {
    await fleet.stop();
    await amqp.close();
    await ensureServicesUp();
    await db.end();
  }

  const outcomesByScenario: Record<string, number> = {};
  for (const o of placed) outcomesByScenario[o.scenario] = (outcomesByScenario[o.scenario] ?? 0) + 1;
  const violations = (Object.values(checks) as string[][]).reduce((n, list) => n + list.length, 0) + notAccepted.length + faultErrors.length;
  const report = {
    seed: args.seed,
    requested: { orders: args.orders, seconds: args.seconds },
    orders: { accepted: placed.length, notAccepted: notAccepted.length, byScenario: outcomesByScenario },
    faults: Object.fromEntries(faults),
    faultsInjected: [...faults.values()].reduce((a, b) => a + b, 0),
    faultErrors,
    processExits: fleet.exits.length,
    crashed: checks.crashed.length,
    lost: checks.lost.length,
    wrongOutcome: checks.wrongOutcome.length,
    duplicated: checks.duplicated.length,
    conservationErrors: checks.conservation.length,
    stuck: checks.stuck.length,
    orderingErrors: checks.ordering.length,
    timeToQuietMs: quietMs,
    violations,
    details: { ...checks, notAccepted: notAccepted.slice(0, 50) },
    machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  };
  writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);

  const rows: Array<[string, string | number]> = [
    ['orders accepted', `${placed.length} of ${args.orders}`],
    ['faults injected', `${report.faultsInjected} (${Object.entries(report.faults).map(([k, n]) => `${k} ×${n}`).join(', ')})`],
    ['process exits', fleet.exits.length],
    ['crashed (exited unkilled)', checks.crashed.length],
    ['lost', checks.lost.length],
    ['wrong outcome', checks.wrongOutcome.length],
    ['duplicated effects', checks.duplicated.length],
    ['conservation errors', checks.conservation.length],
    ['stuck', checks.stuck.length],
    ['ordering errors', checks.ordering.length],
    ['time to quiet', `${(quietMs / 1000).toFixed(1)} s`],
  ];
  console.log('\nchaos report');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(36)} ${v}`);
  for (const [k, list] of Object.entries({ ...checks, notAccepted, faultErrors })) for (const line of list.slice(0, 10)) console.log(`  ${k}: ${line}`);
  console.log(`  report: ${args.out}; the fleet's log: ${logFile}`);
  return violations === 0 ? 0 : 1;
});
