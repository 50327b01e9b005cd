-- Up Migration
-- A compensation can overtake the step it undoes (the saga cancels while the step is still
-- being handled). Each worker serialises a step and its undo per order, and an undo that
-- finds nothing to undo leaves a void, so that the late step does nothing.

CREATE TABLE payments.voids (order_id text PRIMARY KEY, voided_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE inventory.voids (order_id text PRIMARY KEY, voided_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE shipping.voids (order_id text PRIMARY KEY, voided_at timestamptz NOT NULL DEFAULT now());

-- Down Migration
DROP TABLE shipping.voids;
DROP TABLE inventory.voids;
DROP TABLE payments.voids;
