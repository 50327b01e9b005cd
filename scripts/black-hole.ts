// A TCP listener that stands in for a server that accepts connections and never answers,
// for the tests and the chaos run. A broker out of file descriptors does exactly this: the
// kernel completes the TCP handshake, the broker never the AMQP one.
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP listener that accepts connections and never answers: what a broker or database does
 * when it is out of file descriptors or stuck, while the kernel still completes handshakes.
 * passTo(port) makes it a proxy to a real server for the connections that come after (those
 * accepted before stay silent: a client must give up on them and connect again); silence()
 * makes it stop answering again, on the proxied connections too (a server that hangs).
 */
export class BlackHole {
  private target?: number;
  private readonly silent = new Set<Socket>();
  private readonly proxied = new Set<[Socket, Socket]>();
  /** Connections accepted while silent. */
  accepted = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on 127.0.0.1:port; by default on a free port. */
  static async start(port = 0): Promise<BlackHole> {
    const server = createServer();
    const bound = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        if (typeof address === 'object' && address) resolve(address.port);
        else reject(new Error('no port'));
      });
    });
    return new BlackHole(server, bound);
  }

  /** The URL with its host and port replaced by this listener's. */
  url(serverUrl: string): string {
    const url = new URL(serverUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** From now on, new connections reach the server on this port of 127.0.0.1. */
  passTo(port: number): void {
    this.target = port;
  }

  /** From now on nothing answers: new connections are silent, proxied ones stop passing bytes. */
  silence(): void {
    this.target = undefined;
    for (const [client, upstream] of this.proxied) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  private accept(socket: Socket): void {
    socket.on('error', () => undefined);
    if (this.target === undefined) {
      this.accepted++;
      this.silent.add(socket);
      socket.on('close', () => this.silent.delete(socket));
      return; // never read, never written: the client hears nothing
    }
    const upstream = connect(this.target, '127.0.0.1');
    const pair: [Socket, Socket] = [socket, upstream];
    this.proxied.add(pair);
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => {
      upstream.destroy();
      this.proxied.delete(pair);
    });
    upstream.on('close', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  }

  async close(): Promise<void> {
    for (const socket of this.silent) socket.destroy();
    for (const [client, upstream] of this.proxied) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
