// Child processes for tests that kill, stop or restart them.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { eventually } from './wait';

export const ROOT = resolve(__dirname, '../..');

export class Child {
  readonly output: string[] = [];
  private exit?: { code: number | null; signal: NodeJS.Signals | null };

  constructor(readonly process: ChildProcess) {
    let partial = '';
    const onData = (chunk: Buffer): void => {
      const text = partial + chunk.toString();
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      this.output.push(...lines);
    };
    process.stdout?.on('data', onData);
    process.stderr?.on('data', onData);
    process.on('exit', (code, signal) => (this.exit = { code, signal }));
  }

  /** Waits for a line of output that matches. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    return eventually(() => this.output.find((l) => pattern.test(l)), {
      timeoutMs,
      what: `output matching ${pattern} (so far: ${this.output.slice(-5).join(' | ')})`,
    });
  }

  async exited(timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return eventually(() => this.exit, { timeoutMs, what: 'the process to exit' });
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exit) this.process.kill(signal);
  }
}

/** Runs a TypeScript file of the project under ts-node. */
export function runTs(file: string, args: string[] = [], env: Record<string, string> = {}): Child {
  return new Child(
    spawn(process.execPath, ['-r', 'ts-node/register', resolve(ROOT, file), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}
