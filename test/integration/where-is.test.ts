// `npm run where-is` (scripts/where-is.ts) as a user runs it, a child process, against a
// Temporal dev server, the real workers on a bus namespace of the test's own and a database of
// the test's own (no relay of another fleet publishes its events, no other test's order is
// in it): bad input, an unknown order, a fulfilled order, a declined one, one stuck on purpose
// (no inventory worker, so its saga waits in reserveStock), and a dead-lettered poison message
// about an order, which the report shows and leaves in its DLQ.
import { expect } from 'chai';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { container } from 'tsyringe';
import type { WhereIsFacts } from '../../scripts/where-is-facts';
import { TOKENS } from '../../shared/di/tokens';
import { HEADERS } from '../../shared/messaging/headers';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { declareTopology, inNamespace } from '../../shared/messaging/topology';
import { createLogger } from '../../shared/observability/logger';
import { workflowIdOf } from '../../shared/saga';
import { devServer } from '../../shared/temporal/binaries';
import { ORDER_ID_KEY } from '../../shared/temporal/client';
import { inventoryWorker } from '../../workers/inventory';
import { inventoryTopology } from '../../workers/inventory/topology';
import { paymentsWorker } from '../../workers/payments';
import { sagaBridgeWorker } from '../../workers/saga-bridge';
import { shippingWorker } from '../../workers/shipping';
import { startSagaWorker } from '../../workers/temporal/worker';
import { dropDatabase, testDatabaseUrl, TestFleet, type SagaOrder } from '../helpers/fleet';
import { runTs, type Child } from '../helpers/processes';
import { eventually } from '../helpers/wait';

const USAGE = 'usage: npm run where-is -- <orderId> [--json]';

type Report = WhereIsFacts & { found: true; verdict: string };

/** The JSON the CLI printed (its stdout and stderr are one list of lines): undefined until all of it arrived. */
function jsonOf(output: readonly string[]): unknown {
  const start = output.indexOf('{');
  const end = output.lastIndexOf('}');
  if (start < 0 || end < start) return undefined;
  try {
    return JSON.parse(output.slice(start, end + 1).join('\n')) as unknown;
  } catch {
    return undefined;
  }
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('npm run where-is: bad input', function () {
  this.timeout(60_000);

  it('exits 2 with its usage for a missing id, an id an order cannot have, an extra argument and an unknown flag', async () => {
    const cases = [[], ['ord/01'], ['ord 01'], ['x'.repeat(65)], ['ord_1', 'ord_2'], ['--bogus', 'ord_1'], ['ord_1', '--verbose']];
    const children = cases.map((args) => ({ args, cli: runTs('scripts/where-is.ts', args) }));
    for (const { args, cli } of children) {
      expect((await cli.exited(45_000)).code, `where-is ${args.join(' ')}`).to.equal(2);
      await eventually(() => cli.output.some((l) => l.includes(USAGE)), { timeoutMs: 5_000, what: `the usage for "${args.join(' ')}"` });
    }
  });
});

describe('npm run where-is, on a Temporal dev server and the real fleet', function () {
  this.timeout(180_000);
  const databaseUrl = testDatabaseUrl('whereis');
  let env: TestWorkflowEnvironment;
  let fleet: TestFleet;
  let sagaWorker: { stop(): Promise<void> } | undefined;
  const children: Child[] = [];

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({ server: devServer({ searchAttributes: [ORDER_ID_KEY] }) });
  });
  after(async () => {
    await env?.teardown();
    await dropDatabase(databaseUrl);
  });
  beforeEach(async () => {
    fleet = await TestFleet.create({ databaseUrl });
  });
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await sagaWorker?.stop();
    sagaWorker = undefined;
    await fleet.cleanup();
  });

  /** The workers, the reply bridge and starter, and the saga's Temporal worker; the inventory worker only when asked. */
  async function startFleet({ inventory }: { inventory: boolean }): Promise<void> {
    await fleet.start(paymentsWorker);
    if (inventory) await fleet.start(inventoryWorker);
    await fleet.start(shippingWorker);
    const withClient = container.createChildContainer();
    withClient.register(TOKENS.TemporalClient, { useValue: env.client });
    await fleet.start(sagaBridgeWorker, { temporalAddress: env.address }, withClient);
    sagaWorker = await startSagaWorker({ ...fleet.config, temporalAddress: env.address }, createLogger('temporal-worker', 'error'));
  }

  /** Runs the CLI on the test's namespace, Temporal and database; its exit status and what it printed. */
  async function whereIs(args: string[]): Promise<{ code: number | null; output: string[] }> {
    const cli = runTs('scripts/where-is.ts', args, { BUS_NAMESPACE: fleet.namespace, TEMPORAL_ADDRESS: env.address, DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' });
    children.push(cli);
    const { code } = await cli.exited(60_000);
    return { code, output: cli.output };
  }

  /** The --json report of an order that exists. */
  async function report(orderId: string): Promise<Report> {
    const cli = runTs('scripts/where-is.ts', [orderId, '--json'], { BUS_NAMESPACE: fleet.namespace, TEMPORAL_ADDRESS: env.address, DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' });
    children.push(cli);
    expect((await cli.exited(60_000)).code, cli.output.join('\n')).to.equal(0);
    return (await eventually(() => jsonOf(cli.output), { timeoutMs: 5_000, what: 'the JSON report' })) as Report;
  }

  /** Waits until the saga of an order completed, then marks its events sent, as the relay would (this database has none). */
  async function settle(orderId: string): Promise<void> {
    const handle = env.client.workflow.getHandle(workflowIdOf(orderId));
    await eventually(() => handle.describe().then(() => true), { timeoutMs: 30_000, what: `workflow ${workflowIdOf(orderId)} to exist` });
    await handle.result();
    await fleet.db.query('UPDATE orders.events SET sent_at = now() WHERE stream_id = $1 AND sent_at IS NULL', [orderId]);
  }

  const place = (order: Partial<SagaOrder> = {}): Promise<string> => fleet.placeOrder(order, 'wi');

  it('says an unknown order is unknown, and exits 1', async () => {
    const { code, output } = await whereIs(['wi-never-placed']);
    expect(code).to.equal(1);
    await eventually(() => output.some((l) => l.includes('where-is: no order wi-never-placed in the order store')), { timeoutMs: 5_000, what: 'the message' });
  });

  it('shows a fulfilled order: its events, its saga completed, what each worker recorded', async () => {
    await startFleet({ inventory: true });
    const id = await place();
    await settle(id);

    const r = await report(id);
    expect(r.found).to.equal(true);
    expect(r.verdict).to.match(/^fulfilled(;|$)/);
    expect(r.store.events.map((e) => [e.version, e.type])).to.deep.equal([
      [1, 'order.placed'],
      [2, 'order.fulfilled'],
    ]);
    expect(r.store.events.every((e) => e.sentAt !== null)).to.equal(true);
    expect(r.store.row).to.include({ status: 'fulfilled', version: 2 });
    expect(r.workflow).to.include({ state: 'found', status: 'COMPLETED', workflowId: workflowIdOf(id) });
    expect(r.workflow.state === 'found' && r.workflow.saga?.outcome).to.equal('fulfilled');
    expect(r.workers.payments.capture).to.include({ amount: '19.00', currency: 'EUR' });
    expect(r.workers.inventory.reservation).to.include({ releasedAt: null });
    expect(r.workers.shipping.shipment).to.include({ status: 'scheduled' });
    expect(r.broker.reachable && r.broker.deadLetters).to.deep.equal([]);

    const { code, output } = await whereIs([id]);
    expect(code).to.equal(0);
    const text = (await eventually(() => (output.some((l) => l.startsWith('dead letters')) ? output.join('\n') : undefined), { timeoutMs: 5_000, what: 'the whole screen' }));
    expect(output.find((l) => l.startsWith('verdict'))).to.match(/^verdict\s+fulfilled/);
    expect(text).to.match(/v1\s+order\.placed/).and.match(/v2\s+order\.fulfilled/).and.include('COMPLETED');
  });

  it('shows a declined order as cancelled: payment_declined, with the decline the payments worker recorded', async () => {
    await startFleet({ inventory: true });
    const id = await place({ paymentToken: 'tok_decline' });
    await settle(id);

    const r = await report(id);
    expect(r.verdict).to.match(/^cancelled: payment_declined(;|$)/);
    expect(r.store.events.map((e) => e.type)).to.deep.equal(['order.placed', 'order.cancelled']);
    expect(r.workers.payments.decline).to.include({ reason: 'card_declined' });
    expect(r.workers.payments.capture).to.equal(undefined);
    expect(r.workers.inventory.reservation).to.equal(undefined);
  });

  it('names the queue an order waits on when its worker is not running: inventory.commands, with ready messages and no consumer', async () => {
    // The inventory worker's queue exists (it ran once, say), but nothing consumes it.
    const channel = await fleet.connection.channelModel!.createChannel();
    await declareTopology(channel, inventoryTopology(fleet.namespace));
    await channel.close();
    await startFleet({ inventory: false });
    const id = await place();
    await eventually(async () => (await fleet.messageCount('inventory.commands')) > 0, { timeoutMs: 60_000, intervalMs: 250, what: 'the reserve command waiting in inventory.commands' });

    const r = await report(id);
    const queue = inNamespace(fleet.namespace, 'inventory.commands');
    expect(r.verdict).to.match(new RegExp(`^waiting for inventory: ${escape(queue)} has [1-9]\\d* ready and no consumer`));
    expect(r.workflow).to.include({ state: 'found', status: 'RUNNING' });
    if (r.workflow.state !== 'found') throw new Error('no workflow');
    expect(r.workflow.pendingActivities.map((a) => a.activity)).to.deep.equal(['reserveStock']);
    expect(r.workflow.saga?.step).to.equal('reserving_stock');
    expect(r.workers.payments.capture).to.not.equal(undefined);
    expect(r.broker.reachable && r.broker.queues.find((q) => q.name === queue)).to.include({ exists: true, consumers: 0 });
  });

  it('shows a dead-lettered poison message about an order, with its reason, and leaves it in the DLQ', async () => {
    await startFleet({ inventory: true });
    const id = await fleet.storeOrder({}, 'wi'); // no saga: only the poison concerns it
    // A capture whose data fails its schema: the payments worker dead-letters it at once.
    const poison = { ...newEnvelope('payments.capture', { orderId: id, amount: 19, currency: 'EUR', paymentToken: 'tok_ok' }, { aggregateId: id }), data: { orderId: id, amount: 'nineteen' } };
    await fleet.publisher.publish({
      exchange: inNamespace(fleet.namespace, 'commands'),
      routingKey: 'payments.capture',
      content: Buffer.from(JSON.stringify(poison)),
      options: { messageId: poison.eventId, type: 'payments.capture', contentType: 'application/json', persistent: true, headers: { [HEADERS.aggregateId]: id } },
    });
    await eventually(async () => (await fleet.messageCount('payments.commands.dlq')) === 1, { timeoutMs: 30_000, what: 'the poison in payments.commands.dlq' });

    const r = await report(id);
    const queue = inNamespace(fleet.namespace, 'payments.commands');
    expect(r.verdict).to.match(new RegExp(`^dead-lettered: ${escape(queue)} \\(PoisonMessageError: schema_validation`));
    if (!r.broker.reachable) throw new Error(`RabbitMQ unreachable: ${r.broker.error}`);
    expect(r.broker.deadLetters).to.have.length(1);
    expect(r.broker.deadLetters[0]).to.include({ queue, dlq: `${queue}.dlq`, messageId: poison.eventId, type: 'payments.capture' });
    expect(r.broker.deadLetters[0]!.reason).to.match(/^PoisonMessageError: schema_validation/);

    // Looked at, not taken: the message is back in its DLQ.
    await eventually(async () => (await fleet.messageCount('payments.commands.dlq')) === 1, { timeoutMs: 10_000, what: 'the poison still in its DLQ' });
    const { code, output } = await whereIs([id]);
    expect(code).to.equal(0);
    await eventually(() => output.some((l) => /^dead letters\s+1 about it/.test(l)), { timeoutMs: 5_000, what: 'the dead letters section' });
    expect(output.join('\n')).to.include(`${queue}.dlq  payments.capture  ${poison.eventId}`);
  });
});
