// The saga's step table (SAGA_STEPS) is the one place that pairs each step with its activity,
// command, results, reason and compensation: the table is consistent with the catalog, and
// what the workflow, the activities and the reply bridge use is derived from it.
import { expect } from 'chai';
import { COMMAND_DATA, createSagaActivities, type SagaActivityDeps } from '../../activities';
import { catalog } from '../../shared/events';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { MessageValidator } from '../../shared/messaging/validator';
import { BUSINESS_FAILURES, businessReasonOf, SAGA_REPLY_TYPES, SAGA_STEPS, type OrderDetails } from '../../shared/saga';
import { topicMatches } from '../../shared/messaging/topology';
import { sagaBridgeTopology } from '../../workers/saga-bridge/topology';

const ORDER: OrderDetails = {
  orderId: 'o-1',
  customerId: 'c-1',
  items: [{ sku: 'PROD-001', quantity: 2, unitPrice: 10 }],
  totalAmount: 20,
  currency: 'EUR',
  shippingAddress: { city: 'Berlin', country: 'DE' },
  paymentToken: 'tok_ok',
};

describe('the saga step table', () => {
  it('runs the steps in the order running sagas replay, with the activity names the Web UI shows', () => {
    expect(SAGA_STEPS.map((s) => [s.step, s.activity, s.undo.activity])).to.deep.equal([
      ['capturing_payment', 'capturePayment', 'refundPayment'],
      ['reserving_stock', 'reserveStock', 'releaseStock'],
      ['scheduling_shipment', 'scheduleShipment', 'cancelShipment'],
    ]);
  });

  it('names commands and results of the catalog: each command on "commands", its results on the worker\'s exchange', () => {
    for (const s of SAGA_STEPS) {
      for (const command of [s.command, s.undo.command]) expect(catalog[command]).to.include({ kind: 'command', exchange: 'commands' });
      const worker = s.command.split('.')[0];
      for (const result of [s.ok, s.fail, s.undo.ok]) {
        expect(catalog[result].kind, result).to.equal('event');
        expect(s.undo.command.split('.')[0], `${s.step}: its undo goes to the same worker`).to.equal(worker);
        expect(catalog[result].exchange, `${result} comes from the ${worker} worker's exchange`).to.equal(catalog[s.ok].exchange);
      }
    }
  });

  it('gives the reply bridge every result, and the business failures with their reasons', () => {
    expect([...SAGA_REPLY_TYPES].sort()).to.deep.equal(
      ['payment.captured', 'payment.declined', 'payment.refunded', 'inventory.reserved', 'inventory.rejected', 'inventory.released', 'shipping.scheduled', 'shipping.failed', 'shipping.cancelled'].sort(),
    );
    expect(BUSINESS_FAILURES).to.deep.equal({ 'payment.declined': 'payment_declined', 'inventory.rejected': 'out_of_stock', 'shipping.failed': 'shipping_unavailable' });
    for (const s of SAGA_STEPS) expect(businessReasonOf(s.fail)).to.equal(s.reason);
    for (const s of SAGA_STEPS) expect(businessReasonOf(s.ok)).to.equal(undefined);
  });

  it("binds the reply bridge's queue to every result of the table, from its worker's exchange", () => {
    const replies = sagaBridgeTopology('').queues.find((q) => q.name === 'saga-bridge.replies');
    for (const type of SAGA_REPLY_TYPES) {
      expect(replies?.bind.some(([exchange, pattern]) => exchange === catalog[type].exchange && topicMatches(pattern, type)), type).to.equal(true);
    }
  });

  it('builds every activity the workflow calls from the table, and nothing else', () => {
    // Building the activities touches neither the database nor the broker: only calling them does.
    const activities = createSagaActivities({ db: {}, publisher: {} } as unknown as SagaActivityDeps);
    expect(Object.keys(activities).sort()).to.deep.equal(
      ['loadOrder', 'capturePayment', 'reserveStock', 'scheduleShipment', 'refundPayment', 'releaseStock', 'cancelShipment', 'markOrderFulfilled', 'markOrderCancelled'].sort(),
    );
  });

  it("builds each step's command from the order as its schema wants it", () => {
    const validator = new MessageValidator();
    for (const s of SAGA_STEPS) {
      const data = COMMAND_DATA[s.command](ORDER);
      expect(() => validator.check(newEnvelope(s.command, data, { aggregateId: ORDER.orderId })), s.command).to.not.throw();
      expect(() => validator.check(newEnvelope(s.undo.command, { orderId: ORDER.orderId }, { aggregateId: ORDER.orderId })), s.undo.command).to.not.throw();
    }
  });
});
