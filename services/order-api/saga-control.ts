// Cancelling an order's saga through Temporal: signal-with-start, so a cancellation that
// arrives before the saga starter has started the workflow is not lost.
import { type Client } from '@temporalio/client';
import { TypedSearchAttributes, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { SAGA, workflowIdOf } from '../../shared/saga';
import { classifyTemporalError, ORDER_ID_KEY } from '../../shared/temporal/client';
import type { SagaControl } from './app';

export class TemporalSagaControl implements SagaControl {
  constructor(private readonly client: Client) {}

  async requestCancel(orderId: string): Promise<boolean> {
    try {
      await this.client.workflow.signalWithStart(SAGA.workflowType, {
        workflowId: workflowIdOf(orderId),
        taskQueue: SAGA.taskQueue,
        args: [{ orderId }],
        signal: SAGA.cancelSignal,
        signalArgs: [],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: new TypedSearchAttributes([{ key: ORDER_ID_KEY, value: orderId }]),
      });
      return true;
    } catch (err) {
      // The saga has already finished: nothing left to cancel.
      if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
      throw classifyTemporalError(err);
    }
  }
}
