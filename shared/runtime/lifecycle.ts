// Graceful stop for every process: on SIGTERM or SIGINT, run the registered stoppers in
// reverse order of registration (consumers first, connections last), then exit.
import { errorMessage } from '../errors';
import type { Logger } from '../observability/logger';

type Stopper = () => Promise<void>;

export class Lifecycle {
  private readonly stoppers: Array<{ name: string; stop: Stopper }> = [];
  private stopRun?: Promise<void>;

  constructor(private readonly logger: Logger) {}

  /** Registers something to stop; later registrations stop first. */
  onStop(name: string, stop: Stopper): void {
    this.stoppers.push({ name, stop });
  }

  /** True once a stop has begun. */
  get stopping(): boolean {
    return this.stopRun !== undefined;
  }

  /** Stops everything once; safe to call again. */
  stop(): Promise<void> {
    this.stopRun ??= (async () => {
      for (const { name, stop } of [...this.stoppers].reverse()) {
        try {
          await stop();
        } catch (err) {
          this.logger.warn({ err: errorMessage(err), component: name }, 'error while stopping');
        }
      }
    })();
    return this.stopRun;
  }

  /** Exits with 0 after a clean stop on SIGTERM/SIGINT; a second signal exits at once. */
  handleSignals(): void {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (this.stopRun) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      this.logger.info({ signal }, 'stopping: finishing in-flight messages');
      this.stop().then(
        () => {
          this.logger.info('stopped');
          process.exit(0);
        },
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
}
