// The Temporal client side shared by the saga's processes: connection, the OrderId search
// attribute, and the mapping of client errors onto the consumer loop's error types.
import { Connection, Client, isGrpcServiceError } from '@temporalio/client';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Config } from '../config';
import { DependencyUnavailableError } from '../errors';
import { SAGA } from '../saga';

/** gRPC status codes the client reports. */
const GrpcStatus = { DEADLINE_EXCEEDED: 4, ALREADY_EXISTS: 6, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14 } as const;

export const ORDER_ID_KEY = defineSearchAttributeKey(SAGA.orderIdSearchAttribute, SearchAttributeType.KEYWORD);

export async function connectTemporal(config: Pick<Config, 'temporalAddress' | 'temporalNamespace'>): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporalAddress });
  return new Client({ connection, namespace: config.temporalNamespace });
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
