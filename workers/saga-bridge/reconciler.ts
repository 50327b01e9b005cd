// The reconciler: the safety net for a Temporal that lost sagas (a wiped dev server, a
// restored backup, a namespace deleted by mistake). It reads the accepted orders from the
// order store, oldest first, and asks Temporal about each one's saga, `order-<orderId>`:
//
//   no workflow                         → starts the saga
//   running                             → nothing
//   closed, the order no longer accepted → nothing (it finished after the order was read)
//   completed, the order still accepted → finishes it: a new run that records the outcome the
//                                         completed run returned, without running any step
//   closed otherwise (terminated, failed, timed out, cancelled), the order still accepted
//                                       → restarts it: a new run from the first step
//   closed like that after it had begun compensating
//                                       → leaves it for an operator (a new run would capture
//                                         "again", be answered "captured" from the payments
//                                         store, and could fulfil an order already refunded)
//   closed while still accepted, and the run was the reconciler's own
//                                       → leaves it for an operator (a saga that fails again
//                                         the same way would be restarted for ever)
//
// Why this is safe to do again and again, and from several replicas at once: a start is
// refused while a run of the id is running, so two passes make one run; and a saga that runs
// again repeats its steps under the same ids. Activity ids are the steps' sequence numbers, so
// a new run's commands carry the ids its lost run's did (derived from {workflowId,
// activityId}): the workers answer them from their dedup store or, when Redis lost it, from
// their database, whose constraints keep one capture, reservation and shipment per order. A
// payment captured before the state was lost is not charged again; the new run gets its
// answer. The outcome events' ids derive from the workflow id, so the read model and the
// notifications take a repeated one once.
//
// What a new run cannot know: a cancellation the lost run had accepted (the customer was told
// 202). A run started from the first step goes on as if it had never been asked.
import { setTimeout as sleep } from 'node:timers/promises';
import { NamespaceNotFoundError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { query, type Pool } from '../../shared/db';
import { DependencyUnavailableError, errorMessage } from '../../shared/errors';
import type { Logger } from '../../shared/observability/logger';
import { storedStatus } from '../../shared/orders/store';
import { SAGA_STEPS, workflowIdOf, type RecordedOutcome, type SagaStatus } from '../../shared/saga';
import { classifyTemporalError } from '../../shared/temporal/client';
import { startSaga } from '../../shared/temporal/saga-start';

/** Accepted orders looked at per pass of the schedule (and per page of a full pass). */
export const RECONCILE_BATCH = 500;
/** At most this many sagas started per second, so that a pass after a wipe does not flood the fleet. */
export const RECONCILE_STARTS_PER_SECOND = 20;
/** The memo of every run the reconciler starts: the Web UI shows it, and the next pass reads it. */
const STARTED_BY_RECONCILER = { startedBy: 'reconciler' } as const;

export type ReconcileVerdict = 'started' | 'restarted' | 'finished' | 'left for an operator' | 'error';

/** One order the reconciler acted on (or, in a dry run, would have). */
export interface ReconcileAction {
  orderId: string;
  /** What it found, e.g. "no workflow", "workflow terminated". */
  found: string;
  action: ReconcileVerdict;
  dryRun: boolean;
  /** The error, for action "error". */
  detail?: string;
}

export interface ReconcileSummary {
  /** Accepted orders older than the grace period that it looked at. */
  checked: number;
  /** Of those, sagas running (or that finished while it looked): nothing to do. */
  running: number;
  started: number;
  restarted: number;
  finished: number;
  leftForOperator: number;
  errors: number;
}

/** Where a pass stopped: the next one resumes after this order. */
export interface ReconcileCursor {
  createdAt: string;
  orderId: string;
}

export interface ReconcileOptions {
  /** Orders younger than this are left alone: their saga may still be on its way. */
  graceMs: number;
  /** Report what it would do, and change nothing. */
  dryRun?: boolean;
  /** Default RECONCILE_BATCH */
  batchSize?: number;
  /** Default RECONCILE_STARTS_PER_SECOND */
  startsPerSecond?: number;
  /** Resume after this order; default: from the oldest. */
  after?: ReconcileCursor;
  /** Stops the pass between two orders. */
  signal?: AbortSignal;
  /** Called for each order it acted on, as it goes. */
  onAction?: (action: ReconcileAction) => void;
}

export interface ReconcileDeps {
  db: Pool;
  client: Client;
}

export interface ReconcileResult {
  summary: ReconcileSummary;
  actions: ReconcileAction[];
  /** Where to resume; undefined when the pass reached the newest order. */
  next?: ReconcileCursor;
}

export const emptySummary = (): ReconcileSummary => ({ checked: 0, running: 0, started: 0, restarted: 0, finished: 0, leftForOperator: 0, errors: 0 });

/** The outcome a completed saga returned, when it returned one the saga can record again. */
function recordedOutcomeOf(result: SagaStatus | undefined): RecordedOutcome | undefined {
  if (result?.outcome === 'fulfilled') return { outcome: 'fulfilled' };
  if (result?.outcome === 'cancelled' && result.cancellationReason) {
    return { outcome: 'cancelled', cancellationReason: result.cancellationReason, ...(result.failedStep ? { failedStep: result.failedStep } : {}) };
  }
  return undefined;
}

const outcomeText = (o: RecordedOutcome): string => (o.outcome === 'cancelled' ? `cancelled: ${o.cancellationReason}` : o.outcome);

/** The saga's compensations, by activity type. */
const COMPENSATIONS: ReadonlySet<string> = new Set(SAGA_STEPS.map((s) => s.undo.activity));

/** Whether a run scheduled any compensation: it had begun undoing what its steps did. */
async function compensated(client: Client, workflowId: string, runId: string): Promise<boolean> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return (history.events ?? []).some((e) => COMPENSATIONS.has(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''));
}

async function stillAccepted(db: Pool, orderId: string): Promise<boolean> {
  return (await storedStatus(db, orderId)) === 'accepted';
}

type Outcome = { kind: 'running' } | { kind: 'acted'; found: string; action: Exclude<ReconcileVerdict, 'error'> };

/** Decides on one order and, unless it is a dry run, acts. */
async function reconcileOrder({ db, client }: ReconcileDeps, orderId: string, dryRun: boolean): Promise<Outcome> {
  const workflowId = workflowIdOf(orderId);
  const act = async (found: string, action: 'started' | 'restarted' | 'finished', start: () => Promise<'started' | 'already_started'>): Promise<Outcome> => {
    // Another pass, a replica or the saga starter got there first: a run is going now.
    if (!dryRun && (await start()) === 'already_started') return { kind: 'running' };
    return { kind: 'acted', found, action };
  };
  let description;
  try {
    description = await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    return act('no workflow', 'started', () => startSaga(client, { orderId }, { memo: STARTED_BY_RECONCILER, by: 'reconciler' }));
  }
  const status = description.status.name;
  if (status === 'RUNNING' || status === 'PAUSED') return { kind: 'running' };
  // A saga records its outcome before its run completes, so the order read before the describe
  // may have become final since: read it again.
  if (!(await stillAccepted(db, orderId))) return { kind: 'running' };
  const found = `workflow ${status.toLowerCase().replace(/_/g, ' ')}`;
  if (description.memo?.startedBy === STARTED_BY_RECONCILER.startedBy) return { kind: 'acted', found: `${found} (a run the reconciler started)`, action: 'left for an operator' };
  const restart = { reuse: 'ALLOW_DUPLICATE', memo: STARTED_BY_RECONCILER, by: 'reconciler' } as const;
  if (status === 'COMPLETED') {
    const recorded = recordedOutcomeOf((await client.workflow.getHandle(workflowId, description.runId).result()) as SagaStatus | undefined);
    // Its steps and compensations are done and match that outcome; running them again could
    // reach another (a cancellation the customer asked for is not in a new run's input).
    if (recorded) return act(`${found} (${outcomeText(recorded)})`, 'finished', () => startSaga(client, { orderId, recordOutcome: recorded }, restart));
  }
  // Its refunds and releases may be done: a run from the first step would not know, and its
  // capture is answered "captured" from the payments store, so the order could end fulfilled
  // with its payment refunded.
  if (await compensated(client, workflowId, description.runId)) return { kind: 'acted', found: `${found} after compensating`, action: 'left for an operator' };
  return act(found, 'restarted', () => startSaga(client, { orderId }, restart));
}

/**
 * One pass over up to `batchSize` accepted orders older than the grace period, oldest first.
 * Fails (changing nothing more) when PostgreSQL or Temporal is unreachable or the namespace is
 * gone; an error about one order is counted and the pass goes on.
 */
export async function reconcileBatch(deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileResult> {
  const batchSize = options.batchSize ?? RECONCILE_BATCH;
  const pauseMs = 1_000 / (options.startsPerSecond ?? RECONCILE_STARTS_PER_SECOND);
  const dryRun = options.dryRun ?? false;
  const rows = await query<{ order_id: string; created_at: string }>(
    deps.db,
    // created_at as text: a JS Date would drop the microseconds the next page resumes after.
    `SELECT order_id, created_at::text AS created_at FROM orders.orders
      WHERE status = 'accepted' AND created_at < now() - $1::double precision * interval '1 millisecond'
        AND ($2::timestamptz IS NULL OR (created_at, order_id) > ($2::timestamptz, $3::text))
      ORDER BY created_at, order_id LIMIT $4`,
    [options.graceMs, options.after?.createdAt ?? null, options.after?.orderId ?? null, batchSize],
  );
  const summary = emptySummary();
  const actions: ReconcileAction[] = [];
  let last: ReconcileCursor | undefined;
  for (const row of rows) {
    if (options.signal?.aborted) break;
    last = { createdAt: row.created_at, orderId: row.order_id };
    summary.checked++;
    let action: ReconcileAction;
    try {
      const outcome = await reconcileOrder(deps, row.order_id, dryRun);
      if (outcome.kind === 'running') {
        summary.running++;
        continue;
      }
      action = { orderId: row.order_id, found: outcome.found, action: outcome.action, dryRun };
    } catch (err) {
      const classified = classifyTemporalError(err);
      if (classified instanceof DependencyUnavailableError || err instanceof NamespaceNotFoundError) throw classified;
      action = { orderId: row.order_id, found: 'an error', action: 'error', dryRun, detail: errorMessage(err) };
    }
    if (action.action === 'started') summary.started++;
    else if (action.action === 'restarted') summary.restarted++;
    else if (action.action === 'finished') summary.finished++;
    else if (action.action === 'left for an operator') summary.leftForOperator++;
    else summary.errors++;
    actions.push(action);
    options.onAction?.(action);
    if (!dryRun && ['started', 'restarted', 'finished'].includes(action.action)) await sleep(pauseMs);
  }
  const reachedTheEnd = rows.length < batchSize && !options.signal?.aborted;
  return { summary, actions, next: reachedTheEnd ? undefined : last };
}

/** Every accepted order older than the grace period, a batch at a time (`npm run reconcile`). */
export async function reconcileAll(deps: ReconcileDeps, options: Omit<ReconcileOptions, 'after'>): Promise<ReconcileResult> {
  const summary = emptySummary();
  const actions: ReconcileAction[] = [];
  let after: ReconcileCursor | undefined;
  do {
    const page = await reconcileBatch(deps, { ...options, after });
    for (const key of Object.keys(summary) as Array<keyof ReconcileSummary>) summary[key] += page.summary[key];
    actions.push(...page.actions);
    after = page.next;
  } while (after && !options.signal?.aborted);
  return { summary, actions };
}

/** One line per order acted on: what it found and what it did (or would do). */
export function actionLine(a: ReconcileAction): string {
  const did: Record<Exclude<ReconcileVerdict, 'error'>, [done: string, wouldDo: string]> = {
    started: ['started its saga', 'would start its saga'],
    restarted: ['started a new run of its saga from the first step', 'would start a new run of its saga from the first step'],
    finished: ['started a run that records that outcome', 'would start a run that records that outcome'],
    'left for an operator': ['left it for an operator', 'would leave it for an operator'],
  };
  if (a.action === 'error') return `order ${a.orderId}: failed: ${a.detail ?? ''}`;
  return `order ${a.orderId}: ${a.found}, order still accepted → ${did[a.action][a.dryRun ? 1 : 0]}`;
}

export function summaryLine(s: ReconcileSummary, graceMs: number, dryRun: boolean): string {
  const acted = dryRun
    ? `${s.started} to start, ${s.restarted} to restart, ${s.finished} to finish, ${s.leftForOperator} for an operator`
    : `${s.started} started, ${s.restarted} restarted, ${s.finished} finished, ${s.leftForOperator} left for an operator`;
  return `checked ${s.checked} accepted orders older than ${graceMs / 1000} s: ${acted}, ${s.running} running, ${s.errors} errors${dryRun ? ' (dry run: nothing changed)' : ''}`;
}

/**
 * The reconciler on a schedule, inside a process of the fleet (the saga-bridge): a batch
 * every `intervalMs`, resuming where the last one stopped, never two at once. A failed pass
 * (Temporal or PostgreSQL down) is logged and tried again next time.
 */
export class ReconcileSchedule {
  private timer?: NodeJS.Timeout;
  private pass?: Promise<void>;
  private cursor?: ReconcileCursor;
  private readonly stopping = new AbortController();

  constructor(
    private readonly deps: ReconcileDeps,
    private readonly options: { intervalMs: number; graceMs: number },
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.stopping.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.pass = this.runOnce().finally(() => {
        this.pass = undefined;
        this.start();
      });
    }, this.options.intervalMs);
    this.timer.unref(); // the process's connections keep it alive, not the schedule
  }

  private async runOnce(): Promise<void> {
    try {
      const { summary, next } = await reconcileBatch(this.deps, {
        graceMs: this.options.graceMs,
        after: this.cursor,
        signal: this.stopping.signal,
        onAction: (a) => this.logger.info({ orderId: a.orderId, found: a.found, action: a.action, detail: a.detail }, `reconciler: ${actionLine(a)}`),
      });
      this.cursor = next;
      const acted = summary.checked - summary.running > 0;
      this.logger[acted ? 'info' : 'debug']({ ...summary }, `reconciler: ${summaryLine(summary, this.options.graceMs, false)}`);
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, `reconciler: pass failed; trying again in ${this.options.intervalMs / 1000} s`);
    }
  }

  /** Stops the schedule; a pass in progress stops after the order it is on. */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.timer);
    await this.pass;
  }
}
