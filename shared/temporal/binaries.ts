// Finds the Temporal CLI (dev server) and the time-skipping test server: the path from
// the environment first, then the project's .venv (scripts/install-temporal.sh), then
// PATH. When none is found the caller lets the SDK download its own (needs internet).
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import type { DevServerConfig, TimeSkippingServerConfig } from '@temporalio/testing';
import { getConfig, systemPath } from '../config';

const PROJECT_ROOT = resolve(__dirname, '../..');

export type BinarySource = 'env' | 'venv' | 'path';
export interface FoundBinary {
  path: string;
  source: BinarySource;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const VENV_BIN = join(PROJECT_ROOT, '.venv', 'bin');

/**
 * @param name executable name in .venv/bin and on PATH
 * @param fromEnv the path given by the environment, which wins when set
 * @param searchPath the PATH to search
 * @param venvBin the virtualenv's bin folder. Default: the project's .venv/bin
 */
export function findBinary(name: string, fromEnv: string | undefined, searchPath: string, venvBin = VENV_BIN): FoundBinary | undefined {
  if (fromEnv) {
    if (!executable(fromEnv)) throw new Error(`${fromEnv} (set for ${name}) is not an executable file`);
    return { path: fromEnv, source: 'env' };
  }
  const venv = join(venvBin, name);
  if (executable(venv)) return { path: venv, source: 'venv' };
  for (const dir of searchPath.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    if (executable(candidate)) return { path: candidate, source: 'path' };
  }
  return undefined;
}

export function findTemporalCli(): FoundBinary | undefined {
  return findBinary('temporal', getConfig().temporalCliPath, systemPath());
}

export function findTestServer(): FoundBinary | undefined {
  return findBinary('temporal-test-server', getConfig().temporalTestServerPath, systemPath());
}

/** Server options for TestWorkflowEnvironment.createTimeSkipping: a found binary, else the SDK's download. */
export function timeSkippingServer(): TimeSkippingServerConfig {
  const found = findTestServer();
  return found ? { type: 'time-skipping', executable: { type: 'existing-path', path: found.path } } : { type: 'time-skipping' };
}

/** Server options for TestWorkflowEnvironment.createLocal: a found CLI, else the SDK's download. */
export function devServer(extra: Omit<DevServerConfig, 'type' | 'executable'> = {}): DevServerConfig {
  const found = findTemporalCli();
  return found
    ? { type: 'dev-server', executable: { type: 'existing-path', path: found.path }, ...extra }
    : { type: 'dev-server', ...extra };
}
