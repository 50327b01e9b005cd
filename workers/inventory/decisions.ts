// The inventory worker's business rules as pure functions, apart from the database: how an
// order's lines are merged, and whether the stock covers all of them (all or none).
// Unit-tested in test/unit/inventory-decisions.test.ts.

export interface Line {
  sku: string;
  quantity: number;
}

/** One line per SKU, sorted, so that concurrent reservations lock rows in the same order. */
export function consolidate(items: readonly Line[]): Line[] {
  const bySku = new Map<string, number>();
  for (const { sku, quantity } of items) bySku.set(sku, (bySku.get(sku) ?? 0) + quantity);
  return [...bySku.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

/**
 * Every line reserved, or none: the SKUs whose stock is short (an unknown SKU has none), in
 * the order of the lines, reject the whole order.
 */
export function reservationDecision(lines: readonly Line[], available: ReadonlyMap<string, number>): { reserve: Line[] } | { short: string[] } {
  const short = lines.filter((line) => (available.get(line.sku) ?? 0) < line.quantity).map((line) => line.sku);
  return short.length > 0 ? { short } : { reserve: [...lines] };
}
