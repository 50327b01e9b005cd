// Structured JSON logs (pino): one object per line, with the process name on every line.
import pino, { type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log line, wherever they appear. */
const REDACT = ['password', 'token', 'paymentToken', 'authorization', '*.password', '*.paymentToken', '*.authorization', 'data.paymentToken'];

export function createLogger(name: string, level: string = 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name, pid: process.pid } });
}

/** A logger that writes nothing, for tests and tools that print their own output. */
export const silentLogger: Logger = pino({ level: 'silent' });
