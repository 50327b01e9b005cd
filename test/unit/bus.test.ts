// Which broker names `npm run bus -- stale` may ever touch, and when a namespace is stale.
import { expect } from 'chai';
import { generatedNamespace, groupNamespaces, isStale, namespaceOf, parseDuration } from '../../scripts/bus';
import { fleetAccess } from '../../scripts/rabbitmq-definitions';
import { queueNames } from '../../shared/messaging/topology';

const NOW = Date.UTC(2026, 10, 28, 12);
const HOUR = 3_600_000;
const stamp = (ago: number): string => (NOW - ago).toString(36);

/** Every queue and exchange a fleet declares in a namespace. */
function fleetNames(namespace: string): string[] {
  return fleetAccess(namespace).flatMap((a) => [...queueNames(a.topology), ...a.topology.exchanges.map((e) => e.name)]);
}

describe('bus stale: namespaces', () => {
  it('never claims a name of the real fleet, a namespace a person chose, or the broker\'s own', () => {
    for (const name of [...fleetNames(''), ...fleetNames('staging'), ...fleetNames('tenant01'), '', 'amq.direct', 'amq.gen-abc', 'test', 'test.x.notastampatall']) {
      expect(namespaceOf(name, NOW), name).to.equal(undefined);
    }
  });

  it('groups a test fleet\'s, a chaos run\'s and a benchmark\'s names by namespace, with the time their names carry', () => {
    const fleet = `t${stamp(2 * HOUR)}ab12`;
    const chaos = `chaos7${stamp(3 * HOUR)}`;
    const bench = 'bench01hx3k9z';
    const names = [...fleetNames(fleet), ...fleetNames(chaos), `${bench}.bench.publish`, `${bench}.orders`, 'payments.commands'];
    const groups = groupNamespaces(names.map((name) => ({ name, consumers: 0, messages: 0 })), names, NOW);
    expect(groups.map((g) => [g.key, g.kind, g.createdAt])).to.deep.equal([
      [bench, 'bench', undefined],
      [chaos, 'chaos', NOW - 3 * HOUR],
      [fleet, 'test-fleet', NOW - 2 * HOUR],
    ]);
    expect(groups.find((g) => g.key === fleet)?.queues.map((q) => q.name)).to.include(`${fleet}.payments.commands.dlq`);
  });

  it('reads back the kind and the time of every namespace a run names with generatedNamespace', () => {
    const at = NOW - 2 * HOUR;
    for (const [kind, tag] of [['test-fleet', undefined], ['test-fleet', 'sr'], ['test-fleet', ''], ['chaos', '7'], ['bench', undefined]] as const) {
      const namespace = generatedNamespace(kind, tag, at);
      expect(namespaceOf(`${namespace}.payments.commands`, NOW), namespace).to.deep.equal({ key: namespace, kind, createdAt: at });
    }
    expect(() => generatedNamespace('test-fleet', 'toolong')).to.throw(/up to 4/);
  });

  it('groups a test\'s own queue with its DLQ and wait queues', () => {
    const base = `test.recovery.${stamp(HOUR)}a1b2c3`;
    const groups = groupNamespaces([base, `${base}.dlq`, `${base}.wait.1000ms`].map((name) => ({ name, consumers: 0, messages: 1 })), [`test.ex.${stamp(HOUR)}ffffff`], NOW);
    expect(groups.map((g) => [g.key, g.queues.length, g.exchanges.length])).to.deep.equal([
      [`test.ex.${stamp(HOUR)}ffffff`, 0, 1],
      [base, 3, 0],
    ]);
  });

  it('ignores a name whose time is not plausible (before 2020, or in the future)', () => {
    expect(namespaceOf(`t${(Date.UTC(2019, 0, 1)).toString(36)}ab12.orders`, NOW)).to.equal(undefined);
    expect(namespaceOf(`t${(NOW + 7 * 24 * HOUR).toString(36)}ab12.orders`, NOW)).to.equal(undefined);
  });

  it('is stale only without consumers and older than the threshold; of unknown age only when the threshold is 0', () => {
    const ns = (createdAt: number | undefined, consumers: number) => ({ key: 'k', kind: 'test-fleet' as const, createdAt, queues: [{ name: 'k.q', consumers, messages: 0 }], exchanges: [] });
    expect(isStale(ns(NOW - 2 * HOUR, 0), HOUR, NOW)).to.equal(true);
    expect(isStale(ns(NOW - 2 * HOUR, 1), HOUR, NOW)).to.equal(false);
    expect(isStale(ns(NOW - 10 * 60_000, 0), HOUR, NOW)).to.equal(false);
    expect(isStale(ns(undefined, 0), HOUR, NOW)).to.equal(false);
    expect(isStale(ns(undefined, 0), 0, NOW)).to.equal(true);
  });

  it('is not stale while a queue of it holds a message (a live run whose consumers are away, say during a broker restart), unless forced', () => {
    const ns = { key: 'k', kind: 'chaos' as const, createdAt: NOW - 2 * HOUR, queues: [{ name: 'k.q', consumers: 0, messages: 0 }, { name: 'k.q.dlq', consumers: 0, messages: 3 }], exchanges: [] };
    expect(isStale(ns, HOUR, NOW)).to.equal(false);
    expect(isStale(ns, HOUR, NOW, true)).to.equal(true);
    expect(isStale({ ...ns, queues: [{ name: 'k.q', consumers: 1, messages: 3 }] }, HOUR, NOW, true)).to.equal(false);
  });

  it('counts the messages of the event archive (a stream: a record, not work waiting) as nothing', () => {
    const archive = { name: 'k.events.archive', consumers: 0, messages: 500, type: 'stream' };
    const ns = { key: 'k', kind: 'test-fleet' as const, createdAt: NOW - 2 * HOUR, queues: [{ name: 'k.q', consumers: 0, messages: 0, type: 'quorum' }, archive], exchanges: [] };
    expect(isStale(ns, HOUR, NOW)).to.equal(true);
    expect(isStale({ ...ns, queues: [...ns.queues, { name: 'k.q.dlq', consumers: 0, messages: 1, type: 'quorum' }] }, HOUR, NOW)).to.equal(false);
    expect(isStale({ ...ns, queues: [{ ...archive, consumers: 1 }] }, HOUR, NOW)).to.equal(false); // a replay reading it
  });

  it('reads durations', () => {
    expect([parseDuration('0'), parseDuration('500ms'), parseDuration('90s'), parseDuration('30m'), parseDuration('1h'), parseDuration('2d')]).to.deep.equal([0, 500, 90_000, 1_800_000, 3_600_000, 172_800_000]);
    expect(() => parseDuration('an hour')).to.throw(/--older-than must be a duration/);
  });
});
