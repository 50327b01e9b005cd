// `npm run replay`'s command line, without a broker: where a replay starts and stops, which
// types it takes, and the usage errors (exit 2) for flags it cannot use.
import { expect } from 'chai';
import { UsageError } from '../../scripts/cli';
import { DEFAULT_RATE, parseReplayArgs, parseStart, parseTime, typeFilter } from '../../scripts/replay';

describe('npm run replay: its flags', () => {
  it('takes first, an offset or an ISO time for --from', () => {
    expect(parseStart('first')).to.deep.equal({ kind: 'first' });
    expect(parseStart('0')).to.deep.equal({ kind: 'offset', offset: 0 });
    expect(parseStart('123456')).to.deep.equal({ kind: 'offset', offset: 123_456 });
    expect(parseStart('2026-11-29T04:00:00Z')).to.deep.equal({ kind: 'time', at: new Date(Date.UTC(2026, 10, 29, 4)) });
    expect(parseStart('2026-11-29T05:00:00.5+01:00')).to.deep.equal({ kind: 'time', at: new Date(Date.UTC(2026, 10, 29, 4, 0, 0, 500)) });
    expect(parseStart('2026-11-29')).to.deep.equal({ kind: 'time', at: new Date(Date.UTC(2026, 10, 29)) });
  });

  it('refuses a time that is not one, or has no zone', () => {
    for (const text of ['2026-02-29', '2026-02-31T00:00:00Z', '2026-13-01', '2026-11-29T24:00:00Z', '2026-11-29T04:00:00', 'yesterday', '29/11/2026']) {
      expect(() => parseTime('from', text), text).to.throw(UsageError, /--from takes an ISO 8601 time with its zone/);
    }
    expect(parseTime('to', '2028-02-29').toISOString()).to.equal('2028-02-29T00:00:00.000Z');
  });

  it('reads a whole command line, with the default rate', () => {
    expect(parseReplayArgs(['--from', 'first', '--into', 'q'])).to.deep.equal({ from: { kind: 'first' }, into: 'q', rate: DEFAULT_RATE });
    expect(parseReplayArgs(['--from', '7', '--to', '2026-11-29T04:00:00Z', '--types', 'order.*, payment.captured', '--rate', '0', '--into', 'q'])).to.deep.equal({
      from: { kind: 'offset', offset: 7 },
      to: new Date(Date.UTC(2026, 10, 29, 4)),
      types: ['order.*', 'payment.captured'],
      rate: 0,
      into: 'q',
    });
  });

  const bad: Array<[string[], RegExp]> = [
    [['--from', 'first'], /--into is required/],
    [['--into', 'q'], /--from is required/],
    [['--from', 'first', '--into', 'q', '--bogus'], /Unknown option '--bogus'/],
    [['--from', 'first', '--into', 'q', 'extra'], /Unexpected argument 'extra'/],
    [['--from', '-5', '--into', 'q'], /--from: an offset is a whole number ≥ 0 \(got -5\)/],
    [['--from', 'last', '--into', 'q'], /--from takes first, an ISO 8601 time .* or an offset/],
    [['--from', '2026-11-29T04:00:00Z', '--to', '2026-11-29T03:59:59Z', '--into', 'q'], /--to \(2026-11-29T03:59:59Z\) is before --from/],
    [['--from', 'first', '--to', 'soon', '--into', 'q'], /--to takes an ISO 8601 time/],
    [['--from', 'first', '--types', 'order.*,', '--into', 'q'], /--types takes patterns separated by commas/],
    [['--from', 'first', '--types', 'order..placed', '--into', 'q'], /"order\.\.placed" is not a pattern/],
    [['--from', 'first', '--types', 'payments.*', '--into', 'q'], /"payments\.\*" matches no event type/],
    [['--from', 'first', '--rate', '-1', '--into', 'q'], /--rate must be a whole number from 0 to 1000000 \(got "-1"\)/],
    [['--from', 'first', '--rate', '2.5', '--into', 'q'], /--rate must be a whole number/],
  ];
  for (const [args, message] of bad) {
    it(`refuses ${args.join(' ')}`, () => {
      expect(() => parseReplayArgs(args)).to.throw(UsageError, message);
    });
  }

  it('matches types as topic bindings do: * one word, # any number', () => {
    const match = typeFilter(['order.*', '#.refunded']);
    expect(['order.placed', 'order.cancelled', 'payment.refunded', 'payment.captured', 'shipping.cancelled'].map(match)).to.deep.equal([true, true, true, false, false]);
    expect(typeFilter([])('anything.at.all')).to.equal(true);
    expect(typeFilter(['#'])('shipping.failed')).to.equal(true);
  });
});
