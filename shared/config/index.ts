// The process environment, parsed once into a typed, frozen object.
// This is the only module that reads process.env (DESIGN.md, "Environment").
import { ConfigError } from '../errors';

export interface Config {
  /** RabbitMQ URL. Default amqp://guest:guest@127.0.0.1:5672 */
  readonly amqpUrl: string;
  /** Redis URL. Default redis://127.0.0.1:6379 */
  readonly redisUrl: string;
  /** PostgreSQL URL; the project creates the database. Default postgres://postgres@127.0.0.1:5432/fulfillment */
  readonly databaseUrl: string;
  /** Temporal frontend host:port. Default 127.0.0.1:7233 */
  readonly temporalAddress: string;
  /** Temporal namespace. Default "default" */
  readonly temporalNamespace: string;
  /** Port of order-api. Default 3000 */
  readonly httpPort: number;
  /** pino log level. Default "info" */
  readonly logLevel: LogLevel;
  /**
   * Prefix of every exchange and queue name (BUS_NAMESPACE), so that several fleets (or
   * tests) can share one broker. Default "" (the names of DESIGN.md as they are)
   */
  readonly busNamespace: string;
  /**
   * How long a dedup claim holds without being renewed (DEDUP_LEASE_MS): after a crash, a
   * redelivered message waits at most this long. Default 15000
   */
  readonly dedupLeaseMs: number;
  /** Simulated latency of the fake payment provider, in ms (PAYMENT_PROVIDER_LATENCY_MS). Default 0 */
  readonly paymentProviderLatencyMs: number;
  /** Temporal CLI to run the dev server with (TEMPORAL_CLI_PATH); else .venv, PATH, or the SDK's download. */
  readonly temporalCliPath?: string;
  /** Time-skipping test server (TEMPORAL_TEST_SERVER_PATH); else .venv, PATH, or the SDK's download. */
  readonly temporalTestServerPath?: string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/fulfillment',
  TEMPORAL_ADDRESS: '127.0.0.1:7233',
  TEMPORAL_NAMESPACE: 'default',
  HTTP_PORT: '3000',
  LOG_LEVEL: 'info',
});

type Env = Readonly<Record<string, string | undefined>>;

function read(env: Env, name: string): string {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return DEFAULTS[name] as string;
  return raw.trim();
}

function url(env: Env, name: string, protocols: readonly string[]): string {
  const value = read(env, name);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `is not a URL (got "${redact(value)}")`);
  }
  const protocol = parsed.protocol.replace(/:$/, '');
  if (!protocols.includes(protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}:// (got "${protocol}://")`);
  }
  if (!parsed.hostname) throw new ConfigError(name, 'has no host');
  return value;
}

function port(env: Env, name: string): number {
  const value = read(env, name);
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new ConfigError(name, `must be a port number 1-65535 (got "${value}")`);
  }
  return Number(value);
}

function hostPort(env: Env, name: string): string {
  const value = read(env, name);
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(value);
  const portNumber = Number(match?.[2]);
  if (!match || portNumber < 1 || portNumber > 65535) {
    throw new ConfigError(name, `must be host:port (got "${value}")`);
  }
  return value;
}

function namespaceOf(env: Env): string {
  const value = env.BUS_NAMESPACE?.trim() ?? '';
  if (value !== '' && !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(value)) {
    throw new ConfigError('BUS_NAMESPACE', `must be lower-case letters, digits, "_" or "-" (got "${value}")`);
  }
  return value;
}

function wholeNumber(env: Env, name: string, fallback: number, max: number, min = 0): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > max || Number(raw) < min) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got "${raw}")`);
  }
  return Number(raw);
}

function optional(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

/** Hides the password of a URL so that an error message never prints a credential. */
export function redact(value: string): string {
  try {
    const parsed = new URL(value);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return value.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

/** Parses and validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): Config {
  const logLevel = read(env, 'LOG_LEVEL');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  }
  const namespace = read(env, 'TEMPORAL_NAMESPACE');
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(namespace)) {
    throw new ConfigError('TEMPORAL_NAMESPACE', `must be letters, digits, ".", "_" or "-" (got "${namespace}")`);
  }
  return Object.freeze({
    amqpUrl: url(env, 'AMQP_URL', ['amqp', 'amqps']),
    redisUrl: url(env, 'REDIS_URL', ['redis', 'rediss']),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    temporalAddress: hostPort(env, 'TEMPORAL_ADDRESS'),
    temporalNamespace: namespace,
    httpPort: port(env, 'HTTP_PORT'),
    logLevel: logLevel as LogLevel,
    busNamespace: namespaceOf(env),
    dedupLeaseMs: wholeNumber(env, 'DEDUP_LEASE_MS', 15_000, 3_600_000, 300),
    paymentProviderLatencyMs: wholeNumber(env, 'PAYMENT_PROVIDER_LATENCY_MS', 0, 60_000),
    temporalCliPath: optional(env, 'TEMPORAL_CLI_PATH'),
    temporalTestServerPath: optional(env, 'TEMPORAL_TEST_SERVER_PATH'),
  });
}

let cached: Config | undefined;

/** The process's configuration, parsed on first use. */
export function getConfig(): Config {
  cached ??= loadConfig(process.env);
  return cached;
}

/** The executable search path, for tools that look for binaries. */
export function systemPath(): string {
  return process.env.PATH ?? '';
}

/** This process's environment with some variables changed: for a child process it runs. */
export function childEnvironment(changes: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, ...changes };
}
