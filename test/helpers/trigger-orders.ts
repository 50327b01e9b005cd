// Orders of every test trigger for the end-to-end runs that break things (a cluster losing
// nodes, replicas killed): each one's body, what it costs, and a client that retries it
// through outages with its own Idempotency-Key, as the chaos run's clients do, with the
// customer's token (the fleet's development key: fleetTokens).
import { setTimeout as sleep } from 'node:timers/promises';
import type { PlacedOrder, Scenario } from '../../scripts/chaos/checks';
import { bearer, fleetTokens } from './auth';

/** Every trigger whose outcome an order's body decides (a customer's cancel is the chaos run's). */
export const TRIGGERS: readonly Scenario[] = ['tok_ok', 'tok_flaky', 'tok_decline', 'PROD-OOS', 'country XX'];

/** How long a client keeps retrying one request. */
const CLIENT_DEADLINE_MS = 120_000;
const CLIENT_RETRY_MAX_MS = 2_000;

export function triggerOrder(scenario: Scenario, customerId: string, n: number): { body: Record<string, unknown>; items: PlacedOrder['items']; totalAmount: number } {
  const items = [{ sku: `PROD-00${(n % 9) + 1}`, quantity: (n % 3) + 1, unitPrice: 12.5 }];
  if (scenario === 'PROD-OOS') items.push({ sku: 'PROD-OOS', quantity: 1, unitPrice: 5 });
  const token = scenario === 'tok_decline' ? 'tok_decline' : scenario === 'tok_flaky' ? 'tok_flaky' : 'tok_ok';
  const body = { customerId, items, currency: 'EUR', shippingAddress: { city: 'Testville', country: scenario === 'country XX' ? 'XX' : 'DE' }, paymentMethod: { token } };
  return { body, items, totalAmount: Math.round(items.reduce((s, i) => s + i.quantity * i.unitPrice * 100, 0)) / 100 };
}

/** Places an order, retrying through outages; the order as the checks of scripts/chaos/checks.ts take it. */
export async function placeTriggerOrder(api: string, scenario: Scenario, customerId: string, n: number, idempotencyKey: string): Promise<PlacedOrder> {
  const order = triggerOrder(scenario, customerId, n);
  const authorization = bearer(await (await fleetTokens()).customer(customerId));
  const deadline = Date.now() + CLIENT_DEADLINE_MS;
  let last = 'no answer';
  for (let delay = 100; Date.now() < deadline; delay = Math.min(delay * 2, CLIENT_RETRY_MAX_MS)) {
    try {
      const res = await fetch(`${api}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey, ...authorization },
        body: JSON.stringify(order.body),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status === 202) return { orderId: ((await res.json()) as { orderId: string }).orderId, scenario, items: order.items, totalAmount: order.totalAmount };
      last = `${res.status} ${await res.text()}`;
      if (res.status < 500) break;
    } catch (err) {
      last = err instanceof Error ? err.message : 'failed';
    }
    await sleep(delay);
  }
  throw new Error(`order #${n} (${scenario}) was not accepted: ${last}`);
}

/** The status of an order in the read model, or undefined while it has none (read as an operator). */
export async function readModelStatus(api: string, orderId: string): Promise<string | undefined> {
  const headers = bearer(await (await fleetTokens()).operator());
  const res = await fetch(`${api}/orders/${orderId}`, { headers, signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  return res?.status === 200 ? ((await res.json()) as { status: string }).status : undefined;
}

export const isFinal = (status: string | undefined): boolean => status === 'fulfilled' || status === 'cancelled';
