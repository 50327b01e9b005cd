// Injection tokens for interfaces and infrastructure; classes are resolved by their constructor.
export const TOKENS = {
  Config: Symbol.for('Config'),
  Logger: Symbol.for('Logger'),
  Db: Symbol.for('Db'),
  Redis: Symbol.for('Redis'),
  Amqp: Symbol.for('AmqpConnection'),
  Publisher: Symbol.for('Publisher'),
  Validator: Symbol.for('MessageValidator'),
  DedupStore: Symbol.for('DedupStore'),
  PaymentProvider: Symbol.for('PaymentProvider'),
  CarrierDirectory: Symbol.for('CarrierDirectory'),
  TemporalClient: Symbol.for('TemporalClient'),
} as const;
