// The shipping worker's business rule, without a database: which carrier serves a country.
import { expect } from 'chai';
import { carrierForCountry, StaticCarrierDirectory } from '../../workers/shipping/carriers';

describe('shipping decisions', () => {
  it('given a country with a carrier of its own, when a shipment is scheduled there, then that carrier takes it', () => {
    expect(carrierForCountry('DE')).to.equal('DHL');
    expect(carrierForCountry('US')).to.equal('UPS');
    expect(carrierForCountry('GB')).to.equal('Royal Mail');
  });

  it('given a country with no carrier of its own, when a shipment is scheduled there, then the international carrier takes it', () => {
    expect(carrierForCountry('JP')).to.equal('DHL Express');
  });

  it('given country XX (the test trigger), when a shipment is scheduled there, then no carrier serves it', () => {
    expect(carrierForCountry('XX')).to.equal(undefined);
  });

  it('given a country named like an object\'s own key, when a shipment is scheduled there, then it is an ordinary country', () => {
    expect(carrierForCountry('constructor')).to.equal('DHL Express');
  });

  it('the directory the worker is given answers the same', () => {
    expect(new StaticCarrierDirectory().carrierFor('XX')).to.equal(undefined);
    expect(new StaticCarrierDirectory().carrierFor('FR')).to.equal('Colissimo');
  });
});
