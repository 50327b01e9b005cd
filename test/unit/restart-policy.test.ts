// npm start's restart rule, without spawning anything: when it gives up on a process, and
// which failures count as "the same way".
import { expect } from 'chai';
import { EXIT_INCURABLE } from '../../shared/errors';
import { DependencyWaits, dependencyWaitOf, exitLine, GIVE_UP_AFTER, meaningOf, RestartPolicy, START_WINDOW_MS, type Exit } from '../../scripts/restart-policy';

const failure = (lastLine: string, code = 1, ranMs = 2_000): Exit => ({ code, signal: null, ranMs, lastLine });

describe("npm start's restart policy", () => {
  it(`gives up on a process that fails the same way ${GIVE_UP_AFTER} times in a row as it starts, naming the cause`, () => {
    const policy = new RestartPolicy();
    for (let i = 1; i < GIVE_UP_AFTER; i++) expect(policy.decide(failure('could not start: boom'))).to.deep.equal({ restart: true, delayMs: 5_000 });
    expect(policy.decide(failure('could not start: boom'))).to.deep.equal({ restart: false, failures: GIVE_UP_AFTER, cause: 'could not start: boom' });
  });

  it('keeps restarting a process that fails a different way each time', () => {
    const policy = new RestartPolicy();
    for (let i = 0; i < 10; i++) expect(policy.decide(failure(`could not start: error ${i % 2}`)).restart).to.equal(true);
    for (let i = 0; i < 10; i++) expect(policy.decide(failure('could not start: boom', 1 + (i % 2))).restart).to.equal(true);
  });

  it('counts an incurable exit however long it took and whatever it printed last', () => {
    const policy = new RestartPolicy();
    expect(policy.decide(failure('cannot start: a', EXIT_INCURABLE, START_WINDOW_MS * 2)).restart).to.equal(true);
    expect(policy.decide(failure('cannot start: b', EXIT_INCURABLE)).restart).to.equal(true);
    expect(policy.decide(failure('cannot start: c', EXIT_INCURABLE))).to.deep.equal({ restart: false, failures: 3, cause: 'cannot start: c' });
  });

  it('forgets the failures after a run that lasted past the start', () => {
    const policy = new RestartPolicy();
    policy.decide(failure('boom'));
    policy.decide(failure('boom'));
    expect(policy.decide(failure('boom', 1, START_WINDOW_MS + 1))).to.deep.equal({ restart: true, delayMs: 1_000 });
    expect(policy.decide(failure('boom')).restart).to.equal(true);
    expect(policy.decide(failure('boom')).restart).to.equal(true);
    expect(policy.decide(failure('boom')).restart).to.equal(false);
  });

  it('does not count a process killed by a signal, or one that exited 0, as failing', () => {
    const policy = new RestartPolicy();
    for (let i = 0; i < 5; i++) expect(policy.decide({ code: null, signal: 'SIGKILL', ranMs: 1_000, lastLine: 'x' })).to.deep.equal({ restart: true, delayMs: 5_000 });
    policy.decide(failure('boom'));
    policy.decide(failure('boom'));
    expect(policy.decide({ code: 0, signal: null, ranMs: 1_000, lastLine: 'boom' }).restart).to.equal(true);
    expect(policy.decide(failure('boom')).restart).to.equal(true);
  });

  it('names an exit with nothing printed by its code', () => {
    const policy = new RestartPolicy();
    policy.decide(failure('', 7));
    policy.decide(failure('', 7));
    expect(policy.decide(failure('', 7))).to.deep.include({ restart: false, cause: 'exit code 7' });
  });

  it('compares error log lines by message and error, not by time or pid, and skips info and warn lines and stack frames', () => {
    const line = (time: number, pid: number): string => JSON.stringify({ level: 60, time, pid, name: 'payments', err: 'connect ECONNREFUSED', msg: 'could not start' });
    expect(meaningOf(line(1, 2))).to.equal('could not start: connect ECONNREFUSED').and.equal(meaningOf(line(3, 4)));
    expect(meaningOf(JSON.stringify({ level: 50, time: 1, msg: 'unhandled rejection', err: 'boom' }))).to.equal('unhandled rejection: boom');
    expect(meaningOf(JSON.stringify({ level: 40, time: 1, msg: 'amqp connection lost; recovering' }))).to.equal(undefined);
    expect(meaningOf(JSON.stringify({ level: 30, time: 1, msg: 'worker started' }))).to.equal(undefined);
    expect(meaningOf('(node:123) Warning: x')).to.equal(meaningOf('(node:456) Warning: x'));
    expect(meaningOf('    at Object.<anonymous> (/app/x.ts:1:1)')).to.equal(undefined);
    expect(meaningOf('Node.js v20.20.2')).to.equal(undefined);
    expect(meaningOf('   ')).to.equal(undefined);
    expect(meaningOf('Error: boom')).to.equal('Error: boom');
  });
});

describe("npm start's view of the dependencies a process waits for", () => {
  const line = (level: number, dependency: string, msg: string): string => JSON.stringify({ level, time: 1, name: 'payments', dependency, msg });

  it('knows a dependency is awaited from a warning, and no longer from its "connected" line', () => {
    const waits = new DependencyWaits();
    waits.observe(line(40, 'redis', 'not connected to redis for 5 s; waiting for it'));
    waits.observe(line(40, 'postgres', 'not connected to postgres for 5 s; waiting for it'));
    expect(waits.pending).to.deep.equal(['postgres', 'redis']);
    waits.observe(line(30, 'postgres', 'connected to postgres after 7 s'));
    expect(waits.pending).to.deep.equal(['redis']);
  });

  it('ignores lines that say nothing about a dependency', () => {
    const waits = new DependencyWaits();
    for (const l of ['plain text', '{not json', JSON.stringify({ level: 50, msg: 'boom' }), JSON.stringify({ level: 40, dependency: 7 })]) waits.observe(l);
    expect(waits.pending).to.deep.equal([]);
    expect(dependencyWaitOf(line(40, 'rabbitmq', 'x'))).to.deep.equal({ dependency: 'rabbitmq', waiting: true });
  });
});

describe("npm start's line for a process it restarts", () => {
  it('names the cause of an exit nobody caused (its last meaningful line), and none for a signal', () => {
    const cause = meaningOf(JSON.stringify({ level: 60, time: 1, pid: 7, msg: 'could not start', err: 'Unable to ensure migrations table: error: terminating connection' }))!;
    expect(exitLine('saga-bridge', { code: 1, signal: null, lastLine: cause }, 1_000)).to.equal(
      '[start] saga-bridge exited (code 1: could not start: Unable to ensure migrations table: error: terminating connection); restarting in 1 s',
    );
    expect(exitLine('payments#2', { code: null, signal: 'SIGKILL', lastLine: 'an older error' }, 1_000)).to.equal('[start] payments#2 exited (SIGKILL); restarting in 1 s');
    expect(exitLine('inventory', { code: 1, signal: null, lastLine: '' }, 5_000)).to.equal('[start] inventory exited (code 1); restarting in 5 s');
  });
});
