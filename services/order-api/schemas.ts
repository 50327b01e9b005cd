// The HTTP API's schemas, request and response, in TypeBox: fastify validates requests and
// serializes responses with them, and @fastify/swagger describes the API with the same
// objects (GET /openapi.json). A response schema is also what fastify serializes with: a
// property missing here is dropped from the answer, so each one lists every field its
// route sends (test/integration/openapi.test.ts checks real answers against them).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Amount, Country, Currency, Quantity, Sku } from '../../shared/events/schemas/common';
import { StringEnum as OneOf } from '../../shared/orders/read-model';
import { CANCEL_REFUSALS } from '../../shared/saga';

export { OrderView as Order } from '../../shared/orders/read-model';

const strict = { additionalProperties: false } as const;

/** Text without control characters (PostgreSQL cannot store NUL; none belong in an order). */
const Text = (maxLength: number, options: { description?: string } = {}) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]*$', ...options });

// ---- Requests ----

export const PlaceOrderBody = Type.Object(
  {
    customerId: Text(64),
    items: Type.Array(Type.Object({ sku: Sku, quantity: Quantity, unitPrice: Amount }, strict), { minItems: 1, maxItems: 100 }),
    currency: Currency,
    shippingAddress: Type.Object({ city: Text(100), country: Country }, strict),
    paymentMethod: Type.Object({ token: Text(128, { description: 'tok_ok, tok_decline or tok_flaky: docs/architecture.md#test-triggers' }) }, strict),
  },
  { ...strict, description: 'An order. Unknown fields and wrong types are refused, not coerced.' },
);
export type PlaceOrder = Static<typeof PlaceOrderBody>;

export const PlaceOrderHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Text(200, { description: 'Idempotency-Key: a retried request with the same key answers the same orderId and starts nothing new.' }),
  ),
});

/** Order ids in URLs: what the API issues (`ord_<ULID>`) and any other plain id. */
export const OrderIdParams = Type.Object({ orderId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'The id POST /orders answered, e.g. ord_01JD6Y0K3W6W4M5V9X2Q8H7R1B' }) });

export const AsOfQuery = Type.Object(
  {
    asOf: Type.Optional(
      Type.String({
        format: 'date-time',
        description: 'The order as it stood at this time (ISO 8601, e.g. 2026-11-29T10:00:00Z), folded from its events up to then.',
      }),
    ),
  },
  strict,
);

/** Customer ids in URLs: what POST /orders takes as customerId, without control characters or slashes. */
export const CustomerIdParams = Type.Object({ customerId: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f/]+$', description: 'The customerId the orders were placed with.' }) });

// ---- Answers ----

const Detail = Type.Object(
  {
    field: Type.String({ description: 'Where: body, body/items/0/sku, params/orderId, headers/idempotency-key …' }),
    message: Type.String(),
    unknownField: Type.Optional(Type.String({ description: 'The field that is not allowed there.' })),
  },
  strict,
);

/** An error answer: a code, and what else its status carries. */
function ErrorBody(description: string, codes: readonly string[], fields: Record<string, TSchema> = {}, headers?: Record<string, { type: string; description: string }>) {
  return Type.Object({ error: OneOf(codes), message: Type.Optional(Type.String()), ...fields }, { ...strict, description, ...(headers ? { headers } : {}) });
}

export const BadRequest = ErrorBody(
  'Bad input. validation_failed: the request fails its schema (details name each field); invalid_json: a body sent as application/json that is not JSON, or empty; bad_request and invalid_input: another malformed request.',
  ['validation_failed', 'invalid_json', 'bad_request', 'invalid_input'],
  { details: Type.Optional(Type.Array(Detail)) },
);
export const NotFound = ErrorBody(
  "No such order (or none yet at asOf), or another customer's: a customer token sees its own orders only, and another's answer the same as one that does not exist.",
  ['not_found'],
);
export const Unauthorized = ErrorBody(
  'No bearer token, or one that is malformed, expired, not valid yet, for another issuer or audience, or not signed by a trusted key (the message says which). WWW-Authenticate: Bearer says how to authenticate.',
  ['unauthorized'],
  {},
  { 'WWW-Authenticate': { type: 'string', description: 'Bearer realm="order-api", with error="invalid_token" and a description for a token that is not valid' } },
);
export const Forbidden = ErrorBody(
  'The token is valid but may not do this: it grants neither orders:customer nor orders:operator, or a customer token places an order for another customer.',
  ['forbidden'],
);
export const TooManyRequests = ErrorBody('Too many requests from this token, or from this address, in the last minute: retry after Retry-After seconds.', ['too_many_requests'], {}, {
  'Retry-After': { type: 'integer', description: 'Seconds until the limit lets requests through again' },
});

export const PayloadTooLarge = ErrorBody('The body is over 64 KiB (the rest of it is read and dropped first, so the client can read this answer).', ['payload_too_large']);
export const UnsupportedMediaType = ErrorBody('The body is not sent as application/json.', ['unsupported_media_type']);
export const Unavailable = ErrorBody('A dependency (PostgreSQL, or Temporal for a cancellation) does not answer: retry later.', ['unavailable']);
export const CannotCancel = ErrorBody(
  "Too late to cancel, or a conflict. cannot_cancel: the shipment is scheduled (reason already_shipped); order_final: the order is final, is being cancelled for another reason, or has no running saga; concurrent_modification: another request changed the order between this one's read and its write (read the order and retry).",
  ['cannot_cancel', 'order_final', 'concurrent_modification'],
  { reason: Type.Optional(OneOf(CANCEL_REFUSALS)) },
);

export const OrderAccepted = Type.Object(
  { orderId: Type.String(), status: OneOf(['accepted']) },
  {
    ...strict,
    description: 'Accepted: the order and its order.placed are stored; the saga runs from here. Location is the order.',
    headers: { Location: { type: 'string', description: '/orders/<orderId>' } },
  },
);

export const CancellationRequested = Type.Object(
  { orderId: Type.String(), status: OneOf(['cancellation_requested']) },
  { ...strict, description: 'The saga accepted the cancellation: the order ends cancelled (customer_cancelled).' },
);

export const OrderEvents = Type.Object(
  {
    orderId: Type.String(),
    version: Type.Integer({ minimum: 1, description: "The stream's version: its last event's." }),
    events: Type.Array(
      Type.Object(
        {
          version: Type.Integer({ minimum: 1 }),
          eventType: Type.String({ examples: ['order.placed'] }),
          occurredAt: Type.String({ format: 'date-time' }),
          data: Type.Object({}, { additionalProperties: true, description: "The event's data at its type's latest schema version (docs/event-sourcing.md#old-events)." }),
        },
        strict,
      ),
    ),
  },
  { ...strict, description: "The order's event stream, from the event store, in version order: 1, 2, 3, …" },
);

export const Health = Type.Object({ status: OneOf(['ok']) }, { ...strict, description: 'The process is up.' });
export const Readiness = Type.Object(
  { status: OneOf(['ready', 'not_ready']), down: Type.Array(Type.String(), { description: 'What does not answer within 2 s: postgres, temporal.' }) },
  { ...strict, description: 'PostgreSQL and Temporal reachable (200), or not (503, naming each).' },
);
export const OpenApiDocument = Type.Object({ openapi: Type.String() }, { additionalProperties: true, description: 'This document (OpenAPI 3.1).' });
