import { expect } from 'chai';
import { loadConfig, redact } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

describe('shared/config', () => {
  it('serves a local machine with defaults when nothing is set', () => {
    expect(loadConfig({})).to.deep.equal({
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      redisUrl: 'redis://127.0.0.1:6379',
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/fulfillment',
      temporalAddress: '127.0.0.1:7233',
      temporalNamespace: 'default',
      httpPort: 3000,
      logLevel: 'info',
      busNamespace: '',
      dedupLeaseMs: 15000,
      paymentProviderLatencyMs: 0,
      temporalCliPath: undefined,
      temporalTestServerPath: undefined,
    });
  });

  it('takes every variable of DESIGN.md from the environment', () => {
    const config = loadConfig({
      AMQP_URL: 'amqps://u:p@mq:5671/vh',
      REDIS_URL: 'rediss://cache:6380',
      DATABASE_URL: 'postgresql://db/app',
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_NAMESPACE: 'prod',
      HTTP_PORT: '8080',
    });
    expect(config).to.include({
      amqpUrl: 'amqps://u:p@mq:5671/vh',
      redisUrl: 'rediss://cache:6380',
      databaseUrl: 'postgresql://db/app',
      temporalAddress: 'temporal:7233',
      temporalNamespace: 'prod',
      httpPort: 8080,
    });
  });

  it('is frozen', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).to.equal(true);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['AMQP_URL', 'http://mq', /AMQP_URL must use amqp or amqps/],
    ['AMQP_URL', 'not a url', /AMQP_URL is not a URL/],
    ['REDIS_URL', 'amqp://x', /REDIS_URL must use redis or rediss/],
    ['DATABASE_URL', 'mysql://db', /DATABASE_URL must use postgres or postgresql/],
    ['TEMPORAL_ADDRESS', 'temporal', /TEMPORAL_ADDRESS must be host:port/],
    ['TEMPORAL_ADDRESS', 'temporal:99999', /TEMPORAL_ADDRESS must be host:port/],
    ['TEMPORAL_NAMESPACE', 'a b', /TEMPORAL_NAMESPACE must be letters/],
    ['HTTP_PORT', '0', /HTTP_PORT must be a port number/],
    ['HTTP_PORT', '3000abc', /HTTP_PORT must be a port number/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of/],
    ['BUS_NAMESPACE', 'Has Spaces', /BUS_NAMESPACE must be lower-case/],
    ['PAYMENT_PROVIDER_LATENCY_MS', '-5', /PAYMENT_PROVIDER_LATENCY_MS must be a whole number/],
    ['DEDUP_LEASE_MS', '10', /DEDUP_LEASE_MS must be a whole number from 300/],
  ];
  for (const [name, value, message] of bad) {
    it(`fails with a clear error naming ${name} when it is "${value}"`, () => {
      expect(() => loadConfig({ [name]: value }))
        .to.throw(ConfigError, message)
        .with.property('variable', name);
    });
  }

  it('never puts a password into an error message', () => {
    expect(() => loadConfig({ AMQP_URL: 'ftp://user:s3cret@mq' })).to.throw(ConfigError).that.satisfies((e: Error) => !e.message.includes('s3cret'));
    expect(redact('amqp://user:s3cret@mq:5672')).to.equal('amqp://user:***@mq:5672');
  });
});
