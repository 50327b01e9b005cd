import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { loadConfig, parseAmqpUrls, productionAuthProblem, redact, usesDevKey } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

describe('shared/config', () => {
  it('serves a local machine with defaults when nothing is set', () => {
    expect(loadConfig({})).to.deep.equal({
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      amqpUrls: ['amqp://guest:guest@127.0.0.1:5672'],
      quorumGroupSize: undefined,
      replica: undefined,
      temporalTls: undefined,
      temporalApiKey: undefined,
      redisUrl: 'redis://127.0.0.1:6379',
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/fulfillment',
      temporalAddress: '127.0.0.1:7233',
      temporalNamespace: 'default',
      httpPort: 3000,
      metricsPort: 0,
      metricsPortBase: 9400,
      logLevel: 'info',
      busNamespace: '',
      dedupLeaseMs: 15000,
      amqpConnectTimeoutMs: 10000,
      databaseConnectTimeoutMs: 5000,
      databaseStatementTimeoutMs: 10000,
      redisConnectTimeoutMs: 5000,
      redisCommandTimeoutMs: 2000,
      paymentProviderLatencyMs: 0,
      temporalCliPath: undefined,
      temporalTestServerPath: undefined,
      dataDir: resolve(__dirname, '../../.data'),
      temporalDbFile: resolve(__dirname, '../../.data/temporal.sqlite'),
      reconcileIntervalMs: 60000,
      reconcileGraceMs: 60000,
      eventStoreSnapshotEvery: 50,
      archiveMaxAge: '30D',
      archiveMaxBytes: 20_000_000_000,
      publishHoldBack: {},
      auth: {
        mode: 'development',
        jwksUrl: undefined,
        publicKeyFile: undefined,
        devKeyFile: resolve(__dirname, '../../.data/auth/dev-signing-key.json'),
        issuer: 'order-fulfillment-dev',
        audience: 'order-api',
        algorithms: ['EdDSA', 'ES256', 'RS256'],
      },
      rateLimitPerSubjectPerMinute: 600,
      rateLimitPerAddressPerMinute: 1200,
      tracing: undefined,
    });
  });

  it('traces when given an OTLP endpoint (OTEL_*), as the OpenTelemetry specification says, unless OTEL_SDK_DISABLED; refuses what the fleet cannot do', () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318/' }).tracing).to.deep.equal({
      tracesUrl: 'http://jaeger:4318/v1/traces',
      protocol: 'http/protobuf',
      serviceName: undefined,
      sampler: { name: 'parentbased_always_on', ratio: 1 },
    });
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://ignored:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector/otlp/traces',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'fleet',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.1',
      }).tracing,
    ).to.deep.equal({ tracesUrl: 'https://collector/otlp/traces', protocol: 'http/json', serviceName: 'fleet', sampler: { name: 'parentbased_traceidratio', ratio: 0.1 } });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_SDK_DISABLED: 'true' }).tracing).to.equal(undefined);
    expect(loadConfig({ OTEL_SERVICE_NAME: 'no endpoint' }).tracing).to.equal(undefined);
    const bad: Array<[Record<string, string>, string]> = [
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'jaeger:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_TRACES_SAMPLER: 'jaeger_remote' }, 'OTEL_TRACES_SAMPLER'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
      [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_SDK_DISABLED: 'perhaps' }, 'OTEL_SDK_DISABLED'],
    ];
    for (const [env, variable] of bad) expect(() => loadConfig(env), variable).to.throw(ConfigError).with.property('variable', variable);
  });

  it('takes the event store\'s snapshot interval and the archive\'s retention, and refuses a retention RabbitMQ would not take', () => {
    expect(loadConfig({ EVENT_STORE_SNAPSHOT_EVERY: '0', ARCHIVE_MAX_AGE: '12h', ARCHIVE_MAX_BYTES: '5000000' })).to.include({
      eventStoreSnapshotEvery: 0,
      archiveMaxAge: '12h',
      archiveMaxBytes: 5_000_000,
    });
    for (const bad of ['30 days', '0D', '30', 'D', '1.5h']) expect(() => loadConfig({ ARCHIVE_MAX_AGE: bad }), bad).to.throw(ConfigError, /ARCHIVE_MAX_AGE/);
    expect(() => loadConfig({ ARCHIVE_MAX_BYTES: '1000' })).to.throw(ConfigError, /ARCHIVE_MAX_BYTES/);
    expect(() => loadConfig({ EVENT_STORE_SNAPSHOT_EVERY: '-5' })).to.throw(ConfigError, /EVENT_STORE_SNAPSHOT_EVERY/);
  });

  it('takes the types producers hold back to an older schema version, and refuses an entry that is not type@version of the catalog', () => {
    expect(loadConfig({}).publishHoldBack).to.deep.equal({});
    const config = loadConfig({ PUBLISH_HOLD_BACK: ' order.placed@1, order.cancelled@1 ' });
    expect(config.publishHoldBack).to.deep.equal({ 'order.placed': 1, 'order.cancelled': 1 });
    expect(Object.isFrozen(config.publishHoldBack)).to.equal(true);
    const bad: Array<[string, RegExp]> = [
      ['order.placed', /type@version entries/],
      ['order.placed@0', /type@version entries/],
      ['order.placed@v1', /type@version entries/],
      ['order.placed@1,', /type@version entries/],
      ['order.place@1', /"order.place", which is not a message type/],
      ['order.placed@1,order.placed@2', /"order.placed" twice/],
    ];
    for (const [value, message] of bad) expect(() => loadConfig({ PUBLISH_HOLD_BACK: value }), value).to.throw(ConfigError, message).with.property('variable', 'PUBLISH_HOLD_BACK');
  });

  it('keeps the Temporal dev server\'s state under DATA_DIR unless TEMPORAL_DB_FILE says where, relative paths from the working directory', () => {
    expect(loadConfig({ DATA_DIR: '/srv/fulfillment' })).to.include({ dataDir: '/srv/fulfillment', temporalDbFile: '/srv/fulfillment/temporal.sqlite' });
    expect(loadConfig({ DATA_DIR: '/srv/fulfillment', TEMPORAL_DB_FILE: 'state/t.sqlite' })).to.include({ temporalDbFile: join(process.cwd(), 'state/t.sqlite') });
    expect(loadConfig({ RECONCILE_INTERVAL_MS: '0', RECONCILE_GRACE_MS: '5000' })).to.include({ reconcileIntervalMs: 0, reconcileGraceMs: 5000 });
  });

  it('takes every variable of docs/operations.md#configuration from the environment', () => {
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

  it('reads AUTH_*: the development key under DATA_DIR unless a key set or a public key is named; production needs one, with its own issuer and audience', () => {
    expect(loadConfig({ DATA_DIR: '/srv/f' }).auth).to.include({ mode: 'development', devKeyFile: '/srv/f/auth/dev-signing-key.json' });
    expect(usesDevKey(loadConfig({}).auth)).to.equal(true);
    const idp = loadConfig({ AUTH_JWKS_URL: 'https://idp.example/.well-known/jwks.json', AUTH_ISSUER: 'https://idp.example/', AUTH_AUDIENCE: 'orders' }).auth;
    expect(idp).to.include({ jwksUrl: 'https://idp.example/.well-known/jwks.json', issuer: 'https://idp.example/', audience: 'orders' });
    expect(usesDevKey(idp)).to.equal(false);
    const production = { AUTH_MODE: 'production', AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_ISSUER: 'https://idp.example/', AUTH_AUDIENCE: 'orders' };
    expect(productionAuthProblem(loadConfig(production).auth)).to.equal(undefined);
    expect(productionAuthProblem(loadConfig({ AUTH_MODE: 'production' }).auth)?.message).to.match(/^AUTH_JWKS_URL must be set/);
    expect(productionAuthProblem(loadConfig({ ...production, AUTH_ISSUER: '' }).auth)?.message).to.match(/^AUTH_ISSUER/);
    expect(productionAuthProblem(loadConfig({ ...production, AUTH_AUDIENCE: '' }).auth)?.message).to.match(/^AUTH_AUDIENCE/);
    expect(usesDevKey(loadConfig({ AUTH_MODE: 'production' }).auth)).to.equal(false);
    expect(() => loadConfig({ ...production, AUTH_JWKS_URL: 'http://idp.example/jwks' })).to.throw(ConfigError, /AUTH_JWKS_URL must use https/);
    expect(() => loadConfig({ AUTH_MODE: 'staging' })).to.throw(ConfigError, /AUTH_MODE must be development or production/);
    expect(() => loadConfig({ AUTH_ALGORITHMS: 'EdDSA,HS256' })).to.throw(ConfigError, /AUTH_ALGORITHMS/);
    expect(() => loadConfig({ AUTH_ALGORITHMS: 'none' })).to.throw(ConfigError, /AUTH_ALGORITHMS/);
    expect(() => loadConfig({ AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_PUBLIC_KEY_FILE: '/k.pem' })).to.throw(ConfigError, /one source of keys/);
    expect(loadConfig({ RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '0', RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '50' })).to.include({ rateLimitPerSubjectPerMinute: 0, rateLimitPerAddressPerMinute: 50 });
    expect(() => loadConfig({ RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '-1' })).to.throw(ConfigError, /RATE_LIMIT_PER_SUBJECT_PER_MINUTE/);
  });

  it('takes the metrics port (0 for a free one) and the first port npm start gives, and refuses what is not a port', () => {
    expect(loadConfig({ METRICS_PORT: '9401', METRICS_PORT_BASE: '0' })).to.include({ metricsPort: 9401, metricsPortBase: 0 });
    for (const bad of ['65536', '-1', 'http', '94.5']) expect(() => loadConfig({ METRICS_PORT: bad }), bad).to.throw(ConfigError, /METRICS_PORT/);
    expect(() => loadConfig({ METRICS_PORT_BASE: '70000' })).to.throw(ConfigError, /METRICS_PORT_BASE/);
  });

  it('takes the deadline of each dependency from the environment', () => {
    expect(
      loadConfig({ AMQP_CONNECT_TIMEOUT_MS: '2000', DATABASE_CONNECT_TIMEOUT_MS: '1000', DATABASE_STATEMENT_TIMEOUT_MS: '30000', REDIS_CONNECT_TIMEOUT_MS: '1500', REDIS_COMMAND_TIMEOUT_MS: '500' }),
    ).to.include({ amqpConnectTimeoutMs: 2000, databaseConnectTimeoutMs: 1000, databaseStatementTimeoutMs: 30000, redisConnectTimeoutMs: 1500, redisCommandTimeoutMs: 500 });
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
    ['AMQP_CONNECT_TIMEOUT_MS', '0', /AMQP_CONNECT_TIMEOUT_MS must be a whole number from 100/],
    ['DATABASE_STATEMENT_TIMEOUT_MS', '10s', /DATABASE_STATEMENT_TIMEOUT_MS must be a whole number/],
    ['REDIS_COMMAND_TIMEOUT_MS', '-1', /REDIS_COMMAND_TIMEOUT_MS must be a whole number/],
    ['RECONCILE_INTERVAL_MS', 'hourly', /RECONCILE_INTERVAL_MS must be a whole number/],
    ['RECONCILE_GRACE_MS', '-1', /RECONCILE_GRACE_MS must be a whole number/],
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

  describe('AMQP_URL with the nodes of a cluster', () => {
    const cluster = 'amqp://u:p@mq1:5672, amqp://u:p@mq2:5672,amqps://u:p@mq3:5671/vh';

    it('takes a comma-separated list, keeps its order, and gives quorum queues 3 members by default', () => {
      const config = loadConfig({ AMQP_URL: cluster });
      expect(config.amqpUrls).to.deep.equal(['amqp://u:p@mq1:5672', 'amqp://u:p@mq2:5672', 'amqps://u:p@mq3:5671/vh']);
      expect(config.amqpUrl).to.equal('amqp://u:p@mq1:5672,amqp://u:p@mq2:5672,amqps://u:p@mq3:5671/vh');
      expect(config.quorumGroupSize).to.equal(3);
    });

    it('leaves the group size to the broker for one node, and takes QUORUM_GROUP_SIZE (0: unset)', () => {
      expect(loadConfig({}).quorumGroupSize).to.equal(undefined);
      expect(loadConfig({ QUORUM_GROUP_SIZE: '5' }).quorumGroupSize).to.equal(5);
      expect(loadConfig({ AMQP_URL: cluster, QUORUM_GROUP_SIZE: '0' }).quorumGroupSize).to.equal(undefined);
      expect(() => loadConfig({ QUORUM_GROUP_SIZE: 'three' })).to.throw(ConfigError, /QUORUM_GROUP_SIZE must be a whole number/);
    });

    it('keeps a comma inside a password as part of its URL', () => {
      expect(parseAmqpUrls('amqp://u:a,b@mq1,amqp://u:c@mq2')).to.deep.equal(['amqp://u:a,b@mq1', 'amqp://u:c@mq2']);
    });

    const badLists: Array<[string, RegExp]> = [
      ['amqp://mq1,http://mq2', /AMQP_URL node 2 must use amqp or amqps/],
      ['amqp://mq1,,amqp://mq2', /AMQP_URL has an empty entry/],
      ['amqp://mq1,', /AMQP_URL has an empty entry/],
    ];
    for (const [value, message] of badLists) {
      it(`refuses "${value}" naming AMQP_URL`, () => {
        expect(() => loadConfig({ AMQP_URL: value }))
          .to.throw(ConfigError, message)
          .with.property('variable', 'AMQP_URL');
      });
    }

    it('masks the password of every node', () => {
      expect(redact('amqp://u:s3cret@mq1:5672,amqp://u:s3cret@mq2:5672')).to.equal('amqp://u:***@mq1:5672,amqp://u:***@mq2:5672');
      expect(() => loadConfig({ AMQP_URL: 'amqp://u:s3cret@mq1,ftp://u:s3cret@mq2' })).to.throw(ConfigError).that.satisfies((e: Error) => !e.message.includes('s3cret'));
    });
  });

  describe('FLEET_REPLICA', () => {
    it('says which replica of how many a process is', () => {
      expect(loadConfig({ FLEET_REPLICA: '2/3' }).replica).to.deep.equal({ index: 2, count: 3 });
    });
    for (const value of ['3/2', '0/2', 'two', '1/']) {
      it(`refuses "${value}"`, () => {
        expect(() => loadConfig({ FLEET_REPLICA: value })).to.throw(ConfigError, /FLEET_REPLICA must be "k\/N"/);
      });
    }
  });

  describe('a production Temporal: TLS and an API key', () => {
    it('takes a client certificate and key (mTLS), a CA and a server name, and turns TLS on', () => {
      expect(loadConfig({ TEMPORAL_TLS_CERT: '/certs/client.pem', TEMPORAL_TLS_KEY: '/certs/client.key', TEMPORAL_TLS_CA: '/certs/ca.pem', TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' }).temporalTls).to.deep.equal({
        certFile: '/certs/client.pem',
        keyFile: '/certs/client.key',
        caFile: '/certs/ca.pem',
        serverName: 'temporal.internal',
      });
    });

    it('takes an API key and the namespace of Temporal Cloud, over TLS', () => {
      const config = loadConfig({ TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233', TEMPORAL_NAMESPACE: 'orders.a2b3c', TEMPORAL_API_KEY: 'key-123' });
      expect(config).to.include({ temporalApiKey: 'key-123', temporalNamespace: 'orders.a2b3c' });
      expect(config.temporalTls).to.deep.equal({});
    });

    it('turns TLS on alone with TEMPORAL_TLS=true, and leaves it off by default', () => {
      expect(loadConfig({ TEMPORAL_TLS: 'true' }).temporalTls).to.deep.equal({});
      expect(loadConfig({}).temporalTls).to.equal(undefined);
    });

    const bad: Array<[Record<string, string>, string, RegExp]> = [
      [{ TEMPORAL_TLS_CERT: '/c.pem' }, 'TEMPORAL_TLS_KEY', /must be set with TEMPORAL_TLS_CERT/],
      [{ TEMPORAL_TLS_KEY: '/c.key' }, 'TEMPORAL_TLS_CERT', /must be set with TEMPORAL_TLS_KEY/],
      [{ TEMPORAL_API_KEY: 'key-123', TEMPORAL_TLS: 'false' }, 'TEMPORAL_TLS', /unencrypted/],
      [{ TEMPORAL_TLS_CA: '/ca.pem', TEMPORAL_TLS: 'no' }, 'TEMPORAL_TLS', /is false but/],
      [{ TEMPORAL_TLS: 'maybe' }, 'TEMPORAL_TLS', /must be true or false/],
    ];
    for (const [env, variable, message] of bad) {
      it(`refuses ${JSON.stringify(env)} naming ${variable}, and never prints the key`, () => {
        expect(() => loadConfig(env))
          .to.throw(ConfigError, message)
          .with.property('variable', variable);
        expect(() => loadConfig(env)).to.throw(ConfigError).that.satisfies((e: Error) => !e.message.includes('key-123'));
      });
    }
  });
});
