// RabbitMQ users and permissions, derived from the fleet's definitions (scripts/fleet.ts): each
// process that talks to the broker gets a user that may declare, bind, read and write only the
// exchanges and queues its topology names and the exchanges it publishes to. `npm run rabbitmq:definitions` writes
// deploy/rabbitmq/definitions.json (loaded by the compose broker); `-- --check` fails when
// the committed file differs from what the code says.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { inNamespace, queueNames, type Topology } from '../shared/messaging/topology';
import { runCli } from './cli';
import { FLEET } from './fleet';

export const DEFINITIONS_FILE = resolve(__dirname, '../deploy/rabbitmq/definitions.json');

/** What one process does on the broker. */
export interface BrokerAccess {
  user: string;
  /** The exchanges and queues it declares (consumers also publish retries via the default exchange). */
  topology: Topology;
  consumes: boolean;
  /** Exchanges it publishes to. */
  publishes: readonly string[];
}

/** Every process of the fleet that talks to RabbitMQ (order-api only writes the outbox), as its definition says. */
export function fleetAccess(namespace = ''): BrokerAccess[] {
  return FLEET.flatMap(({ name, broker }) =>
    broker ? [{ user: name, topology: broker.topology(namespace), consumes: broker.consumes, publishes: broker.publishes.map((e) => inNamespace(namespace, e)) }] : [],
  );
}

const escape = (name: string): string => name.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
const anyOf = (names: Iterable<string>): string => {
  const sorted = [...new Set(names)].sort();
  return sorted.length === 0 ? '^$' : `^(${sorted.map(escape).join('|')})$`;
};

/**
 * AMQP 0-9-1 permissions: declaring needs configure on the resource; binding needs write
 * on the queue (or destination exchange) and read on the source exchange; consuming needs
 * read on the queue; publishing needs write on the exchange ("amq.default" for the
 * default exchange, which retries and dead letters go through). A stream (the archive) is
 * declared and bound, never consumed: configure and write on it, read on its sources.
 */
export function permissionsOf(access: BrokerAccess): { configure: string; write: string; read: string } {
  const { exchanges, queues, streams = [] } = access.topology;
  const queueResources = queues.flatMap((q) => queueNames({ exchanges: [], queues: [q] }));
  const streamNames = streams.map((s) => s.name);
  const bindSources = [
    ...queues.flatMap((q) => q.bind.map(([exchange]) => exchange)),
    ...exchanges.flatMap((e) => (e.bindFrom ?? []).map(([source]) => source)),
    ...streams.flatMap((s) => s.bind.map(([exchange]) => exchange)),
  ];
  const bindTargets = exchanges.filter((e) => (e.bindFrom ?? []).length > 0).map((e) => e.name);
  return {
    configure: anyOf([...exchanges.map((e) => e.name), ...queueResources, ...streamNames]),
    write: anyOf([...queueResources, ...streamNames, ...bindTargets, ...access.publishes, ...(access.consumes ? ['amq.default'] : [])]),
    read: anyOf([...queueResources, ...bindSources]),
  };
}

/** The development password of a user; production brokers get their own users and secrets. */
export const devPassword = (user: string): string => `${user}-dev`;

/** RabbitMQ's rabbit_password_hashing_sha256: base64(salt ‖ sha256(salt ‖ password)). */
export function passwordHash(password: string, salt: Buffer): string {
  return Buffer.concat([salt, createHash('sha256').update(Buffer.concat([salt, Buffer.from(password, 'utf8')])).digest()]).toString('base64');
}

/**
 * The definitions file: one user per process, and guest/guest as the administrator for
 * people and tools on the host (the default AMQP_URL, and the management UI).
 */
export function definitions(vhost = '/'): object {
  // A salt derived from the name keeps the file reproducible; these are development secrets.
  const salt = (user: string): Buffer => createHash('sha256').update(`salt:${user}`).digest().subarray(0, 4);
  const user = (name: string, tags: string[], password = devPassword(name)) => ({
    name,
    password_hash: passwordHash(password, salt(name)),
    hashing_algorithm: 'rabbit_password_hashing_sha256',
    tags,
  });
  const access = fleetAccess();
  return {
    users: [user('guest', ['administrator'], 'guest'), ...access.map((a) => user(a.user, []))],
    vhosts: [{ name: vhost }],
    permissions: [
      { user: 'guest', vhost, configure: '.*', write: '.*', read: '.*' },
      ...access.map((a) => ({ user: a.user, vhost, ...permissionsOf(a) })),
    ],
  };
}

export const renderDefinitions = (): string => `${JSON.stringify(definitions(), null, 2)}\n`;

if (require.main === module) {
  runCli('rabbitmq:definitions', () => {
    if (process.argv.includes('--check')) {
      if (readFileSync(DEFINITIONS_FILE, 'utf8') === renderDefinitions()) return 0;
      console.error('deploy/rabbitmq/definitions.json is out of date: run `npm run rabbitmq:definitions`');
      return 1;
    }
    writeFileSync(DEFINITIONS_FILE, renderDefinitions());
    console.log(`wrote ${DEFINITIONS_FILE}`);
    return 0;
  });
}
