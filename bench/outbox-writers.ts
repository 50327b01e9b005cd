// The outbox figure's writers, in a process of their own as order-api is: the relay measured
// in bench/outbox.ts then shares no event loop with 3,000 commits a second, as in the fleet,
// where it runs in its own process too. Usage: outbox-writers.ts <rate> <seconds>; DATABASE_URL
// names the database. Each write is an append of a 1 KB order.placed to a new stream in a
// transaction of its own (as POST /orders makes one). At the end it prints one JSON line:
// `committed`, each event it committed with machineMs() when its commit returned, and
// `errors`, the writes that failed.
import { getConfig } from '../shared/config';
import { createPool, withTransaction } from '../shared/db';
import { appendToStream } from '../shared/event-store';
import { kilobyteEvent, openLoop } from './lib';

/** Milliseconds on the machine's monotonic clock, to the fraction: the same clock in every process, whatever the wall clock does. */
export const machineMs = (): number => Number(process.hrtime.bigint()) / 1e6;

async function main(): Promise<void> {
  const [rate, seconds] = process.argv.slice(2).map(Number);
  if (!(rate! > 0 && seconds! > 0)) throw new Error('usage: outbox-writers.ts <rate> <seconds>');
  const db = createPool(getConfig().databaseUrl, 'bench-outbox-writers', 40);
  const committed: Array<[string, number]> = [];
  try {
    // A write that fails counts as an error of the loop (openLoop catches it) and is told below.
    const { errors } = await openLoop(rate!, seconds!, async () => {
      const e = kilobyteEvent();
      await withTransaction(db, (tx) => appendToStream(tx, e.aggregateId, 0, [e]));
      committed.push([e.eventId, machineMs()]);
      return true;
    });
    process.stdout.write(`${JSON.stringify({ committed, errors })}\n`);
  } finally {
    await db.end();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`outbox-writers: ${String(err)}`);
    process.exit(1);
  });
}
