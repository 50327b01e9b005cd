// The Temporal client side shared by the saga's processes: connection (and waiting for a
// server that is down), the OrderId search attribute, the mapping of client errors onto the
// consumer loop's error types, and, when tracing is on, the interceptor that carries an
// order's trace into its workflow (./tracing).
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection, Client, isGrpcServiceError, type TLSConfig } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Config } from '../config';
import { ConfigError, DependencyUnavailableError, errorMessage } from '../errors';
import { DependencyWatch } from '../observability/dependency-watch';
import type { Logger } from '../observability/logger';
import { SAGA } from '../saga';
import { clientTracing } from './tracing';

/** gRPC status codes the client reports. */
const GrpcStatus = { DEADLINE_EXCEEDED: 4, ALREADY_EXISTS: 6, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14 } as const;

export const ORDER_ID_KEY = defineSearchAttributeKey(SAGA.orderIdSearchAttribute, SearchAttributeType.KEYWORD);

/** How long one attempt to reach the server may take. */
const CONNECT_ATTEMPT_MS = 5_000;
/** The wait between attempts while the server is unreachable: doubling from the first to the last. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

/** Temporal did not answer within the time a caller gave it. */
export class TemporalUnreachableError extends Error {
  override name = 'TemporalUnreachableError';
}

/** Where Temporal is and how to reach it: a local dev server, or a cluster or Temporal Cloud that wants TLS and a key. */
export type TemporalTarget = Pick<Config, 'temporalAddress' | 'temporalNamespace'> & Partial<Pick<Config, 'temporalTls' | 'temporalApiKey'>>;

/** A file TEMPORAL_TLS_* names, or a ConfigError naming the variable. */
function tlsFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(variable, `names a file that cannot be read (${path}: ${errorMessage(err)})`);
  }
}

/**
 * The connection options of TEMPORAL_ADDRESS, TEMPORAL_TLS_* and TEMPORAL_API_KEY, for the
 * client (Connection) and the worker (NativeConnection) alike. Throws a ConfigError for a file
 * that cannot be read: call it before waiting for the server, since waiting will not cure that.
 */
export function temporalConnectionOptions(config: TemporalTarget): { address: string; tls?: TLSConfig; apiKey?: string } {
  const tls = config.temporalTls;
  return {
    address: config.temporalAddress,
    ...(tls
      ? {
          tls: {
            ...(tls.certFile && tls.keyFile ? { clientCertPair: { crt: tlsFile('TEMPORAL_TLS_CERT', tls.certFile), key: tlsFile('TEMPORAL_TLS_KEY', tls.keyFile) } } : {}),
            ...(tls.caFile ? { serverRootCACertificate: tlsFile('TEMPORAL_TLS_CA', tls.caFile) } : {}),
            ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
          },
        }
      : {}),
    ...(config.temporalApiKey ? { apiKey: config.temporalApiKey } : {}),
  };
}

/** A client connected to the server, or an error at once when the server does not answer (tools). */
export async function connectTemporal(config: TemporalTarget): Promise<Client> {
  const connection = Connection.lazy({ ...temporalConnectionOptions(config), connectTimeout: CONNECT_ATTEMPT_MS });
  try {
    await connection.ensureConnected();
  } catch (err) {
    await connection.close().catch(() => undefined); // a failed connection keeps its channel otherwise
    throw err;
  }
  return new Client({ connection, namespace: config.temporalNamespace, interceptors: clientTracing() });
}

/**
 * A client that connects on its first call: for a process that has work to do while Temporal
 * is down (order-api takes orders without it). Calls fail as unavailable until it is back.
 */
export function lazyTemporal(config: TemporalTarget): Client {
  return new Client({ connection: Connection.lazy(temporalConnectionOptions(config)), namespace: config.temporalNamespace, interceptors: clientTracing() });
}

/**
 * Runs `connect` until it succeeds: a process that starts while the Temporal server is down
 * (or restarting) waits for it with back-off, saying every so often what it waits for,
 * instead of exiting and being restarted in a loop. Without `timeoutMs` it waits for as long
 * as it takes, like the broker connection; with it, it fails with TemporalUnreachableError.
 */
export async function connectWithRetry<T>(address: string, connect: () => Promise<T>, options: { logger?: Logger; timeoutMs?: number } = {}): Promise<T> {
  const started = Date.now();
  // The same warnings (5, 10, 20, 40 s, then every minute) and gauge as every other dependency.
  const watch = new DependencyWatch('temporal', options.logger);
  try {
    for (let wait = RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      try {
        const connected = await connect();
        watch.up();
        return connected;
      } catch (err) {
        if (options.timeoutMs !== undefined && Date.now() - started >= options.timeoutMs) {
          throw new TemporalUnreachableError(`Temporal did not answer at ${address} within ${Math.round(options.timeoutMs / 1000)} s: ${errorMessage(err)}`, { cause: err });
        }
        watch.down(err);
      }
      await sleep(wait);
    }
  } finally {
    watch.close();
  }
}

/** connectTemporal, waiting for the server while it is down (the processes of the fleet). */
export function connectTemporalWhenUp(config: TemporalTarget, logger: Logger): Promise<Client> {
  temporalConnectionOptions(config); // a certificate that cannot be read fails now, not in a loop
  return connectWithRetry(config.temporalAddress, () => connectTemporal(config), { logger });
}

/** Registers the OrderId search attribute on the namespace (harmless when it exists). */
export async function ensureSearchAttributes(client: Client, namespace: string): Promise<void> {
  try {
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: { [SAGA.orderIdSearchAttribute]: 2 /* INDEXED_VALUE_TYPE_KEYWORD */ },
    });
  } catch (err) {
    if (isGrpcServiceError(err) && Number(err.code) === GrpcStatus.ALREADY_EXISTS) return;
    throw err;
  }
}

/** Temporal unreachable → DependencyUnavailableError (messages wait); anything else as it is. */
export function classifyTemporalError(err: unknown): unknown {
  const grpc = isGrpcServiceError(err) ? err : isGrpcServiceError((err as { cause?: unknown })?.cause) ? ((err as { cause: unknown }).cause as { code: number }) : undefined;
  if (grpc && ([GrpcStatus.UNAVAILABLE, GrpcStatus.DEADLINE_EXCEEDED, GrpcStatus.RESOURCE_EXHAUSTED] as number[]).includes(grpc.code)) {
    return new DependencyUnavailableError('temporal', err);
  }
  return err;
}
