// Injection tokens for interfaces; classes are resolved by their constructor.
export const TOKENS = {
  Config: Symbol.for('Config'),
  Logger: Symbol.for('Logger'),
  Amqp: Symbol.for('AmqpConnection'),
  Publisher: Symbol.for('Publisher'),
  DedupStore: Symbol.for('DedupStore'),
  Redis: Symbol.for('Redis'),
  Validator: Symbol.for('MessageValidator'),
} as const;
