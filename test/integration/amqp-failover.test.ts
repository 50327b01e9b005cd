// AMQP_URL listing several nodes, against the real broker: two TCP proxies in front of it stand
// in for two nodes of a cluster. A connection goes to the first that answers, and when its
// node dies (the proxy closes every connection and stops listening) it fails over to the
// other; a publisher and a consumer on it carry on, and no confirmed message is lost.
import type { ConfirmChannel } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { getConfig } from '../../shared/config';
import { AmqpConnection } from '../../shared/messaging/connection';
import { uniqueName } from '../helpers/names';
import { BlackHole, portOf } from '../helpers/services';
import { eventually } from '../helpers/wait';

describe('AMQP failover between nodes', function () {
  this.timeout(60_000);
  const broker = getConfig().amqpUrl;
  let nodes: BlackHole[] = [];
  const connections: AmqpConnection[] = [];

  beforeEach(async () => {
    nodes = [await BlackHole.start(), await BlackHole.start()];
    for (const node of nodes) node.passTo(portOf(broker, 5672));
  });
  afterEach(async () => {
    for (const c of connections.splice(0)) await c.close();
    for (const node of nodes) await node.close().catch(() => undefined);
  });

  const connect = async (url: string, name: string): Promise<AmqpConnection> => {
    const connection = new AmqpConnection({ url, name, connectTimeoutMs: 1_000, initialDelayMs: 50, maxDelayMs: 500 });
    connections.push(connection);
    await connection.start();
    return connection;
  };

  it('connects to the first node that answers: one refusing connections, one that never answers', async () => {
    const silent = await BlackHole.start();
    try {
      const refusing = 'amqp://guest:guest@127.0.0.1:1';
      const connection = await connect([refusing, silent.url(broker), nodes[1]!.url(broker)].join(','), 'test-failover-first');
      expect(connection.node).to.include(`127.0.0.1:${nodes[1]!.port}`).and.not.include('guest:guest');
      expect(silent.accepted, 'the silent node was tried').to.equal(1);
    } finally {
      await silent.close();
    }
  });

  it('fails over when its node dies, and its publisher and consumer carry on, losing no confirmed message', async () => {
    const url = nodes.map((n) => n.url(broker)).join(',');
    const connection = await connect(url, 'test-failover');
    const queue = uniqueName('test.failover');
    const received = new Set<string>();
    // A setup hook runs again on the node the connection fails over to: declare, confirm, consume.
    let channel: ConfirmChannel | undefined;
    await connection.addSetup(async (model) => {
      const ch = await model.createConfirmChannel();
      ch.on('error', () => undefined);
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await ch.consume(queue, (msg) => {
        if (!msg) return;
        received.add(msg.content.toString());
        ch.ack(msg);
      });
      channel = ch;
    });
    const confirmed = new Set<string>();
    const publish = async (id: string): Promise<void> => {
      for (;;) {
        await connection.waitUntilConnected(30_000);
        try {
          const ch = channel!;
          await new Promise<void>((resolve, reject) => ch.sendToQueue(queue, Buffer.from(id), { persistent: true }, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error('nacked')) : resolve())));
          confirmed.add(id);
          return;
        } catch {
          // Not confirmed: the node went. Send it again once connected to the other (a short
          // pause, so that a channel not yet replaced does not spin the loop).
          await sleep(50);
        }
      }
    };
    try {
      expect(connection.node).to.include(`127.0.0.1:${nodes[0]!.port}`);
      for (let i = 0; i < 50; i++) await publish(`before-${i}`);
      await nodes[0]!.close(); // the node dies: its connections drop and it accepts no new one
      await eventually(() => connection.ready && connection.node.includes(`127.0.0.1:${nodes[1]!.port}`), { timeoutMs: 30_000, what: 'the connection on the other node' });
      for (let i = 0; i < 50; i++) await publish(`after-${i}`);
      await eventually(() => [...confirmed].every((id) => received.has(id)), { timeoutMs: 30_000, what: `every confirmed message consumed (have ${received.size} of ${confirmed.size})` });
      expect(confirmed.size).to.equal(100);
    } finally {
      await channel?.deleteQueue(queue).catch(() => undefined);
    }
  });
});
