// What a consumer calls for each message: a handler per message type. Handlers return (with
// the messages to publish) or throw; they never ack: the consumer loop decides what happens.
import type { Envelope, EnvelopeOf, MessageType } from '../events';
import type { Logger } from '../observability/logger';

export interface HandlerContext {
  /** 1 for the first attempt; grows with each retry. */
  attempt: number;
  /** True when the broker delivered this message before (e.g. its consumer died before acking). */
  redelivered: boolean;
  logger: Logger;
}

/** What a handler produced: messages to publish before the input is acked (and re-emitted for duplicates). */
export interface HandlerResult {
  publish?: Envelope[];
}

/** A handler of any message, typed or not (tests consume messages outside the catalog). */
export type Handler = (envelope: Envelope, ctx: HandlerContext) => Promise<HandlerResult | void>;

/** The handler of message type T: its envelope's data is already checked against T's schema. */
export type HandlerOf<T extends MessageType> = (envelope: EnvelopeOf<T>, ctx: HandlerContext) => Promise<HandlerResult | void>;

/**
 * Handlers by message type, each typed by the catalog; a type without a handler is
 * dead-lettered. A map of untyped handlers fits too (any envelope is acceptable to them).
 */
export type HandlerMap = { readonly [T in MessageType]?: HandlerOf<T> };

/**
 * The handler of a message the validator has passed, or undefined. The one place where a
 * handler is called with an envelope whose type was only known at run time: the validator
 * checked its data against the schema of that type, which is what HandlerOf<T> promises.
 */
export function handlerFor(handlers: HandlerMap, envelope: Envelope): Handler | undefined {
  if (!Object.prototype.hasOwnProperty.call(handlers, envelope.eventType)) return undefined;
  return (handlers as Readonly<Record<string, Handler | undefined>>)[envelope.eventType];
}
