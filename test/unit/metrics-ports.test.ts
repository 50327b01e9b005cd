// Where `npm start` has each copy of a process serve its metrics (fleetCopies in
// scripts/fleet.ts), and the lines it prints about them: a pure rule, checked without services.
import { expect } from 'chai';
import { UsageError } from '../../scripts/cli';
import { FLEET, fleetCopies, metricsLines, parseReplicas } from '../../scripts/fleet';

const ports = (copies: ReturnType<typeof fleetCopies>): Record<string, number | undefined> => Object.fromEntries(copies.map((c) => [c.name, c.metricsPort]));

describe('npm start: the metrics port of each process', () => {
  it('gives the first copy of each process the base plus its index in FLEET, order-api included (its API port does not serve them)', () => {
    const copies = fleetCopies(new Map(), 9400);
    expect(copies.map((c) => c.name)).to.deep.equal(FLEET.map((p) => p.name));
    expect(ports(copies)).to.deep.equal({
      payments: 9400,
      inventory: 9401,
      shipping: 9402,
      notifications: 9403,
      'order-projection': 9404,
      'customer-orders': 9405,
      'temporal-worker': 9406,
      'saga-bridge': 9407,
      'outbox-relay': 9408,
      'order-api': 9409,
    });
    expect(copies.every((c) => c.replica === undefined)).to.equal(true);
  });

  it('gives further copies the ports after the fleet, in FLEET order, and leaves every first copy where it was', () => {
    const copies = fleetCopies(parseReplicas('inventory=2,payments=3'), 9400);
    const end = 9400 + FLEET.length;
    expect(ports(copies)).to.include({ 'payments#1': 9400, 'payments#2': end, 'payments#3': end + 1, 'inventory#1': 9401, 'inventory#2': end + 2, shipping: 9402, 'outbox-relay': 9408 });
    expect(copies.find((c) => c.name === 'payments#3')?.replica).to.deep.equal({ index: 3, count: 3 });
    const given = copies.map((c) => c.metricsPort);
    expect(new Set(given).size, 'no two copies share a port').to.equal(given.length);
  });

  it('gives every copy 0 (a free port, which npm start picks) when the base is 0', () => {
    const copies = fleetCopies(parseReplicas('payments=2'), 0);
    expect(copies.every((c) => c.metricsPort === 0)).to.equal(true);
  });

  it('refuses a base that leaves a copy no port', () => {
    expect(() => fleetCopies(new Map(), 65_530)).to.throw(UsageError, /METRICS_PORT_BASE 65530 leaves no port/);
  });

  it('prints one line per copy with its metrics URL, order-api on its METRICS_PORT', () => {
    const lines = metricsLines(fleetCopies(parseReplicas('payments=2'), 9400));
    expect(lines).to.have.length(FLEET.length + 1);
    expect(lines).to.include.members([
      '[start] payments#1 metrics: http://localhost:9400/metrics',
      `[start] payments#2 metrics: http://localhost:${9400 + FLEET.length}/metrics`,
      '[start] saga-bridge metrics: http://localhost:9407/metrics',
      '[start] order-api metrics: http://localhost:9409/metrics',
    ]);
  });
});
