// Runs a command-line tool: a clear one-line error and a non-zero exit for bad input,
// never a stack trace for a mistake the user made.
import { errorMessage } from '../shared/errors';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function runCli(name: string, main: () => Promise<number> | number): void {
  Promise.resolve()
    .then(main)
    .then(
      (code) => {
        process.exitCode = code;
      },
      (err: unknown) => {
        const usage = err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'));
        console.error(`${name}: ${errorMessage(err)}`);
        process.exitCode = usage ? 2 : 1;
      },
    );
}
