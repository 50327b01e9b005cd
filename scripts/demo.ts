// npm run demo: against the running fleet (npm start), places one order per test trigger
// (docs/architecture.md#test-triggers) plus a customer cancellation, and prints a table of
// outcomes with each workflow's Web UI link. Exits 1 if an order ended other than expected.
// It calls the API as the customer `demo`, with a token signed by the development key (as
// `npm run token -- --customer demo` prints).
import { setTimeout as sleep } from 'node:timers/promises';
import { devTokenFor, SCOPES } from '../shared/auth';
import { getConfig } from '../shared/config';
import { SAGA, workflowIdOf, type SagaStatus } from '../shared/saga';
import { connectTemporal } from '../shared/temporal/client';
import { runCli } from './cli';

interface Scenario {
  name: string;
  expected: string;
  order: Record<string, unknown>;
  cancel?: boolean;
}

const base = { customerId: 'demo', currency: 'EUR', items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 12.5 }], shippingAddress: { city: 'Berlin', country: 'DE' }, paymentMethod: { token: 'tok_ok' } };

const SCENARIOS: Scenario[] = [
  { name: 'tok_ok', expected: 'fulfilled', order: base },
  { name: 'tok_flaky', expected: 'fulfilled', order: { ...base, paymentMethod: { token: 'tok_flaky' } } },
  { name: 'tok_decline', expected: 'cancelled: payment_declined', order: { ...base, paymentMethod: { token: 'tok_decline' } } },
  { name: 'PROD-OOS', expected: 'cancelled: out_of_stock', order: { ...base, items: [{ sku: 'PROD-OOS', quantity: 1, unitPrice: 5 }] } },
  { name: 'country XX', expected: 'cancelled: shipping_unavailable', order: { ...base, shippingAddress: { city: 'Nowhere', country: 'XX' } } },
  // tok_flaky keeps the saga in its payment step for a moment, so the cancellation lands before shipping.
  { name: 'customer cancel', expected: 'cancelled: customer_cancelled', order: { ...base, paymentMethod: { token: 'tok_flaky' } }, cancel: true },
];

/** How long the demo waits for order-api to answer, and how often it asks. */
const API_WAIT_MS = 30_000;
const API_POLL_MS = 500;
/** How long one of those requests may take: a fleet that is starting leaves the API little of the cores. */
const API_REQUEST_MS = 2_000;

runCli('demo', async () => {
  const config = getConfig();
  const api = `http://localhost:${config.httpPort}`;
  const uiPort = Number(config.temporalAddress.split(':').pop()) === 7233 ? 8233 : Number(config.temporalAddress.split(':').pop()) + 1000;
  // `npm start` prints its last line before order-api listens (on a slow machine, 10 s
  // before): a demo run right after it waits for the API rather than failing.
  const deadline = Date.now() + API_WAIT_MS;
  for (let first = true; ; first = false) {
    try {
      // A port that takes the connection and never answers counts as no answer.
      await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(API_REQUEST_MS) });
      break;
    } catch {
      if (Date.now() >= deadline) throw new Error(`order-api does not answer at ${api} after ${API_WAIT_MS / 1000} s: start the fleet with \`npm start\` first`);
      if (first) console.log(`demo: waiting up to ${API_WAIT_MS / 1000} s for order-api at ${api}`);
      await sleep(API_POLL_MS);
    }
  }
  const authorization = `Bearer ${await devTokenFor(config.auth, base.customerId, SCOPES.customer)}`;
  const temporal = await connectTemporal(config);
  try {
    const placed = await Promise.all(
      SCENARIOS.map(async (s) => {
        const started = Date.now();
        const res = await fetch(`${api}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(s.order) });
        if (res.status !== 202) throw new Error(`${s.name}: POST /orders answered ${res.status}: ${await res.text()}`);
        const { orderId } = (await res.json()) as { orderId: string };
        if (s.cancel) await fetch(`${api}/orders/${orderId}/cancel`, { method: 'POST', headers: { authorization } });
        return { s, orderId, started };
      }),
    );
    const rows = await Promise.all(
      placed.map(async ({ s, orderId, started }) => {
        for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
          const order = (await (await fetch(`${api}/orders/${orderId}`, { headers: { authorization } })).json()) as { status?: string; cancellationReason?: string };
          if (order.status === 'fulfilled' || order.status === 'cancelled') {
            const status = await temporal.workflow.getHandle(workflowIdOf(orderId)).query<SagaStatus>(SAGA.statusQuery);
            const actual = order.status === 'fulfilled' ? 'fulfilled' : `cancelled: ${order.cancellationReason ?? '?'}`;
            return { ...s, orderId, actual, compensations: status.compensationsRun.join(', ') || '-', seconds: ((Date.now() - started) / 1000).toFixed(1) };
          }
        }
        return { ...s, orderId, actual: 'not final after 60 s', compensations: '?', seconds: '>60' };
      }),
    );
    const header = ['scenario', 'order id', 'expected', 'actual', 'ok', 'compensations', 'time (s)', 'Web UI'];
    const table = rows.map((r) => [r.name, r.orderId, r.expected, r.actual, r.actual === r.expected ? 'yes' : 'NO', r.compensations, r.seconds, `http://localhost:${uiPort}/namespaces/${config.temporalNamespace}/workflows/${workflowIdOf(r.orderId)}`]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] ?? '').length)));
    const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
    console.log(line(header));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const row of table) console.log(line(row));
    return rows.every((r) => r.actual === r.expected) ? 0 : 1;
  } finally {
    await temporal.connection.close();
  }
});
