// Workflow code: the order fulfillment saga. Deterministic: no Node, no I/O, no DI.
export { orderFulfillment, cancelOrderSignal, requestCancellationUpdate, statusQuery } from './order-fulfillment';
