// The processes of the fleet, by name and entry file: what `npm start` supervises and
// docker-compose.yml runs (one service each).
export const FLEET: ReadonlyArray<readonly [name: string, file: string]> = [
  ['payments', 'workers/payments/index.ts'],
  ['inventory', 'workers/inventory/index.ts'],
  ['shipping', 'workers/shipping/index.ts'],
  ['notifications', 'workers/notifications/index.ts'],
  ['order-projection', 'workers/order-projection/index.ts'],
  ['temporal-worker', 'workers/temporal/worker.ts'],
  ['saga-bridge', 'workers/temporal/bridge-process.ts'],
  ['outbox-relay', 'services/order-api/relay.ts'],
  ['order-api', 'services/order-api/index.ts'],
];
