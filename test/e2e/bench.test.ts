// `npm run bench` itself: it runs, measures each figure against its baseline in the same
// run and records the machine and versions. (The figures are the benchmark's business, not
// a test's: nothing here asserts a speed.)
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'chai';
import { ROOT, runTs } from '../helpers/processes';

describe('npm run bench', function () {
  this.timeout(180_000);

  it('--quick measures publish and consume against raw amqplib and writes them with the machine and versions', async () => {
    const out = resolve(ROOT, 'test-artifacts', 'bench-quick.json');
    const bench = runTs('bench/index.ts', ['--quick', '--only', 'publish,consume', '--out', out]);
    expect((await bench.exited(150_000)).code).to.equal(0, bench.output.join('\n'));
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      machine: { cores: number; memoryGiB: number };
      versions: Record<string, string>;
      results: Record<string, { ours: number; baseline: number; ratio: number; bytesPerMessage: number }>;
    };
    expect(report.machine.cores).to.be.greaterThan(0);
    for (const service of ['node', 'rabbitmq', 'redis', 'postgresql', 'temporal']) expect(report.versions[service], service).to.match(/\d+\.\d+/);
    for (const figure of ['publish', 'consume']) {
      const r = report.results[figure]!;
      expect(r.ours, figure).to.be.greaterThan(0);
      expect(r.baseline, figure).to.be.greaterThan(0);
      expect(r.ratio).to.be.closeTo(r.ours / r.baseline, 0.01);
      expect(r.bytesPerMessage).to.be.within(900, 1_200); // 1 KB messages
    }
    expect(bench.output.join('\n')).to.match(/figure +ours +baseline/);
  });

  it('refuses an unknown figure with a clear message', async () => {
    const bench = runTs('bench/index.ts', ['--only', 'warp']);
    expect((await bench.exited(60_000)).code).to.equal(2);
    expect(bench.output.join('\n')).to.include('--only takes a comma-separated list');
  });
});
