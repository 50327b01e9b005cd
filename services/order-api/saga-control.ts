// Cancelling an order's saga through Temporal: a workflow Update, so the API learns whether
// the saga accepted the cancellation, sent with update-with-start, so a cancellation that
// arrives before the saga starter has started the workflow is not lost.
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { isCancelRefusal, SAGA } from '../../shared/saga';
import { classifyTemporalError } from '../../shared/temporal/client';
import { sagaStartOptions } from '../../shared/temporal/saga-start';
import type { CancelResult, SagaControl } from './app';

/**
 * An Update waits for a Temporal worker to run it: without one the request would wait for
 * ever, so it gives up (a 503) after this long. The server may have admitted the update by
 * then, and the saga takes it when a worker runs it: a 503 says "outcome unknown; retry",
 * and a retry is safe (the saga answers it like the first request).
 */
export const CANCEL_DEADLINE_MS = 10_000;

export class TemporalSagaControl implements SagaControl {
  constructor(private readonly client: Client) {}

  async requestCancel(orderId: string): Promise<CancelResult> {
    const startWorkflowOperation = new WithStartWorkflowOperation(SAGA.workflowType, {
      ...sagaStartOptions({ orderId }),
      workflowIdConflictPolicy: 'USE_EXISTING',
      // A finished saga is not started again: the start fails and the cancel is refused.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    try {
      await this.client.withDeadline(Date.now() + CANCEL_DEADLINE_MS, () =>
        this.client.workflow.executeUpdateWithStart(SAGA.cancelUpdate, { startWorkflowOperation }),
      );
      return { accepted: true };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { accepted: false, reason: 'no_saga', message: 'the order has no running saga' };
      // The saga's validator refused: too late to cancel.
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && isCancelRefusal(err.cause.type)) {
        return { accepted: false, reason: err.cause.type, message: err.cause.message };
      }
      throw classifyTemporalError(err);
    }
  }
}
