// When `npm start` gives up on a process. One that fails the same way several times in a
// row as it starts (a broker plugin off, a queue declared with other arguments) will fail
// that way again; restarting it forever only buries the cause under its repeats, while
// the rest of the fleet can still run.
import { EXIT_INCURABLE } from '../shared/errors';

/** Same-way failures in a row after which a process is no longer restarted. */
export const GIVE_UP_AFTER = 3;
/** A run shorter than this that ends in a failure failed at start; a longer one resets the count. */
export const START_WINDOW_MS = 30_000;
/** A process that dies sooner than this after it started waits longer before its restart. */
const QUICK_DEATH_MS = 10_000;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  ranMs: number;
  /** The last meaningful line the process printed (meaningOf), '' when none. */
  lastLine: string;
}

export type Verdict = { restart: true; delayMs: number } | { restart: false; failures: number; cause: string };

/**
 * `npm start`'s line for a process that exited and will be restarted. An exit nobody caused
 * (not a signal) names its cause, the process's last meaningful line, so that a supervisor's
 * log (and a chaos report, which counts such exits as crashes) says why.
 */
export function exitLine(name: string, exit: Omit<Exit, 'ranMs'>, delayMs: number): string {
  const how = exit.signal ?? `code ${String(exit.code)}${exit.lastLine ? `: ${exit.lastLine.slice(0, 300)}` : ''}`;
  return `[start] ${name} exited (${how}); restarting in ${delayMs / 1000} s`;
}

/** pino's level of error; info and warn lines are not why a process stopped. */
const PINO_ERROR = 50;
/** pino's level of a warning. */
const PINO_WARN = 40;

/**
 * What a line of a process's output says about why it stopped, comparable between two runs:
 * an error log line's message and error without its time and pid. Undefined for lines that
 * say nothing of the kind: info and warn log lines (stdout and stderr reach the supervisor
 * in no set order, and those come before the cause), blank lines, and the stack frames and
 * Node.js footer of an uncaught exception.
 */
export function meaningOf(line: string): string | undefined {
  const text = line.trim().replace(/^\(node:\d+\)/, '(node)');
  if (text === '' || text === '^' || text.startsWith('at ') || /^Node\.js v\d/.test(text)) return undefined;
  if (text.startsWith('{')) {
    try {
      const entry = JSON.parse(text) as { level?: unknown; msg?: unknown; err?: unknown };
      if (typeof entry.level === 'number' && entry.level < PINO_ERROR) return undefined;
      if (typeof entry.msg === 'string') return typeof entry.err === 'string' ? `${entry.msg}: ${entry.err}` : entry.msg;
    } catch {
      // not JSON after all
    }
  }
  return text;
}

/**
 * What a log line says about a dependency the process waits for: a DependencyWatch warning
 * ("not connected to redis for 10 s") means it waits, its info line ("connected to redis
 * after 12 s") that it stopped waiting; anything else says nothing.
 */
export function dependencyWaitOf(line: string): { dependency: string; waiting: boolean } | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(text) as { level?: unknown; dependency?: unknown };
    if (typeof entry.dependency !== 'string' || typeof entry.level !== 'number') return undefined;
    return { dependency: entry.dependency, waiting: entry.level >= PINO_WARN };
  } catch {
    return undefined;
  }
}

/**
 * The dependencies a process still waits for, from its log lines: `npm start` names them
 * once when a process has not reached them within its first NOT_CONNECTED_REPORT_MS.
 */
export class DependencyWaits {
  private readonly waiting = new Set<string>();

  observe(line: string): void {
    const wait = dependencyWaitOf(line);
    if (wait?.waiting) this.waiting.add(wait.dependency);
    else if (wait) this.waiting.delete(wait.dependency);
  }

  get pending(): string[] {
    return [...this.waiting].sort();
  }
}

/** When `npm start` says that a process has not reached its dependencies, after its start. */
export const NOT_CONNECTED_REPORT_MS = 30_000;

/** The restart rule of one process of the fleet. */
export class RestartPolicy {
  private failures = 0;
  private lastWay = '';

  decide(exit: Exit): Verdict {
    const delayMs = exit.ranMs < QUICK_DEATH_MS ? 5_000 : 1_000;
    // A process that says it cannot start counts however long it took to find out; a signal
    // is someone else's doing (Ctrl-C, a test, the chaos run), not the process failing.
    const incurable = exit.code === EXIT_INCURABLE;
    const failedAtStart = incurable || (exit.signal === null && exit.code !== 0 && exit.ranMs < START_WINDOW_MS);
    if (!failedAtStart) {
      this.failures = 0;
      this.lastWay = '';
      return { restart: true, delayMs };
    }
    const way = incurable ? 'incurable' : `${String(exit.code)}\n${exit.lastLine}`;
    this.failures = way === this.lastWay ? this.failures + 1 : 1;
    this.lastWay = way;
    if (this.failures < GIVE_UP_AFTER) return { restart: true, delayMs };
    return { restart: false, failures: this.failures, cause: exit.lastLine || `exit code ${String(exit.code)}` };
  }
}
