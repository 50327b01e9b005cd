// The entry point of every process: reads the configuration (a clear message and exit 1
// when it is bad), creates the logger, and stops gracefully on SIGTERM/SIGINT.
import 'reflect-metadata';
import { container } from 'tsyringe';
import { getConfig, type Config } from '../config';
import { ConfigError, errorMessage } from '../errors';
import { Lifecycle } from '../lifecycle';
import { createLogger, type Logger } from '../observability/logger';

export interface ProcessContext {
  config: Config;
  logger: Logger;
  lifecycle: Lifecycle;
}

export function runProcess(name: string, main: (ctx: ProcessContext) => Promise<{ stop(): Promise<void> }>): void {
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
  process.on('unhandledRejection', (err) => logger.error({ err: errorMessage(err) }, 'unhandled rejection'));
  main({ config, logger, lifecycle }).then(
    (running) => lifecycle.onStop(name, () => running.stop()),
    (err: unknown) => {
      logger.fatal({ err: errorMessage(err) }, 'could not start');
      process.exit(1);
    },
  );
}

export { container as rootContainer };
