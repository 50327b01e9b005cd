// Upcasting (docs/event-sourcing.md#old-events): a stored event written with an older schema
// version is read as the version producers write now, one step at a time, so a fold knows
// one shape per type; a consumer reads an older message the same way, so its handler does
// too (shared/messaging/validator.ts). The evolution rules (compat.ts) keep every older
// message valid under the newer schema, so a step changes nothing by default; a step that
// must (a renamed field, a value to fill) is written in UPCASTERS, and checked by
// test/unit/order-fold.test.ts. Workflow-safe: pure functions only.
import { catalog, isMessageType, type MessageType } from './catalog';
import type { Envelope } from './envelope';

type Data = Record<string, unknown>;

/** The steps that change data: UPCASTERS[type][n] takes version n to n + 1. */
export const UPCASTERS: { readonly [T in MessageType]?: Readonly<Record<number, (data: Data) => Data>> } = {
  // v2 adds the shipping address, optional: a v1 order.placed (written before v2) has none.
  'order.placed': { 1: (data) => data },
  // v2 adds reasons and an optional failedStep: every v1 reason is a v2 reason.
  'order.cancelled': { 1: (data) => data },
};

/**
 * The envelope at schema version `to`, by default its type's latest (a consumer built with an
 * older catalog asks for its own latest); unknown types, and versions at or past `to`, come
 * back as they are.
 */
export function upcast<E extends Envelope>(envelope: E, to?: number): E {
  const type = envelope.eventType;
  if (!isMessageType(type)) return envelope;
  const target = to ?? catalog[type].latest;
  if (envelope.schemaVersion >= target) return envelope;
  let data = envelope.data as Data;
  for (let v = envelope.schemaVersion; v < target; v++) data = UPCASTERS[type]?.[v]?.(data) ?? data;
  return { ...envelope, schemaVersion: target, data };
}
