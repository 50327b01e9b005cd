// Which carrier serves a country. Country XX has none (the test trigger of DESIGN.md).
export interface CarrierDirectory {
  carrierFor(country: string): string | undefined;
}

const BY_COUNTRY: Readonly<Record<string, string>> = { US: 'UPS', CA: 'UPS', GB: 'Royal Mail', DE: 'DHL', AT: 'DHL', FR: 'Colissimo', NL: 'PostNL' };

export class StaticCarrierDirectory implements CarrierDirectory {
  carrierFor(country: string): string | undefined {
    if (country === 'XX') return undefined;
    return BY_COUNTRY[country] ?? 'DHL Express';
  }
}
