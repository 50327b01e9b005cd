// A seeded pseudo-random generator (mulberry32), so a fuzz or chaos run can be replayed
// from its seed.

export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(0, 255)));
  }

  string(maxLength: number): string {
    const alphabet = ['a', 'Z', '0', ' ', '-', '_', '"', '\\', '\u0000', 'é', '😀', '\ud800', '<', '%', '{', '\n'];
    return Array.from({ length: this.int(0, maxLength) }, () => this.pick(alphabet)).join('');
  }

  /** A random JSON value, nested at most `depth` levels. */
  json(depth = 3): unknown {
    const kind = this.int(0, depth > 0 ? 7 : 5);
    switch (kind) {
      case 0: return null;
      case 1: return this.chance(0.5);
      case 2: return this.pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 1, 42]);
      case 3: return this.string(20);
      case 4: return this.string(5);
      case 5: return this.pick(['', 'PROD-001', 'tok_ok', 'EUR', 'DE']);
      case 6: return Array.from({ length: this.int(0, 4) }, () => this.json(depth - 1));
      default: return Object.fromEntries(Array.from({ length: this.int(0, 4) }, () => [this.string(8), this.json(depth - 1)]));
    }
  }
}
