// What `npm run where-is` knows about an order (its facts), the one-line verdict drawn from
// them, and how both are printed. Pure: no I/O, so the verdict is unit-tested from facts
// alone (test/unit/where-is-verdict.test.ts); scripts/where-is.ts gathers the facts.
// Which worker and queue a saga step waits on is derived, never listed here: the pending
// activity → SAGA_STEPS → its command → the fleet's queue bound to that command.
import { catalog, type MessageType } from '../shared/events';
import { dlqName, inNamespace, topicMatches } from '../shared/messaging/topology';
import type { OrderStatus } from '../shared/orders/order';
import { SAGA_MAX_RETRY_INTERVAL_MS, SAGA_REPLY_TYPES, SAGA_STEPS, type SagaStatus } from '../shared/saga';
import { FLEET } from './fleet';

/** How long something may look stuck before the verdict calls it stuck (an event unsent, a read model behind, a task not picked up). */
export const STALE_AFTER_MS = 10_000;

/** One event of the order's stream (orders.events). */
export interface EventFact {
  version: number;
  type: string;
  eventId: string;
  occurredAt: string;
  /** When the relay had the broker's confirm; null while it is in the outbox. */
  sentAt: string | null;
}

/** The order store: its stream, and its row in orders.orders. */
export interface StoreFacts {
  events: EventFact[];
  /** The state folded from the events (undefined when the stream has no order.placed). */
  folded?: { status: OrderStatus; cancellationReason?: string; failedStep?: string; cancellationRequested: boolean; placedAt: string };
  /** orders.orders: the order's current state, as the last append wrote it. */
  row?: { status: OrderStatus; cancellationReason: string | null; version: number; createdAt: string };
}

export interface ReadModelFacts {
  /** read_model.orders (the order-projection, from the bus). */
  orders?: { status: string; version: number; historyLength: number; updatedAt: string };
  /** Its events that arrived ahead of their turn (read_model.pending_events). */
  pendingEvents: number;
  /** read_model.customer_orders (the customer-orders worker, following the store). */
  customerOrders?: { status: string; version: number };
}

/** A pending activity of the saga's run (describe().raw.pendingActivities). */
export interface PendingActivityFact {
  activityId: string;
  activity: string;
  state: 'scheduled' | 'started' | 'cancel_requested' | 'paused' | 'pause_requested' | 'unknown';
  attempt: number;
  /** 0: unlimited. */
  maximumAttempts: number;
  scheduledTime?: string;
  lastStartedTime?: string;
  /** When the last failed attempt ended. */
  lastAttemptCompleteTime?: string;
  /** While it waits to be retried. */
  nextAttemptScheduleTime?: string;
  lastFailure?: string;
}

export type WorkflowFacts =
  | { state: 'unavailable'; address: string; error: string }
  | { state: 'none'; workflowId: string }
  | {
      state: 'found';
      workflowId: string;
      runId: string;
      /** RUNNING, COMPLETED, FAILED, TERMINATED, … */
      status: string;
      taskQueue: string;
      startTime: string;
      closeTime?: string;
      historyLength: number;
      /** The `status` query's answer (running), or the completed run's result. */
      saga?: SagaStatus;
      /** Why the saga's status could not be read (a query needs a Temporal worker). */
      sagaError?: string;
      pendingActivities: PendingActivityFact[];
      pendingWorkflowTask?: { state: 'scheduled' | 'started' | 'unknown'; scheduledTime?: string; attempt: number };
    };

/** What the workers recorded for the order, in their own schemas. */
export interface WorkerFacts {
  payments: {
    capture?: { paymentId: string; amount: string; currency: string; capturedAt: string };
    refund?: { amount: string; refundedAt: string };
    decline?: { reason: string; declinedAt: string };
    providerCalls?: number;
    voidedAt?: string;
  };
  inventory: { reservation?: { items: Array<{ sku: string; quantity: number }>; reservedAt: string; releasedAt: string | null }; voidedAt?: string };
  shipping: {
    shipment?: { shipmentId: string; carrier: string; country: string; city: string; status: string; scheduledAt: string; cancelledAt: string | null };
    voidedAt?: string;
  };
  notifications: Array<{ kind: string; createdAt: string }>;
}

/** A queue's depth and consumers (channel.checkQueue), by its name on the broker. */
export type QueueFact = { name: string; exists: true; ready: number; consumers: number } | { name: string; exists: false };

/** A dead-lettered message about the order. */
export interface DeadLetterFact {
  /** The consumer queue it was dead-lettered from, as the broker names it. */
  queue: string;
  dlq: string;
  messageId: string;
  type: string;
  /** x-error-type: x-error-message, or the broker's own reason. */
  reason: string;
  attempts: number;
  deadLetteredAt: string;
  /** Where the order id was found: x-aggregate-id, aggregateId, data.orderId or body. */
  matchedBy: string;
}

export type BrokerFacts =
  | { reachable: false; error: string }
  | {
      reachable: true;
      /** The queues the verdict needs: the pending step's command queue and the reply queue. */
      queues: QueueFact[];
      /** DLQs looked into, and those that held more messages than were looked at. */
      dlqsChecked: number;
      dlqsPartlyChecked: Array<{ dlq: string; messages: number; lookedAt: number }>;
      deadLetters: DeadLetterFact[];
    };

export interface WhereIsFacts {
  orderId: string;
  /** When the facts were gathered: every age is counted to it. */
  checkedAt: string;
  /** BUS_NAMESPACE ('' for none). */
  namespace: string;
  store: StoreFacts;
  readModel: ReadModelFacts;
  workflow: WorkflowFacts;
  workers: WorkerFacts;
  broker: BrokerFacts;
}

// ---- The fleet's queues, derived from its topologies ----

/** A queue of the fleet and the process that consumes it. */
export interface FleetQueue {
  process: string;
  queue: string;
}

/** Every queue a process of the fleet consumes, in the namespace. */
export function fleetQueues(namespace: string): FleetQueue[] {
  return FLEET.flatMap((p) => (p.broker?.consumes ? p.broker.topology(namespace).queues.map((q) => ({ process: p.name, queue: q.name })) : []));
}

/** The fleet's queues a message of this type reaches (bound to its exchange with a matching key). */
export function queuesReceiving(type: MessageType, namespace: string): FleetQueue[] {
  const exchange = inNamespace(namespace, catalog[type].exchange);
  return FLEET.flatMap((p) =>
    p.broker?.consumes
      ? p.broker
          .topology(namespace)
          .queues.filter((q) => q.bind.some(([e, pattern]) => e === exchange && topicMatches(pattern, type)))
          .map((q) => ({ process: p.name, queue: q.name }))
      : [],
  );
}

/** Every DLQ of the fleet's queues, with its consumer queue. */
export function fleetDlqs(namespace: string): Array<{ queue: string; dlq: string }> {
  const seen = new Set<string>();
  return fleetQueues(namespace).flatMap(({ queue }) => (seen.has(queue) ? [] : (seen.add(queue), [{ queue, dlq: dlqName(queue) }])));
}

/** The saga's reply queue: the one that receives every result of every step (the reply bridge's). */
export function replyQueue(namespace: string): FleetQueue | undefined {
  const receiving = SAGA_REPLY_TYPES.map((t) => new Set(queuesReceiving(t, namespace).map((q) => q.queue)));
  return fleetQueues(namespace).find((q) => receiving.every((set) => set.has(q.queue)));
}

/** The worker step (or compensation) an activity is, with the command it publishes; undefined for the saga's own steps (markOrder…). */
export function workerStepOf(activity: string): { command: MessageType; compensation: boolean } | undefined {
  for (const s of SAGA_STEPS) {
    if (s.activity === activity) return { command: s.command, compensation: false };
    if (s.undo.activity === activity) return { command: s.undo.command, compensation: true };
  }
  return undefined;
}

/** The queue and worker an activity's command goes to; undefined for an activity that sends none. */
export function commandQueueOf(activity: string, namespace: string): FleetQueue | undefined {
  const step = workerStepOf(activity);
  return step ? queuesReceiving(step.command, namespace)[0] : undefined;
}

/** The queues whose depth the verdict needs: each pending worker step's command queue, and the reply queue. */
export function queuesToCheck(workflow: WorkflowFacts, namespace: string): string[] {
  if (workflow.state !== 'found') return [];
  const commandQueues = workflow.pendingActivities.flatMap((a) => commandQueueOf(a.activity, namespace)?.queue ?? []);
  if (commandQueues.length === 0) return [];
  const replies = replyQueue(namespace)?.queue;
  return [...new Set([...commandQueues, ...(replies ? [replies] : [])])];
}

// ---- The verdict ----

/** An age as people say it: 40 ms, 4.2 s, 42 s, 3 min, 2 h, 5 d. */
export function age(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 10) return `${Math.round(s * 10) / 10} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 120 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

const since = (f: WhereIsFacts, iso: string | undefined): number => (iso ? Date.parse(f.checkedAt) - Date.parse(iso) : 0);

const clip = (text: string, max = 140): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The order's status: as its events fold, else its row. */
export function statusOf(f: WhereIsFacts): OrderStatus | undefined {
  return f.store.folded?.status ?? f.store.row?.status;
}

const streamVersion = (f: WhereIsFacts): number => f.store.events.at(-1)?.version ?? f.store.row?.version ?? 0;

/** The first event still in the outbox. */
const firstUnsent = (f: WhereIsFacts): EventFact | undefined => f.store.events.find((e) => e.sentAt === null);

function outboxStuck(f: WhereIsFacts): string | undefined {
  const unsent = firstUnsent(f);
  if (!unsent || since(f, unsent.occurredAt) < STALE_AFTER_MS) return undefined;
  return `its ${unsent.type} has not left the outbox for ${age(since(f, unsent.occurredAt))}: is the outbox relay running?`;
}

function deadLettered(f: WhereIsFacts): string | undefined {
  if (!f.broker.reachable || f.broker.deadLetters.length === 0) return undefined;
  const [first, ...more] = f.broker.deadLetters;
  return `dead-lettered: ${first!.queue} (${clip(first!.reason, 120)})${more.length ? ` and ${more.length} more` : ''}`;
}

/** The read models behind the stream: their missing events left (or were appended) over STALE_AFTER_MS ago. */
function readModelBehind(f: WhereIsFacts): string | undefined {
  const version = streamVersion(f);
  const behind: Array<{ table: string; at: number; process: string }> = [];
  const rm = f.readModel.orders?.version ?? 0;
  // The order-projection reads the bus: an event it lacks counts once the relay sent it.
  const missedSent = f.store.events.find((e) => e.version === rm + 1)?.sentAt;
  if (rm < version && missedSent && since(f, missedSent) >= STALE_AFTER_MS) behind.push({ table: 'read_model.orders', at: rm, process: 'order-projection' });
  const co = f.readModel.customerOrders?.version ?? 0;
  // customer-orders follows the store itself: an event counts once it is appended.
  const missedAppended = f.store.events.find((e) => e.version === co + 1)?.occurredAt;
  if (co < version && missedAppended && since(f, missedAppended) >= STALE_AFTER_MS) behind.push({ table: 'read_model.customer_orders', at: co, process: 'customer-orders' });
  if (behind.length === 0) return undefined;
  const which = behind.map((b) => `${b.table} at version ${b.at} of ${version}`).join(', ');
  return `read model behind: ${which} (${behind.length === 1 ? 'is' : 'are'} ${behind.map((b) => b.process).join(' and ')} running?)`;
}

const queueFact = (f: WhereIsFacts, name: string): QueueFact | undefined => (f.broker.reachable ? f.broker.queues.find((q) => q.name === name) : undefined);

const attemptText = (a: PendingActivityFact): string => `attempt ${a.attempt}${a.lastFailure ? ` (last failure: ${clip(a.lastFailure, 80)})` : ''}`;

const consumersText = (n: number): string => (n === 1 ? '1 consumer' : `${n} consumers`);

/** Where a running saga is: the step it waits on and what holds it. */
function runningVerdict(f: WhereIsFacts, wf: Extract<WorkflowFacts, { state: 'found' }>): string {
  const noWorker = `on task queue ${wf.taskQueue} (is the temporal-worker running?)`;
  const a = wf.pendingActivities[0];
  if (!a) {
    const task = wf.pendingWorkflowTask;
    if (task?.state === 'scheduled' && since(f, task.scheduledTime) >= STALE_AFTER_MS) {
      return `waiting for a Temporal worker: its workflow task has waited ${age(since(f, task.scheduledTime))} ${noWorker}`;
    }
    return `in progress: ${wf.saga?.step ?? 'saga running'}`;
  }
  if (a.state === 'paused' || a.state === 'pause_requested') return `paused: ${a.activity} is paused in Temporal (unpause it in the Web UI or CLI)`;
  // Scheduled and not backing off, yet no worker took it: a first attempt since it was scheduled,
  // a retry since its last attempt ended (plus the longest retry interval of its kind).
  const longestRetry = workerStepOf(a.activity)?.compensation ? SAGA_MAX_RETRY_INTERVAL_MS.compensation : SAGA_MAX_RETRY_INTERVAL_MS.step;
  const [waited, slack] = a.attempt <= 1 ? [since(f, a.scheduledTime), 0] : [since(f, a.lastAttemptCompleteTime), longestRetry];
  if (a.state === 'scheduled' && !a.nextAttemptScheduleTime && waited >= STALE_AFTER_MS + slack) {
    return `waiting for a Temporal worker: ${a.activity} not picked up for ${age(waited)} ${noWorker}`;
  }
  const target = commandQueueOf(a.activity, f.namespace);
  if (!target) {
    // The saga's own step (markOrderFulfilled, markOrderCancelled; loadOrder is a local activity,
    // never pending here): the Temporal worker runs it against the order store.
    return a.attempt > 1 || a.lastFailure ? `retrying ${a.activity}: ${attemptText(a)}` : `in progress: ${a.activity}`;
  }
  const worker = target.process;
  if (!f.broker.reachable) return `waiting for ${worker}: ${a.activity} ${attemptText(a)}; RabbitMQ unreachable, ${target.queue} not checked`;
  const q = queueFact(f, target.queue);
  if (q && !q.exists) return `waiting for ${worker}: ${target.queue} does not exist (has the ${worker} worker ever run in this namespace?)`;
  if (q?.exists && q.consumers === 0) return `waiting for ${worker}: ${target.queue} has ${q.ready} ready and no consumer`;
  const replies = replyQueue(f.namespace);
  const r = replies ? queueFact(f, replies.queue) : undefined;
  if (replies && r?.exists && r.consumers === 0) return `waiting for ${replies.process}: ${replies.queue} has ${r.ready} ready and no consumer`;
  const depth = q?.exists ? `; ${target.queue} has ${q.ready} ready, ${consumersText(q.consumers)}` : '';
  return `waiting for ${worker}: ${a.activity} ${attemptText(a)}${depth}`;
}

/** Where an accepted order is, and why. */
function acceptedVerdict(f: WhereIsFacts): string {
  const wf = f.workflow;
  const placed = f.store.events.find((e) => e.type === 'order.placed');
  // Without its order.placed on the bus no saga starts: the outbox is the first suspect.
  if (wf.state === 'none' && placed && placed.sentAt === null) {
    return outboxStuck(f) ?? `accepted ${age(since(f, placed.occurredAt))} ago; its order.placed is still in the outbox`;
  }
  const dead = deadLettered(f);
  const saga = sagaVerdict(f, placed);
  // A dead letter comes first; what holds the saga, when something does, after it.
  if (dead) return /^(waiting|retrying|paused|accepted but)/.test(saga) ? `${dead}; ${saga}` : dead;
  return saga;
}

/** Where the saga of an accepted order is. */
function sagaVerdict(f: WhereIsFacts, placed: EventFact | undefined): string {
  const wf = f.workflow;
  if (wf.state === 'unavailable') return `accepted; Temporal unreachable at ${wf.address}: cannot tell where its saga is`;
  if (wf.state === 'none') {
    if (placed?.sentAt && since(f, placed.sentAt) < STALE_AFTER_MS) return `accepted; its saga is being started (order.placed sent ${age(since(f, placed.sentAt))} ago)`;
    return `accepted but no workflow${placed ? ` (placed ${age(since(f, placed.occurredAt))} ago)` : ''}: run npm run reconcile`;
  }
  if (wf.status !== 'RUNNING') {
    const outcome = wf.saga?.outcome ? ` (${wf.saga.outcome}${wf.saga.cancellationReason ? `: ${wf.saga.cancellationReason}` : ''})` : '';
    return `accepted but its workflow is ${wf.status.toLowerCase().replace(/_/g, ' ')}${outcome}: run npm run reconcile`;
  }
  return runningVerdict(f, wf);
}

/**
 * The one-line verdict: where the order is and why. Its status first (fulfilled, cancelled:
 * <reason>, or for an accepted order what holds it), then what else is wrong, each after
 * "; ": an event the outbox has held too long, a dead-lettered message about it, read
 * models behind the stream.
 */
export function verdict(f: WhereIsFacts): string {
  const status = statusOf(f);
  if (!status) return 'unknown order';
  const folded = f.store.folded;
  const reason = folded?.cancellationReason ?? f.store.row?.cancellationReason ?? 'no reason recorded';
  const main =
    status === 'fulfilled' ? 'fulfilled' : status === 'cancelled' ? `cancelled: ${reason}${folded?.failedStep ? ` (failed step: ${folded.failedStep})` : ''}` : acceptedVerdict(f);
  const notes = [outboxStuck(f), deadLettered(f), readModelBehind(f)].filter((n): n is string => n !== undefined && !main.startsWith(n));
  return [main, ...notes].join('; ');
}

// ---- The screen ----

const LABEL = 16;
const line = (label: string, text: string): string => `${label.padEnd(LABEL)}${text}`;
const more = (text: string): string => `${' '.repeat(LABEL)}${text}`;

/** A time as printed: its time of day when it is on the day of the check (UTC), else the whole ISO 8601 time. */
const when = (f: WhereIsFacts, iso: string): string => (iso[10] === 'T' && iso.slice(0, 10) === f.checkedAt.slice(0, 10) ? iso.slice(11) : iso);

/** A time and how long before the check it was. */
const at = (f: WhereIsFacts, iso: string): string => `${when(f, iso)} (${age(since(f, iso))} ago)`;

function storeLines(f: WhereIsFacts): string[] {
  const { folded, row, events } = f.store;
  const status = folded ? `${folded.status}${folded.cancellationReason ? `: ${folded.cancellationReason}` : ''}${folded.cancellationRequested ? ', cancellation requested' : ''}` : 'no order.placed in its stream';
  const rowText = row ? `orders.orders: ${row.status}, version ${row.version}` : 'no row in orders.orders';
  const out = [line('order store', `${status}; stream at version ${streamVersion(f)} (${rowText})`)];
  const width = Math.max(...events.map((e) => e.type.length), 0);
  for (const e of events) {
    const sent = e.sentAt === null ? `NOT SENT (${age(since(f, e.occurredAt))} in the outbox)` : `sent +${age(Date.parse(e.sentAt) - Date.parse(e.occurredAt))}`;
    out.push(more(`v${e.version}  ${e.type.padEnd(width)}  ${when(f, e.occurredAt)}  ${sent}`));
  }
  return out;
}

function readModelLines(f: WhereIsFacts): string[] {
  const { orders, customerOrders, pendingEvents } = f.readModel;
  const rm = orders
    ? `${orders.status}, version ${orders.version}, ${orders.historyLength} event(s) in its history${pendingEvents ? `, ${pendingEvents} waiting for a gap` : ''}`
    : `no row${pendingEvents ? ` (${pendingEvents} event(s) waiting for a gap)` : ''}`;
  const co = customerOrders ? `${customerOrders.status}, version ${customerOrders.version}` : 'no row';
  return [line('read models', `read_model.orders           ${rm}`), more(`read_model.customer_orders  ${co}`)];
}

function workflowLines(f: WhereIsFacts): string[] {
  const wf = f.workflow;
  if (wf.state === 'unavailable') return [line('workflow', `Temporal unreachable at ${wf.address}: ${clip(wf.error, 100)}`)];
  if (wf.state === 'none') return [line('workflow', `${wf.workflowId}: none`)];
  const out = [line('workflow', `${wf.workflowId}  ${wf.status}  run ${wf.runId}`), more(`started ${at(f, wf.startTime)}${wf.closeTime ? `, closed ${when(f, wf.closeTime)}` : ''}, ${wf.historyLength} history events`)];
  if (wf.saga) {
    const s = wf.saga;
    const outcome = s.outcome ? `; outcome ${s.outcome}${s.cancellationReason ? `: ${s.cancellationReason}` : ''}${s.failedStep ? ` (${s.failedStep})` : ''}` : '';
    out.push(more(`step ${s.step}; done: ${s.completedSteps.join(', ') || 'nothing'}${s.compensationsRun.length ? `; compensated: ${s.compensationsRun.join(', ')}` : ''}${outcome}`));
  } else if (wf.sagaError) {
    out.push(more(`step unknown: ${clip(wf.sagaError, 100)}`));
  }
  for (const a of wf.pendingActivities) {
    const limit = a.maximumAttempts > 0 ? ` of ${a.maximumAttempts}` : '';
    const state = a.state === 'started' && a.lastStartedTime ? `started ${at(f, a.lastStartedTime)}` : a.state;
    const next = a.nextAttemptScheduleTime ? `, next at ${when(f, a.nextAttemptScheduleTime)}` : '';
    out.push(more(`pending ${a.activity} (activity ${a.activityId}): ${state}, attempt ${a.attempt}${limit}${next}`));
    if (a.lastFailure) out.push(more(`  last failure: ${clip(a.lastFailure, 110)}`));
  }
  if (wf.pendingWorkflowTask) out.push(more(`workflow task ${wf.pendingWorkflowTask.state}${wf.pendingWorkflowTask.scheduledTime ? ` since ${at(f, wf.pendingWorkflowTask.scheduledTime)}` : ''}, attempt ${wf.pendingWorkflowTask.attempt}`));
  if (f.broker.reachable) {
    for (const q of f.broker.queues) out.push(more(q.exists ? `queue ${q.name}: ${q.ready} ready, ${consumersText(q.consumers)}` : `queue ${q.name}: does not exist`));
  }
  return out;
}

function workerLines(f: WhereIsFacts): string[] {
  const { payments: p, inventory: i, shipping: s, notifications: n } = f.workers;
  const t = (iso: string): string => when(f, iso);
  const pay = [
    p.capture ? `captured ${p.capture.amount} ${p.capture.currency} (${p.capture.paymentId}) at ${t(p.capture.capturedAt)}` : p.decline ? `declined (${p.decline.reason}) at ${t(p.decline.declinedAt)}` : 'no capture',
    ...(p.refund ? [`refunded ${p.refund.amount} at ${t(p.refund.refundedAt)}`] : []),
    ...(p.providerCalls !== undefined ? [`${p.providerCalls} provider call(s)`] : []),
    ...(p.voidedAt ? [`voided at ${t(p.voidedAt)}`] : []),
  ];
  const r = i.reservation;
  const inv = [
    r ? `reserved ${r.items.map((l) => `${l.quantity} × ${l.sku}`).join(', ')} at ${t(r.reservedAt)}${r.releasedAt ? `; released at ${t(r.releasedAt)}` : ''}` : 'no reservation',
    ...(i.voidedAt ? [`voided at ${t(i.voidedAt)}`] : []),
  ];
  const sh = s.shipment;
  const ship = [
    sh ? `${sh.status} with ${sh.carrier} to ${sh.city}, ${sh.country} (${sh.shipmentId}) at ${t(sh.scheduledAt)}${sh.cancelledAt ? `; cancelled at ${t(sh.cancelledAt)}` : ''}` : 'no shipment',
    ...(s.voidedAt ? [`voided at ${t(s.voidedAt)}`] : []),
  ];
  return [
    line('workers', `payments       ${pay.join('; ')}`),
    more(`inventory      ${inv.join('; ')}`),
    more(`shipping       ${ship.join('; ')}`),
    more(`notifications  ${n.length ? n.map((x) => x.kind).join(', ') : 'none'}`),
  ];
}

function deadLetterLines(f: WhereIsFacts): string[] {
  const b = f.broker;
  if (!b.reachable) return [line('dead letters', `RabbitMQ unreachable: ${clip(b.error, 100)}`)];
  const partly = b.dlqsPartlyChecked.map((d) => more(`${d.dlq}: looked at the first ${d.lookedAt} of ${d.messages}`));
  if (b.dlqsChecked === 0) return [line('dead letters', `no DLQ of the fleet exists${f.namespace ? ` in bus namespace ${f.namespace}` : ''}`)];
  if (b.deadLetters.length === 0) return [line('dead letters', `none about it in ${b.dlqsChecked} DLQs`), ...partly];
  return [
    line('dead letters', `${b.deadLetters.length} about it (of ${b.dlqsChecked} DLQs)`),
    ...b.deadLetters.flatMap((d) => [more(`${d.dlq}  ${d.type}  ${d.messageId}  attempts ${d.attempts}${d.deadLetteredAt ? `  at ${when(f, d.deadLetteredAt)}` : ''}`), more(`  ${clip(d.reason, 120)}`)]),
    ...partly,
  ];
}

/** The screen: the verdict first, then each section. */
export function render(f: WhereIsFacts, said = verdict(f)): string {
  return [
    line('verdict', said),
    line('order', `${f.orderId}${f.namespace ? ` (bus namespace ${f.namespace})` : ''}, checked ${f.checkedAt}`),
    '',
    ...storeLines(f),
    ...readModelLines(f),
    ...workflowLines(f),
    ...workerLines(f),
    ...deadLetterLines(f),
  ].join('\n');
}
