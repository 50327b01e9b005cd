// saga: how many sagas a second the real fleet (`npm start`, its own Temporal dev server)
// carries with p99 under 2 s, from each order's POST /orders to the read model's final
// update: a capacity search (bench/capacity.ts) at rising rates. Then, on the same dev server
// while the fleet is up, the same search against the baseline (bench/saga-baseline.ts): the
// same saga with the workers' handlers called in-process. With each search, the CPU each
// process used (bench/cpu.ts).
import { devTokenFor, SCOPES } from '../shared/auth';
import { ulid } from 'ulid';
import type { Config } from '../shared/config';
import { createPool } from '../shared/db';
import { AmqpConnection } from '../shared/messaging/connection';
import { deleteNamespace, StartedFleet } from '../scripts/fleet';
import { freeFixedPorts, portOf, release, TEMPORAL_UI_OFFSET } from '../scripts/ports';
import { BENCH_ORDER, capacitySearch, P99_LIMIT_MS, risingRates, warmUp, type SagaTarget, type SearchPlan, type StepFigures } from './capacity';
import { parentOf, startCpuMeter } from './cpu';
import { bundleSaga, startBaseline } from './saga-baseline';
import { generatedNamespace } from '../scripts/bus';

/** The search's settings (bench/index.ts's SIZES). */
export interface SagaSizes {
  /** The rates are step, 2·step, … up to maxRate (orders/s). */
  sagaStep: number;
  sagaMaxRate: number;
  sagaStepSeconds: number;
  sagaSettleSeconds: number;
  sagaWarmUpSeconds: number;
  /** Also search the baseline with eager workflow start, to measure what it would give the fleet. */
  sagaEagerBaseline: boolean;
}

export interface SagaFigures {
  /** The highest rate at which every order completed with p99 under p99LimitMs (0: none). */
  capacityPerS: number;
  /** The same, of the baseline. */
  baselineCapacityPerS: number;
  /** capacityPerS / baselineCapacityPerS (0 when the baseline's is 0). */
  ratio: number;
  p99LimitMs: number;
  steps: StepFigures[];
  baselineSteps: StepFigures[];
  /** Cores each process used during each search (CPU seconds ÷ wall seconds); `bench` is this process (the load, and the baseline's worker). */
  cpu: { fleet: Record<string, number>; baseline: Record<string, number>; eagerBaseline?: Record<string, number> };
  /**
   * The baseline again with eager workflow start (bench/saga-baseline.ts), when sagaEagerBaseline:
   * its capacity, its steps, and how many of its starts the server made eager.
   */
  eagerBaseline?: { capacityPerS: number; steps: StepFigures[]; started: number; eager: number };
}

export async function benchSaga(config: Config, sizes: SagaSizes): Promise<SagaFigures> {
  const plan: SearchPlan = { rates: risingRates(sizes.sagaStep, sizes.sagaMaxRate), stepSeconds: sizes.sagaStepSeconds, settleSeconds: sizes.sagaSettleSeconds, warmUpSeconds: sizes.sagaWarmUpSeconds };
  const namespace = generatedNamespace('bench');
  // Ports below the ephemeral range (a kernel-picked port could be a connection's before the
  // fleet binds it): order-api's, and the dev server's with its Web UI's. Held only while
  // picked, so that they are free together; released before the fleet starts.
  const [http, temporal] = [await freeFixedPorts(), await freeFixedPorts([TEMPORAL_UI_OFFSET])];
  const [httpPort, temporalPort] = [http && portOf(http[0]!), temporal && portOf(temporal[0]!)]; // read before release: a closed server has no address
  await release([...(http ?? []), ...(temporal ?? [])]);
  if (!httpPort || !temporalPort) throw new Error('saga: no free ports below the ephemeral range for order-api and the Temporal dev server');
  const api = `http://127.0.0.1:${httpPort}`;
  const temporalAddress = `127.0.0.1:${temporalPort}`;
  // Bundling the baseline's workflow code takes seconds of CPU: meanwhile the fleet starts.
  const bundling = bundleSaga();
  bundling.catch(() => undefined); // awaited (and its failure thrown) when the baseline starts
  // No reconciler: orders an earlier, interrupted bench left accepted would be started during
  // the measurement (their sagas are not in this fleet's new Temporal state).
  // No rate limits: the offered rate is above them. Its order-api verifies with the development key devTokenFor signs with.
  const fleet = new StartedFleet({
    BUS_NAMESPACE: namespace,
    HTTP_PORT: String(httpPort),
    TEMPORAL_ADDRESS: temporalAddress,
    LOG_LEVEL: 'warn',
    DATABASE_URL: config.databaseUrl,
    RECONCILE_INTERVAL_MS: '0',
    RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '0',
    RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '0',
  });
  const db = createPool(config.databaseUrl, 'bench-saga', 4);
  const customerId = `bench-saga-${ulid()}`;
  const { paymentToken, ...order } = BENCH_ORDER;
  const body = JSON.stringify({ customerId, ...order, paymentMethod: { token: paymentToken } });
  try {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${await devTokenFor(config.auth, customerId, SCOPES.customer)}` };
    await fleet.waitFor(/\[start\] Ctrl-C stops everything/, 180_000);
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      if (await fetch(`${api}/readyz`).then((r) => r.ok, () => false)) break;
    }
    // Every process of the fleet (the dev server is `temporal`), and `npm start` itself: it
    // relays every line they print. Its pid is their parent's.
    const devServer = fleet.pidOf('temporal');
    const supervisor = devServer === undefined ? undefined : parentOf(devServer);
    const processes = (): Map<string, number> => new Map([...fleet.pids, ...(supervisor ? [['start', supervisor] as const] : [])]);

    const ours: SagaTarget = {
      async offer(key) {
        const res = await fetch(`${api}/orders`, { method: 'POST', headers: { ...headers, 'idempotency-key': key }, body });
        return res.status === 202 ? ((await res.json()) as { orderId: string }).orderId : undefined;
      },
      async finals(ids) {
        const r = await db.query<{ order_id: string; updated_at: Date }>("SELECT order_id, updated_at FROM read_model.orders WHERE order_id = ANY($1) AND status IN ('fulfilled', 'cancelled')", [ids]);
        return new Map(r.rows.map((x) => [x.order_id, x.updated_at.getTime()]));
      },
    };
    await warmUp(ours, plan, 'fleet');
    const meter = startCpuMeter(processes);
    const fleetSearch = await capacitySearch(ours, plan, 'fleet');
    const fleetCpu = meter();

    const workflowBundle = await bundling;
    /** A search of the baseline (a new worker and task queue each time), with the CPU each process used. */
    const searchBaseline = async (eagerStart: boolean) => {
      const baseline = await startBaseline(config, temporalAddress, workflowBundle, { eagerStart });
      try {
        const name = eagerStart ? 'baseline, eager start' : 'baseline';
        await warmUp(baseline, plan, name);
        const measure = startCpuMeter(processes);
        const search = await capacitySearch(baseline, plan, name);
        return { ...search, cpu: measure(), ...baseline.starts() };
      } finally {
        await baseline.stop();
      }
    };
    console.log('bench:   baseline: the same saga, its activities calling the handlers in-process');
    const baselineSearch = await searchBaseline(false);
    let eager: Awaited<ReturnType<typeof searchBaseline>> | undefined;
    if (sizes.sagaEagerBaseline) {
      console.log('bench:   baseline with eager workflow start: its client on its worker\'s connection');
      eager = await searchBaseline(true);
    }
    return {
      capacityPerS: fleetSearch.capacityPerS,
      baselineCapacityPerS: baselineSearch.capacityPerS,
      ratio: baselineSearch.capacityPerS === 0 ? 0 : Math.round((fleetSearch.capacityPerS / baselineSearch.capacityPerS) * 1000) / 1000,
      p99LimitMs: P99_LIMIT_MS,
      steps: fleetSearch.steps,
      baselineSteps: baselineSearch.steps,
      cpu: { fleet: fleetCpu, baseline: baselineSearch.cpu, ...(eager && { eagerBaseline: eager.cpu }) },
      ...(eager && { eagerBaseline: { capacityPerS: eager.capacityPerS, steps: eager.steps, started: eager.started, eager: eager.eager } }),
    };
  } finally {
    await fleet.stop();
    const amqp = new AmqpConnection({ url: config.amqpUrl, name: 'bench-saga-cleanup' });
    await amqp.start();
    const left = await deleteNamespace(amqp.channelModel!, namespace);
    if (left.length > 0) console.warn(`bench: could not delete from the broker: ${left.join(', ')}`);
    await amqp.close();
    await db.end();
  }
}
