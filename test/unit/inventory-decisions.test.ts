// The inventory worker's business rules, without a database: how an order's lines are
// merged, and whether the stock covers all of them (all or none).
import { expect } from 'chai';
import { consolidate, reservationDecision } from '../../workers/inventory/decisions';

describe('inventory decisions', () => {
  describe('consolidate', () => {
    it('given lines of the same SKU, when they are merged, then each SKU is one line with the quantities added, sorted by SKU', () => {
      const lines = consolidate([
        { sku: 'PROD-002', quantity: 1 },
        { sku: 'PROD-001', quantity: 2 },
        { sku: 'PROD-002', quantity: 3 },
      ]);
      expect(lines).to.deep.equal([
        { sku: 'PROD-001', quantity: 2 },
        { sku: 'PROD-002', quantity: 4 },
      ]);
    });
  });

  describe('reservationDecision', () => {
    const stock = new Map([
      ['PROD-001', 5],
      ['PROD-002', 1],
      ['PROD-OOS', 0],
    ]);

    it('given enough stock for every line, when the order is reserved, then every line is', () => {
      const lines = [
        { sku: 'PROD-001', quantity: 5 },
        { sku: 'PROD-002', quantity: 1 },
      ];
      expect(reservationDecision(lines, stock)).to.deep.equal({ reserve: lines });
    });

    it('given one line short, when the order is reserved, then nothing is, and that SKU is named', () => {
      const lines = [
        { sku: 'PROD-001', quantity: 1 },
        { sku: 'PROD-002', quantity: 2 },
      ];
      expect(reservationDecision(lines, stock)).to.deep.equal({ short: ['PROD-002'] });
    });

    it('given PROD-OOS (no stock) and a SKU the store does not have, when the order is reserved, then both are short, in the order of the lines', () => {
      const lines = [
        { sku: 'PROD-NEW', quantity: 1 },
        { sku: 'PROD-OOS', quantity: 1 },
      ];
      expect(reservationDecision(lines, stock)).to.deep.equal({ short: ['PROD-NEW', 'PROD-OOS'] });
    });
  });
});
