// The payments worker as a real process: SIGKILL in the middle of commands, then a
// restart; SIGTERM with commands in flight; a topology the broker refuses.
import { expect } from 'chai';
import { EXIT_INCURABLE } from '../../shared/errors';
import type { Envelope } from '../../shared/events';
import { inNamespace } from '../../shared/messaging/topology';
import { orderId, TestFleet } from '../helpers/fleet';
import { runTs, type Child } from '../helpers/processes';
import { eventually } from '../helpers/wait';

describe('a worker process', function () {
  this.timeout(120_000);
  let fleet: TestFleet;
  const children: Child[] = [];
  beforeEach(async () => {
    fleet = await TestFleet.create();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await fleet.cleanup();
  });

  function startPayments(latencyMs: number): Child {
    const child = runTs('workers/payments/index.ts', [], {
      BUS_NAMESPACE: fleet.namespace,
      PAYMENT_PROVIDER_LATENCY_MS: String(latencyMs),
      LOG_LEVEL: 'info',
      DEDUP_LEASE_MS: '2000', // a killed worker's claims expire quickly
    });
    children.push(child);
    return child;
  }

  async function captures(ids: string[]): Promise<Map<string, number>> {
    const r = await fleet.db.query<{ order_id: string; n: number }>(
      'SELECT order_id, count(*)::int AS n FROM payments.captures WHERE order_id = ANY($1) GROUP BY order_id',
      [ids],
    );
    return new Map(r.rows.map((row) => [row.order_id, row.n]));
  }

  async function providerCalls(ids: string[]): Promise<number> {
    const r = await fleet.db.query('SELECT 1 FROM payments.provider_calls WHERE order_id = ANY($1)', [ids]);
    return r.rowCount ?? 0;
  }

  it('handles each command exactly once when killed with SIGKILL mid-command and restarted', async () => {
    const first = startPayments(400);
    await first.waitFor(/"msg":"worker started"/);
    const ids = Array.from({ length: 20 }, () => orderId('kill'));
    const commands: Envelope[] = [];
    for (const id of ids) commands.push(await fleet.send('payments.capture', { orderId: id, amount: 10, currency: 'EUR', paymentToken: 'tok_ok' }));
    // Kill while charges are under way and before any result was published.
    await eventually(async () => (await providerCalls(ids)) > 0, { what: 'a charge to start' });
    first.kill('SIGKILL');
    await first.exited();
    expect(fleet.events.filter((e) => ids.includes((e.data as { orderId: string }).orderId)).length).to.be.below(20);

    const second = startPayments(0);
    await second.waitFor(/"msg":"worker started"/);
    await eventually(() => commands.every((c) => fleet.causedBy(c).length > 0), { timeoutMs: 60_000, what: 'a result for every command' });
    const byOrder = await captures(ids);
    expect([...byOrder.keys()]).to.have.members(ids);
    expect([...byOrder.values()].every((n) => n === 1)).to.equal(true);
    for (const c of commands) {
      const results = fleet.causedBy(c);
      expect(new Set(results.map((r) => JSON.stringify(r.data))).size).to.equal(1, 'two different answers to one command');
      expect(results[0]?.eventType).to.equal('payment.captured');
    }
    await eventually(async () => (await fleet.messageCount('payments.commands')) === 0, { what: 'an empty queue' });
  });

  it('exits with the incurable status and one line naming the cause when the broker refuses its topology', async () => {
    // The queue exists without the worker's arguments: its declare is PRECONDITION_FAILED however often it restarts.
    const queue = inNamespace(fleet.namespace, 'payments.commands');
    const channel = await fleet.connection.channelModel!.createChannel();
    await channel.assertQueue(queue, { durable: true });
    await channel.close();
    const child = startPayments(0);
    await child.waitFor(/^payments: cannot start:/, 60_000);
    expect(await child.exited()).to.deep.equal({ code: EXIT_INCURABLE, signal: null }, child.output.join('\n'));
    const causes = child.output.filter((l) => l.startsWith('payments: cannot start:'));
    expect(causes).to.have.length(1, child.output.join('\n'));
    expect(causes[0]).to.match(new RegExp(`^payments: cannot start: the broker refused the topology \\(queue '${queue}'\\): PRECONDITION_FAILED - inequivalent arg '`));
    expect(child.output.some((l) => l.includes('"msg":"could not start"'))).to.equal(false);
  });

  it('on SIGTERM finishes the commands in flight and exits 0', async () => {
    const child = startPayments(500);
    await child.waitFor(/"msg":"worker started"/);
    const ids = Array.from({ length: 10 }, () => orderId('term'));
    for (const id of ids) await fleet.send('payments.capture', { orderId: id, amount: 1, currency: 'EUR', paymentToken: 'tok_ok' });
    await eventually(async () => (await providerCalls(ids)) > 0, { what: 'commands to be in flight' });
    child.kill('SIGTERM');
    expect(await child.exited()).to.deep.equal({ code: 0, signal: null });
    // Every command the worker had started was finished; the rest wait in the queue.
    const started = await providerCalls(ids);
    const finished = await captures(ids);
    expect(finished.size).to.equal(started);
    expect(started + (await fleet.messageCount('payments.commands'))).to.equal(ids.length);
    expect(child.output.some((l) => l.includes('"msg":"stopped"'))).to.equal(true);
  });
});
