// The saga's adapters between RabbitMQ and Temporal. The reply bridge completes the saga
// activity a result event answers, by {workflowId, activityId}, or fails it as
// non-retryable for a business failure; which event is which comes from SAGA_STEPS. The
// starter starts one workflow per order.placed.
import { ActivityNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Envelope, EnvelopeOf } from '../../shared/events';
import type { HandlerContext, HandlerMap } from '../../shared/messaging/handler';
import { businessReasonOf, SAGA_REPLY_TYPES } from '../../shared/saga';
import { classifyTemporalError } from '../../shared/temporal/client';
import { startSaga } from '../../shared/temporal/saga-start';

export class SagaBridge {
  constructor(private readonly client: Client) {}

  readonly replyHandlers: HandlerMap = Object.fromEntries(SAGA_REPLY_TYPES.map((type) => [type, (e: Envelope, ctx: HandlerContext) => this.reply(e, ctx)]));

  readonly startHandlers: HandlerMap = {
    'order.placed': (e, ctx) => this.start(e, ctx),
  };

  async reply(event: Envelope, ctx: HandlerContext): Promise<void> {
    if (!event.replyTo) return; // a result nobody waits for (e.g. a command sent by hand)
    const target = { workflowId: event.replyTo.workflowId, activityId: event.replyTo.activityId };
    try {
      if (businessReasonOf(event.eventType) !== undefined) {
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

  async start(event: EnvelopeOf<'order.placed'>, ctx: HandlerContext): Promise<void> {
    const { orderId } = event.data;
    if ((await startSaga(this.client, { orderId })) === 'already_started') ctx.logger.info({ orderId }, 'saga already started for this order');
  }
}
