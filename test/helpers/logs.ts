// A logger whose lines a test can read.
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** A pino logger at `level` that keeps each JSON line it writes in `lines`. */
export function captureLogs(level = 'info'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level }, new Writable({ write: (chunk: Buffer, _enc, done) => done(void lines.push(chunk.toString())) }));
  return { logger, lines };
}
