// Structured JSON logs (pino): one object per line, with the process name on every line, and
// the trace_id and span_id of the active span when there is one (a line written while handling
// an order's message or request finds that order's trace).
import pino, { type Logger } from 'pino';
import { activeSpanIds } from './trace-context';

export type { Logger };

/** Keys whose values never reach a log line, wherever they appear: a request's bearer token among them. */
const REDACT = ['password', 'token', 'paymentToken', 'authorization', '*.password', '*.paymentToken', '*.authorization', 'data.paymentToken', 'headers.authorization', 'req.headers.authorization'];

export function createLogger(name: string, level: string = 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name, pid: process.pid }, mixin: activeSpanIds });
}

/** A logger that writes nothing, for tests and tools that print their own output. */
export const silentLogger: Logger = pino({ level: 'silent' });
