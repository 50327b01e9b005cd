// The fleet is defined once (scripts/fleet.ts): the npm scripts, the compose services and the
// broker's users and permissions follow from it, and this checks that they agree. Also
// `npm start -- --replicas` and how the order-projection's replicas share its partitions.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { FLEET, MAX_REPLICAS, parseReplicas, replicaNames } from '../../scripts/fleet';
import { DEFINITIONS_FILE, fleetAccess, renderDefinitions } from '../../scripts/rabbitmq-definitions';
import { UsageError } from '../../scripts/cli';
import { partitionsOf } from '../../workers/order-projection';
import { PARTITIONS, projectionTopology } from '../../workers/order-projection/topology';

const ROOT = resolve(__dirname, '../..');
const scripts = (JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const compose = parse(readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[]; deploy?: { replicas?: number }; profiles?: string[] }>;
};

describe('the fleet, defined once', () => {
  it('names each process once, with an entry file that exists', () => {
    expect(new Set(FLEET.map((p) => p.name)).size).to.equal(FLEET.length);
    expect(new Set(FLEET.map((p) => p.script)).size).to.equal(FLEET.length);
    for (const p of FLEET) expect(existsSync(resolve(ROOT, p.file)), p.file).to.equal(true);
  });

  it("agrees with package.json: each process's script runs its entry file, and every worker:* script is a process of the fleet", () => {
    for (const p of FLEET) expect(scripts[p.script], `npm run ${p.script}`).to.equal(`ts-node ${p.file}`);
    const workerScripts = Object.keys(scripts).filter((s) => s.startsWith('worker:'));
    expect(workerScripts.sort()).to.deep.equal(FLEET.map((p) => p.script).filter((s) => s.startsWith('worker:')).sort());
  });

  it('agrees with docker-compose.yml: one service per process running its script, with its replicas', () => {
    for (const p of FLEET) {
      const service = compose.services[p.name];
      expect(service, `the service ${p.name}`).to.not.equal(undefined);
      expect(service!.command, p.name).to.deep.equal(['npm', 'run', p.script]);
      expect(service!.deploy?.replicas ?? 1, `${p.name}'s replicas`).to.equal(p.replicas);
    }
    const fleetLike = Object.entries(compose.services).filter(([, s]) => s.profiles === undefined && s.command?.[0] === 'npm' && s.command[2] !== 'migrate');
    expect(fleetLike.map(([name]) => name).sort()).to.deep.equal(FLEET.map((p) => p.name).sort());
  });

  it("agrees with the broker's users: one per process that talks to RabbitMQ, derived from its definition", () => {
    expect(fleetAccess().map((a) => a.user)).to.deep.equal(FLEET.filter((p) => p.broker).map((p) => p.name));
    expect(readFileSync(DEFINITIONS_FILE, 'utf8'), 'deploy/rabbitmq/definitions.json is what `npm run rabbitmq:definitions` writes').to.equal(renderDefinitions());
    const payments = fleetAccess('ns').find((a) => a.user === 'payments')!;
    expect(payments.publishes).to.deep.equal(['ns.payments']);
    expect(payments.consumes).to.equal(true);
    expect(fleetAccess().find((a) => a.user === 'outbox-relay')).to.include({ consumes: false });
  });
});

describe('npm start -- --replicas', () => {
  it('takes name=count pairs for processes of the fleet', () => {
    expect([...parseReplicas('payments=3,order-projection=2')]).to.deep.equal([
      ['payments', 3],
      ['order-projection', 2],
    ]);
    expect([...parseReplicas(' inventory=1 ')]).to.deep.equal([['inventory', 1]]);
  });

  const bad: Array<[string, RegExp]> = [
    ['', /name=count pairs/],
    ['payments', /name=count pairs/],
    ['payments=two', /name=count pairs/],
    ['payments=-1', /name=count pairs/],
    ['paymnts=2', /no process "paymnts" \(it has payments, inventory/],
    ['payments=2,payments=3', /"payments" is given twice/],
    ['payments=0', new RegExp(`from 1 to ${MAX_REPLICAS}`)],
    [`payments=${MAX_REPLICAS + 1}`, new RegExp(`from 1 to ${MAX_REPLICAS}`)],
    ['order-api=2', /order-api listens on HTTP_PORT/],
  ];
  for (const [text, message] of bad) {
    it(`refuses "${text}" with a clear message`, () => {
      expect(() => parseReplicas(text)).to.throw(UsageError, message);
    });
  }

  it('names one copy after its process and several <name>#k (npm start prints "[start] <name> running (pid N)")', () => {
    expect(replicaNames('payments', 1)).to.deep.equal(['payments']);
    expect(replicaNames('payments', 3)).to.deep.equal(['payments#1', 'payments#2', 'payments#3']);
    expect(/^\[start\] (\S+) running \(pid (\d+)\)/.exec('[start] payments#2 running (pid 4242)')?.slice(1)).to.deep.equal(['payments#2', '4242']);
  });
});

describe("the order-projection's partitions over its replicas", () => {
  const queues = projectionTopology('ns').queues;
  const names = (qs: ReadonlyArray<{ name: string }>): string[] => qs.map((q) => q.name.replace('ns.order-projection.', ''));

  it('gives each replica every N-th partition first, and it stands by on the others', () => {
    expect(PARTITIONS).to.equal(4);
    expect(names(partitionsOf(queues, { index: 1, count: 2 }).own)).to.deep.equal(['p0', 'p2']);
    expect(names(partitionsOf(queues, { index: 2, count: 2 }).own)).to.deep.equal(['p1', 'p3']);
    expect(names(partitionsOf(queues, { index: 2, count: 2 }).others)).to.deep.equal(['p0', 'p2']);
    expect(names(partitionsOf(queues, { index: 3, count: 3 }).own)).to.deep.equal(['p2']);
  });

  it('gives every partition to exactly one replica, however many there are', () => {
    for (let count = 1; count <= 6; count++) {
      const owned = Array.from({ length: count }, (_, i) => names(partitionsOf(queues, { index: i + 1, count }).own)).flat();
      expect(owned.sort(), `${count} replicas`).to.deep.equal(['p0', 'p1', 'p2', 'p3']);
    }
  });
});
