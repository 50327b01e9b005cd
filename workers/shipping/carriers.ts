// Which carrier serves a country, as a pure rule: country XX has none (the test trigger of
// docs/architecture.md#test-triggers), so scheduling a shipment there fails. Unit-tested in
// test/unit/shipping-decisions.test.ts.
export interface CarrierDirectory {
  carrierFor(country: string): string | undefined;
}

const BY_COUNTRY: Readonly<Record<string, string>> = { US: 'UPS', CA: 'UPS', GB: 'Royal Mail', DE: 'DHL', AT: 'DHL', FR: 'Colissimo', NL: 'PostNL' };
/** Countries no carrier serves. */
const UNSERVED: ReadonlySet<string> = new Set(['XX']);
const FALLBACK = 'DHL Express';

/** The carrier of a country: its own, the international fallback, or none. */
export function carrierForCountry(country: string): string | undefined {
  if (UNSERVED.has(country)) return undefined;
  return Object.prototype.hasOwnProperty.call(BY_COUNTRY, country) ? BY_COUNTRY[country] : FALLBACK;
}

export class StaticCarrierDirectory implements CarrierDirectory {
  carrierFor(country: string): string | undefined {
    return carrierForCountry(country);
  }
}
