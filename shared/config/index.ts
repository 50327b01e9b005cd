// The process environment, parsed once into a typed, frozen object.
// This is the only module that reads process.env (docs/operations.md#configuration), with one
// exception: the OpenTelemetry SDK, once tracing is on, reads its own tuning variables itself
// (OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION, the OTEL_*_LIMIT ones).
// Whether tracing is on, where spans go, in which protocol, under which service name and with
// which sampler are read here (tracingOf) and handed to the SDK explicitly.
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from '../errors';
import { isMessageType } from '../events';

const PROJECT_ROOT = resolve(__dirname, '../..');

export interface Config {
  /**
   * RabbitMQ (AMQP_URL): one URL, or the nodes of a cluster as URLs separated by commas, which
   * a connection tries in turn. Default amqp://guest:guest@127.0.0.1:5672
   */
  readonly amqpUrl: string;
  /** The URLs of AMQP_URL, one per node, in the order given. */
  readonly amqpUrls: readonly string[];
  /**
   * Members of each quorum queue a process declares (QUORUM_GROUP_SIZE, `x-quorum-initial-group-size`).
   * Default 3 when AMQP_URL names several nodes; else unset, and the broker decides (every node).
   * 0 leaves it unset.
   */
  readonly quorumGroupSize?: number;
  /**
   * Which replica of its process this one is (FLEET_REPLICA, "k/N"), when `npm start` runs
   * several: the order-projection takes its share of the partitions first. Default: unset (the only one)
   */
  readonly replica?: Replica;
  /** Redis URL. Default redis://127.0.0.1:6379 */
  readonly redisUrl: string;
  /** PostgreSQL URL; the project creates the database. Default postgres://postgres@127.0.0.1:5432/fulfillment */
  readonly databaseUrl: string;
  /** Temporal frontend host:port. Default 127.0.0.1:7233 */
  readonly temporalAddress: string;
  /** Temporal namespace. Default "default" */
  readonly temporalNamespace: string;
  /**
   * TLS to Temporal (TEMPORAL_TLS, and the files TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA,
   * TEMPORAL_TLS_SERVER_NAME): on when any of those or TEMPORAL_API_KEY is set. Default: off
   */
  readonly temporalTls?: TemporalTls;
  /** An API key for Temporal Cloud (TEMPORAL_API_KEY), sent as a bearer token, over TLS. Never logged. */
  readonly temporalApiKey?: string;
  /** Port of order-api. Default 3000 */
  readonly httpPort: number;
  /**
   * The port on which a process of the fleet serves GET /metrics (Prometheus), /readyz and
   * /healthz (METRICS_PORT); 0 picks a free one, which the process logs. order-api's /metrics
   * is served there only (its API's port answers /healthz and /readyz too). Default 0
   */
  readonly metricsPort: number;
  /**
   * The first METRICS_PORT `npm start` gives (METRICS_PORT_BASE): each process gets this plus
   * its index in the fleet, replicas the ports after the fleet's (fleetCopies in
   * scripts/fleet.ts); 0 gives each a free port. Default 9400
   */
  readonly metricsPortBase: number;
  /** pino log level. Default "info" */
  readonly logLevel: LogLevel;
  /**
   * Prefix of every exchange and queue name (BUS_NAMESPACE), so that several fleets (or
   * tests) can share one broker. Default "" (the names of docs/messaging.md#exchanges-and-queues as they are)
   */
  readonly busNamespace: string;
  /**
   * How long a dedup claim holds without being renewed (DEDUP_LEASE_MS): after a crash, a
   * redelivered message waits at most this long. Default 15000
   */
  readonly dedupLeaseMs: number;
  /**
   * How long an AMQP connect attempt may go without an answer from the broker (TCP connect
   * and handshake) before it is abandoned and retried (AMQP_CONNECT_TIMEOUT_MS). Default 10000
   */
  readonly amqpConnectTimeoutMs: number;
  /** How long opening a PostgreSQL connection may take (DATABASE_CONNECT_TIMEOUT_MS). Default 5000 */
  readonly databaseConnectTimeoutMs: number;
  /**
   * How long one statement of a handler may run (DATABASE_STATEMENT_TIMEOUT_MS): the server
   * cancels it, and the client gives up 2 s later when the server does not answer. Default 10000
   */
  readonly databaseStatementTimeoutMs: number;
  /** How long the TCP connect to Redis may take, and then its handshake until ready (REDIS_CONNECT_TIMEOUT_MS). Default 5000 */
  readonly redisConnectTimeoutMs: number;
  /** How long one Redis command may wait for its answer (REDIS_COMMAND_TIMEOUT_MS). Default 2000 */
  readonly redisCommandTimeoutMs: number;
  /** Simulated latency of the fake payment provider, in ms (PAYMENT_PROVIDER_LATENCY_MS). Default 0 */
  readonly paymentProviderLatencyMs: number;
  /** Temporal CLI to run the dev server with (TEMPORAL_CLI_PATH); else .venv, PATH, or the SDK's download. */
  readonly temporalCliPath?: string;
  /** Time-skipping test server (TEMPORAL_TEST_SERVER_PATH); else .venv, PATH, or the SDK's download. */
  readonly temporalTestServerPath?: string;
  /** Where `npm start` keeps state that must survive a restart (DATA_DIR). Default <project>/.data */
  readonly dataDir: string;
  /**
   * The file in which the Temporal dev server that `npm start` runs keeps its state
   * (TEMPORAL_DB_FILE): every saga survives a restart of the server or of the fleet.
   * Default <DATA_DIR>/temporal.sqlite
   */
  readonly temporalDbFile: string;
  /** How often the saga-bridge runs a reconciler pass, in ms (RECONCILE_INTERVAL_MS); 0 turns it off. Default 60000 */
  readonly reconcileIntervalMs: number;
  /**
   * How old an accepted order must be before the reconciler looks at it, in ms
   * (RECONCILE_GRACE_MS): a younger one's saga may still be on its way. Default 60000
   */
  readonly reconcileGraceMs: number;
  /**
   * A stream's state is stored as a snapshot each time its version passes a multiple of this
   * (EVENT_STORE_SNAPSHOT_EVERY); 0 turns snapshots off. Default 50
   */
  readonly eventStoreSnapshotEvery: number;
  /**
   * How long the event archive (the stream queue events.archive) keeps an event
   * (ARCHIVE_MAX_AGE, RabbitMQ's x-max-age: a number and one of Y M D h m s). Default 30D
   */
  readonly archiveMaxAge: string;
  /** Most bytes the event archive keeps (ARCHIVE_MAX_BYTES, x-max-length-bytes); the oldest segments go first. Default 20000000000 */
  readonly archiveMaxBytes: number;
  /**
   * The message types producers publish as an older schema version, until every consumer of
   * the type reads the newer one (PUBLISH_HOLD_BACK: `type@version` entries separated by
   * commas, e.g. "order.placed@1,order.cancelled@1"; docs/messaging.md#evolving-a-message-step-by-step).
   * The event store keeps the latest; only the wire carries the older. A version at or past
   * the type's latest holds nothing back. Default: none
   */
  readonly publishHoldBack: HoldBack;
  /** How order-api authenticates its callers (docs/operations.md#authentication). */
  readonly auth: AuthConfig;
  /**
   * Most requests order-api takes from one token's subject in a minute
   * (RATE_LIMIT_PER_SUBJECT_PER_MINUTE); more get 429 with Retry-After. 0 turns it off. Default 600
   */
  readonly rateLimitPerSubjectPerMinute: number;
  /**
   * Most requests order-api takes from one client address in a minute, with a token or without
   * (RATE_LIMIT_PER_ADDRESS_PER_MINUTE; /healthz and /readyz aside). The address is the
   * connection's peer: behind a load balancer, every client shares the balancer's. 0 turns it off. Default 1200
   */
  readonly rateLimitPerAddressPerMinute: number;
  /**
   * OpenTelemetry tracing (docs/operations.md#following-an-orders-trace): on when
   * OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set and
   * OTEL_SDK_DISABLED is not true. Default: off, and then nothing is loaded or exported
   */
  readonly tracing?: TracingConfig;
}

export const AUTH_MODES = ['development', 'production'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

/** The signature algorithms a token may use: asymmetric only, so never `none` nor an HMAC keyed with a public key. */
export const TOKEN_ALGORITHMS = ['EdDSA', 'ES256', 'ES384', 'RS256', 'PS256'] as const;
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number];

/** Where order-api's verification keys come from, and what a token must say (docs/operations.md#authentication). */
export interface AuthConfig {
  /**
   * AUTH_MODE: development verifies with the development key `npm start` generates when neither
   * AUTH_JWKS_URL nor AUTH_PUBLIC_KEY_FILE is set; production never does, and order-api refuses
   * to start without one of them, or with the development issuer or audience. Default development
   */
  readonly mode: AuthMode;
  /** The identity provider's JSON Web Key Set (AUTH_JWKS_URL; https in production), fetched and cached by order-api. */
  readonly jwksUrl?: string;
  /** A PEM public key (SPKI) that tokens are signed with (AUTH_PUBLIC_KEY_FILE), instead of a key set. */
  readonly publicKeyFile?: string;
  /**
   * The development signing key (AUTH_DEV_KEY_FILE), a private JWK that `npm start` and
   * `npm run token` create on first use; never in the repository. Default <DATA_DIR>/auth/dev-signing-key.json
   */
  readonly devKeyFile: string;
  /** The `iss` every token must carry (AUTH_ISSUER). Default "order-fulfillment-dev" */
  readonly issuer: string;
  /** The `aud` every token must carry (AUTH_AUDIENCE). Default "order-api" */
  readonly audience: string;
  /** The algorithms a token may be signed with (AUTH_ALGORITHMS, separated by commas, of TOKEN_ALGORITHMS). Default EdDSA,ES256,RS256 */
  readonly algorithms: readonly TokenAlgorithm[];
}

/** AUTH_ISSUER and AUTH_AUDIENCE when unset: what development tokens carry; refused in production. */
export const DEV_ISSUER = 'order-fulfillment-dev';
export const DEV_AUDIENCE = 'order-api';

/** The schema version each held-back message type is published as, by type. */
export type HoldBack = Readonly<Record<string, number>>;

/** Where and how a process exports its spans (the standard OTEL_* variables). */
export interface TracingConfig {
  /**
   * The OTLP/HTTP URL spans are posted to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
   * OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended.
   */
  readonly tracesUrl: string;
  /** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL. Default http/protobuf */
  readonly protocol: OtlpProtocol;
  /** OTEL_SERVICE_NAME; unset: each process takes its own name (order-api, payments, …). */
  readonly serviceName?: string;
  /** OTEL_TRACES_SAMPLER, with OTEL_TRACES_SAMPLER_ARG the ratio of the ratio samplers. Default parentbased_always_on */
  readonly sampler: TracesSampler;
}

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

export const TRACES_SAMPLERS = ['parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio', 'always_on', 'always_off', 'traceidratio'] as const;
export interface TracesSampler {
  readonly name: (typeof TRACES_SAMPLERS)[number];
  /** The share of traces kept by a ratio sampler, 0 to 1 (OTEL_TRACES_SAMPLER_ARG). Default 1 */
  readonly ratio: number;
}

/** One replica of a process that runs several times: `index` of `count`, from 1. */
export interface Replica {
  readonly index: number;
  readonly count: number;
}

/** How a process reaches a Temporal server that wants TLS: a self-hosted cluster with mTLS, or Temporal Cloud. */
export interface TemporalTls {
  /** The client certificate (PEM) for mTLS (TEMPORAL_TLS_CERT); with keyFile. */
  readonly certFile?: string;
  /** Its private key (PEM) (TEMPORAL_TLS_KEY); with certFile. */
  readonly keyFile?: string;
  /** The CA that signed the server's certificate (TEMPORAL_TLS_CA); default: the system's roots. */
  readonly caFile?: string;
  /** The name to check the server's certificate against (TEMPORAL_TLS_SERVER_NAME); default: the host of TEMPORAL_ADDRESS. */
  readonly serverName?: string;
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

/** Quorum queue members on a cluster when QUORUM_GROUP_SIZE does not say: survives one node down, and a second after it rejoined. */
const DEFAULT_CLUSTER_QUORUM_GROUP_SIZE = 3;

function read(env: Env, name: string): string {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return DEFAULTS[name] as string;
  return raw.trim();
}

function url(env: Env, name: string, protocols: readonly string[]): string {
  return checkedUrl(name, read(env, name), protocols);
}

/** A URL with one of the protocols and a host; `which` names the entry of a list in the message. */
function checkedUrl(name: string, value: string, protocols: readonly string[], which = ''): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `${which}is not a URL (got "${redact(value)}")`);
  }
  const protocol = parsed.protocol.replace(/:$/, '');
  if (!protocols.includes(protocol)) {
    throw new ConfigError(name, `${which}must use ${protocols.join(' or ')}:// (got "${protocol}://")`);
  }
  if (!parsed.hostname) throw new ConfigError(name, `${which}has no host`);
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

/** A RabbitMQ stream's x-max-age: a whole number and a unit (Y, M, D, h, m or s), e.g. 30D. */
function maxAge(env: Env, name: string, fallback: string): string {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^[1-9]\d{0,8}[YMDhms]$/.test(raw)) throw new ConfigError(name, `must be a whole number and a unit (Y, M, D, h, m or s), e.g. 30D or 12h (got "${raw}")`);
  return raw;
}

function wholeNumber(env: Env, name: string, fallback: number, max: number, min = 0): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > max || Number(raw) < min) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got "${raw}")`);
  }
  return Number(raw);
}

/** A file system path; a relative one is taken from the working directory. */
function path(env: Env, name: string, fallback: string): string {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (raw.includes('\0')) throw new ConfigError(name, 'must be a file system path');
  return isAbsolute(raw) ? raw : resolve(raw);
}

function optionalPath(env: Env, name: string): string | undefined {
  return env[name]?.trim() ? path(env, name, '') : undefined;
}

function optional(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

/** The start of a URL: where, after a comma, the next URL of a list begins. */
const STARTS_WITH_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * The URLs of a comma-separated list. A piece that does not start with a scheme belongs to the
 * URL before it (a password may hold a comma); undefined for an empty entry.
 */
function splitUrlList(value: string): string[] | undefined {
  const urls: string[] = [];
  for (const piece of value.split(',').map((p) => p.trim())) {
    if (piece === '') return undefined;
    if (urls.length > 0 && !STARTS_WITH_SCHEME.test(piece)) urls[urls.length - 1] += `,${piece}`;
    else urls.push(piece);
  }
  return urls;
}

/**
 * The nodes of an AMQP_URL: one URL, or several separated by commas (the nodes of a cluster).
 * Throws ConfigError naming the variable when an entry is empty or not an amqp(s) URL.
 */
export function parseAmqpUrls(value: string, variable = 'AMQP_URL'): string[] {
  const urls = splitUrlList(value.trim());
  if (!urls) throw new ConfigError(variable, `has an empty entry in its list of nodes (got "${redact(value)}")`);
  urls.forEach((u, i) => checkedUrl(variable, u, ['amqp', 'amqps'], urls.length > 1 ? `node ${i + 1} ` : ''));
  return urls;
}

/** Hides the password of a URL, or of each URL of a list, so that an error message never prints a credential. */
export function redact(value: string): string {
  const urls = value.includes(',') ? splitUrlList(value) : undefined;
  return urls && urls.length > 1 ? urls.map(redactOne).join(',') : redactOne(value);
}

function redactOne(value: string): string {
  try {
    const parsed = new URL(value);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return value.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

/** QUORUM_GROUP_SIZE: 0 means unset; a cluster's default is 3, one node's unset. */
function quorumGroupSize(env: Env, nodes: number): number | undefined {
  const size = wholeNumber(env, 'QUORUM_GROUP_SIZE', nodes > 1 ? DEFAULT_CLUSTER_QUORUM_GROUP_SIZE : 0, 99);
  return size === 0 ? undefined : size;
}

function replicaOf(env: Env): Replica | undefined {
  const raw = env.FLEET_REPLICA?.trim();
  if (!raw) return undefined;
  const match = /^(\d{1,3})\/(\d{1,3})$/.exec(raw);
  const [index, count] = [Number(match?.[1]), Number(match?.[2])];
  if (!match || index < 1 || index > count) throw new ConfigError('FLEET_REPLICA', `must be "k/N" with 1 <= k <= N (got "${raw}")`);
  return { index, count };
}

/** PUBLISH_HOLD_BACK: `type@version` entries separated by commas, each naming a type of the catalog once. */
function holdBackOf(env: Env): HoldBack {
  const raw = env.PUBLISH_HOLD_BACK?.trim();
  const holdBack: Record<string, number> = {};
  for (const entry of raw ? raw.split(',').map((e) => e.trim()) : []) {
    const match = /^([a-z]+(?:\.[a-z_]+)+)@([1-9]\d{0,5})$/.exec(entry);
    const type = match?.[1];
    if (!match || type === undefined) throw new ConfigError('PUBLISH_HOLD_BACK', `must be type@version entries separated by commas, e.g. order.placed@1 (got "${entry}")`);
    if (!isMessageType(type)) throw new ConfigError('PUBLISH_HOLD_BACK', `names "${type}", which is not a message type of the catalog`);
    if (Object.prototype.hasOwnProperty.call(holdBack, type)) throw new ConfigError('PUBLISH_HOLD_BACK', `names "${type}" twice`);
    holdBack[type] = Number(match[2]);
  }
  return Object.freeze(holdBack);
}

function flag(env: Env, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return undefined;
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(name, `must be true or false (got "${raw}")`);
}

/** TEMPORAL_TLS*: off unless asked for, or implied by a client certificate, a CA, a server name or an API key. */
function temporalTlsOf(env: Env, apiKey: string | undefined): TemporalTls | undefined {
  const tls: TemporalTls = {
    certFile: optionalPath(env, 'TEMPORAL_TLS_CERT'),
    keyFile: optionalPath(env, 'TEMPORAL_TLS_KEY'),
    caFile: optionalPath(env, 'TEMPORAL_TLS_CA'),
    serverName: optional(env, 'TEMPORAL_TLS_SERVER_NAME'),
  };
  if (tls.certFile === undefined && tls.keyFile !== undefined) throw new ConfigError('TEMPORAL_TLS_CERT', 'must be set with TEMPORAL_TLS_KEY (a client certificate and its key)');
  if (tls.keyFile === undefined && tls.certFile !== undefined) throw new ConfigError('TEMPORAL_TLS_KEY', 'must be set with TEMPORAL_TLS_CERT (a client certificate and its key)');
  const implied = apiKey !== undefined || Object.values(tls).some((v) => v !== undefined);
  const wanted = flag(env, 'TEMPORAL_TLS') ?? implied;
  if (!wanted) {
    // A key sent in the clear is a key given away.
    if (apiKey !== undefined) throw new ConfigError('TEMPORAL_TLS', 'cannot be false with TEMPORAL_API_KEY (the key would travel unencrypted)');
    if (implied) throw new ConfigError('TEMPORAL_TLS', 'is false but TEMPORAL_TLS_CERT, TEMPORAL_TLS_CA or TEMPORAL_TLS_SERVER_NAME is set');
    return undefined;
  }
  return Object.freeze(Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) as TemporalTls);
}

function apiKeyOf(env: Env): string | undefined {
  const key = optional(env, 'TEMPORAL_API_KEY');
  if (key !== undefined && /\s/.test(key)) throw new ConfigError('TEMPORAL_API_KEY', 'must not contain white space');
  return key;
}

/**
 * The OTEL_* variables of tracing, as the OpenTelemetry specification defines them, or undefined
 * when tracing is off: no endpoint, or OTEL_SDK_DISABLED. A protocol or sampler the fleet does
 * not ship (grpc, jaeger_remote, …) is refused rather than silently replaced.
 */
function tracingOf(env: Env): TracingConfig | undefined {
  const tracesEndpoint = optional(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const endpoint = optional(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (flag(env, 'OTEL_SDK_DISABLED') === true || (tracesEndpoint === undefined && endpoint === undefined)) return undefined;
  const tracesUrl =
    tracesEndpoint !== undefined
      ? checkedUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tracesEndpoint, ['http', 'https'])
      : `${checkedUrl('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint as string, ['http', 'https']).replace(/\/+$/, '')}/v1/traces`;
  const protocolVariable = optional(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = optional(env, protocolVariable) ?? 'http/protobuf';
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new ConfigError(protocolVariable, `must be ${OTLP_PROTOCOLS.join(' or ')} (got "${protocol}"; grpc is not supported)`);
  }
  const sampler = optional(env, 'OTEL_TRACES_SAMPLER')?.toLowerCase() ?? 'parentbased_always_on';
  if (!(TRACES_SAMPLERS as readonly string[]).includes(sampler)) throw new ConfigError('OTEL_TRACES_SAMPLER', `must be one of ${TRACES_SAMPLERS.join(', ')} (got "${sampler}")`);
  const ratioText = optional(env, 'OTEL_TRACES_SAMPLER_ARG') ?? '1';
  const ratio = Number(ratioText);
  if (!/^\d*\.?\d+$/.test(ratioText) || ratio > 1) throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', `must be a number from 0 to 1 (got "${ratioText}")`);
  return Object.freeze({
    tracesUrl,
    protocol: protocol as OtlpProtocol,
    serviceName: optional(env, 'OTEL_SERVICE_NAME'),
    sampler: Object.freeze({ name: sampler as TracesSampler['name'], ratio }),
  });
}

/** AUTH_*: the mode, where the keys are, and what a token must say. */
function authOf(env: Env, dataDir: string): AuthConfig {
  const mode = optional(env, 'AUTH_MODE')?.toLowerCase() ?? 'development';
  if (!(AUTH_MODES as readonly string[]).includes(mode)) throw new ConfigError('AUTH_MODE', `must be ${AUTH_MODES.join(' or ')} (got "${mode}")`);
  const jwks = optional(env, 'AUTH_JWKS_URL');
  const jwksUrl = jwks === undefined ? undefined : checkedUrl('AUTH_JWKS_URL', jwks, mode === 'production' ? ['https'] : ['http', 'https']);
  const publicKeyFile = optionalPath(env, 'AUTH_PUBLIC_KEY_FILE');
  if (jwksUrl !== undefined && publicKeyFile !== undefined) throw new ConfigError('AUTH_PUBLIC_KEY_FILE', 'cannot be set with AUTH_JWKS_URL: give one source of keys');
  const algorithms = (optional(env, 'AUTH_ALGORITHMS') ?? 'EdDSA,ES256,RS256').split(',').map((a) => a.trim());
  for (const a of algorithms) {
    if (!(TOKEN_ALGORITHMS as readonly string[]).includes(a)) throw new ConfigError('AUTH_ALGORITHMS', `must be among ${TOKEN_ALGORITHMS.join(', ')}, separated by commas (got "${a}")`);
  }
  return Object.freeze({
    mode: mode as AuthMode,
    jwksUrl,
    publicKeyFile,
    devKeyFile: path(env, 'AUTH_DEV_KEY_FILE', join(dataDir, 'auth', 'dev-signing-key.json')),
    issuer: optional(env, 'AUTH_ISSUER') ?? DEV_ISSUER,
    audience: optional(env, 'AUTH_AUDIENCE') ?? DEV_AUDIENCE,
    algorithms: Object.freeze([...new Set(algorithms)] as TokenAlgorithm[]),
  });
}

/**
 * Why this configuration cannot verify tokens in production, or undefined when it can (or is
 * a development one): order-api refuses to start with it.
 */
export function productionAuthProblem(auth: AuthConfig): ConfigError | undefined {
  if (auth.mode !== 'production') return undefined;
  if (auth.jwksUrl === undefined && auth.publicKeyFile === undefined) {
    return new ConfigError('AUTH_JWKS_URL', 'must be set (or AUTH_PUBLIC_KEY_FILE) when AUTH_MODE is production: the development key is never used there');
  }
  if (auth.issuer === DEV_ISSUER) return new ConfigError('AUTH_ISSUER', `must name the identity provider's issuer when AUTH_MODE is production (got the development one, "${DEV_ISSUER}")`);
  if (auth.audience === DEV_AUDIENCE) return new ConfigError('AUTH_AUDIENCE', `must be set to this API's audience at the identity provider when AUTH_MODE is production (not the development default "${DEV_AUDIENCE}")`);
  return undefined;
}

/** Whether tokens are verified with the development key: development mode, and no other key configured. */
export const usesDevKey = (auth: AuthConfig): boolean => auth.mode === 'development' && auth.jwksUrl === undefined && auth.publicKeyFile === undefined;

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
  const dataDir = path(env, 'DATA_DIR', join(PROJECT_ROOT, '.data'));
  const amqpUrls = Object.freeze(parseAmqpUrls(read(env, 'AMQP_URL')));
  const temporalApiKey = apiKeyOf(env);
  return Object.freeze({
    amqpUrl: amqpUrls.join(','),
    amqpUrls,
    quorumGroupSize: quorumGroupSize(env, amqpUrls.length),
    replica: replicaOf(env),
    redisUrl: url(env, 'REDIS_URL', ['redis', 'rediss']),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres', 'postgresql']),
    temporalAddress: hostPort(env, 'TEMPORAL_ADDRESS'),
    temporalNamespace: namespace,
    temporalTls: temporalTlsOf(env, temporalApiKey),
    temporalApiKey,
    httpPort: port(env, 'HTTP_PORT'),
    metricsPort: wholeNumber(env, 'METRICS_PORT', 0, 65_535),
    metricsPortBase: wholeNumber(env, 'METRICS_PORT_BASE', 9_400, 65_535),
    logLevel: logLevel as LogLevel,
    busNamespace: namespaceOf(env),
    dedupLeaseMs: wholeNumber(env, 'DEDUP_LEASE_MS', 15_000, 3_600_000, 300),
    amqpConnectTimeoutMs: wholeNumber(env, 'AMQP_CONNECT_TIMEOUT_MS', 10_000, 600_000, 100),
    databaseConnectTimeoutMs: wholeNumber(env, 'DATABASE_CONNECT_TIMEOUT_MS', 5_000, 600_000, 100),
    databaseStatementTimeoutMs: wholeNumber(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 10_000, 86_400_000, 100),
    redisConnectTimeoutMs: wholeNumber(env, 'REDIS_CONNECT_TIMEOUT_MS', 5_000, 600_000, 100),
    redisCommandTimeoutMs: wholeNumber(env, 'REDIS_COMMAND_TIMEOUT_MS', 2_000, 600_000, 100),
    paymentProviderLatencyMs: wholeNumber(env, 'PAYMENT_PROVIDER_LATENCY_MS', 0, 60_000),
    temporalCliPath: optional(env, 'TEMPORAL_CLI_PATH'),
    temporalTestServerPath: optional(env, 'TEMPORAL_TEST_SERVER_PATH'),
    dataDir,
    temporalDbFile: path(env, 'TEMPORAL_DB_FILE', join(dataDir, 'temporal.sqlite')),
    reconcileIntervalMs: wholeNumber(env, 'RECONCILE_INTERVAL_MS', 60_000, 86_400_000),
    reconcileGraceMs: wholeNumber(env, 'RECONCILE_GRACE_MS', 60_000, 86_400_000),
    eventStoreSnapshotEvery: wholeNumber(env, 'EVENT_STORE_SNAPSHOT_EVERY', 50, 1_000_000),
    archiveMaxAge: maxAge(env, 'ARCHIVE_MAX_AGE', '30D'),
    archiveMaxBytes: wholeNumber(env, 'ARCHIVE_MAX_BYTES', 20_000_000_000, Number.MAX_SAFE_INTEGER, 1_000_000),
    publishHoldBack: holdBackOf(env),
    auth: authOf(env, dataDir),
    rateLimitPerSubjectPerMinute: wholeNumber(env, 'RATE_LIMIT_PER_SUBJECT_PER_MINUTE', 600, 1_000_000),
    rateLimitPerAddressPerMinute: wholeNumber(env, 'RATE_LIMIT_PER_ADDRESS_PER_MINUTE', 1_200, 1_000_000),
    tracing: tracingOf(env),
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
