// The saga with mocked activities on the time-skipping test server: one test per path.
import { expect } from 'chai';
import { ApplicationFailure, CompleteAsyncError } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import type { SagaActivities } from '../../activities/types';
import type { OrderDetails, Reason, SagaStatus } from '../../shared/saga';
import { SAGA, workflowIdOf } from '../../shared/saga';
import { timeSkippingServer } from '../../shared/temporal/binaries';
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
        calls.push(name === 'markOrderCancelled' ? `${name}(${String(args[1])})` : name);
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

/** A worker step that never gets its answer (the activity waits for async completion). */
const neverAnswered = async (): Promise<never> => {
  throw new CompleteAsyncError();
};

describe('orderFulfillment saga (time-skipping server, mocked activities)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;

  before(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: timeSkippingServer() });
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: { info() {}, warn() {}, error() {}, debug() {}, trace() {}, log() {} } });
  });
  after(async () => {
    await env?.teardown();
  });

  async function saga(
    activities: SagaActivities,
    during: (handle: WorkflowHandle<typeof orderFulfillment>) => Promise<void> = async () => undefined,
    on: TestWorkflowEnvironment = env,
  ): Promise<SagaStatus> {
    const taskQueue = uniqueName('saga-test');
    const worker = await Worker.create({ connection: on.nativeConnection, taskQueue, workflowBundle: bundle, activities });
    return worker.runUntil(async () => {
      const orderId = uniqueName('o');
      const handle = await on.client.workflow.start(orderFulfillment, { args: [{ orderId }], taskQueue, workflowId: workflowIdOf(orderId) });
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

  it('compensates instead of hanging when a step waits longer than its timeout (a day, skipped)', async function () {
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
      expect(result).to.deep.include({ outcome: 'cancelled', cancellationReason: 'out_of_stock', compensationsRun: ['releaseStock', 'refundPayment'] });
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
});
