import { expect } from 'chai';
import { BUSINESS_FAILURES, businessReasonOf } from '../../shared/saga';

describe('business failure types of the saga', () => {
  it('maps each business failure type the reply bridge uses to its cancellation reason', () => {
    expect(Object.keys(BUSINESS_FAILURES).map((type) => [type, businessReasonOf(type)])).to.deep.equal([
      ['payment.declined', 'payment_declined'],
      ['inventory.rejected', 'out_of_stock'],
      ['shipping.failed', 'shipping_unavailable'],
    ]);
  });

  it('knows no other type, not even the keys every object inherits', () => {
    for (const type of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'SomethingBroke', '']) {
      expect(businessReasonOf(type), type).to.equal(undefined);
    }
  });
});
