// What the broker connection passes amqplib for each node of AMQP_URL: the fields amqplib's own
// URL parsing would produce, so that one URL behaves as it did when it was passed as a string.
import { createServer, type Server } from 'node:net';
import { expect } from 'chai';
import { AmqpConnection, nodeTarget } from '../../shared/messaging/connection';
import { eventually } from '../helpers/wait';

describe('AMQP nodes', () => {
  it('decodes a URL as amqplib does: credentials, virtual host (still escaped), port, heartbeat and tuning', () => {
    expect(nodeTarget('amqp://u%40x:p%2Fw@mq1:5701/%2Fvh?heartbeat=3&frameMax=4096&channelMax=7&locale=de_DE', 10)).to.deep.equal({
      protocol: 'amqp',
      hostname: 'mq1',
      port: 5701,
      username: 'u@x',
      password: 'p/w',
      vhost: '%2Fvh',
      heartbeat: 3,
      frameMax: 4096,
      channelMax: 7,
      locale: 'de_DE',
    });
  });

  it('leaves out what the URL does not say: guest/guest, the default port and virtual host, the given heartbeat', () => {
    expect(nodeTarget('amqps://[::1]', 10)).to.deep.equal({
      protocol: 'amqps',
      hostname: '::1',
      port: undefined,
      username: undefined,
      password: undefined,
      vhost: undefined,
      heartbeat: 10,
      frameMax: undefined,
      channelMax: undefined,
      locale: undefined,
    });
  });

  describe('a connection given several nodes', () => {
    const servers: Server[] = [];
    const listener = async (onConnection: () => void): Promise<number> => {
      const server = createServer((socket) => {
        onConnection();
        socket.destroy(); // not a broker: the attempt fails and the next one goes on
      });
      servers.push(server);
      return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    };
    after(() => Promise.all(servers.map((s) => new Promise((done) => s.close(done)))));

    it('tries them in turn, starting with the first, and names the one it tries', async () => {
      const tried: string[] = [];
      const second = await listener(() => tried.push('second'));
      const third = await listener(() => tried.push('third'));
      const connection = new AmqpConnection({ url: `amqp://127.0.0.1:1,amqp://127.0.0.1:${second},amqp://127.0.0.1:${third}`, connectTimeoutMs: 500, initialDelayMs: 10, maxDelayMs: 20 });
      expect(connection.node).to.equal('amqp://127.0.0.1:1');
      connection.start().catch(() => undefined);
      try {
        await eventually(() => tried.length >= 4, { timeoutMs: 10_000, what: 'attempts on the other nodes' });
        expect(tried.slice(0, 4)).to.deep.equal(['second', 'third', 'second', 'third']);
      } finally {
        await connection.close();
      }
    });
  });
});
