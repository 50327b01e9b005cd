// npm run bench [-- --quick] [--only publish,consume,api,saga,outbox,replay,events,tracing] [--out FILE]
// Measures each figure against its baseline in the same run, prints a table and writes
// bench/results/latest.json with the machine and the versions of every service.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { getConfig } from '../shared/config';
import { migrate } from '../shared/db/migrate';
import { silentLogger } from '../shared/observability/logger';
import { runCli, UsageError } from '../scripts/cli';
import { databaseBeside } from '../scripts/fleet';
import { benchApi } from './api';
import { environment, vacuum } from './lib';
import { benchConsume, benchPublish } from './messaging';
import { benchEventStore } from './event-store';
import { benchOutbox } from './outbox';
import { benchReplay } from './replay';
import { benchSaga } from './saga';
import { benchTracing } from './tracing';

const FIGURES = ['publish', 'consume', 'api', 'saga', 'outbox', 'replay', 'events', 'tracing'] as const;
type Figure = (typeof FIGURES)[number];

/**
 * Sizes of a full run and of --quick (within 150 s in all). The saga's capacity search offers
 * sagaStep, 2·sagaStep, … up to sagaMaxRate orders/s, each for sagaStepSeconds, and waits up to
 * sagaSettleSeconds for each step's orders; the fleet's search, then the baseline's, then (a
 * full run) the baseline's with eager workflow start. A quick run has two steps (5 and 10/s)
 * of 4 s: a smoke run of the search, not a capacity.
 */
const SIZES = {
  full: { messages: 50_000, rounds: 2, apiRate: 300, apiAlsoRates: [1_000], apiSeconds: 30, sagaStep: 5, sagaMaxRate: 60, sagaStepSeconds: 20, sagaSettleSeconds: 30, sagaWarmUpSeconds: 5, sagaEagerBaseline: true, outboxRate: 3_000, outboxSeconds: 20, outboxBacklog: 20_000, replayMessages: 50_000, appends: 2_000, contended: 1_000, rebuildOrders: 40_000, tracingMessages: 50_000 },
  quick: { messages: 5_000, rounds: 1, apiRate: 300, apiAlsoRates: [], apiSeconds: 5, sagaStep: 5, sagaMaxRate: 10, sagaStepSeconds: 4, sagaSettleSeconds: 8, sagaWarmUpSeconds: 2, sagaEagerBaseline: false, outboxRate: 3_000, outboxSeconds: 3, outboxBacklog: 5_000, replayMessages: 5_000, appends: 500, contended: 200, rebuildOrders: 4_000, tracingMessages: 5_000 },
};

const GOALS: Record<Figure, string> = {
  publish: 'ratio ≥ 0.9',
  consume: 'ratio ≥ 0.8',
  api: 'p99 ≤ 15 ms and ≤ ¼ of the synchronous p99',
  saga: '≥ 30 sagas/s at p99 < 2 s, and ≥ 0.7 of the baseline',
  outbox: '≥ 3,000 rows/s, p99 < 50 ms',
  replay: '≥ 10,000 msg/s',
  events: 'rebuild ≥ 20,000 events/s (Emmett 0.42: 991); batched appends vs Emmett 0.42: 9,862 events/s',
  tracing: 'tracing off (no endpoint): ratio ≥ 0.95',
};

/** Emmett 0.42's projection rebuild on this kind of machine, in events/s: the events figure's baseline, recorded once, not measured in the run. */
const EMMETT_REBUILD_PER_S = 991;

const ratioOf = (value: number, baseline: number): number => (baseline === 0 ? 0 : Math.round((value / baseline) * 1000) / 1000);

/**
 * A figure as latest.json holds it: its own fields, and the four every figure has, so that a
 * reader finds each figure's the same way: value (ours), baseline (what it is measured
 * against), ratio (value ÷ baseline, unless the figure says otherwise) and goal.
 */
function figure<T extends object>(name: Figure, detail: T, value: number, baseline: number, ratio = ratioOf(value, baseline)): T & { value: number; baseline: number; ratio: number; goal: string } {
  return { ...detail, value, baseline, ratio, goal: GOALS[name] };
}

runCli('bench', async () => {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, out: { type: 'string' } }, strict: true });
  const only = (values.only?.split(',') ?? [...FIGURES]) as Figure[];
  for (const f of only) if (!FIGURES.includes(f)) throw new UsageError(`--only takes a comma-separated list of ${FIGURES.join(', ')} (got "${f}")`);
  const size = values.quick ? SIZES.quick : SIZES.full;
  // A database of the bench's own: its relays drain whatever outbox they see.
  const config = { ...getConfig(), databaseUrl: databaseBeside(getConfig().databaseUrl, 'bench') };
  await migrate(config.databaseUrl, silentLogger);
  const started = Date.now();
  const results: Record<string, unknown> = {};
  const rows: Array<[Figure, string, string, string, boolean]> = [];
  const step = (name: string): void => console.log(`bench: ${name}…`);
  /** The step of a figure that writes to the bench database: vacuumed first, so that no earlier run's dead rows weigh on it. */
  const databaseStep = async (name: string): Promise<void> => {
    step(name);
    await vacuum(config.databaseUrl);
  };

  if (only.includes('publish')) {
    step('publish');
    const r = await benchPublish(config, size.messages, size.rounds);
    results.publish = figure('publish', r, r.ours, r.baseline, r.ratio);
    rows.push(['publish', `${r.ours} msg/s`, `raw amqplib ${r.baseline} msg/s`, `ratio ${r.ratio}`, r.ratio >= 0.9]);
  }
  if (only.includes('consume')) {
    step('consume');
    const r = await benchConsume(config, size.messages, size.rounds);
    results.consume = figure('consume', r, r.ours, r.baseline, r.ratio);
    rows.push(['consume', `${r.ours} msg/s`, `raw amqplib ${r.baseline} msg/s`, `ratio ${r.ratio}`, r.ratio >= 0.8]);
  }
  if (only.includes('api')) {
    await databaseStep(`api (${[size.apiRate, ...size.apiAlsoRates].join(' and ')} req/s for ${size.apiSeconds} s, each side)`);
    const r = await benchApi(config, size.apiRate, size.apiSeconds, size.apiAlsoRates);
    for (const a of r.also) console.log(`bench:   api at ${a.rate} req/s: ours p50 ${a.ours.p50Ms} ms, p99 ${a.ours.p99Ms} ms, ${a.ours.errors} errors; synchronous p50 ${a.sync.p50Ms} ms, p99 ${a.sync.p99Ms} ms, ${a.sync.errors} errors`);
    results.api = figure('api', r, r.ours.p99Ms, r.sync.p99Ms, r.p99Ratio);
    rows.push(['api', `p50 ${r.ours.p50Ms} ms, p99 ${r.ours.p99Ms} ms`, `synchronous p50 ${r.sync.p50Ms} ms, p99 ${r.sync.p99Ms} ms`, `p99 ratio ${r.p99Ratio}`, r.ours.p99Ms <= 15 && r.p99Ratio <= 0.25 && r.ours.errors === 0]);
  }
  if (only.includes('saga')) {
    await databaseStep(`saga (capacity: ${size.sagaStep} to ${size.sagaMaxRate} orders/s in steps of ${size.sagaStep}, ${size.sagaStepSeconds} s each; the fleet, then the baseline${size.sagaEagerBaseline ? ', then the baseline with eager start' : ''})`);
    const r = await benchSaga(config, size);
    results.saga = figure('saga', r, r.capacityPerS, r.baselineCapacityPerS, r.ratio);
    rows.push(['saga', `capacity ${r.capacityPerS} sagas/s (p99 < ${r.p99LimitMs / 1000} s)`, `in-process activities ${r.baselineCapacityPerS} sagas/s`, `ratio ${r.ratio}${r.eagerBaseline ? `; baseline with eager start ${r.eagerBaseline.capacityPerS} sagas/s (${r.eagerBaseline.eager} of ${r.eagerBaseline.started} eager)` : ''}`, r.capacityPerS >= 30 && r.ratio >= 0.7]);
  }
  if (only.includes('outbox')) {
    await databaseStep(`outbox (${size.outboxRate} commits/s for ${size.outboxSeconds} s; a backlog of ${size.outboxBacklog})`);
    const r = await benchOutbox(config, size.outboxRate, size.outboxSeconds, size.outboxBacklog);
    results.outbox = figure('outbox', r, r.steady.rowsPerSec, r.steady.offeredPerSec);
    rows.push(['outbox', `${r.steady.rowsPerSec} rows/s at ${r.steady.offeredPerSec} offered${r.steady.writeErrors > 0 ? ` (${r.steady.writeErrors} writes failed)` : ''}`, `drain ${r.drain.rowsPerSec} rows/s`, `p50 ${r.steady.p50Ms} ms, p99 ${r.steady.p99Ms} ms`, r.steady.rowsPerSec >= 3_000 * 0.98 && r.steady.p99Ms < 50]);
  }

  if (only.includes('replay')) {
    step(`replay (${size.replayMessages} events from the archive into a queue)`);
    const r = await benchReplay(config, size.replayMessages);
    results.replay = figure('replay', r, r.ours, r.baseline, r.ratio);
    rows.push(['replay', `${r.ours} msg/s`, `raw stream read ${r.baseline} msg/s`, `ratio ${r.ratio}`, r.ours >= 10_000]);
  }

  if (only.includes('events')) {
    await databaseStep(`event store (${size.appends} appends from one writer, ${size.appends * 4} from 16, ${size.contended} racing on one stream; a rebuild after ${size.rebuildOrders} more orders)`);
    const r = await benchEventStore(config, size);
    results.events = figure('events', r, r.rebuild.eventsPerSec, EMMETT_REBUILD_PER_S);
    rows.push([
      'events',
      `rebuild ${r.rebuild.eventsPerSec} events/s; appends ${r.appends.oneWriterPerSec}/s (1 writer), ${r.appends.concurrentPerSec}/s (16), ${r.appends.batchedPerSec}/s (batches of ${r.appends.batchSize})`,
      `Emmett 0.42: rebuild ${EMMETT_REBUILD_PER_S}, batched appends 9,862 events/s`,
      `one stream, 8 writers: ${r.contention.perSec} appends/s, ${r.contention.retriesPerAppend} retries each, p99 ${r.contention.p99Ms} ms`,
      r.rebuild.eventsPerSec >= 20_000,
    ]);
  }

  if (only.includes('tracing')) {
    step(`tracing (${size.tracingMessages} publishes in a process of their own, each of 4 ways, ${size.rounds} round(s))`);
    const r = await benchTracing(config, size.tracingMessages, size.rounds);
    results.tracing = figure('tracing', r, r.rates.off, r.rates.baseline, r.ratios.off);
    rows.push([
      'tracing',
      `off ${r.rates.off} msg/s; unsampled ${r.rates.unsampled}; exported ${r.rates.exported}`,
      `no tracing module ${r.rates.baseline} msg/s`,
      `ratios: off ${r.ratios.off}, unsampled ${r.ratios.unsampled}, exported ${r.ratios.exported}`,
      r.ratios.off >= 0.95,
    ]);
  }

  const env = await environment(config);
  const report = { when: new Date().toISOString(), mode: values.quick ? 'quick' : 'full', seconds: Math.round((Date.now() - started) / 1000), ...env, goals: GOALS, results };
  const out = resolve(values.out ?? resolve(__dirname, 'results', 'latest.json'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  const header = ['figure', 'ours', 'baseline', 'comparison', 'goal', 'met'];
  const table = rows.map(([f, ours, base, cmp, met]) => [f, ours, base, cmp, GOALS[f], met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of table) console.log(line(r));
  console.log(`\n${env.machine.cores} cores (${env.machine.cpu}), ${env.machine.memoryGiB} GiB; node ${env.versions.node}, RabbitMQ ${env.versions.rabbitmq}, Redis ${env.versions.redis}, PostgreSQL ${env.versions.postgresql}, ${env.versions.temporal.split('\n')[0]}`);
  console.log(`${report.seconds} s in all; written to ${out}`);
  return 0;
});
