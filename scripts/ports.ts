// Ports picked for processes this machine starts (npm start's metrics ports, a benchmark's
// order-api and Temporal dev server): free now, and below the kernel's ephemeral range, so
// that no outgoing connection (nor a listen on port 0) takes one before its process listens.
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';

/** Where `temporal server start-dev` serves its Web UI: its gRPC port + 1000, the CLI's own default (7233 → 8233). */
export const TEMPORAL_UI_OFFSET = 1_000;
export const temporalUiPort = (port: number): number => port + TEMPORAL_UI_OFFSET;

/** Listens on the port on every interface, as the fleet's processes do; undefined when it is taken. */
export function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(undefined));
    server.listen(port, '0.0.0.0', () => done(server));
  });
}

/** The port a server of listenOn holds. */
export const portOf = (server: Server): number => (server.address() as AddressInfo).port;

/** Closes held ports, so that their processes can listen on them. */
export async function release(servers: readonly Server[]): Promise<void> {
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
}

/**
 * The first port the kernel hands out to outgoing connections (and to a listen on port 0): a
 * port picked below it is never taken by a connection while its process (re)starts.
 */
export function ephemeralPortsStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 2_048 ? first : 32_768;
  } catch {
    return 32_768; // not Linux: the usual start of the range
  }
}

/**
 * A free port below the ephemeral range together with its companions (the port plus each
 * offset, e.g. a dev server's Web UI beside its gRPC port), all below the range and free,
 * all held until the caller releases them; undefined when 100 tries found none.
 */
export async function freeFixedPorts(offsets: readonly number[] = []): Promise<Server[] | undefined> {
  const below = ephemeralPortsStart() - Math.max(0, ...offsets);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 1_024 + Math.floor(Math.random() * (below - 1_024));
    const held: Server[] = [];
    for (const offset of [0, ...offsets]) {
      const server = await listenOn(port + offset);
      if (!server) break;
      held.push(server);
    }
    if (held.length === offsets.length + 1) return held;
    await release(held);
  }
  return undefined;
}

/** A free port below the ephemeral range, held until the caller closes it. */
export async function freeFixedPort(): Promise<Server | undefined> {
  return (await freeFixedPorts())?.[0];
}
