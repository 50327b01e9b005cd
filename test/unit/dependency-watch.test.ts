// A process that waits for a dependency says so, with back-off, and its gauge shows it.
import { Writable } from 'node:stream';
import { expect } from 'chai';
import pino from 'pino';
import { DependencyWatch } from '../../shared/observability/dependency-watch';
import { metricValue } from '../helpers/metrics';
import { eventually } from '../helpers/wait';

const gauge = (dependency: string): Promise<number | undefined> => metricValue('dependency_connected', { dependency });

describe('DependencyWatch', () => {
  const lines: Array<{ level: number; msg: string; dependency?: string; waitingSeconds?: number; waitedSeconds?: number; lastError?: string }> = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => done(void lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number])) }));
  beforeEach(() => void lines.splice(0));

  it('warns after the first interval and again as the wait doubles, naming the dependency and the last error', async () => {
    const watch = new DependencyWatch('redis', logger, 50);
    try {
      watch.down(new Error('connect ETIMEDOUT'));
      watch.down(new Error('Command timed out')); // the clock runs on; the last error is kept
      expect(await gauge('redis')).to.equal(0);
      await eventually(() => lines.length >= 3, { timeoutMs: 2_000, what: 'three warnings' });
      expect(lines.map((l) => [l.level, l.dependency, l.lastError])).to.deep.include.members([[40, 'redis', 'Command timed out']]);
      expect(lines[0]!.msg).to.match(/^not connected to redis for \d+ s; waiting for it$/);
    } finally {
      watch.close();
    }
  });

  it('says when the dependency is back after a reported wait, and stays quiet about a quick connect', async () => {
    const watch = new DependencyWatch('postgres', logger, 50);
    try {
      watch.down();
      watch.up(); // before the first warning: nothing to report
      expect(lines).to.deep.equal([]);
      expect(await gauge('postgres')).to.equal(1);
      watch.down(new Error('Connection terminated'));
      await eventually(() => lines.length >= 1, { timeoutMs: 2_000, what: 'a warning' });
      watch.up();
      expect(lines.at(-1)).to.include({ level: 30, dependency: 'postgres', msg: 'connected to postgres after 0 s' });
      expect(await gauge('postgres')).to.equal(1);
    } finally {
      watch.close();
    }
  });
});
