// Runs a command-line tool: a clear one-line error and a non-zero exit for bad input,
// never a stack trace for a mistake the user made.
import { errorMessage } from '../shared/errors';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** A flag's value as a whole number within [min, max], or a UsageError that says so. */
export function wholeNumber(flag: string, text: string, min: number, max: number, usage: string): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max} (got "${text}")\n${usage}`);
  return Number(text);
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
