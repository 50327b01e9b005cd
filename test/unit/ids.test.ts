// Ids of events and orders: ULIDs whose random part comes from a pool of crypto-random bytes.
import { expect } from 'chai';
import { decodeTime } from 'ulid';
import { newId } from '../../shared/ids';

describe('newId', () => {
  it('gives ULIDs of now: 26 Crockford base-32 characters whose time is the current millisecond', () => {
    const before = Date.now();
    const id = newId();
    expect(id).to.match(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(decodeTime(id)).to.be.within(before, Date.now());
  });

  it('never repeats, across many refills of its pool of random bytes', () => {
    const ids = new Set(Array.from({ length: 50_000 }, () => newId())); // 800,000 random characters: about 200 refills
    expect(ids.size).to.equal(50_000);
  });

  it('draws every character of the random part about equally often', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) for (const c of newId().slice(10)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).to.equal(32);
    const expected = (20_000 * 16) / 32;
    for (const [c, n] of counts) expect(n, c).to.be.within(expected * 0.9, expected * 1.1);
  });
});
