// npm run projections:rebuild -- <name>
// Rebuilds a projection's table from the whole event store into a shadow table while the live
// one keeps serving, then swaps it in atomically (shared/projections/rebuild.ts says how).
// Progress on stderr at most once a second; a summary line on stdout. Exits 0 when rebuilt,
// 1 when it failed (the live table is then as it was) or another rebuild of the projection is
// running, 2 for a missing or unknown name.
import { parseArgs } from 'node:util';
import { getConfig } from '../shared/config';
import { createPool } from '../shared/db';
import { errorMessage } from '../shared/errors';
import { PROJECTION_NAMES, projectionNamed } from '../shared/projections';
import { rebuildProjection, type RebuildSummary } from '../shared/projections/rebuild';
import { runCli, UsageError } from './cli';

const USAGE = `usage: npm run projections:rebuild -- <name>   (names: ${PROJECTION_NAMES.join(', ')})`;

/** A rebuild's statements (a batch of 10,000 events, the swap) outlast a handler's deadline. */
const REBUILD_STATEMENT_TIMEOUT_MS = 30 * 60_000;

/** The line a rebuild ends with on stdout. */
export function summaryLine(s: RebuildSummary): string {
  return `rebuilt ${s.projection}: ${s.events} events, ${s.rows} rows in ${s.seconds} s (${s.eventsPerSec} events/s)`;
}

if (require.main === module) {
  runCli('projections:rebuild', async () => {
    let parsed;
    try {
      parsed = parseArgs({ args: process.argv.slice(2), options: {}, strict: true, allowPositionals: true });
    } catch (err) {
      throw new UsageError(`${errorMessage(err)}\n${USAGE}`);
    }
    const [name, extra] = parsed.positionals;
    if (name === undefined) throw new UsageError(`name the projection to rebuild\n${USAGE}`);
    if (!projectionNamed(name)) throw new UsageError(`unknown projection "${name}"\n${USAGE}`);
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"\n${USAGE}`);
    const config = getConfig();
    // Two connections: one writes (and holds the rebuild's lock), the other reads the next batch meanwhile.
    const db = createPool(config.databaseUrl, 'projections-rebuild', { max: 2, connectTimeoutMs: config.databaseConnectTimeoutMs, statementTimeoutMs: REBUILD_STATEMENT_TIMEOUT_MS });
    try {
      let shown = Date.now();
      const summary = await rebuildProjection(db, name, {
        onProgress: (p) => {
          if (Date.now() - shown < 1_000) return;
          shown = Date.now();
          console.error(`projections:rebuild: ${name}: ${p.events} events read, ${p.eventsPerSec} events/s`);
        },
      });
      console.log(summaryLine(summary));
      return 0;
    } finally {
      await db.end();
    }
  });
}
