// The saga's adapters between RabbitMQ and Temporal. The reply bridge completes the saga
// activity a result event answers, by {workflowId, activityId}, or fails it as
// non-retryable for a business failure. The starter starts one workflow per order.placed.
import { ActivityNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DataOf, Envelope } from '../../shared/events';
import type { Handler, HandlerContext } from '../../shared/messaging/consumer';
import { BUSINESS_FAILURES, SAGA, workflowIdOf } from '../../shared/saga';
import { classifyTemporalError, ORDER_ID_KEY } from '../../shared/temporal/client';

const SUCCESSES = ['payment.captured', 'payment.refunded', 'inventory.reserved', 'inventory.released', 'shipping.scheduled', 'shipping.cancelled'];

export class SagaBridge {
  constructor(private readonly client: Client) {}

  readonly replyHandlers: Record<string, Handler> = Object.fromEntries(
    [...SUCCESSES, ...Object.keys(BUSINESS_FAILURES)].map((type) => [type, (e: Envelope, ctx: HandlerContext) => this.reply(e, ctx)]),
  );

  readonly startHandlers: Record<string, Handler> = {
    'order.placed': (e, ctx) => this.start(e as Envelope<DataOf<'order.placed'>>, ctx),
  };

  async reply(event: Envelope, ctx: HandlerContext): Promise<void> {
    if (!event.replyTo) return; // a result nobody waits for (e.g. a command sent by hand)
    const target = { workflowId: event.replyTo.workflowId, activityId: event.replyTo.activityId };
    try {
      if (event.eventType in BUSINESS_FAILURES) {
        const message = `${event.eventType}: ${JSON.stringify(event.data)}`;
        await this.client.activity.fail(target, ApplicationFailure.nonRetryable(message, event.eventType));
      } else {
        await this.client.activity.complete(target, event.data);
      }
    } catch (err) {
      if (err instanceof ActivityNotFoundError) {
        // The activity no longer waits (completed by a duplicate, timed out, cancelled): nothing to do.
        ctx.logger.info({ ...target, eventType: event.eventType }, 'reply for an activity that no longer waits; dropped');
        return;
      }
      throw classifyTemporalError(err);
    }
  }

  async start(event: Envelope<DataOf<'order.placed'>>, ctx: HandlerContext): Promise<void> {
    const { orderId } = event.data;
    try {
      await this.client.workflow.start(SAGA.workflowType, {
        workflowId: workflowIdOf(orderId),
        taskQueue: SAGA.taskQueue,
        args: [{ orderId }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: new TypedSearchAttributes([{ key: ORDER_ID_KEY, value: orderId }]),
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        ctx.logger.info({ orderId }, 'saga already started for this order');
        return;
      }
      throw classifyTemporalError(err);
    }
  }
}
