// npm run reconcile [-- --dry-run]
// One reconciler pass over every accepted order older than RECONCILE_GRACE_MS: starts the
// saga of an order that has none, finishes or restarts one that ended without making its
// order final (workers/saga-bridge/reconciler.ts says how it decides, and why it is safe).
// Prints a line per order it acted on and a summary. Exits 0 when done, 1 when PostgreSQL or
// Temporal is unreachable or an order failed, 2 on bad flags.
import { parseArgs } from 'node:util';
import { getConfig, redact } from '../shared/config';
import { createPool, query } from '../shared/db';
import { errorMessage } from '../shared/errors';
import { connectTemporal } from '../shared/temporal/client';
import { actionLine, reconcileAll, summaryLine } from '../workers/saga-bridge/reconciler';
import { runCli, UsageError } from './cli';

const USAGE = 'usage: npm run reconcile -- [--dry-run]';

runCli('reconcile', async () => {
  let parsed;
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options: { 'dry-run': { type: 'boolean', default: false } }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(`${errorMessage(err)}\n${USAGE}`);
  }
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"\n${USAGE}`);
  const dryRun = parsed.values['dry-run'];
  const config = getConfig();
  const db = createPool(config.databaseUrl, 'reconcile', 2);
  try {
    await query(db, 'SELECT 1').catch((err: unknown) => {
      throw new Error(`PostgreSQL is not reachable at ${redact(config.databaseUrl)}: ${errorMessage(err)}`);
    });
    const client = await connectTemporal(config).catch((err: unknown) => {
      throw new Error(`Temporal is not reachable at ${config.temporalAddress}: ${errorMessage(err)}`);
    });
    try {
      const { summary } = await reconcileAll({ db, client }, { graceMs: config.reconcileGraceMs, dryRun, onAction: (a) => console.log(actionLine(a)) });
      console.log(`reconcile: ${summaryLine(summary, config.reconcileGraceMs, dryRun)}`);
      return summary.errors === 0 ? 0 : 1;
    } finally {
      await client.connection.close();
    }
  } finally {
    await db.end();
  }
});
