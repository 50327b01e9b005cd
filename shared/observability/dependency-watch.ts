// A process that waits for a dependency says so: a dependency that accepts connections but
// never answers left whole fleets silent for half an hour. Whoever holds the connection
// reports down() and up(); the watch logs a warning FIRST_WARNING_MS after the dependency
// went away, then again each time the wait has doubled (5 s, 10 s, 20 s, 40 s, then every
// minute), and keeps the dependency_connected gauge. Every watch that is not closed speaks for
// the process's readiness (dependenciesDown, served on /readyz).
import { errorMessage } from '../errors';
import { silentLogger, type Logger } from './logger';
import { dependencyConnected, type DependencyName } from './metrics';

export type { DependencyName };

/** The first warning comes this long after the dependency was lost (or first awaited), in ms. */
export const FIRST_WARNING_MS = 5_000;
/** Warnings never come further apart than this, in ms. */
export const MAX_WARNING_INTERVAL_MS = 60_000;

/** The watches of this process that are not closed: what its readiness asks. */
const open = new Set<DependencyWatch>();

export class DependencyWatch {
  private downSince?: number;
  private lastError?: string;
  private warned = false;
  private timer?: NodeJS.Timeout;
  private closed = false;
  /** What the gauge shows now; it is set only on a change (up() runs after every query). */
  private shown?: 0 | 1;

  /**
   * @param retired whether what the watch speaks for was put away without a close() (an ended
   *   pool): it then no longer counts for the process's readiness.
   */
  constructor(
    readonly dependency: DependencyName,
    private readonly logger: Logger = silentLogger,
    private readonly firstWarningMs = FIRST_WARNING_MS,
    private readonly retired: () => boolean = () => false,
  ) {
    open.add(this);
  }

  /** True unless the dependency is known to be away. */
  get connected(): boolean {
    return this.downSince === undefined;
  }

  /** The dependency is not reachable (or not yet): the clock starts unless it runs already. */
  down(err?: unknown): void {
    if (this.closed) return;
    if (err !== undefined) this.lastError = errorMessage(err);
    this.show(0);
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.schedule(this.firstWarningMs);
  }

  /** The dependency answers. */
  up(): void {
    if (this.closed) return;
    this.show(1);
    if (this.downSince === undefined) return;
    clearTimeout(this.timer);
    // Only a wait that was reported gets its end reported: a normal connect stays quiet.
    if (this.warned) this.logger.info({ dependency: this.dependency, waitedSeconds: this.waitedSeconds() }, `connected to ${this.dependency} after ${this.waitedSeconds()} s`);
    this.downSince = undefined;
    this.lastError = undefined;
    this.warned = false;
  }

  /** Stops reporting (the process closes the connection on purpose). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    open.delete(this);
  }

  /** False once closed or retired: the watch no longer speaks for the process. */
  get watching(): boolean {
    if (this.retired()) this.close();
    return !this.closed;
  }

  private show(value: 0 | 1): void {
    if (this.shown === value) return;
    this.shown = value;
    dependencyConnected.set({ dependency: this.dependency }, value);
  }

  private waitedSeconds(): number {
    return Math.round((Date.now() - (this.downSince ?? Date.now())) / 1000);
  }

  private schedule(afterMs: number): void {
    this.timer = setTimeout(() => {
      if (this.downSince === undefined || this.closed) return;
      this.warned = true;
      const waitingSeconds = this.waitedSeconds();
      this.logger.warn(
        { dependency: this.dependency, waitingSeconds, ...(this.lastError === undefined ? {} : { lastError: this.lastError }) },
        `not connected to ${this.dependency} for ${waitingSeconds} s; waiting for it`,
      );
      this.schedule(Math.min(Date.now() - this.downSince, MAX_WARNING_INTERVAL_MS));
    }, afterMs);
    // A watch never keeps a process alive on its own.
    this.timer.unref();
  }
}

/** The dependencies this process is not connected to now, each once, by name: every open watch of one must be connected. */
export function dependenciesDown(): DependencyName[] {
  const down = new Set<DependencyName>();
  for (const watch of open) if (watch.watching && !watch.connected) down.add(watch.dependency);
  return [...down].sort();
}

/** Runs a probe of a dependency and tells the watch what it found; returns the probe's answer. */
export async function observed(watch: DependencyWatch, probe: () => Promise<boolean>): Promise<boolean> {
  try {
    const ok = await probe();
    if (ok) watch.up();
    else watch.down(new Error('the probe failed'));
    return ok;
  } catch (err) {
    watch.down(err);
    throw err;
  }
}
