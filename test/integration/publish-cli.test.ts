// `npm run publish`: validates, publishes with confirms, prints eventIds; bad input gets
// a clear message and a non-zero exit, and nothing is sent.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreTopology, dlqName, inNamespace, queueNames } from '../../shared/messaging/topology';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { captureData, TestBus } from '../helpers/bus';
import { runTs } from '../helpers/processes';
import { eventually } from '../helpers/wait';
import { generatedNamespace } from '../../scripts/bus';

const dir = mkdtempSync(join(tmpdir(), 'publish-cli-'));
function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/**
 * The tool's bus namespace (a test fleet's shape, found stale if a run is killed): what it
 * publishes reaches no fleet of the default namespace on this broker.
 */
const NAMESPACE = generatedNamespace('test-fleet', 'pub');
const COMMANDS = inNamespace(NAMESPACE, 'commands');

async function publish(args: string[]): Promise<{ code: number | null; out: string[] }> {
  const child = runTs('scripts/publish.ts', args, { BUS_NAMESPACE: NAMESPACE });
  const { code } = await child.exited(30_000);
  return { code, out: child.output.filter((l) => l.trim() !== '') };
}

describe('npm run publish', function () {
  this.timeout(60_000);
  let bus: TestBus;
  let queue: string;
  beforeEach(async () => {
    bus = await TestBus.create();
    // The tool publishes to the catalog's exchange; a queue of this test listens there.
    const spec = bus.queue('publish-cli', { bind: [[COMMANDS, 'payments.capture']] });
    await bus.admin.assertExchange(COMMANDS, 'topic', { durable: true });
    await bus.consumer(spec, {}).then((c) => c.stop()); // declares the queue, consumes nothing
    queue = spec.name;
  });
  afterEach(async () => {
    await bus.cleanup();
  });
  after(async () => {
    // The tool declares its namespace's core exchanges and archive.
    const cleanup = await TestBus.create();
    const core = coreTopology(NAMESPACE);
    for (const name of queueNames(core)) await cleanup.admin.deleteQueue(name);
    for (const e of core.exchanges) await cleanup.admin.deleteExchange(e.name);
    await cleanup.cleanup();
  });

  it('validates and publishes --count copies, printing each eventId', async () => {
    const data = file('capture.json', JSON.stringify(captureData('o-cli')));
    const { code, out } = await publish(['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', data, '--count', '3']);
    expect(code).to.equal(0, out.join('\n'));
    expect(out).to.have.length(3);
    for (const id of out) expect(id).to.match(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    const got = await bus.drain(queue);
    expect(got.map((m) => String(m.properties.messageId))).to.have.members(out);
    expect(JSON.parse(got[0]!.content.toString()) as unknown).to.deep.include({ eventType: 'payments.capture', aggregateId: 'o-cli', data: captureData('o-cli') });
  });

  it('sends a fixed eventId as it is, so a duplicate can be made on purpose', async () => {
    const envelope = { eventId: '01HZZZZZZZZZZZZZZZZZZZZZZZ', eventType: 'payments.capture', data: captureData('o-fixed') };
    const { code, out } = await publish(['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', file('fixed.json', JSON.stringify(envelope)), '--count', '2']);
    expect(code).to.equal(0, out.join('\n'));
    expect(out).to.deep.equal([envelope.eventId, envelope.eventId]);
  });

  it('refuses a message that fails its schema, with the reason, and sends nothing', async () => {
    const bad = file('bad.json', JSON.stringify({ orderId: 'o1', amount: 'ten' }));
    const { code, out } = await publish(['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', bad]);
    expect(code).to.equal(2);
    expect(out.join('\n')).to.match(/fails validation: schema_validation: payments.capture v1/);
    expect(await bus.messageCount(queue)).to.equal(0);
  });

  it('sends anything with --raw (poison for testing), and the consumer dead-letters it', async () => {
    const spec = bus.queue('raw-target', { bind: [[COMMANDS, 'payments.capture']] });
    await bus.consumer(spec, { 'payments.capture': async () => undefined });
    const { code } = await publish(['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', file('junk.txt', 'not json at all'), '--raw']);
    expect(code).to.equal(0);
    await eventually(async () => (await bus.messageCount(dlqName(spec.name))) === 1, { what: 'the raw message in the DLQ' });
  });

  it('sends a raw valid envelope under its own eventId, so the consumer handles it once however many copies go', async () => {
    const spec = bus.queue('raw-valid', { bind: [[COMMANDS, 'payments.capture']] });
    const handled: string[] = [];
    await bus.consumer(spec, { 'payments.capture': async (e) => void handled.push(e.eventId) });
    const envelope = newEnvelope('payments.capture', captureData('o-raw'), { aggregateId: 'o-raw' });
    const { code } = await publish(['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', file('raw.json', JSON.stringify(envelope)), '--raw', '--count', '3']);
    expect(code).to.equal(0);
    await eventually(() => handled.length === 1, { what: 'the raw envelope handled' });
    await eventually(async () => (await bus.messageCount(spec.name)) === 0, { what: 'the copies acked' });
    expect(handled).to.deep.equal([envelope.eventId]);
    expect(await bus.messageCount(dlqName(spec.name))).to.equal(0);
  });

  const usage: Array<[string, string[], RegExp]> = [
    ['a missing --file', ['--exchange', 'commands', '--routing-key', 'payments.capture'], /--file is required/],
    ['an unreadable file', ['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', '/nonexistent.json'], /cannot read --file/],
    ['a file that is not JSON', ['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', '<junk>'], /is not JSON/],
    ['a bad --count', ['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', '<capture>', '--count', '0'], /--count must be a whole number from 1/],
    ['an unknown flag', ['--exchange', 'commands', '--bogus'], /Unknown option '--bogus'/],
    ['the wrong exchange', ['--exchange', 'orders', '--routing-key', 'payments.capture', '--file', '<capture>'], /is published to exchange "commands", not "orders"/],
    ['a routing key that is not the type', ['--exchange', 'commands', '--routing-key', 'payments.refund', '--file', '<envelope>'], /--routing-key must be the message type "payments.capture"/],
  ];
  for (const [what, args, message] of usage) {
    it(`exits 2 with a clear message for ${what}`, async () => {
      const files: Record<string, string> = {
        '<junk>': file('junk.json', '{nope'),
        '<capture>': file('c.json', JSON.stringify(captureData('o1'))),
        '<envelope>': file('e.json', JSON.stringify({ eventType: 'payments.capture', data: captureData('o1') })),
      };
      const { code, out } = await publish(args.map((a) => files[a] ?? a));
      expect(code).to.equal(2, out.join('\n'));
      expect(out.join('\n')).to.match(message);
    });
  }

  it('says when RabbitMQ cannot be reached, without printing the password', async () => {
    const child = runTs('scripts/publish.ts', ['--exchange', 'commands', '--routing-key', 'payments.capture', '--file', file('c2.json', JSON.stringify(captureData('o1')))], {
      AMQP_URL: 'amqp://guest:hunter2@127.0.0.1:1',
    });
    const { code } = await child.exited(30_000);
    const out = child.output.join('\n');
    expect(code).to.equal(1);
    expect(out).to.match(/cannot reach RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1/);
    expect(out).to.not.include('hunter2');
  });
});
