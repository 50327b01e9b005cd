// The envelope every event and command travels in (docs/messaging.md#the-envelope).
// Workflow-safe: schema objects and types only.
import { Type, type Static } from '@sinclair/typebox';

export const ULID_PATTERN = '^[0-9A-HJKMNP-TV-Z]{26}$';

const Id = Type.String({ minLength: 1, maxLength: 128 });

/** Where a command's result should be routed back to: the saga step that waits for it. */
export const ReplyToSchema = Type.Object(
  { workflowId: Id, activityId: Id },
  { additionalProperties: false },
);
export type ReplyTo = Static<typeof ReplyToSchema>;

export const EnvelopeSchema = Type.Object(
  {
    eventId: Type.String({ pattern: ULID_PATTERN }),
    eventType: Type.String({ pattern: '^[a-z]+(\\.[a-z_]+)+$', maxLength: 64 }),
    schemaVersion: Type.Integer({ minimum: 1 }),
    occurredAt: Type.String({ format: 'date-time' }),
    aggregateId: Id,
    aggregateVersion: Type.Integer({ minimum: 0 }),
    correlationId: Id,
    causationId: Id,
    replyTo: Type.Optional(ReplyToSchema),
    data: Type.Object({}, { additionalProperties: true }),
  },
  { additionalProperties: false },
);

/** An envelope whose data has been checked against the schema of its type and version. */
export interface Envelope<T = Record<string, unknown>> {
  eventId: string;
  eventType: string;
  schemaVersion: number;
  occurredAt: string;
  aggregateId: string;
  aggregateVersion: number;
  correlationId: string;
  causationId: string;
  replyTo?: ReplyTo;
  data: T;
}
