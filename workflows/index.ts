// Workflow code: the order fulfillment saga. Deterministic: no Node, no I/O, no DI.
export { orderFulfillment, cancelOrderSignal, statusQuery } from './order-fulfillment';
