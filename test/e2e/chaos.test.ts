// A short chaos run as part of the suite: 100 orders in 60 s with a fixed seed, every kind
// of fault at least once (the Temporal dev server's SIGKILL too), a reconciler pass, and every
// invariant checked (scripts/chaos). The run restarts the local RabbitMQ, Redis and
// PostgreSQL, so it comes last.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'chai';
import { FAULT_KINDS } from '../../scripts/chaos/faults';
import { ROOT, runTs } from '../helpers/processes';

interface Report {
  orders: { accepted: number };
  faults: Record<string, number>;
  lost: number;
  wrongOutcome: number;
  duplicated: number;
  conservationErrors: number;
  stuck: number;
  orderingErrors: number;
  crashed: number;
  reconciled: number;
  projectionErrors: number;
  reconciler?: { checked: number; errors: number };
  violations: number;
}

describe('npm run chaos (100 orders, 60 s, seed 7)', function () {
  this.timeout(900_000);

  it('loses nothing, does nothing twice, conserves stock and money, leaves nothing stuck, keeps every history in order (read models equal to the streams, rebuilt mid-run), no process crashes, and the reconciler finds no saga Temporal lost', async () => {
    const out = resolve(ROOT, 'test-artifacts', 'chaos-suite.json');
    const chaos = runTs('scripts/chaos/index.ts', ['--orders', '100', '--seconds', '60', '--seed', '7', '--out', out]);
    const { code } = await chaos.exited(840_000);
    const log = chaos.output.join('\n');
    const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
    for (const kind of FAULT_KINDS) expect(report.faults[kind], kind).to.be.at.least(1);
    expect(report.orders.accepted).to.equal(100);
    expect({ lost: report.lost, wrongOutcome: report.wrongOutcome, duplicated: report.duplicated, conservation: report.conservationErrors, stuck: report.stuck, ordering: report.orderingErrors, crashed: report.crashed, reconciled: report.reconciled, projections: report.projectionErrors }).to.deep.equal(
      { lost: 0, wrongOutcome: 0, duplicated: 0, conservation: 0, stuck: 0, ordering: 0, crashed: 0, reconciled: 0, projections: 0 },
      log,
    );
    expect(report.reconciler?.errors, 'the reconciler pass ran without errors').to.equal(0);
    expect(report.violations).to.equal(0, log);
    expect(code).to.equal(0, log);
  });

  it('refuses bad flags with a clear message', async () => {
    const chaos = runTs('scripts/chaos/index.ts', ['--orders', 'many']);
    expect((await chaos.exited()).code).to.equal(2);
    expect(chaos.output.join('\n')).to.include('--orders must be a whole number');
  });
});
