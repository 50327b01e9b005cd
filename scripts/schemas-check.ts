// npm run schemas:check [-- --write] [--catalog <module>] [--lock <file>]
// Enforces the evolution rules of each message type's compatibility mode (backward, forward
// or full) between every pair of its versions, and that a published version (one in the lock
// file) never changes. --write adds new versions to the lock.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkCatalog, extendLock, type CatalogLike, type SchemaLock } from '../shared/events/compat';
import { runCli } from './cli';

runCli('schemas:check', () => {
  const { values } = parseArgs({
    options: {
      catalog: { type: 'string', default: resolve(__dirname, '../shared/events/catalog.ts') },
      lock: { type: 'string', default: resolve(__dirname, '../shared/events/schemas.lock.json') },
      write: { type: 'boolean', default: false },
    },
    strict: true,
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(resolve(values.catalog)) as { catalog?: CatalogLike };
  if (!loaded.catalog) throw new Error(`${values.catalog} exports no "catalog"`);
  const lock: SchemaLock = existsSync(values.lock) ? (JSON.parse(readFileSync(values.lock, 'utf8')) as SchemaLock) : {};
  const problems = checkCatalog(loaded.catalog, lock);
  if (problems.length > 0) {
    for (const p of problems) console.error(`✗ ${p}`);
    console.error(`${problems.length} schema problem(s)`);
    return 1;
  }
  const types = Object.keys(loaded.catalog).length;
  if (values.write) {
    writeFileSync(values.lock, `${JSON.stringify(extendLock(loaded.catalog, lock), null, 2)}\n`);
    console.log(`✓ ${types} message types compatible; lock written to ${values.lock}`);
  } else {
    console.log(`✓ ${types} message types compatible between their versions, each as its mode says, and with the lock`);
  }
  return 0;
});
