// `npm start -- --replicas payments=2,order-projection=2` on the local broker: each replica is
// a process of its own (`payments#1`…), the payments replicas compete for the same commands,
// and the order-projection's partitions spread over its replicas, one active consumer each.
// One replica of each is SIGKILLed mid-flow: every order still completes once, and each
// order's history stays in order.
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { checkConservation, checkEffects, checkOutcomes, moneyOf, openOrders, otherStockMoves, stockLevels, type Checks, type PlacedOrder, checkProjections, emptyChecks } from '../../scripts/chaos/checks';
import { StartedFleet } from '../../scripts/fleet';
import { deleteFleetNamespace, dropDatabase, testDatabaseUrl } from '../helpers/fleet';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { silentLogger } from '../../shared/observability/logger';
import { PARTITIONS } from '../../workers/order-projection/topology';
import { freePort } from '../helpers/services';
import { NO_RATE_LIMITS } from '../helpers/auth';
import { placeTriggerOrder, TRIGGERS } from '../helpers/trigger-orders';
import { eventually } from '../helpers/wait';
import { generatedNamespace } from '../../scripts/bus';

const TEST_TIMEOUT_MS = 600_000;
/** An order every this often (pacing the traffic, not waiting for anything). */
const ORDER_EVERY_MS = 300;
const ORDERS_BEFORE_KILL = 16;
const ORDERS_AFTER_KILL = 16;
const SETTLE_MS = 180_000;

/** Which replica handled which partition's events, from the fleet's log lines (`[order-projection#2] {…"queue":…,"outcome":"handled"}`). */
function partitionsHandled(lines: readonly string[], namespace: string): Map<string, Set<string>> {
  const byPartition = new Map<string, Set<string>>();
  for (const line of lines) {
    const match = /^\[(order-projection#\d+)\] (\{.*\})$/.exec(line);
    if (!match) continue;
    let entry: { queue?: string; outcome?: string };
    try {
      entry = JSON.parse(match[2]!) as { queue?: string; outcome?: string };
    } catch {
      continue;
    }
    if (entry.outcome !== 'handled' || !entry.queue?.startsWith(`${namespace}.order-projection.p`)) continue;
    const partition = entry.queue.slice(`${namespace}.order-projection.`.length);
    byPartition.set(partition, (byPartition.get(partition) ?? new Set()).add(match[1]!));
  }
  return byPartition;
}

describe('npm start -- --replicas payments=2,order-projection=2', function () {
  this.timeout(TEST_TIMEOUT_MS);
  const namespace = generatedNamespace('test-fleet');
  const databaseUrl = testDatabaseUrl('e2e_replicas');
  let fleet: StartedFleet | undefined;
  let db: Pool | undefined;
  let api = '';

  before(async () => {
    await migrate(databaseUrl, silentLogger);
    db = createPool(databaseUrl, 'test-e2e-replicas');
    const httpPort = await freePort();
    api = `http://127.0.0.1:${httpPort}`;
    fleet = new StartedFleet(
      { BUS_NAMESPACE: namespace, HTTP_PORT: String(httpPort), TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`, DATABASE_URL: databaseUrl, RECONCILE_INTERVAL_MS: '0', LOG_LEVEL: 'info', ...NO_RATE_LIMITS },
      undefined,
      ['--replicas', 'payments=2,order-projection=2'],
    );
    await fleet.waitFor(/^\[start\] Ctrl-C stops everything/, 240_000);
    for (const replica of ['payments#1', 'payments#2', 'order-projection#1', 'order-projection#2']) {
      await fleet.waitFor(new RegExp(`^\\[${replica}\\].*worker started`), 240_000);
    }
    await fleet.waitFor(/^\[order-api\].*order-api listening/, 240_000);
    await fleet.waitFor(/^\[temporal-worker\].*temporal worker started/, 240_000);
    await fleet.waitFor(/^\[saga-bridge\].*worker started/, 240_000);
    await fleet.waitFor(/^\[outbox-relay\].*outbox relay started/, 240_000);
    // Each projection replica consumes every partition: its own at once, the others (standing
    // by) STANDBY_AFTER_MS later. A kill before that would find no one standing by.
    for (const replica of ['order-projection#1', 'order-projection#2']) {
      for (let p = 0; p < PARTITIONS; p++) await fleet.waitFor(new RegExp(`^\\[${replica}\\] .*"queue":"${namespace}\\.order-projection\\.p${p}".*"msg":"consuming"`), 60_000);
    }
  });

  after(async () => {
    await fleet?.stop();
    await db?.end();
    try {
      await deleteFleetNamespace(namespace, 'test-e2e-replicas-cleanup');
    } finally {
      await dropDatabase(databaseUrl);
    }
  });

  it('runs each replica as a process of its own, named <process>#k, and gives each projection replica its share of the partitions first', async () => {
    const pids = ['payments#1', 'payments#2', 'order-projection#1', 'order-projection#2'].map((name) => fleet!.pids.get(name));
    expect(pids.every((pid) => typeof pid === 'number')).to.equal(true, `pids ${JSON.stringify([...fleet!.pids])}`);
    expect(new Set(pids).size).to.equal(4);
    expect(fleet!.pids.has('payments')).to.equal(false);
    expect(fleet!.pids.get('inventory')).to.be.a('number');
    for (const [replica, own] of [
      ['order-projection#1', ['p0', 'p2']],
      ['order-projection#2', ['p1', 'p3']],
    ] as const) {
      await fleet!.waitFor(new RegExp(`^\\[${replica}\\] .*"own":\\[${own.map((p) => `"${namespace}\\.order-projection\\.${p}"`).join(',')}\\].*partitions first`), 30_000);
    }
  });

  it('completes every order once, each history in order, when a replica of payments and of the projection is SIGKILLed mid-flow', async () => {
    const start = await stockLevels(db!);
    const placed: PlacedOrder[] = [];
    const placing: Array<Promise<void>> = [];
    const errors: string[] = [];
    let stop = false;
    let n = 0;
    const traffic = (async () => {
      while (!stop) {
        const i = n++;
        placing.push(placeTriggerOrder(api, TRIGGERS[i % TRIGGERS.length]!, `c-${namespace}`, i, `${namespace}-${i}`).then((o) => void placed.push(o), (err: unknown) => void errors.push(String(err))));
        await sleep(ORDER_EVERY_MS);
      }
    })();
    let beforeKill: Map<string, Set<string>>;
    let linesAtKill: number;
    try {
      // Mid-flow: orders placed, some of them already through the projection, more coming.
      // Three partitions of four: both replicas' shares, if they are spread.
      await eventually(() => placed.length >= ORDERS_BEFORE_KILL && partitionsHandled(fleet!.lines, namespace).size >= 3, { timeoutMs: 120_000, what: 'orders through three partitions or more' });
      linesAtKill = fleet!.lines.length;
      beforeKill = partitionsHandled(fleet!.lines, namespace);
      await fleet!.kill('payments#1');
      await fleet!.kill('order-projection#1');
      const atKill = placed.length;
      await eventually(() => placed.length >= atKill + ORDERS_AFTER_KILL, { timeoutMs: 120_000, what: 'orders after the kills' });
    } finally {
      stop = true;
      await traffic;
      await Promise.all(placing);
    }
    expect(errors, 'every order was accepted').to.deep.equal([]);
    const ids = placed.map((o) => o.orderId);
    await eventually(async () => (await openOrders(db!, ids)).length === 0, { timeoutMs: SETTLE_MS, intervalMs: 500, what: 'every order final' });

    const checks: Checks = emptyChecks();
    const outcomes = await checkOutcomes(db!, placed, checks);
    await checkEffects(db!, placed, outcomes, checks);
    await checkProjections(db!, ids, checks);
    const end = await stockLevels(db!);
    checkConservation(placed, outcomes, { before: start.stock, after: end.stock, others: await otherStockMoves(db!, ids, start.at) }, await moneyOf(db!, ids), checks);
    expect({ lost: checks.lost, wrongOutcome: checks.wrongOutcome, duplicated: checks.duplicated, conservation: checks.conservation, ordering: checks.ordering, projections: checks.projections }).to.deep.equal({
      lost: [],
      wrongOutcome: [],
      duplicated: [],
      conservation: [],
      ordering: [],
      projections: [],
    });

    // Only the two replicas the test killed exited, and npm start ran them again.
    expect(fleet!.exits.map((line) => line.replace(/; restarting.*$/, ''))).to.have.members(['[start] payments#1 exited (SIGKILL)', '[start] order-projection#1 exited (SIGKILL)']);

    // One active consumer per partition, spread over both replicas; the partitions of the
    // killed one moved to the other.
    for (const [partition, replicas] of beforeKill!) expect([...replicas], `${partition} before the kill`).to.have.length(1);
    expect(new Set([...beforeKill!.values()].flatMap((r) => [...r])).size, 'replicas active before the kill').to.equal(2);
    const afterKill = partitionsHandled(fleet!.lines.slice(linesAtKill!), namespace);
    const movedTo = [...afterKill].filter(([p]) => ['p0', 'p2'].includes(p)).flatMap(([, r]) => [...r]);
    expect(movedTo, "the killed replica's partitions, after the kill").to.include('order-projection#2');
    expect(PARTITIONS).to.equal(4);
  });
});
