// The saga with mocked activities on the time-skipping test server: one test per path.
import { expect } from 'chai';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CompleteAsyncError } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { SagaActivities } from '../../activities/types';
import type { OrderDetails, Reason, RecordedOutcome, SagaStatus } from '../../shared/saga';
import { SAGA, workflowIdOf } from '../../shared/saga';
import { timeSkippingServer } from '../../shared/temporal/binaries';
import { WORKFLOW_TRACING_MODULES, workflowSpanSinks } from '../../shared/temporal/tracing';
import { orderFulfillment } from '../../workflows';
import { uniqueName } from '../helpers/names';
import { eventually } from '../helpers/wait';

type Name = keyof SagaActivities;

const ORDER: Omit<OrderDetails, 'orderId'> = {
  customerId: 'c-1',
  items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 10 }],
  totalAmount: 20,
  currency: 'EUR',
  shippingAddress: { city: 'Berlin', country: 'DE' },
  paymentToken: 'tok_ok',
};

/** Activities that succeed and record their calls; a test overrides the ones it needs. */
function mocks(calls: string[], overrides: Partial<Record<Name, (...args: never[]) => Promise<unknown>>> = {}): SagaActivities {
  const names: Name[] = ['loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment', 'refundPayment', 'releaseStock', 'cancelShipment', 'markOrderFulfilled', 'markOrderCancelled'];
  return Object.fromEntries(
    names.map((name) => [
      name,
      async (...args: unknown[]) => {
        // markOrderCancelled(reason) or, when a step timed out or failed, markOrderCancelled(reason, failedStep)
        calls.push(name === 'markOrderCancelled' ? `${name}(${args.slice(1).filter((a) => a !== undefined && a !== null).map(String).join(', ')})` : name);
        const override = overrides[name] as ((...a: unknown[]) => Promise<unknown>) | undefined;
        if (override) return override(...args);
        if (name === 'loadOrder') return { orderId: String(args[0]), ...ORDER };
        return undefined;
      },
    ]),
  ) as unknown as SagaActivities;
}

/** What the reply bridge does for payment.declined, inventory.rejected, shipping.failed. */
const businessFailure = (type: keyof typeof import('../../shared/saga').BUSINESS_FAILURES) => async () => {
  throw ApplicationFailure.nonRetryable(`worker said ${type}`, type);
};

/** A step that fails for no business reason, in a way no retry fixes (a bug, say). */
const broken = (type: string) => async () => {
  throw ApplicationFailure.nonRetryable(`the step broke (${type})`, type);
};

/** An activity that never answers: a remote one completes asynchronously; a local one (loadOrder) waits until it is cancelled. */
const neverAnswered = async (): Promise<never> => {
  if (Context.current().info.isLocal) return Context.current().cancelled;
  throw new CompleteAsyncError();
};

describe('orderFulfillment saga (time-skipping server, mocked activities)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;

  before(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: timeSkippingServer() });
    // As the Temporal worker bundles it: with the tracing interceptors, which its workflows run through whether tracing is on or not.
    bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      workflowInterceptorModules: [...WORKFLOW_TRACING_MODULES],
      logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} },
    });
  });
  after(async () => {
    await env?.teardown();
  });

  async function saga(
    activities: SagaActivities,
    during: (handle: WorkflowHandle<typeof orderFulfillment>) => Promise<void> = async () => undefined,
    on: TestWorkflowEnvironment = env,
    recordOutcome?: RecordedOutcome,
  ): Promise<SagaStatus> {
    const taskQueue = uniqueName('saga-test');
    const worker = await Worker.create({ connection: on.nativeConnection, taskQueue, workflowBundle: bundle, activities, sinks: workflowSpanSinks() });
    return worker.runUntil(async () => {
      const orderId = uniqueName('o');
      const handle = await on.client.workflow.start(orderFulfillment, { args: [{ orderId, ...(recordOutcome ? { recordOutcome } : {}) }], taskQueue, workflowId: workflowIdOf(orderId) });
      await during(handle);
      return handle.result();
    });
  }

  it('happy path: every step once, in order, no compensation, order fulfilled', async () => {
    const calls: string[] = [];
    const result = await saga(mocks(calls));
    expect(calls).to.deep.equal(['loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment', 'markOrderFulfilled']);
    expect(result).to.deep.include({ outcome: 'fulfilled', step: 'done', compensationsRun: [] });
    expect(result.completedSteps).to.deep.equal(['loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment']);
  });

  it('payment declined: nothing to compensate, order cancelled with payment_declined', async () => {
    const calls: string[] = [];
    const result = await saga(mocks(calls, { capturePayment: businessFailure('payment.declined') }));
    expect(calls).to.deep.equal(['loadOrder', 'capturePayment', 'markOrderCancelled(payment_declined)']);
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'payment_declined', compensationsRun: [] });
  });

  it('out of stock: the payment is refunded, order cancelled with out_of_stock', async () => {
    const calls: string[] = [];
    const result = await saga(mocks(calls, { reserveStock: businessFailure('inventory.rejected') }));
    expect(calls).to.deep.equal(['loadOrder', 'capturePayment', 'reserveStock', 'refundPayment', 'markOrderCancelled(out_of_stock)']);
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'out_of_stock', compensationsRun: ['refundPayment'] });
  });

  it('shipping unavailable: stock released and payment refunded, in that order', async () => {
    const calls: string[] = [];
    const result = await saga(mocks(calls, { scheduleShipment: businessFailure('shipping.failed') }));
    expect(calls).to.deep.equal([
      'loadOrder',
      'capturePayment',
      'reserveStock',
      'scheduleShipment',
      'releaseStock',
      'refundPayment',
      'markOrderCancelled(shipping_unavailable)',
    ]);
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'shipping_unavailable', compensationsRun: ['releaseStock', 'refundPayment'] });
  });

  it('a step failing for no business reason: step_failed naming the step, and its own compensation runs too', async () => {
    const calls: string[] = [];
    const result = await saga(mocks(calls, { reserveStock: broken('SomethingBroke') }));
    expect(calls).to.deep.equal(['loadOrder', 'capturePayment', 'reserveStock', 'releaseStock', 'refundPayment', 'markOrderCancelled(step_failed, reserving_stock)']);
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'step_failed', failedStep: 'reserving_stock', compensationsRun: ['releaseStock', 'refundPayment'] });
  });

  it('a failure typed "constructor" is not a business failure (no prototype key is): step_failed, compensation kept', async () => {
    const calls: string[] = [];
    const result = await saga(mocks(calls, { reserveStock: broken('constructor') }));
    expect(calls.slice(-1)).to.deep.equal(['markOrderCancelled(step_failed, reserving_stock)']);
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'step_failed', failedStep: 'reserving_stock', compensationsRun: ['releaseStock', 'refundPayment'] });
  });

  it('tries a step again when its first attempt died before publishing its command (found by the chaos run)', async () => {
    const calls: string[] = [];
    let attempts = 0;
    const result = await saga(
      mocks(calls, {
        // Attempt 1 is what a Temporal worker SIGKILLed right after the step started leaves:
        // an attempt Temporal sees as running, with no command sent and no answer coming.
        capturePayment: async () => {
          if (++attempts === 1) throw new CompleteAsyncError();
        },
      }),
      async () => {
        await eventually(() => attempts === 1, { what: 'the first attempt' });
        await env.sleep(61_000); // past the attempt's one-minute timeout (the waiting attempt holds the clock)
      },
    );
    expect(attempts).to.equal(2);
    expect(result).to.deep.include({ outcome: 'fulfilled', compensationsRun: [] });
  });

  it('retries a compensation that fails transiently three times until it succeeds', async () => {
    const calls: string[] = [];
    let refunds = 0;
    const result = await saga(
      mocks(calls, {
        reserveStock: businessFailure('inventory.rejected'),
        refundPayment: async () => {
          refunds++;
          if (refunds <= 3) throw new Error(`payment service unavailable (${refunds})`);
        },
      }),
    );
    expect(refunds).to.equal(4);
    expect(calls.filter((c) => c === 'refundPayment')).to.have.length(4);
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'out_of_stock', compensationsRun: ['refundPayment'] });
  });

  const cancellations: Array<[Name, string[]]> = [
    ['loadOrder', []],
    ['capturePayment', ['refundPayment']],
    ['reserveStock', ['releaseStock', 'refundPayment']],
    ['scheduleShipment', ['cancelShipment', 'releaseStock', 'refundPayment']],
  ];
  for (const [during, compensated] of cancellations) {
    it(`cancelOrder during ${during}: the steps done so far (and the one interrupted) are compensated`, async () => {
      const calls: string[] = [];
      const result = await saga(mocks(calls, { [during]: neverAnswered }), async (handle) => {
        await eventually(() => calls.includes(during), { what: `${during} to start` });
        await handle.signal(SAGA.cancelSignal);
      });
      expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'customer_cancelled', compensationsRun: compensated });
      expect(calls.slice(calls.indexOf(during) + 1)).to.deep.equal([...compensated, 'markOrderCancelled(customer_cancelled)']);
    });
  }

  it('accepts the requestCancellation update before shipping: the answer says so and the order ends customer_cancelled', async () => {
    const calls: string[] = [];
    let answer: unknown;
    const result = await saga(mocks(calls, { reserveStock: neverAnswered }), async (handle) => {
      await eventually(() => calls.includes('reserveStock'), { what: 'reserveStock to start' });
      answer = await handle.executeUpdate(SAGA.cancelUpdate);
    });
    expect(answer).to.deep.equal({ accepted: true });
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'customer_cancelled', compensationsRun: ['releaseStock', 'refundPayment'] });
    expect(calls.slice(-1)).to.deep.equal(['markOrderCancelled(customer_cancelled)']);
  });

  it('refuses the requestCancellation update once the shipment is scheduled, without writing it to the history, and fulfils the order', async () => {
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let refusal: unknown;
    let updateEvents: unknown[] = [];
    // markOrderFulfilled waits for the test: the window between scheduling and fulfilling stays open.
    const result = await saga(mocks(calls, { markOrderFulfilled: () => gate }), async (handle) => {
      await eventually(() => calls.includes('markOrderFulfilled'), { what: 'the shipment to be scheduled' });
      refusal = await handle.executeUpdate(SAGA.cancelUpdate).then(
        () => undefined,
        (err: unknown) => err,
      );
      const history = await handle.fetchHistory();
      updateEvents = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes || e.workflowExecutionUpdateCompletedEventAttributes);
      release();
    });
    expect(refusal).to.be.instanceOf(WorkflowUpdateFailedError);
    const cause = (refusal as WorkflowUpdateFailedError).cause;
    expect(cause).to.be.instanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).to.equal('already_shipped');
    expect(updateEvents).to.deep.equal([]);
    expect(result).to.deep.include({ outcome: 'fulfilled', compensationsRun: [] });
    expect(calls).to.not.include('cancelShipment');
  });

  it('refuses the requestCancellation update while the saga compensates a business failure: the order ends with that reason', async () => {
    const calls: string[] = [];
    let releaseRefund!: () => void;
    let refusal: unknown;
    const result = await saga(
      mocks(calls, { reserveStock: businessFailure('inventory.rejected'), refundPayment: () => new Promise<void>((r) => (releaseRefund = r)) }),
      async (handle) => {
        await eventually(() => calls.includes('refundPayment'), { what: 'the refund to start' });
        refusal = await handle.executeUpdate(SAGA.cancelUpdate).then(
          () => undefined,
          (err: unknown) => err,
        );
        releaseRefund();
      },
    );
    expect(refusal).to.be.instanceOf(WorkflowUpdateFailedError);
    const cause = (refusal as WorkflowUpdateFailedError).cause as ApplicationFailure;
    expect(cause.type).to.equal('order_final');
    expect(cause.message).to.equal('the order is being cancelled (out_of_stock)');
    expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'out_of_stock', compensationsRun: ['refundPayment'] });
  });

  it('records an outcome the reconciler found in a completed run, running no step and no compensation again', async () => {
    const cases: Array<[RecordedOutcome, string]> = [
      [{ outcome: 'fulfilled' }, 'markOrderFulfilled'],
      [{ outcome: 'cancelled', cancellationReason: 'out_of_stock' }, 'markOrderCancelled(out_of_stock)'],
      [{ outcome: 'cancelled', cancellationReason: 'step_failed', failedStep: 'reserving_stock' }, 'markOrderCancelled(step_failed, reserving_stock)'],
    ];
    for (const [recordOutcome, recorded] of cases) {
      const calls: string[] = [];
      const result = await saga(mocks(calls), undefined, env, recordOutcome);
      expect(calls, recorded).to.deep.equal([recorded]);
      expect(result).to.deep.include({ outcome: recordOutcome.outcome, completedSteps: [], compensationsRun: [] });
      if (recordOutcome.outcome === 'cancelled') expect(result.cancellationReason).to.equal(recordOutcome.cancellationReason);
    }
  });

  it('refuses a cancellation while it records an outcome the reconciler found: the order is final', async () => {
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let refusal: unknown;
    const result = await saga(
      mocks(calls, { markOrderFulfilled: () => gate }),
      async (handle) => {
        await eventually(() => calls.includes('markOrderFulfilled'), { what: 'the outcome to be recorded' });
        refusal = await handle.executeUpdate(SAGA.cancelUpdate).then(
          () => undefined,
          (err: unknown) => err,
        );
        release();
      },
      env,
      { outcome: 'fulfilled' },
    );
    expect(refusal).to.be.instanceOf(WorkflowUpdateFailedError);
    expect(((refusal as WorkflowUpdateFailedError).cause as ApplicationFailure).type).to.equal('order_final');
    expect(result).to.deep.include({ outcome: 'fulfilled' });
    expect(calls).to.deep.equal(['markOrderFulfilled']);
  });

  it('ignores cancelOrder once the shipment is scheduled', async () => {
    const calls: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const result = await saga(mocks(calls, { markOrderFulfilled: () => gate }), async (handle) => {
      await eventually(() => calls.includes('markOrderFulfilled'), { what: 'the saga to complete its steps' });
      await handle.signal(SAGA.cancelSignal);
      release();
    });
    expect(result).to.deep.include({ outcome: 'fulfilled', compensationsRun: [] });
  });

  it('compensates instead of hanging when a step waits longer than its timeout (a day, skipped), with reason step_timed_out', async function () {
    this.timeout(180_000);
    // A server of its own: async-completion activities left by the cancellation tests hold
    // the shared server's clock until their one-minute attempts time out.
    const own = await TestWorkflowEnvironment.createTimeSkipping({ server: timeSkippingServer() });
    const calls: string[] = [];
    let attempts = 0;
    try {
      // Every attempt ends the way an unanswered one does after its minute: retryable. (A mock
      // that awaited async completion would hold the clock for a real minute per attempt.)
      const reserveStock = async () => {
        attempts++;
        throw ApplicationFailure.retryable('no answer within the attempt', 'AttemptTimedOut');
      };
      const result = await saga(mocks(calls, { reserveStock }), undefined, own);
      // Backoff 1 s, 2 s, ... capped at a minute: about 1,440 attempts fill the day.
      expect(attempts).to.be.within(1_400, 1_450);
      // Not out_of_stock: nobody said the stock was short. The unanswered step is undone too.
      expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'step_timed_out', failedStep: 'reserving_stock', compensationsRun: ['releaseStock', 'refundPayment'] });
      expect(calls.slice(-1)).to.deep.equal(['markOrderCancelled(step_timed_out, reserving_stock)']);
    } finally {
      await own.teardown();
    }
  });

  it('answers the status query at each stage', async () => {
    const calls: string[] = [];
    const gates = new Map<string, () => void>();
    const gated = (name: string) => () => new Promise<void>((resolve) => gates.set(name, resolve));
    const seen: SagaStatus[] = [];
    const result = await saga(
      mocks(calls, {
        capturePayment: gated('capturePayment'),
        reserveStock: gated('reserveStock'),
        scheduleShipment: gated('scheduleShipment'),
        markOrderFulfilled: gated('markOrderFulfilled'),
      }),
      async (handle) => {
        for (const name of ['capturePayment', 'reserveStock', 'scheduleShipment', 'markOrderFulfilled']) {
          await eventually(() => gates.has(name), { what: `${name} to start` });
          seen.push(await handle.query<SagaStatus>(SAGA.statusQuery));
          gates.get(name)!();
        }
      },
    );
    expect(seen.map((s) => [s.step, s.completedSteps.length, s.compensationsRun.length])).to.deep.equal([
      ['capturing_payment', 1, 0],
      ['reserving_stock', 2, 0],
      ['scheduling_shipment', 3, 0],
      ['completing', 4, 0],
    ]);
    expect(seen[2]?.completedSteps).to.deep.equal(['loadOrder', 'capturePayment', 'reserveStock']);
    expect(result.step).to.equal('done');
  });

  it('reports compensations in the status query while the saga unwinds', async () => {
    const calls: string[] = [];
    let releaseRefund!: () => void;
    let during: SagaStatus | undefined;
    const result = await saga(
      mocks(calls, {
        scheduleShipment: businessFailure('shipping.failed'),
        refundPayment: () => new Promise<void>((r) => (releaseRefund = r)),
      }),
      async (handle) => {
        await eventually(() => calls.includes('refundPayment'), { what: 'the refund to start' });
        during = await handle.query<SagaStatus>(SAGA.statusQuery);
        releaseRefund();
      },
    );
    expect(during).to.deep.include({ step: 'compensating', compensationsRun: ['releaseStock'] });
    expect(result.compensationsRun).to.deep.equal(['releaseStock', 'refundPayment']);
    const reason: Reason | undefined = result.cancellationReason;
    expect(reason).to.equal('shipping_unavailable');
  });

  it('replays the histories the current code records: loadOrder\'s local-activity marker behind its patch, a cancel while it runs', async () => {
    const paths: Array<{ overrides: Partial<Record<Name, (...args: never[]) => Promise<unknown>>>; cancel?: Name }> = [{ overrides: {} }, { overrides: { capturePayment: businessFailure('payment.declined') } }, { overrides: { loadOrder: neverAnswered }, cancel: 'loadOrder' }];
    for (const { overrides, cancel } of paths) {
      const calls: string[] = [];
      const taskQueue = uniqueName('saga-replay');
      const orderId = uniqueName('o');
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: mocks(calls, overrides), sinks: workflowSpanSinks() });
      const history = await worker.runUntil(async () => {
        const handle = await env.client.workflow.start(orderFulfillment, { args: [{ orderId }], taskQueue, workflowId: workflowIdOf(orderId) });
        if (cancel) {
          await eventually(() => calls.includes(cancel), { what: `${cancel} to start` });
          await handle.signal(SAGA.cancelSignal);
        }
        await handle.result();
        return handle.fetchHistory();
      });
      const markers = (history.events ?? []).flatMap((e) => (e.markerRecordedEventAttributes?.markerName ? [e.markerRecordedEventAttributes.markerName] : []));
      expect(markers, 'the patch, then the local activity').to.include.members(['core_patch', 'core_local_activity']);
      await Worker.runReplayHistory({ workflowBundle: bundle, replayName: `current code: ${Object.keys(overrides).join(', ') || 'happy path'}` }, history);
    }
  });

  describe('histories the previous code recorded', () => {
    let previous: WorkflowBundleWithSourceMap;
    before(async () => {
      previous = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/order-fulfillment-1ab06fd'), logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} } });
    });

    /**
     * A saga the previous code runs up to its shipment step; then, with no worker running, a
     * cancel arrives and the shipment step completes, so that both reach the saga in one
     * workflow task, which `finishWith` runs.
     */
    async function cancelledAsItShips(finishWith: WorkflowBundleWithSourceMap) {
      const calls: string[] = [];
      const taskQueue = uniqueName('saga-replay');
      const orderId = uniqueName('o');
      const handle = await env.client.workflow.start(orderFulfillment, { args: [{ orderId }], taskQueue, workflowId: workflowIdOf(orderId) });
      let shipment: Uint8Array | undefined;
      const scheduleShipment = async (): Promise<never> => {
        shipment = Context.current().info.taskToken;
        throw new CompleteAsyncError();
      };
      // No workflow cache: the next task goes to the task queue, not to a sticky queue nobody polls.
      const first = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: previous, maxCachedWorkflows: 0, activities: mocks(calls, { scheduleShipment }) });
      const token = await first.runUntil(eventually(() => shipment, { what: 'the shipment step to start' }));
      await handle.signal(SAGA.cancelSignal);
      await env.client.activity.complete(token, undefined);
      const second = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: finishWith, maxCachedWorkflows: 0, activities: mocks(calls), sinks: workflowSpanSinks() });
      const result = await second.runUntil(handle.result());
      return { result, history: await handle.fetchHistory() };
    }

    it('a cancel that arrives with the shipment step\'s completion: the previous code fulfilled the order, the current one keeps the accepted cancellation', async () => {
      const previously = await cancelledAsItShips(previous);
      expect(previously.result).to.deep.include({ outcome: 'fulfilled', compensationsRun: [] });
      const current = await cancelledAsItShips(bundle);
      expect(current.result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'customer_cancelled', compensationsRun: ['cancelShipment', 'releaseStock', 'refundPayment'] });
    });

    it('replays the history of that saga as the previous code ran it on the current code: the same commands (the change is behind a patch)', async () => {
      const { result, history } = await cancelledAsItShips(previous);
      expect(result.outcome).to.equal('fulfilled');
      await Worker.runReplayHistory({ workflowBundle: bundle, replayName: 'previous code: cancel with the shipment' }, history);
    });

    it('replays the history of each path the previous code ran on the current code', async () => {
      const paths: Array<Partial<Record<Name, (...args: never[]) => Promise<unknown>>>> = [
        {},
        { capturePayment: businessFailure('payment.declined') },
        { reserveStock: businessFailure('inventory.rejected') },
        { scheduleShipment: businessFailure('shipping.failed') },
        { reserveStock: broken('StepBroke') },
      ];
      for (const overrides of paths) {
        const taskQueue = uniqueName('saga-replay');
        const orderId = uniqueName('o');
        const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: previous, activities: mocks([], overrides) });
        const history = await worker.runUntil(async () => {
          const handle = await env.client.workflow.start(orderFulfillment, { args: [{ orderId }], taskQueue, workflowId: workflowIdOf(orderId) });
          await handle.result();
          return handle.fetchHistory();
        });
        await Worker.runReplayHistory({ workflowBundle: bundle, replayName: `previous code: ${Object.keys(overrides).join(', ') || 'happy path'}` }, history);
      }
    });
  });
});
