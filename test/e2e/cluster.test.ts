// The fleet on a real 3-node RabbitMQ cluster on this machine (`npm run cluster`), unchanged
// but for AMQP_URL listing every node. Under a steady stream of orders of every trigger and a
// probe publishing with confirms, it SIGKILLs the leader of the busiest quorum queue, then
// (once that node is back) the node the processes are connected to. Every order must end as
// its trigger predicts, nothing may happen twice, no confirmed publish may be lost, and no
// process may exit. The figures go to test-artifacts/cluster-e2e.json.
//
// The fleet connects to node 2 first and the test to node 3, while the fleet's queues are
// declared through node 1 (a quorum queue's leader starts on the node that declared it): the
// first kill takes the leaders and not the fleet's connections, the second the connections.
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { expect } from 'chai';
import { checkConservation, checkEffects, checkOutcomes, checkStuck, moneyOf, openOrders, otherStockMoves, stockLevels, type Checks, type PlacedOrder, emptyChecks } from '../../scripts/chaos/checks';
import { ConfirmProbe, killNode, type NodeKill, type ProbeReport } from '../../scripts/chaos/cluster';
import { clusterProblem, LocalCluster } from '../../scripts/cluster';
import { deleteNamespace, StartedFleet } from '../../scripts/fleet';
import { fleetAccess } from '../../scripts/rabbitmq-definitions';
import { getConfig, loadConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { AmqpConnection } from '../../shared/messaging/connection';
import { Publisher } from '../../shared/messaging/publisher';
import { declareTopology, inNamespace } from '../../shared/messaging/topology';
import { MessageValidator } from '../../shared/messaging/validator';
import { silentLogger } from '../../shared/observability/logger';
import { connectTemporal } from '../../shared/temporal/client';
import { dropDatabase, testDatabaseUrl } from '../helpers/fleet';
import { ROOT } from '../helpers/processes';
import { freePort } from '../helpers/services';
import { NO_RATE_LIMITS } from '../helpers/auth';
import { isFinal, placeTriggerOrder, readModelStatus, TRIGGERS } from '../helpers/trigger-orders';
import { eventually } from '../helpers/wait';
import { generatedNamespace } from '../../scripts/bus';

/** The whole test: a cluster booted from nothing, the fleet, two node kills and their restarts, on 2 cores. */
const TEST_TIMEOUT_MS = 900_000;
/** An order every this often while the nodes die (pacing the traffic, not waiting for anything). */
const ORDER_EVERY_MS = 400;
/** Orders placed before the first kill, between the kills, and after the second. */
const ORDERS_BEFORE_KILL = 8;
const ORDERS_AFTER_KILL = 8;
/** Confirmed publishes a second from the probe, through both kills. */
const PROBE_RATE = 200;
/** The longest a confirm may wait: a leader election on this machine took about 200 ms; a loaded 2-core machine gets room. */
const CONFIRM_WAIT_LIMIT_MS = 5_000;
/** How long every order may take to be final once the traffic stops. */
const SETTLE_MS = 240_000;

describe('the fleet on a 3-node RabbitMQ cluster, losing a node twice under traffic', function () {
  this.timeout(TEST_TIMEOUT_MS);
  const cluster = new LocalCluster();
  const namespace = generatedNamespace('test-fleet');
  const databaseUrl = testDatabaseUrl('e2e_cluster');
  const probeQueue = inNamespace(namespace, 'cluster-probe');
  let wasUp = false;
  let fleet: StartedFleet | undefined;
  let amqp: AmqpConnection | undefined;
  let probe: ConfirmProbe | undefined;
  let db: Pool | undefined;
  let temporal: Client | undefined;
  let api = '';
  let temporalAddress = '';

  before(async () => {
    wasUp = clusterProblem(await cluster.status()) === undefined;
    // Nothing is skipped: a cluster that cannot start fails the test with its reason.
    await cluster.up();
    await migrate(databaseUrl, silentLogger);
    db = createPool(databaseUrl, 'test-e2e-cluster');

    const fleetUrl = cluster.amqpUrlFrom(2);
    const declareOptions = { quorumGroupSize: loadConfig({ AMQP_URL: fleetUrl }).quorumGroupSize };
    expect(declareOptions.quorumGroupSize, 'QUORUM_GROUP_SIZE of a cluster').to.equal(3);
    const onFirst = new AmqpConnection({ url: cluster.node(1).url, name: 'test-cluster: declare on node 1' });
    await onFirst.start();
    try {
      const channel = await onFirst.channelModel!.createChannel();
      for (const access of fleetAccess(namespace)) await declareTopology(channel, access.topology, declareOptions);
      await ConfirmProbe.declare(channel, probeQueue, declareOptions);
    } finally {
      await onFirst.close();
    }
    amqp = new AmqpConnection({ url: cluster.amqpUrlFrom(3), name: 'test-cluster' });
    await amqp.start();
    const publisher = new Publisher(amqp, new MessageValidator(), { namespace });
    await publisher.start();
    probe = new ConfirmProbe(publisher, probeQueue, PROBE_RATE);

    const httpPort = await freePort();
    temporalAddress = `127.0.0.1:${await freePort()}`;
    api = `http://127.0.0.1:${httpPort}`;
    const artifacts = resolve(ROOT, 'test-artifacts');
    mkdirSync(artifacts, { recursive: true });
    fleet = new StartedFleet(
      { AMQP_URL: fleetUrl, BUS_NAMESPACE: namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: temporalAddress, DATABASE_URL: databaseUrl, RECONCILE_INTERVAL_MS: '0', LOG_LEVEL: 'info', ...NO_RATE_LIMITS },
      resolve(artifacts, 'cluster-e2e.log'),
    );
    await fleet.waitFor(/^\[start\] Ctrl-C stops everything/, 240_000);
    for (const started of [/^\[order-api\].*order-api listening/, /^\[temporal-worker\].*temporal worker started/, /^\[saga-bridge\].*worker started/, /^\[outbox-relay\].*outbox relay started/, /^\[payments\].*worker started/, /^\[order-projection\].*worker started/]) {
      await fleet.waitFor(started, 240_000);
    }
    temporal = await connectTemporal({ ...getConfig(), temporalAddress });
  });

  after(async () => {
    probe?.halt();
    await fleet?.stop();
    if (amqp) {
      await amqp.waitUntilConnected(60_000).catch(() => undefined);
      const channel = await amqp.channelModel?.createChannel().catch(() => undefined);
      if (channel) {
        channel.on('error', () => undefined);
        await channel.deleteQueue(probeQueue).catch(() => undefined);
        const left = await deleteNamespace(amqp.channelModel!, namespace);
        expect(left, 'what the clean-up could not delete').to.deep.equal([]);
      }
      await amqp.close();
    }
    await temporal?.connection.close();
    await db?.end();
    await dropDatabase(databaseUrl).catch(() => undefined);
    // A cluster someone had up stays up; one the test brought up goes down (its data stays).
    if (!wasUp) await cluster.down();
  });

  it('puts every quorum queue of the fleet on the three nodes', async () => {
    const queues = (await cluster.queues(`${namespace}.`)).filter((q) => q.type === 'quorum');
    expect(queues.length, 'quorum queues of the namespace').to.be.at.least(fleetAccess(namespace).flatMap((a) => a.topology.queues).length);
    for (const q of queues) expect([...q.members].sort(), q.name).to.deep.equal(cluster.nodes.map((n) => n.name).sort());
  });

  it('ends every order as its trigger predicts, does nothing twice, loses no confirmed publish, and no process exits', async () => {
    const start = await stockLevels(db!);
    const placed: PlacedOrder[] = [];
    const placing: Array<Promise<void>> = [];
    const errors: string[] = [];
    let stop = false;
    let n = 0;
    const customerId = `c-${namespace}`;
    const place = (): Promise<PlacedOrder> => {
      const i = n++;
      return placeTriggerOrder(api, TRIGGERS[i % TRIGGERS.length]!, customerId, i, `${namespace}-${i}`);
    };
    const traffic = (async () => {
      while (!stop) {
        placing.push(place().then((o) => void placed.push(o), (err: unknown) => void errors.push(String(err))));
        await sleep(ORDER_EVERY_MS);
      }
    })();

    /** From a kill until an order placed at that moment is final: the time the fleet takes to recover. */
    const recoveries: Array<Promise<number>> = [];
    const timeToRecover = (at: number): void => {
      recoveries.push(
        (async () => {
          const order = await place();
          placed.push(order);
          await eventually(async () => isFinal(await readModelStatus(api, order.orderId)), { timeoutMs: SETTLE_MS, intervalMs: 100, what: `the order placed at a kill (${order.orderId}) to be final` });
          return Date.now() - at;
        })(),
      );
    };
    const kills: NodeKill[] = [];
    try {
      probe!.start();
      await eventually(() => placed.length >= ORDERS_BEFORE_KILL, { timeoutMs: 60_000, what: `${ORDERS_BEFORE_KILL} orders placed` });
      kills.push(await killNode(cluster, namespace, 'quorum leader', [inNamespace(namespace, 'payments.commands')], ({ at }) => timeToRecover(at)));
      const between = placed.length;
      await eventually(() => placed.length >= between + ORDERS_AFTER_KILL, { timeoutMs: 60_000, what: 'orders after the first kill' });
      kills.push(await killNode(cluster, namespace, 'connected node', [], ({ at }) => timeToRecover(at)));
      const afterSecond = placed.length;
      await eventually(() => placed.length >= afterSecond + ORDERS_AFTER_KILL, { timeoutMs: 60_000, what: 'orders after the second kill' });
    } finally {
      stop = true;
      await traffic;
      await Promise.all(placing);
    }
    const probeReport: ProbeReport = await probe!.stop(amqp!);
    const recoveredMs = await Promise.all(recoveries);
    const ids = placed.map((o) => o.orderId);
    const settleStarted = Date.now();
    await eventually(async () => (await openOrders(db!, ids)).length === 0, { timeoutMs: SETTLE_MS, intervalMs: 500, what: 'every order final' });
    const settledMs = Date.now() - settleStarted;

    const checks: Checks = emptyChecks();
    const outcomes = await checkOutcomes(db!, placed, checks);
    await checkEffects(db!, placed, outcomes, checks);
    const end = await stockLevels(db!);
    checkConservation(placed, outcomes, { before: start.stock, after: end.stock, others: await otherStockMoves(db!, ids, start.at) }, await moneyOf(db!, ids), checks);
    await amqp!.waitUntilConnected(60_000);
    const channel = await amqp!.channelModel!.createChannel();
    channel.on('error', () => undefined);
    const queues = fleetAccess(namespace).flatMap((a) => a.topology.queues);
    // The last events may still be on their way to the notifications and the sagas' last step
    // to complete: stuck is what is left once they had the time.
    const stuckNow = async (): Promise<string[]> => {
      const found: Checks = { ...checks, stuck: [] };
      await checkStuck(temporal!, channel, placed, queues, found);
      return found.stuck;
    };
    await eventually(async () => (await stuckNow()).length === 0, { timeoutMs: 60_000, intervalMs: 1_000, what: 'every workflow completed and every queue empty' }).catch(() => undefined);
    checks.stuck.push(...(await stuckNow()));
    await channel.close();
    checks.crashed.push(...fleet!.exits);

    const report = {
      orders: placed.length,
      byTrigger: Object.fromEntries(TRIGGERS.map((t) => [t, placed.filter((o) => o.scenario === t).length])),
      nodeKills: kills.map((k, i) => ({ ...k, timeToRecoverMs: recoveredMs[i], worstConfirmMs: probe!.worstBetween(k.at - 1_000, k.at + k.restartedMs) })),
      probe: probeReport,
      timeToSettleMs: settledMs,
      violations: Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, (v as string[]).length])),
    };
    writeFileSync(resolve(ROOT, 'test-artifacts', 'cluster-e2e.json'), `${JSON.stringify({ ...report, details: checks, errors }, null, 2)}\n`);
    console.log(`      cluster run: ${JSON.stringify(report)}`);

    expect(errors, 'every order was accepted').to.deep.equal([]);
    expect(kills.map((k) => k.target)).to.deep.equal(['quorum leader', 'connected node']);
    expect({ lost: checks.lost, wrongOutcome: checks.wrongOutcome, duplicated: checks.duplicated, conservation: checks.conservation, stuck: checks.stuck, ordering: checks.ordering, exited: checks.crashed }).to.deep.equal({
      lost: [],
      wrongOutcome: [],
      duplicated: [],
      conservation: [],
      stuck: [],
      ordering: [],
      exited: [],
    });
    expect(probeReport.lost, 'confirmed publishes lost').to.equal(0);
    expect(probeReport.confirmed).to.equal(probeReport.published);
    expect(probeReport.worstConfirmMs, 'the longest a confirm waited').to.be.below(CONFIRM_WAIT_LIMIT_MS);
  });
});
