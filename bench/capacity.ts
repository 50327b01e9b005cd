// The saga figure's capacity search, the same for the fleet and for its baseline: orders
// offered at rising rates, each rate held for a step, then waited for until every order the
// step offered is final. A step passes when every order it offered completed and the p99 of
// their times, from when each was due to its final state, is under P99_LIMIT_MS. The
// capacity is the highest rate that passed.
import { setTimeout as sleep } from 'node:timers/promises';
import type { NewOrder } from '../shared/orders/store';
import { latencySummary, openLoop } from './lib';

/** A saga that takes longer than this at p99 is past capacity: the orders queue up. */
export const P99_LIMIT_MS = 2_000;

/** How often the wait asks whether the step's orders are final. */
const SETTLE_POLL_MS = 250;

/** The order every saga of the figure runs: one line in stock, an approved card, a country with a carrier (it is fulfilled). */
export const BENCH_ORDER: Omit<NewOrder, 'customerId'> = {
  items: [{ sku: 'PROD-003', quantity: 1, unitPrice: 4.5 }],
  currency: 'EUR',
  shippingAddress: { city: 'Berlin', country: 'DE' },
  paymentToken: 'tok_ok',
};

/** Where the orders go: the fleet through its API, or the baseline. */
export interface SagaTarget {
  /** Places one order and has its saga run; its id once accepted, undefined when refused. The key is the order's idempotency key. */
  offer(key: string): Promise<string | undefined>;
  /** When each of these orders reached its final state (epoch ms), for those that have. */
  finals(ids: readonly string[]): Promise<ReadonlyMap<string, number>>;
}

/** The steps of a search: the rates and how long each is held and waited for. */
export interface SearchPlan {
  /** Rising, in orders per second. */
  rates: number[];
  stepSeconds: number;
  /** The longest wait for a step's orders after its last offer (then for a last failed step's, before what runs next). */
  settleSeconds: number;
  /** At the first rate, before the search: the workflow cache, the JIT and the pools warm. */
  warmUpSeconds: number;
}

/** The rates step, 2·step, … up to max. */
export function risingRates(step: number, max: number): number[] {
  return Array.from({ length: Math.floor(max / step) }, (_, i) => (i + 1) * step);
}

export interface StepFigures {
  /** Offered orders per second. */
  rate: number;
  seconds: number;
  offered: number;
  /** Orders that reached a final state within the wait. */
  completed: number;
  /** Completed orders per second, from the step's start to the last final state. */
  completedPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Offers refused or failed, and accepted orders not final when the wait ran out. */
  errors: number;
  passed: boolean;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

/** Waits until every one of the orders is final, or the wait runs out; when each that did became final. */
async function settle(target: SagaTarget, ids: readonly string[], seconds: number): Promise<ReadonlyMap<string, number>> {
  let done = await target.finals(ids);
  for (const deadline = Date.now() + seconds * 1_000; done.size < ids.length && Date.now() < deadline; done = await target.finals(ids)) await sleep(SETTLE_POLL_MS);
  return done;
}

/** One step: `rate` orders a second for `seconds`, then the wait; its figures, and the orders still open when the wait ran out. */
async function runStep(target: SagaTarget, rate: number, seconds: number, settleSeconds: number, keyPrefix: string): Promise<{ figures: StepFigures; open: string[] }> {
  const dueAt = new Map<string, number>(); // order id → when it was due (epoch ms, the clock the final states are read in)
  const start = Date.now();
  const load = await openLoop(rate, seconds, async (i) => {
    const due = start + 50 + (i * 1_000) / rate; // openLoop's own schedule
    const id = await target.offer(`${keyPrefix}-${i}`);
    if (id === undefined) return false;
    dueAt.set(id, due);
    return true;
  });
  const ids = [...dueAt.keys()];
  const done = await settle(target, ids, settleSeconds);
  const s = latencySummary([...done].map(([id, at]) => at - dueAt.get(id)!));
  const last = Math.max(start, ...done.values());
  const errors = load.errors + (ids.length - done.size);
  return {
    figures: {
      rate,
      seconds,
      offered: load.sent,
      completed: done.size,
      completedPerSec: last > start ? round1(done.size / ((last - start) / 1000)) : 0,
      p50Ms: s.p50,
      p99Ms: s.p99,
      maxMs: s.max,
      errors,
      passed: errors === 0 && done.size === load.sent && s.p99 < P99_LIMIT_MS,
    },
    open: ids.filter((id) => !done.has(id)),
  };
}

/** The warm-up: the first rate for warmUpSeconds, waited for like a step; not reported. */
export async function warmUp(target: SagaTarget, plan: SearchPlan, name: string): Promise<void> {
  await runStep(target, plan.rates[0]!, plan.warmUpSeconds, plan.settleSeconds, `${name}-warm-up`);
}

/**
 * The search, after warmUp. Each step starts once the one before is settled: a step that
 * passed has every order final; the search ends at the first that fails. A rate above one
 * that failed would start on the backlog the failed step may have left (its wait ran out),
 * so it would measure that backlog rather than its rate; and a pass there would be the
 * run-to-run noise of a rate at capacity, for another 20 to 50 s of a full run. Before it
 * returns, the failed step's open orders are waited for once more, so that what runs next
 * does not share the machine with them.
 */
export async function capacitySearch(target: SagaTarget, plan: SearchPlan, name: string): Promise<{ capacityPerS: number; steps: StepFigures[] }> {
  const steps: StepFigures[] = [];
  for (const rate of plan.rates) {
    const { figures, open } = await runStep(target, rate, plan.stepSeconds, plan.settleSeconds, `${name}-${rate}`);
    steps.push(figures);
    const f = figures;
    console.log(`bench:   ${name} ${rate}/s: ${f.completed} of ${f.offered} completed, p50 ${f.p50Ms} ms, p99 ${f.p99Ms} ms, ${f.errors} errors: ${f.passed ? 'passed' : 'failed'}`);
    if (f.passed) continue;
    if (open.length > 0) {
      const left = open.length - (await settle(target, open, plan.settleSeconds)).size;
      if (left > 0) console.log(`bench:   ${name}: ${left} orders of the ${rate}/s step still open; what runs next shares the machine with them`);
    }
    break;
  }
  return { capacityPerS: steps.filter((s) => s.passed).at(-1)?.rate ?? 0, steps };
}
