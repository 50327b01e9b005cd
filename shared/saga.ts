// The saga's contract, shared by the workflow, its activities, the reply bridge, the
// starter and the tests: its names, and its steps as one table (SAGA_STEPS). Workflow-safe:
// constants, types and pure functions only. docs/architecture.md#the-saga tells the story.
import type { Static } from '@sinclair/typebox';
import type { MessageType } from './events';
import type { CancellationReasonV2 } from './events/schemas/common';

export const SAGA = {
  workflowType: 'orderFulfillment',
  taskQueue: 'order-fulfillment',
  /** For the Web UI and the CLI: ignored when it is too late to cancel. */
  cancelSignal: 'cancelOrder',
  /** For the API: says whether the cancellation was accepted (see CancelRefusal). */
  cancelUpdate: 'requestCancellation',
  statusQuery: 'status',
  /** Custom search attribute holding the order id, so the Web UI can find an order. */
  orderIdSearchAttribute: 'OrderId',
} as const;

export const workflowIdOf = (orderId: string): string => `order-${orderId}`;

/** The saga's argument. */
export interface SagaInput {
  orderId: string;
  /**
   * Set only by the reconciler, for an order whose saga completed with this outcome while the
   * order store still says accepted (the store was restored from a backup, say): the saga
   * records the outcome again without running its steps, whose effects are already done.
   */
  recordOutcome?: RecordedOutcome;
}

export type RecordedOutcome = { outcome: 'fulfilled' } | { outcome: 'cancelled'; cancellationReason: Reason; failedStep?: SagaStep };

export type Reason = Static<typeof CancellationReasonV2>;

export interface OrderDetails {
  orderId: string;
  customerId: string;
  items: Array<{ sku: string; quantity: number; unitPrice: number }>;
  totalAmount: number;
  currency: string;
  shippingAddress: { city: string; country: string };
  paymentToken: string;
}

/** One step the saga asks a worker to do, and its compensation. */
export interface WorkerStepDefinition {
  /** The saga's step while it runs: SagaStatus.step, and failedStep when it times out or fails. */
  readonly step: string;
  /**
   * The activity: its name in the Web UI and in every workflow history. A running saga replays
   * its history, so an activity is never renamed, and the steps never reordered.
   */
  readonly activity: string;
  /** The command the activity publishes; the worker answers with `ok` or `fail`. */
  readonly command: MessageType;
  /** The worker did the step: the activity completes. */
  readonly ok: MessageType;
  /** The worker's business "no": the activity fails as non-retryable with this type, and the order is cancelled with `reason`. */
  readonly fail: MessageType;
  readonly reason: Reason;
  /** The compensation, registered before the step runs; its command always ends in `ok`. */
  readonly undo: { readonly activity: string; readonly command: MessageType; readonly ok: MessageType };
}

/**
 * The longest wait between two attempts, in ms: of a step (and of the order-store steps), and
 * of a compensation, which is retried until it succeeds. The workflow's retry policies, and
 * how long `npm run where-is` allows a retry before it says no worker picked it up.
 */
export const SAGA_MAX_RETRY_INTERVAL_MS = { step: 60_000, compensation: 5 * 60_000 } as const;

/**
 * The saga's worker steps, in the order they run (the compensations run in reverse). The
 * workflow runs them, the activities publish their commands, and the reply bridge completes
 * or fails them by these message types: this table is the one place that pairs them.
 */
export const SAGA_STEPS = [
  {
    step: 'capturing_payment',
    activity: 'capturePayment',
    command: 'payments.capture',
    ok: 'payment.captured',
    fail: 'payment.declined',
    reason: 'payment_declined',
    undo: { activity: 'refundPayment', command: 'payments.refund', ok: 'payment.refunded' },
  },
  {
    step: 'reserving_stock',
    activity: 'reserveStock',
    command: 'inventory.reserve',
    ok: 'inventory.reserved',
    fail: 'inventory.rejected',
    reason: 'out_of_stock',
    undo: { activity: 'releaseStock', command: 'inventory.release', ok: 'inventory.released' },
  },
  {
    step: 'scheduling_shipment',
    activity: 'scheduleShipment',
    command: 'shipping.schedule',
    ok: 'shipping.scheduled',
    fail: 'shipping.failed',
    reason: 'shipping_unavailable',
    undo: { activity: 'cancelShipment', command: 'shipping.cancel', ok: 'shipping.cancelled' },
  },
] as const satisfies readonly WorkerStepDefinition[];

export type WorkerStep = (typeof SAGA_STEPS)[number];
/** The commands of the worker steps, which the activities build from the order. */
export type StepCommand = WorkerStep['command'];

export type SagaStep = 'loading_order' | WorkerStep['step'] | 'completing' | 'compensating' | 'done';

/** Every result event the reply bridge turns into an activity's completion or failure. */
export const SAGA_REPLY_TYPES: readonly MessageType[] = SAGA_STEPS.flatMap((s) => [s.ok, s.fail, s.undo.ok]);

export interface SagaStatus {
  orderId: string;
  step: SagaStep;
  completedSteps: string[];
  compensationsRun: string[];
  outcome?: 'fulfilled' | 'cancelled';
  cancellationReason?: Reason;
  /** The step that timed out or failed, when that cancelled the order (step_timed_out, step_failed). */
  failedStep?: SagaStep;
}

/** What the cancel update answers when it is accepted. */
export interface CancellationAccepted {
  accepted: true;
}

/**
 * Why a cancellation is refused: the shipment is scheduled, the saga has recorded its
 * outcome, or no saga runs for the order any more. The workflow's update validator fails
 * with the first two as its ApplicationFailure type.
 */
export const CANCEL_REFUSALS = ['already_shipped', 'order_final', 'no_saga'] as const;
export type CancelRefusal = (typeof CANCEL_REFUSALS)[number];

export const isCancelRefusal = (value: unknown): value is CancelRefusal => CANCEL_REFUSALS.some((r) => r === value);

export type BusinessFailures = { readonly [S in WorkerStep as S['fail']]: S['reason'] };

/** The failure types the reply bridge fails an activity with, and the cancellation reason of each (from SAGA_STEPS). */
export const BUSINESS_FAILURES: BusinessFailures = Object.fromEntries(SAGA_STEPS.map((s) => [s.fail, s.reason])) as BusinessFailures;

/**
 * The cancellation reason a business failure type stands for, or undefined for any other
 * type: only a step's `fail` type is one (`constructor`, `toString` and the like are not).
 */
export function businessReasonOf(type: string): Reason | undefined {
  return SAGA_STEPS.find((s) => s.fail === type)?.reason;
}
