// The outbox's figures for Prometheus, read by one query per scrape: how many events wait in
// the event store unsent, and how old the oldest is. Both order-api (whose /metrics outlives a
// relay that is down) and the outbox relay (beside its rate, outbox_events_published_total in
// outbox.ts) serve them.
import { Gauge, type Registry } from 'prom-client';
import { query, type Pool } from '../../shared/db';
import { withDeadline } from '../../shared/runtime/deadline';

/** How long a scrape waits for the outbox figures, in ms; without them the gauges read NaN. */
const OUTBOX_METRICS_DEADLINE_MS = 2_000;

/** Registers outbox_unsent_events and outbox_oldest_unsent_age_seconds in the registry, read from db at each scrape. */
export function registerOutboxGauges(db: Pool, registry: Registry): void {
  // Accepted orders that do not leave the outbox (the relay or the broker is away): the signal
  // for the pipeline behind the API. Both gauges are read by one query per scrape.
  let reading: Promise<{ n: number; age: number } | undefined> | undefined;
  const readOutbox = (): Promise<{ n: number; age: number } | undefined> =>
    (reading ??= withDeadline(
      query<{ n: number; age: number }>(db, 'SELECT count(*)::int AS n, coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8 AS age FROM orders.events WHERE sent_at IS NULL'),
      OUTBOX_METRICS_DEADLINE_MS,
    )
      .then(([row]) => row, () => undefined) // PostgreSQL does not answer: unknown, which is not "nothing waits"
      .finally(() => (reading = undefined)));
  new Gauge({
    name: 'outbox_unsent_events',
    help: 'Events in the event store (the outbox) not yet confirmed by the broker (NaN when PostgreSQL does not answer)',
    registers: [registry],
    async collect() {
      this.set((await readOutbox())?.n ?? Number.NaN);
    },
  });
  new Gauge({
    name: 'outbox_oldest_unsent_age_seconds',
    help: 'Age of the oldest event in the outbox not yet confirmed by the broker; 0 when none waits (NaN when PostgreSQL does not answer)',
    registers: [registry],
    async collect() {
      this.set((await readOutbox())?.age ?? Number.NaN);
    },
  });
}
