// npm run bench [-- --quick] [--only publish,consume,api,saga,outbox] [--out FILE]
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
import { environment } from './lib';
import { benchConsume, benchPublish } from './messaging';
import { benchOutbox } from './outbox';
import { benchSaga } from './saga';

const FIGURES = ['publish', 'consume', 'api', 'saga', 'outbox'] as const;
type Figure = (typeof FIGURES)[number];

/** Sizes of a full run and of --quick (under 2 minutes in all). */
const SIZES = {
  full: { messages: 50_000, rounds: 2, apiRate: 300, apiSeconds: 30, sagaRate: 30, sagaSeconds: 60, outboxRate: 3_000, outboxSeconds: 20, outboxBacklog: 20_000 },
  quick: { messages: 5_000, rounds: 1, apiRate: 300, apiSeconds: 5, sagaRate: 30, sagaSeconds: 10, outboxRate: 3_000, outboxSeconds: 3, outboxBacklog: 5_000 },
};

const GOALS: Record<Figure, string> = {
  publish: 'ratio ≥ 0.9',
  consume: 'ratio ≥ 0.8',
  api: 'p99 ≤ 15 ms and ≤ ¼ of the synchronous p99',
  saga: '≥ 30 completed/s, p99 < 2 s',
  outbox: '≥ 3,000 rows/s, p99 < 50 ms',
};

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

  if (only.includes('publish')) {
    step('publish');
    const r = await benchPublish(config, size.messages, size.rounds);
    results.publish = r;
    rows.push(['publish', `${r.ours} msg/s`, `raw amqplib ${r.baseline} msg/s`, `ratio ${r.ratio}`, r.ratio >= 0.9]);
  }
  if (only.includes('consume')) {
    step('consume');
    const r = await benchConsume(config, size.messages, size.rounds);
    results.consume = r;
    rows.push(['consume', `${r.ours} msg/s`, `raw amqplib ${r.baseline} msg/s`, `ratio ${r.ratio}`, r.ratio >= 0.8]);
  }
  if (only.includes('api')) {
    step(`api (${size.apiRate} req/s for ${size.apiSeconds} s, each side)`);
    const r = await benchApi(config, size.apiRate, size.apiSeconds);
    results.api = r;
    rows.push(['api', `p50 ${r.ours.p50Ms} ms, p99 ${r.ours.p99Ms} ms`, `synchronous p50 ${r.sync.p50Ms} ms, p99 ${r.sync.p99Ms} ms`, `p99 ratio ${r.p99Ratio}`, r.ours.p99Ms <= 15 && r.p99Ratio <= 0.25 && r.ours.errors === 0]);
  }
  if (only.includes('saga')) {
    step(`saga (${size.sagaRate} orders/s for ${size.sagaSeconds} s)`);
    const r = await benchSaga(config, size.sagaRate, size.sagaSeconds);
    results.saga = r;
    rows.push(['saga', `${r.completedPerSec} completed/s`, `offered ${r.offeredPerSec}/s`, `p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`, r.completedPerSec >= 30 && r.p99Ms < 2_000 && r.errors === 0]);
  }
  if (only.includes('outbox')) {
    step(`outbox (${size.outboxRate} commits/s for ${size.outboxSeconds} s; a backlog of ${size.outboxBacklog})`);
    const r = await benchOutbox(config, size.outboxRate, size.outboxSeconds, size.outboxBacklog);
    results.outbox = r;
    rows.push(['outbox', `${r.steady.rowsPerSec} rows/s at ${r.steady.offeredPerSec} offered`, `drain ${r.drain.rowsPerSec} rows/s`, `p50 ${r.steady.p50Ms} ms, p99 ${r.steady.p99Ms} ms`, r.steady.rowsPerSec >= 3_000 * 0.98 && r.steady.p99Ms < 50]);
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
