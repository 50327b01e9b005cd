// npm run chaos -- [--orders N] [--seconds S] [--seed X] [--out FILE] [--cluster [--probe-rate R]]
// Starts the fleet (as `npm start` does, on a bus namespace of its own, with a Temporal state
// file of its own), places N orders at a steady rate over S seconds with a seeded mix of
// every trigger and some customer cancellations, injects faults at seeded moments (SIGKILL of
// every process and of the Temporal dev server, the broker closing all connections and
// restarting, Redis and PostgreSQL restarts, duplicate deliveries), waits until the system is
// quiet, runs one reconciler pass, then checks that nothing was lost, nothing happened twice,
// stock and money add up, nothing is stuck and every history is in order.
// Prints a report, writes it as JSON, and exits 1 on any violation.
// It restarts the local RabbitMQ, Redis and PostgreSQL: run it on a development machine.
// --cluster runs it on the local 3-node RabbitMQ cluster (`npm run cluster`, brought up if it is
// not): the broker faults become SIGKILLs of a node (the leader of the busiest quorum queue, then
// the node the fleet is connected to, each restarted before the next fault), and a probe publishes
// with confirms at a steady rate throughout, to count what the kills lost and how long confirms paused.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { devTokenFor, SCOPES } from '../../shared/auth';
import { getConfig } from '../../shared/config';
import { createPool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { EVENT_EXCHANGES, COMMAND_EXCHANGE } from '../../shared/events';
import { AmqpConnection } from '../../shared/messaging/connection';
import { Publisher } from '../../shared/messaging/publisher';
import { coreExchanges, declareTopology, inNamespace, queueNames } from '../../shared/messaging/topology';
import { MessageValidator } from '../../shared/messaging/validator';
import { silentLogger } from '../../shared/observability/logger';
import { connectTemporal, connectWithRetry } from '../../shared/temporal/client';
import { reconcileAll, type ReconcileSummary } from '../../workers/saga-bridge/reconciler';
import { runCli, UsageError, wholeNumber } from '../cli';
import { PROJECTION_NAMES } from '../../shared/projections';
import { rebuildProjection } from '../../shared/projections/rebuild';
import { databaseBeside, deleteNamespace, StartedFleet } from '../fleet';
import { fleetAccess } from '../rabbitmq-definitions';
import { Random } from '../random';
import { checkConservation, checkEffects, checkOutcomes, checkProjections, checkStuck, emptyChecks, moneyOf, openOrders, otherStockMoves, stockLevels, type Checks, type PlacedOrder, type Scenario } from './checks';
import { BlackHole } from '../black-hole';
import { BROKER_SILENCE_MS, ensureServicesUp, CLUSTER_FAULT_KINDS, FAULT_KINDS, Recorder, restartBroker, restartPostgres, restartRedis, schedule, type FaultKind } from './faults';
import { LocalCluster } from '../cluster';
import { loadConfig } from '../../shared/config';
import { ConfirmProbe, killNode, type NodeKill, type ProbeReport } from './cluster';
import { generatedNamespace } from '../bus';

const ROOT = resolve(__dirname, '../..');
const USAGE = 'usage: npm run chaos -- [--orders N] [--seconds S] [--seed X] [--out FILE] [--cluster [--probe-rate R]]';

interface Args {
  orders: number;
  seconds: number;
  seed: number;
  out: string;
  cluster: boolean;
  /** Confirmed publishes a second of the cluster run's probe. */
  probeRate: number;
}

function parse(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      orders: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '60' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      cluster: { type: 'boolean', default: false },
      'probe-rate': { type: 'string', default: '100' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  const seed = wholeNumber('seed', values.seed, 0, 2 ** 32 - 1, USAGE);
  if (values['probe-rate'] !== '100' && !values.cluster) throw new UsageError(`--probe-rate goes with --cluster\n${USAGE}`);
  return {
    orders: wholeNumber('orders', values.orders, 1, 1_000_000, USAGE),
    seconds: wholeNumber('seconds', values.seconds, 10, 86_400, USAGE),
    seed,
    out: resolve(values.out ?? resolve(ROOT, 'test-artifacts', `chaos-${values.cluster ? 'cluster-' : ''}${seed}.json`)),
    cluster: values.cluster,
    probeRate: wholeNumber('probe-rate', values['probe-rate'], 1, 10_000, USAGE),
  };
}

/** The order mix: every test trigger (docs/architecture.md#test-triggers), and customer cancellations. */
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
  // It restarts the services scripts/services.sh runs: the local ones on their default ports
  // (on a cluster run, the broker is the local cluster, whose nodes it kills and starts).
  const services = [['AMQP_URL', config.amqpUrl, '5672'], ['REDIS_URL', config.redisUrl, '6379'], ['DATABASE_URL', config.databaseUrl, '5432']] as const;
  for (const [name, url, port] of services.filter(([name]) => !(args.cluster && name === 'AMQP_URL'))) {
    const u = new URL(url);
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) || (u.port || port) !== port) throw new UsageError(`chaos restarts the local services on their default ports; ${name} must point at 127.0.0.1:${port}`);
  }
  const rnd = new Random(args.seed);
  const runId = generatedNamespace('chaos', args.seed.toString(36));
  const namespace = runId;
  const httpPort = 20_000 + rnd.int(0, 9_999);
  const temporalPort = 31_000 + rnd.int(0, 999);
  const api = `http://127.0.0.1:${httpPort}`;
  const cluster = args.cluster ? new LocalCluster(config.dataDir) : undefined;
  let startedCluster = false;
  if (cluster) {
    await ensureServicesUp('redis', 'postgres');
    startedCluster = (await cluster.up((line) => console.log(`chaos: cluster: ${line}`))).length === cluster.nodes.length;
  } else {
    await ensureServicesUp();
  }
  // On the cluster the fleet connects to node 2 first and the run to node 3, while the fleet's
  // queues are declared through node 1 (leaders go to the declaring node): the first leader
  // kill is not the fleet's own node.
  // On one broker the fleet connects through a listener the fault "broker stops answering" can silence.
  const hole = cluster ? undefined : await BlackHole.start();
  const brokerPort = Number(new URL(config.amqpUrls[0] ?? config.amqpUrl).port || 5672);
  hole?.passTo(brokerPort);
  const fleetAmqpUrl = cluster ? cluster.amqpUrlFrom(2) : hole!.url(config.amqpUrls[0] ?? config.amqpUrl);
  const runAmqpUrl = cluster ? cluster.amqpUrlFrom(3) : config.amqpUrl;
  // A database of the run's own: its relay drains whatever outbox it sees.
  const databaseUrl = databaseBeside(config.databaseUrl, 'chaos');
  await migrate(databaseUrl, silentLogger);
  const db = createPool(databaseUrl, 'chaos');

  // A recovering connection that records what flows on the bus, to deliver some of it again.
  const amqp = new AmqpConnection({ url: runAmqpUrl, name: 'chaos' });
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
  let probe: ConfirmProbe | undefined;
  if (cluster) {
    const declareOptions = { quorumGroupSize: loadConfig({ AMQP_URL: fleetAmqpUrl }).quorumGroupSize };
    const onFirst = new AmqpConnection({ url: cluster.node(1).url, name: 'chaos: declare on node 1' });
    await onFirst.start();
    const channel = await onFirst.channelModel!.createChannel();
    for (const access of fleetAccess(namespace)) await declareTopology(channel, access.topology, declareOptions);
    await ConfirmProbe.declare(channel, inNamespace(namespace, 'cluster-probe'), declareOptions);
    await onFirst.close();
    probe = new ConfirmProbe(publisher, inNamespace(namespace, 'cluster-probe'), args.probeRate);
  }
  const nodeKills: Array<NodeKill & { worstConfirmMs: number }> = [];
  let probeReport: ProbeReport | undefined;

  console.log(`chaos: seed ${args.seed}, ${args.orders} orders over ${args.seconds} s, bus namespace ${namespace}`);
  mkdirSync(dirname(args.out), { recursive: true });
  const logFile = args.out.replace(/\.json$/, '') + '.log';
  // The run's Temporal state, beside its report: fresh for each run, kept afterwards to look at.
  const temporalDbFile = args.out.replace(/\.json$/, '') + '.temporal.sqlite';
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${temporalDbFile}${suffix}`, { force: true });
  const temporalAddress = `127.0.0.1:${temporalPort}`;
  // No scheduled reconciler: a saga Temporal lost must show up as a violation, not be repaired
  // quietly; the run makes one pass itself once it is quiet.
  const fleet = new StartedFleet(
    // No rate limits: the run's one customer places orders faster than a customer may.
    { BUS_NAMESPACE: namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: temporalAddress, TEMPORAL_DB_FILE: temporalDbFile, RECONCILE_INTERVAL_MS: '0', LOG_LEVEL: 'warn', DATABASE_URL: databaseUrl, AMQP_URL: fleetAmqpUrl, RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '0', RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '0' },
    logFile,
  );
  const kinds = args.cluster ? CLUSTER_FAULT_KINDS : FAULT_KINDS;
  const faults = new Map<FaultKind, number>(kinds.map((k) => [k, 0]));
  const faultErrors: string[] = [];
  const placed: PlacedOrder[] = [];
  const notAccepted: string[] = [];
  const checks: Checks = emptyChecks();
  let quietMs: number;
  let reconciler: ReconcileSummary | undefined;
  /** Orders of earlier runs the reconciler's pass failed on (the run's own are in checks.reconciled). */
  const reconcilerErrors: string[] = [];
  try {
    await fleet.waitFor(/\[start\] Ctrl-C stops everything/, 180_000);
    if (!(await request(`${api}/readyz`, {}, (s) => s === 200, Date.now() + 120_000))) throw new Error(`order-api is not ready at ${api}`);
    const before = await stockLevels(db);
    const t0 = Date.now();
    probe?.start();

    // Orders at a steady rate; each retried through outages with its own Idempotency-Key.
    const customerId = `c-${runId}`;
    // The customer's token, signed with the development key the fleet verifies with; valid for the whole run.
    const authorization = `Bearer ${await devTokenFor(config.auth, customerId, SCOPES.customer, 24 * 3_600)}`;
    const placing = Array.from({ length: args.orders }, (_, i) => {
      const r = rnd.next();
      let acc = 0;
      const scenario = MIX.find(([, p]) => (acc += p) > r)?.[0] ?? 'tok_ok';
      const order = orderFor(scenario, rnd, customerId);
      const cancelAfterMs = rnd.int(100, 1_000);
      return (async () => {
        await sleep(t0 + (i * args.seconds * 1_000) / args.orders - Date.now());
        const res = await request(`${api}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `${runId}-${i}`, authorization }, body: JSON.stringify(order.body) }, (s) => s === 202 || (s >= 400 && s < 500), Date.now() + 120_000);
        if (res?.status !== 202) return void notAccepted.push(`order #${i} (${scenario}): ${res ? `${res.status} ${await res.text()}` : 'no answer'}`);
        const { orderId } = (await res.json()) as { orderId: string };
        placed.push({ orderId, scenario, items: order.items, totalAmount: order.totalAmount });
        if (scenario === 'customer cancel') {
          await sleep(cancelAfterMs);
          await request(`${api}/orders/${orderId}/cancel`, { method: 'POST', headers: { authorization } }, (s) => s === 202 || s === 409, Date.now() + 120_000);
        }
      })();
    });

    // Faults at seeded moments, one at a time.
    const plan = schedule(rnd, args.seconds, Math.max(1, Math.floor(args.seconds / 4 / kinds.length)), kinds);
    for (const { atMs, kind } of plan) {
      await sleep(t0 + atMs - Date.now());
      const started = Date.now();
      try {
        if (kind.startsWith('kill ')) await fleet.kill(kind.slice(5));
        else if (kind === 'temporal server SIGKILL') {
          await fleet.killAndAwaitRestart('temporal');
          const answering = await connectWithRetry(temporalAddress, () => connectTemporal({ ...config, temporalAddress }), { timeoutMs: 60_000 });
          await answering.connection.close();
        }
        else if (kind === 'broker closes all connections') await new Promise<void>((done, fail) => spawn('rabbitmqctl', ['-q', 'close_all_connections', 'chaos']).on('exit', (c) => (c === 0 ? done() : fail(new Error(`rabbitmqctl exited ${c}`)))));
        else if (kind === 'broker stops answering' && hole) {
          hole.silence();
          await sleep(BROKER_SILENCE_MS);
          hole.passTo(brokerPort);
        } else if (kind === 'broker restart') await restartBroker();
        else if (kind === 'redis restart') await restartRedis();
        else if (kind === 'postgres restart') await restartPostgres();
        else if (kind === 'projection rebuild') for (const name of PROJECTION_NAMES) await rebuildProjection(db, name);
        else if (cluster && kind.startsWith('node SIGKILL: ')) {
          const kill = await killNode(cluster, namespace, kind === 'node SIGKILL: quorum leader' ? 'quorum leader' : 'connected node', [inNamespace(namespace, 'payments.commands')]);
          nodeKills.push({ ...kill, worstConfirmMs: probe?.worstBetween(kill.at - 1_000, kill.at + kill.restartedMs) ?? 0 });
          console.log(`chaos: ${kill.target} ${kill.node}${kill.queue ? ` (leader of ${kill.queue})` : ''}: back with every queue member online after ${(kill.restartedMs / 1000).toFixed(1)} s`);
        } else await recorder.redeliver(publisher, rnd, 25);
        faults.set(kind, (faults.get(kind) ?? 0) + 1);
        console.log(`chaos: ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${kind} (${Date.now() - started} ms)`);
      } catch (err) {
        faultErrors.push(`${kind}: ${String(err)}`);
      }
    }
    await Promise.all(placing);
    if (probe) probeReport = await probe.stop(amqp);

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
    const untilQuiet = async (orderIds: string[]): Promise<void> => {
      for (const deadline = Date.now() + 300_000; Date.now() < deadline; await sleep(1_000)) {
        const open = await openOrders(db, orderIds).catch(() => ['?']);
        if (open.length === 0 && (await queueDepth().catch(() => 1)) === 0) break;
      }
    };
    await untilQuiet(placed.map((o) => o.orderId));
    quietMs = Date.now() - quietStart;

    // One reconciler pass over every accepted order of the run's database. A run order it acts
    // on is one whose saga Temporal lost (a violation); others were left by an earlier,
    // interrupted run. Their sagas run on this fleet and must be quiet before the checks.
    const temporal = await connectTemporal({ ...config, temporalAddress });
    const pass = await reconcileAll({ db, client: temporal }, { graceMs: 0 });
    reconciler = pass.summary;
    const runOrders = new Map(placed.map((o) => [o.orderId, o]));
    for (const a of pass.actions) {
      const order = runOrders.get(a.orderId);
      if (order) checks.reconciled.push(`${a.orderId} (${order.scenario}): ${a.found} → ${a.action}${a.detail ? `: ${a.detail}` : ''}`);
      else if (a.action === 'error') reconcilerErrors.push(`${a.orderId}: ${a.detail ?? ''}`);
      else console.log(`chaos: reconciler: an earlier run's ${a.orderId}: ${a.found} → ${a.action}`);
    }
    if (pass.actions.length > 0) await untilQuiet([...placed.map((o) => o.orderId), ...pass.actions.map((a) => a.orderId)]);

    const ids = placed.map((o) => o.orderId);
    const outcomes = await checkOutcomes(db, placed, checks);
    await checkEffects(db, placed, outcomes, checks);
    await checkProjections(db, ids, checks);
    const after = await stockLevels(db);
    checkConservation(placed, outcomes, { before: before.stock, after: after.stock, others: await otherStockMoves(db, ids, before.at) }, await moneyOf(db, ids), checks);
    await checkStuck(temporal, admin, placed, queues, checks);
    await temporal.connection.close();

    checks.crashed.push(...fleet.exits.filter((line) => !line.includes('exited (SIGKILL)')));
    if (probe) await admin.deleteQueue(probe.queue).catch(() => undefined);
    const left = await deleteNamespace(amqp.channelModel!, namespace);
    if (left.length > 0) console.warn(`chaos: could not delete from the broker: ${left.join(', ')}`);
  } finally {
    probe?.halt();
    await fleet.stop();
    await amqp.close();
    await hole?.close();
    if (cluster) {
      await ensureServicesUp('redis', 'postgres');
      // A cluster the run brought up goes down again (its data stays); one that was up stays up.
      if (startedCluster) await cluster.down();
    } else {
      await ensureServicesUp();
    }
    await db.end();
  }

  const outcomesByScenario: Record<string, number> = {};
  for (const o of placed) outcomesByScenario[o.scenario] = (outcomesByScenario[o.scenario] ?? 0) + 1;
  // A confirmed publish the cluster lost is a violation; a duplicate (a retried publish that had arrived) is not.
  const probeLost = probeReport?.lost ?? 0;
  const violations = (Object.values(checks) as string[][]).reduce((n, list) => n + list.length, 0) + notAccepted.length + faultErrors.length + reconcilerErrors.length + probeLost;
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
    projectionErrors: checks.projections.length,
    timeToQuietMs: quietMs,
    reconciler,
    reconciled: checks.reconciled.length,
    ...(cluster ? { cluster: { nodes: cluster.nodes.map((n) => n.name), nodeKills, probe: probeReport ?? 'not finished', probeRatePerSecond: args.probeRate } } : {}),
    violations,
    details: { ...checks, notAccepted: notAccepted.slice(0, 50), reconcilerErrors },
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
    ['read models unlike the stream', checks.projections.length],
    ['time to quiet', `${(quietMs / 1000).toFixed(1)} s`],
    ['reconciled (sagas Temporal lost)', checks.reconciled.length],
    ['reconciler pass after quiet', reconciler ? `checked ${reconciler.checked}: ${reconciler.started} started, ${reconciler.restarted} restarted, ${reconciler.finished} finished, ${reconciler.leftForOperator} left for an operator, ${reconciler.errors} errors` : 'not run'],
  ];
  if (cluster) {
    for (const k of nodeKills) rows.push([`node SIGKILL (${k.target})`, `${k.node}${k.queue ? `, leader of ${k.queue}` : ''}: worst confirm wait ${k.worstConfirmMs} ms; back, every member online, after ${(k.restartedMs / 1000).toFixed(1)} s`]);
    rows.push([
      'probe (confirmed publishes)',
      probeReport
        ? `${probeReport.confirmed} of ${probeReport.published} confirmed, ${probeReport.lost} lost, ${probeReport.duplicates} duplicated, ${probeReport.retried} retried; worst confirm wait ${probeReport.worstConfirmMs} ms`
        : 'not finished',
    ]);
  }
  console.log('\nchaos report');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(36)} ${v}`);
  for (const [k, list] of Object.entries({ ...checks, notAccepted, faultErrors, reconcilerErrors })) for (const line of list.slice(0, 10)) console.log(`  ${k}: ${line}`);
  console.log(`  report: ${args.out}; the fleet's log: ${logFile}`);
  return violations === 0 ? 0 : 1;
});
