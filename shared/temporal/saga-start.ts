// Starting an order's saga. The saga starter, the API's cancel (update-with-start) and the
// reconciler all start it with these options, so a saga has one id, task queue and search
// attribute however it was started. A start that made a run is counted here (sagas_started_total).
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { TypedSearchAttributes, type WorkflowIdReusePolicy } from '@temporalio/common';
import { Counter } from 'prom-client';
import { processRegistry } from '../observability/metrics';
import { SAGA, workflowIdOf, type SagaInput } from '../saga';
import { classifyTemporalError, ORDER_ID_KEY } from './client';

/** Who starts sagas: the saga starter on order.placed, or the reconciler for a saga Temporal lost. */
export type SagaStarter = 'saga-starter' | 'reconciler';

const sagasStarted = new Counter<'by'>({
  name: 'sagas_started_total',
  help: 'Saga runs started, by who started them: saga-starter (on order.placed) or reconciler (a saga Temporal lost: a new run, or one that records the outcome of a completed run); a start refused because a run exists is not counted, nor a run the API started with a cancel (update-with-start)',
  labelNames: ['by'],
  registers: [processRegistry],
});

/** The start options every start of an order's saga shares. */
export function sagaStartOptions(input: SagaInput): { workflowId: string; taskQueue: string; args: [SagaInput]; typedSearchAttributes: TypedSearchAttributes } {
  return {
    workflowId: workflowIdOf(input.orderId),
    taskQueue: SAGA.taskQueue,
    args: [input],
    typedSearchAttributes: new TypedSearchAttributes([{ key: ORDER_ID_KEY, value: input.orderId }]),
  };
}

export interface SagaStartOptions {
  /**
   * REJECT_DUPLICATE (default): the id is never run twice, so a repeated order.placed starts
   * nothing. ALLOW_DUPLICATE: a new run after a closed one (the reconciler); a running one
   * still refuses it, so two starts at once make one run.
   */
  reuse?: Extract<WorkflowIdReusePolicy, 'REJECT_DUPLICATE' | 'ALLOW_DUPLICATE'>;
  /** Shown in the Web UI and read back by the reconciler. */
  memo?: Record<string, unknown>;
  /** Who starts it, as sagas_started_total counts it. Default saga-starter */
  by?: SagaStarter;
}

/** Starts the order's saga; 'already_started' when a run of it exists that the policy will not replace. */
export async function startSaga(client: Client, input: SagaInput, options: SagaStartOptions = {}): Promise<'started' | 'already_started'> {
  try {
    await client.workflow.start(SAGA.workflowType, { ...sagaStartOptions(input), workflowIdReusePolicy: options.reuse ?? 'REJECT_DUPLICATE', memo: options.memo });
    sagasStarted.inc({ by: options.by ?? 'saga-starter' });
    return 'started';
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already_started';
    throw classifyTemporalError(err);
  }
}
