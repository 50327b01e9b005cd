// The verdict of `npm run where-is` (scripts/where-is-facts.ts), given/when/then, from facts
// alone: one test per state an order can be in, and the queues a saga step waits on, derived
// from SAGA_STEPS and the fleet's topologies.
import { expect } from 'chai';
import { SAGA_STEPS } from '../../shared/saga';
import {
  commandQueueOf,
  fleetDlqs,
  queuesToCheck,
  render,
  replyQueue,
  verdict,
  type BrokerFacts,
  type EventFact,
  type PendingActivityFact,
  type QueueFact,
  type WhereIsFacts,
  type WorkflowFacts,
} from '../../scripts/where-is-facts';

const NOW = Date.parse('2026-11-29T10:15:00.000Z');
/** The time `s` seconds before the check. */
const ago = (s: number): string => new Date(NOW - s * 1000).toISOString();

const ID = 'ord_01JDA7T4M2Q8ZK3V6W9X0B1C2D';

/** An event of the stream: appended `occurred` s ago, sent `sent` s ago (null: still in the outbox). */
const event = (version: number, type: string, occurred: number, sent: number | null): EventFact => ({
  version,
  type,
  eventId: `01JDA7T4M${version}AAAAAAAAAAAAAAAA`,
  occurredAt: ago(occurred),
  sentAt: sent === null ? null : ago(sent),
});

const running = (pending: PendingActivityFact[] = [], overrides: Partial<Extract<WorkflowFacts, { state: 'found' }>> = {}): WorkflowFacts => ({
  state: 'found',
  workflowId: `order-${ID}`,
  runId: 'run-1',
  status: 'RUNNING',
  taskQueue: 'order-fulfillment',
  startTime: ago(120),
  historyLength: 17,
  pendingActivities: pending,
  ...overrides,
});

const activity = (name: string, overrides: Partial<PendingActivityFact> = {}): PendingActivityFact => ({
  activityId: '3',
  activity: name,
  state: 'started',
  attempt: 1,
  maximumAttempts: 0,
  scheduledTime: ago(30),
  lastStartedTime: ago(30),
  ...overrides,
});

const broker = (queues: QueueFact[] = [], deadLetters: Extract<BrokerFacts, { reachable: true }>['deadLetters'] = []): BrokerFacts => ({
  reachable: true,
  queues,
  dlqsChecked: 10,
  dlqsPartlyChecked: [],
  deadLetters,
});

/** An accepted order placed 2 minutes ago whose order.placed left at once, with read models up to date and a running saga. */
function given(overrides: Partial<WhereIsFacts> = {}): WhereIsFacts {
  return {
    orderId: ID,
    checkedAt: new Date(NOW).toISOString(),
    namespace: '',
    store: {
      events: [event(1, 'order.placed', 120, 120)],
      folded: { status: 'accepted', cancellationRequested: false, placedAt: ago(120) },
      row: { status: 'accepted', cancellationReason: null, version: 1, createdAt: ago(120) },
    },
    readModel: { orders: { status: 'accepted', version: 1, historyLength: 1, updatedAt: ago(119) }, pendingEvents: 0, customerOrders: { status: 'accepted', version: 1 } },
    workflow: running(),
    workers: { payments: {}, inventory: {}, shipping: {}, notifications: [] },
    broker: broker(),
    ...overrides,
  };
}

/** A final order: placed, then its outcome, both sent, both in the read models. */
function final(status: 'fulfilled' | 'cancelled', outcome: { cancellationReason?: string; failedStep?: string } = {}, readModelVersion = 2): Partial<WhereIsFacts> {
  return {
    store: {
      events: [event(1, 'order.placed', 120, 120), event(2, status === 'fulfilled' ? 'order.fulfilled' : 'order.cancelled', 60, 60)],
      folded: { status, cancellationRequested: false, placedAt: ago(120), ...outcome },
      row: { status, cancellationReason: outcome.cancellationReason ?? null, version: 2, createdAt: ago(120) },
    },
    readModel: { orders: { status, version: readModelVersion, historyLength: readModelVersion, updatedAt: ago(59) }, pendingEvents: 0, customerOrders: { status, version: 2 } },
    workflow: running([], { status: 'COMPLETED', closeTime: ago(59) }),
  };
}

describe('npm run where-is: the verdict', () => {
  it('given a fulfilled order, up to date everywhere, when judged, then it says fulfilled', () => {
    expect(verdict(given(final('fulfilled')))).to.equal('fulfilled');
  });

  it('given a cancelled order, when judged, then it says cancelled with its reason (and the failed step when one was)', () => {
    expect(verdict(given(final('cancelled', { cancellationReason: 'payment_declined' })))).to.equal('cancelled: payment_declined');
    expect(verdict(given(final('cancelled', { cancellationReason: 'step_timed_out', failedStep: 'reserving_stock' })))).to.equal('cancelled: step_timed_out (failed step: reserving_stock)');
  });

  it('given a running saga waiting in reserveStock whose queue has messages and no consumer, when judged, then it names the worker and the queue', () => {
    const facts = given({ workflow: running([activity('reserveStock')]), broker: broker([{ name: 'inventory.commands', exists: true, ready: 120, consumers: 0 }]) });
    expect(verdict(facts)).to.equal('waiting for inventory: inventory.commands has 120 ready and no consumer');
  });

  it('given the same in a bus namespace, when judged, then the queue is named as the broker has it', () => {
    const facts = given({ namespace: 't42', workflow: running([activity('reserveStock')]), broker: broker([{ name: 't42.inventory.commands', exists: true, ready: 1, consumers: 0 }]) });
    expect(verdict(facts)).to.equal('waiting for inventory: t42.inventory.commands has 1 ready and no consumer');
  });

  it('given a saga waiting in reserveStock whose queue has consumers, when judged, then it gives the attempt, the last failure and the depth', () => {
    const pending = activity('reserveStock', { attempt: 3, lastFailure: 'activity StartToClose timeout' });
    const facts = given({
      workflow: running([pending]),
      broker: broker([
        { name: 'inventory.commands', exists: true, ready: 5, consumers: 2 },
        { name: 'saga-bridge.replies', exists: true, ready: 0, consumers: 1 },
      ]),
    });
    expect(verdict(facts)).to.equal('waiting for inventory: reserveStock attempt 3 (last failure: activity StartToClose timeout); inventory.commands has 5 ready, 2 consumers');
  });

  it('given a compensation waiting while its worker consumes and the reply bridge does not, when judged, then it names the reply queue', () => {
    const facts = given({
      workflow: running([activity('refundPayment')]),
      broker: broker([
        { name: 'payments.commands', exists: true, ready: 0, consumers: 1 },
        { name: 'saga-bridge.replies', exists: true, ready: 4, consumers: 0 },
      ]),
    });
    expect(verdict(facts)).to.equal('waiting for saga-bridge: saga-bridge.replies has 4 ready and no consumer');
  });

  it('given a step whose queue was never declared, when judged, then it says so', () => {
    const facts = given({ workflow: running([activity('scheduleShipment')]), broker: broker([{ name: 'shipping.commands', exists: false }]) });
    expect(verdict(facts)).to.equal('waiting for shipping: shipping.commands does not exist (has the shipping worker ever run in this namespace?)');
  });

  it('given a first attempt no Temporal worker picked up for 42 s, when judged, then it asks whether the temporal-worker runs', () => {
    const facts = given({ workflow: running([activity('capturePayment', { state: 'scheduled', scheduledTime: ago(42), lastStartedTime: undefined })]) });
    expect(verdict(facts)).to.equal('waiting for a Temporal worker: capturePayment not picked up for 42 s on task queue order-fulfillment (is the temporal-worker running?)');
  });

  it('given a retry due and not picked up, when judged, then it allows a step a minute between attempts and a compensation five', () => {
    const retry = (name: string, lastEndedSecondsAgo: number): WhereIsFacts =>
      given({ workflow: running([activity(name, { state: 'scheduled', attempt: 6, scheduledTime: ago(600), lastStartedTime: ago(lastEndedSecondsAgo + 1), lastAttemptCompleteTime: ago(lastEndedSecondsAgo) })]) });
    expect(verdict(retry('capturePayment', 180))).to.equal('waiting for a Temporal worker: capturePayment not picked up for 3 min on task queue order-fulfillment (is the temporal-worker running?)');
    expect(verdict(retry('refundPayment', 180))).to.not.include('waiting for a Temporal worker');
    expect(verdict(retry('refundPayment', 360))).to.equal('waiting for a Temporal worker: refundPayment not picked up for 6 min on task queue order-fulfillment (is the temporal-worker running?)');
  });

  it('given an order-store step failing again and again, when judged, then it gives the attempt and the last failure', () => {
    const facts = given({ workflow: running([activity('markOrderFulfilled', { attempt: 4, lastFailure: 'DependencyUnavailableError: postgres is unavailable' })]) });
    expect(verdict(facts)).to.equal('retrying markOrderFulfilled: attempt 4 (last failure: DependencyUnavailableError: postgres is unavailable)');
  });

  it('given an accepted order with no workflow, its order.placed sent long ago, when judged, then it says to run the reconciler', () => {
    expect(verdict(given({ workflow: { state: 'none', workflowId: `order-${ID}` } }))).to.equal('accepted but no workflow (placed 2 min ago): run npm run reconcile');
  });

  it('given an accepted order with no workflow whose order.placed left 2 s ago, when judged, then its saga is on its way', () => {
    const facts = given({ workflow: { state: 'none', workflowId: `order-${ID}` } });
    facts.store.events = [event(1, 'order.placed', 2, 2)];
    expect(verdict(facts)).to.equal('accepted; its saga is being started (order.placed sent 2 s ago)');
  });

  it('given an order.placed still in the outbox after 42 s and no workflow, when judged, then it asks whether the outbox relay runs', () => {
    const facts = given({ workflow: { state: 'none', workflowId: `order-${ID}` }, readModel: { pendingEvents: 0, customerOrders: { status: 'accepted', version: 1 } } });
    facts.store.events = [event(1, 'order.placed', 42, null)];
    expect(verdict(facts)).to.equal('its order.placed has not left the outbox for 42 s: is the outbox relay running?');
  });

  it('given a final order whose outcome is still in the outbox, when judged, then the status comes first and the outbox after it', () => {
    const facts = given(final('fulfilled', {}, 1));
    facts.store.events[1] = event(2, 'order.fulfilled', 42, null);
    expect(verdict(facts)).to.equal('fulfilled; its order.fulfilled has not left the outbox for 42 s: is the outbox relay running?');
  });

  it('given a dead-lettered message about an accepted order with no saga, when judged, then it names the queue and the reason first, and what holds the saga after', () => {
    const dead = {
      queue: 'payments.commands',
      dlq: 'payments.commands.dlq',
      messageId: '01JDA7T4M9AAAAAAAAAAAAAAAA',
      type: 'payments.capture',
      reason: 'PoisonMessageError: schema_validation: payments.capture v1: /data must have required property paymentToken',
      attempts: 1,
      deadLetteredAt: ago(30),
      matchedBy: 'aggregateId',
    };
    const facts = given({ workflow: { state: 'none', workflowId: `order-${ID}` }, broker: broker([], [dead, { ...dead, messageId: 'other' }]) });
    expect(verdict(facts)).to.equal(
      'dead-lettered: payments.commands (PoisonMessageError: schema_validation: payments.capture v1: /data must have required property paymentToken) and 1 more; ' +
        'accepted but no workflow (placed 2 min ago): run npm run reconcile',
    );
  });

  it('given a dead-lettered notification about an order whose saga is in progress, when judged, then the dead letter alone is the verdict', () => {
    const dead = { queue: 'notifications.events', dlq: 'notifications.events.dlq', messageId: 'm1', type: 'order.placed', reason: 'broker: delivery_limit', attempts: 10, deadLetteredAt: ago(30), matchedBy: 'x-aggregate-id' };
    expect(verdict(given({ workflow: running([activity('capturePayment')]), broker: broker([{ name: 'payments.commands', exists: true, ready: 0, consumers: 1 }], [dead]) }))).to.equal(
      'dead-lettered: notifications.events (broker: delivery_limit); waiting for payments: capturePayment attempt 1; payments.commands has 0 ready, 1 consumer',
    );
  });

  it('given a fulfilled order whose read model stopped at version 1 for a minute, when judged, then it says which read model is behind', () => {
    expect(verdict(given(final('fulfilled', {}, 1)))).to.equal('fulfilled; read model behind: read_model.orders at version 1 of 2 (is order-projection running?)');
  });

  it('given a read model a moment behind (its event left 2 s ago), when judged, then that is not called behind', () => {
    const facts = given(final('fulfilled', {}, 1));
    facts.store.events[1] = event(2, 'order.fulfilled', 2, 2);
    expect(verdict(facts)).to.equal('fulfilled');
  });

  it('given Temporal unreachable, when judged, then it says so and what it cannot tell', () => {
    const facts = given({ workflow: { state: 'unavailable', address: '127.0.0.1:7233', error: 'Failed to connect before the deadline' } });
    expect(verdict(facts)).to.equal('accepted; Temporal unreachable at 127.0.0.1:7233: cannot tell where its saga is');
  });

  it('given an accepted order whose workflow was terminated, when judged, then it says to run the reconciler', () => {
    expect(verdict(given({ workflow: running([], { status: 'TERMINATED', closeTime: ago(10) }) }))).to.equal('accepted but its workflow is terminated: run npm run reconcile');
  });

  it('given RabbitMQ unreachable while a worker step waits, when judged, then it says the queue was not checked', () => {
    const facts = given({ workflow: running([activity('capturePayment')]), broker: { reachable: false, error: 'cannot reach RabbitMQ' } });
    expect(verdict(facts)).to.equal('waiting for payments: capturePayment attempt 1; RabbitMQ unreachable, payments.commands not checked');
  });

  it('given no order in the store, when judged, then it is unknown', () => {
    expect(verdict(given({ store: { events: [] } }))).to.equal('unknown order');
  });
});

describe('npm run where-is: the queues a saga step waits on', () => {
  it('maps each step and compensation to its worker and its command queue, and finds the reply queue', () => {
    for (const s of SAGA_STEPS) {
      const worker = s.command.split('.')[0]!;
      expect(commandQueueOf(s.activity, 'ns'), s.activity).to.deep.equal({ process: worker, queue: `ns.${worker}.commands` });
      expect(commandQueueOf(s.undo.activity, 'ns'), s.undo.activity).to.deep.equal({ process: worker, queue: `ns.${worker}.commands` });
    }
    expect(commandQueueOf('loadOrder', 'ns')).to.equal(undefined);
    expect(replyQueue('ns')).to.deep.equal({ process: 'saga-bridge', queue: 'ns.saga-bridge.replies' });
    expect(queuesToCheck(running([activity('reserveStock')]), '')).to.deep.equal(['inventory.commands', 'saga-bridge.replies']);
    expect(queuesToCheck(running([activity('markOrderFulfilled')]), '')).to.deep.equal([]);
  });

  it('peeks the DLQ of every queue the fleet consumes', () => {
    const dlqs = fleetDlqs('ns').map((d) => d.dlq);
    expect(dlqs).to.include.members(['ns.payments.commands.dlq', 'ns.inventory.commands.dlq', 'ns.shipping.commands.dlq', 'ns.saga-starter.orders.dlq', 'ns.order-projection.p0.dlq']);
    expect(new Set(dlqs).size).to.equal(dlqs.length);
  });
});

describe('npm run where-is: the screen', () => {
  it('given a stuck order, when printed, then the verdict is the first line and it fits one screen', () => {
    const facts = given({ workflow: running([activity('reserveStock')]), broker: broker([{ name: 'inventory.commands', exists: true, ready: 3, consumers: 0 }]) });
    const lines = render(facts).split('\n');
    expect(lines[0]).to.match(/^verdict\s+waiting for inventory: inventory\.commands has 3 ready and no consumer$/);
    expect(lines.length).to.be.at.most(24);
    expect(lines.join('\n')).to.include('pending reserveStock').and.include('v1  order.placed');
  });
});
