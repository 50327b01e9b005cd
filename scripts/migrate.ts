// npm run migrate: creates the database if needed and applies every pending migration.
import { getConfig, redact } from '../shared/config';
import { migrate } from '../shared/db/migrate';
import { runCli } from './cli';

runCli('migrate', async () => {
  const { databaseUrl } = getConfig();
  try {
    const applied = await migrate(databaseUrl);
    console.log(applied.length > 0 ? `applied ${applied.join(', ')}` : 'database is up to date');
    return 0;
  } catch (err) {
    throw new Error(`cannot migrate ${redact(databaseUrl)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
});
