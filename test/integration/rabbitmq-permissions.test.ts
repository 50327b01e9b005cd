// The broker users of deploy/rabbitmq/definitions.json, loaded into a vhost of the test's
// own on the real broker: each process can do all it needs with its own user and nothing
// that belongs to another process.
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { expect } from 'chai';
import { container } from 'tsyringe';
import { getConfig } from '../../shared/config';
import { declareTopology, type Topology } from '../../shared/messaging/topology';
import { connectPublisher } from '../../shared/messaging/publisher';
import { MessageValidator } from '../../shared/messaging/validator';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { startWorker, type RunningWorker } from '../../shared/runtime/worker';
import { createLogger } from '../../shared/observability/logger';
import { definitions, devPassword, fleetAccess, permissionsOf, renderDefinitions, DEFINITIONS_FILE, type BrokerAccess } from '../../scripts/rabbitmq-definitions';
import { paymentsWorker } from '../../workers/payments';
import { readFileSync } from 'node:fs';
import { brokerApi } from '../helpers/services';
import { orderId } from '../helpers/fleet';
import { eventually } from '../helpers/wait';

const vhost = `perm-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const userOf = (service: string): string => `${vhost}-${service}`;
const urlOf = (user: string, password: string): string => {
  const url = new URL(getConfig().amqpUrl);
  url.username = encodeURIComponent(user);
  url.password = encodeURIComponent(password);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.toString();
};
const urlOfService = (service: string): string => urlOf(userOf(service), devPassword(service));

/** Publishes one message on a fresh confirm channel; resolves with the broker's verdict. */
async function tryPublish(channel: ConfirmChannel, exchange: string, routingKey: string): Promise<string> {
  return new Promise((done) => {
    channel.once('error', (err: Error) => done(err.message));
    channel.publish(exchange, routingKey, Buffer.from('{}'), {}, (err) => done(err ? String(err) : 'ok'));
  });
}

async function tryDeclare(model: ChannelModel, topology: Topology): Promise<string> {
  const channel = await model.createChannel();
  channel.on('error', () => undefined);
  try {
    await declareTopology(channel, topology);
    await channel.close();
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('RabbitMQ users per service (deploy/rabbitmq/definitions.json)', function () {
  this.timeout(60_000);
  const connections: ChannelModel[] = [];
  const open = async (service: string): Promise<ChannelModel> => {
    const model = await connect(urlOfService(service));
    model.on('error', () => undefined);
    connections.push(model);
    return model;
  };

  before(async () => {
    await brokerApi('PUT', `/vhosts/${encodeURIComponent(vhost)}`, {});
    await brokerApi('PUT', `/permissions/${encodeURIComponent(vhost)}/guest`, { configure: '.*', write: '.*', read: '.*' });
    const defs = definitions() as { users: Array<{ name: string; password_hash: string; hashing_algorithm: string }>; permissions: Array<{ user: string; configure: string; write: string; read: string }> };
    for (const u of defs.users) {
      await brokerApi('PUT', `/users/${encodeURIComponent(userOf(u.name))}`, { password_hash: u.password_hash, hashing_algorithm: u.hashing_algorithm, tags: '' });
    }
    for (const p of defs.permissions) {
      await brokerApi('PUT', `/permissions/${encodeURIComponent(vhost)}/${encodeURIComponent(userOf(p.user))}`, { configure: p.configure, write: p.write, read: p.read });
    }
  });

  after(async () => {
    for (const c of connections) await c.close().catch(() => undefined);
    await brokerApi('DELETE', `/vhosts/${encodeURIComponent(vhost)}`).catch(() => undefined);
    for (const u of (definitions() as { users: Array<{ name: string }> }).users) await brokerApi('DELETE', `/users/${encodeURIComponent(userOf(u.name))}`).catch(() => undefined);
  });

  it('the committed definitions file is the one the code derives', () => {
    expect(readFileSync(DEFINITIONS_FILE, 'utf8')).to.equal(renderDefinitions(), 'run `npm run rabbitmq:definitions`');
  });

  it('a wrong password is refused', async () => {
    await expect(connect(urlOf(userOf('payments'), 'guessed'))).to.be.rejectedWith(/ACCESS_REFUSED|403/);
  });

  for (const access of fleetAccess()) {
    it(`${access.user} declares its topology, consumes its queues and publishes where it must`, async () => {
      const model = await open(access.user);
      expect(await tryDeclare(model, access.topology)).to.equal('ok');
      const channel = await model.createChannel();
      for (const q of access.topology.queues) {
        const { consumerTag } = await channel.consume(q.name, () => undefined);
        await channel.cancel(consumerTag);
      }
      for (const exchange of [...access.publishes, ...(access.consumes ? [''] : [])]) {
        expect(await tryPublish(await model.createConfirmChannel(), exchange, 'permission.probe'), `publish to "${exchange}"`).to.equal('ok');
      }
    });
  }

  it('a process cannot publish to an exchange it does not own', async () => {
    const checks: Array<[BrokerAccess['user'], string]> = [['payments', 'orders'], ['payments', 'inventory'], ['notifications', 'orders'], ['outbox-relay', 'commands'], ['inventory', 'payments']];
    for (const [service, exchange] of checks) {
      const verdict = await tryPublish(await (await open(service)).createConfirmChannel(), exchange, 'permission.probe');
      expect(verdict, `${service} → ${exchange}`).to.match(/ACCESS_REFUSED|403/);
    }
  });

  it('a process cannot declare or consume another process\'s queue', async () => {
    const payments = fleetAccess().find((a) => a.user === 'payments')!;
    const inventory = await open('inventory');
    expect(await tryDeclare(inventory, { exchanges: [], queues: payments.topology.queues })).to.match(/ACCESS_REFUSED|403/);
    const channel = await inventory.createChannel();
    channel.on('error', () => undefined);
    await expect(channel.consume('payments.commands', () => undefined)).to.be.rejectedWith(/ACCESS_REFUSED|403/);
  });

  it('permissions are anchored regular expressions over exact names', () => {
    const { configure, write, read } = permissionsOf(fleetAccess().find((a) => a.user === 'outbox-relay')!);
    expect(write).to.equal('^(events\\.archive|orders)$'); // and the archive, which it binds
    expect(read).to.equal('^(inventory|orders|payments|shipping)$'); // only the event exchanges it binds the archive to: a publisher
    for (const re of [configure, write]) expect(re).to.match(/^\^\(.*\)\$$/);
  });

  describe('the payments worker running as its user', () => {
    let worker: RunningWorker | undefined;
    after(async () => worker?.stop());

    it('captures a flaky payment through its retry queues and publishes the result', async () => {
      const config = { ...getConfig(), busNamespace: '' };
      worker = await startWorker(paymentsWorker, { ...config, amqpUrl: urlOfService('payments') }, createLogger('payments', 'error'), container);
      const admin = await connect(urlOf('guest', 'guest'));
      connections.push(admin);
      const probe = await admin.createChannel();
      const { queue } = await probe.assertQueue('', { exclusive: true });
      await probe.bindQueue(queue, 'payments', 'payment.*');
      const results: string[] = [];
      await probe.consume(queue, (m) => m && results.push(m.content.toString()), { noAck: true });

      const temporal = await connectPublisher({ amqpUrl: urlOfService('temporal-worker'), busNamespace: '' }, 'temporal-worker', new MessageValidator(), createLogger('t', 'error'));
      try {
        const id = orderId('perm');
        await temporal.publisher.publishEnvelope(newEnvelope('payments.capture', { orderId: id, amount: 5, currency: 'EUR', paymentToken: 'tok_flaky' }, { aggregateId: id }));
        const result = await eventually(() => results.map((r) => JSON.parse(r) as { eventType: string; aggregateId: string }).find((r) => r.aggregateId === id), { timeoutMs: 30_000, what: 'payment.captured' });
        expect(result.eventType).to.equal('payment.captured');
      } finally {
        await temporal.connection.close();
      }
    });
  });
});
