// The entry point of every process: reads the configuration (a clear message and exit 1
// when it is bad), creates the logger, and stops gracefully on SIGTERM/SIGINT. A process
// that can no longer do its job (its main part failed, or a promise rejected unhandled)
// exits non-zero, so that `npm start` or its container supervisor restarts it. Each serves
// its metrics and readiness on METRICS_PORT from the start (shared/runtime/metrics-server.ts),
// and traces under its name when tracing is on (shared/observability/tracing.ts, which its
// entry point imports first).
import 'reflect-metadata';
import type { Registry } from 'prom-client';
import { container } from 'tsyringe';
import { getConfig, type Config } from '../config';
import { ConfigError, errorMessage, EXIT_INCURABLE, IncurableError } from '../errors';
import { Lifecycle } from './lifecycle';
import { createLogger, type Logger } from '../observability/logger';
import { startTracing } from '../observability/tracing';
import { notReadyBecause, serveProcess, type ProcessPhase, type Working } from './metrics-server';

export interface ProcessContext {
  config: Config;
  logger: Logger;
  lifecycle: Lifecycle;
}

export interface RunningProcess extends Working {
  stop(): Promise<void>;
  /** Settles when the process's main part ended by itself (e.g. the Temporal worker stopped polling): it then exits 1. */
  ended?: Promise<unknown>;
  /** Metrics of its own, served on METRICS_PORT beside processRegistry's (order-api's http_* and outbox_*). */
  registry?: Registry;
}

/** How long a failed process may take to stop gracefully before it exits anyway, in ms. */
const FAILED_STOP_MS = 10_000;

export function runProcess(name: string, main: (ctx: ProcessContext) => Promise<RunningProcess>): void {
  let config: Config;
  try {
    config = getConfig();
  } catch (err) {
    console.error(`${name}: ${err instanceof ConfigError ? err.message : errorMessage(err)}`);
    process.exit(1);
  }
  const logger = createLogger(name, config.logLevel);
  const lifecycle = new Lifecycle(logger);
  lifecycle.handleSignals();
  // Registered first, so that it stops last: the spans of every other part's stop are exported.
  const stopTracing = startTracing(name);
  if (stopTracing) lifecycle.onStop('tracing', stopTracing);
  const fail = (what: string, err: unknown): void => {
    logger.fatal({ err: errorMessage(err) }, `${what}; exiting so that a supervisor restarts the process`);
    setTimeout(() => process.exit(1), FAILED_STOP_MS).unref();
    void lifecycle.stop().finally(() => process.exit(1));
  };
  process.on('unhandledRejection', (err) => fail('unhandled rejection', err));
  let running: RunningProcess | undefined;
  const phase = (): ProcessPhase => (lifecycle.stopping ? 'stopping' : running ? 'running' : 'starting');
  // Up before the main part, so that a process that waits for its dependencies says so on
  // /readyz; stopped last, so that /metrics answers while in-flight work finishes.
  const serve = async (): Promise<void> => {
    const server = await serveProcess({ port: config.metricsPort, logger, notReady: () => notReadyBecause(phase(), running), registry: () => running?.registry });
    lifecycle.onStop('metrics server', () => server.close());
  };
  serve().then(() => main({ config, logger, lifecycle })).then(
    (started) => {
      running = started;
      lifecycle.onStop(name, () => started.stop());
      started.ended?.then(
        () => {
          if (!lifecycle.stopping) fail(`${name} stopped working`, 'it ended by itself');
        },
        (err: unknown) => {
          if (!lifecycle.stopping) fail(`${name} failed`, err);
        },
      );
    },
    (err: unknown) => {
      // A configuration only an operator can mend (order-api in production without a key, say).
      if (err instanceof IncurableError || err instanceof ConfigError) {
        // A plain line and an exit status of its own: a supervisor stops restarting it.
        console.error(`${name}: cannot start: ${err.message}`);
        process.exit(EXIT_INCURABLE);
      }
      logger.fatal({ err: errorMessage(err) }, 'could not start');
      process.exit(1);
    },
  );
}

export { container as rootContainer };
