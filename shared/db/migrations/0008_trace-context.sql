-- Up Migration
-- The trace an event was appended in (docs/operations.md#following-an-orders-trace): the W3C
-- trace context of the span that appended it (the order's POST, the saga's activity), as
-- propagated: {"traceparent": "00-<trace id>-<span id>-<flags>"}, with "tracestate" when there
-- is one. The relay publishes the event as a child of it, so an order's events join the
-- order's trace however late their batch goes out. Beside the envelope, not in it: the
-- envelope is the message, and its schema admits no such field. NULL when the writer traced
-- nothing (tracing off, or an event appended before this column).

ALTER TABLE orders.events ADD COLUMN trace_context jsonb;

-- Down Migration
ALTER TABLE orders.events DROP COLUMN trace_context;
