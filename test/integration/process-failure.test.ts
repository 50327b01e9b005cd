// A process that can no longer do its job exits non-zero, after a graceful stop, so that
// `npm start` or its container supervisor restarts it (a Temporal worker whose run()
// rejected used to stay up without polling).
import { expect } from 'chai';
import { runTs, type Child } from '../helpers/processes';

describe('a process whose main part fails after start', function () {
  this.timeout(60_000);
  const children: Child[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  const run = (mode: string): Child => {
    const child = runTs('test/fixtures/failing-process.ts', [mode], { LOG_LEVEL: 'info' });
    children.push(child);
    return child;
  };

  for (const [mode, cause] of [
    ['ended-rejects', /failing-process failed; exiting so that a supervisor restarts the process/],
    ['ended-resolves', /failing-process stopped working; exiting/],
    ['unhandled-rejection', /unhandled rejection; exiting/],
  ] as const) {
    it(`exits 1 after a graceful stop when ${mode.replace('-', ' ')}`, async () => {
      const child = run(mode);
      const { code } = await child.exited(30_000);
      expect(code, child.output.join('\n')).to.equal(1);
      expect(child.output.some((l) => cause.test(l)), child.output.join('\n')).to.equal(true);
      expect(child.output).to.include('stop ran');
    });
  }
});
