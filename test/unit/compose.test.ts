// docker-compose.yml, checked without Docker: every process of the fleet is there, built
// from the one Dockerfile, running a script that package.json has and that runs the same
// file `npm start` runs; its environment points at the compose host names with its own
// broker user; and it starts only after what it needs is healthy.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { definitions, devPassword, passwordHash } from '../../scripts/rabbitmq-definitions';
import { FLEET } from '../../scripts/fleet';

const ROOT = resolve(__dirname, '../..');

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
  volumes?: string[];
}

const compose = parse(readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const scripts = (JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const INFRA = ['rabbitmq', 'redis', 'postgres', 'temporal'];

/** What each process reads from its environment (see each composition root). */
const NEEDS: Record<string, string[]> = {
  'order-api': ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'HTTP_PORT'],
  'outbox-relay': ['DATABASE_URL', 'AMQP_URL'],
  'temporal-worker': ['DATABASE_URL', 'AMQP_URL', 'TEMPORAL_ADDRESS'],
  'saga-bridge': ['DATABASE_URL', 'AMQP_URL', 'REDIS_URL', 'TEMPORAL_ADDRESS'],
  payments: ['DATABASE_URL', 'AMQP_URL', 'REDIS_URL'],
  inventory: ['DATABASE_URL', 'AMQP_URL', 'REDIS_URL'],
  shipping: ['DATABASE_URL', 'AMQP_URL', 'REDIS_URL'],
  notifications: ['DATABASE_URL', 'AMQP_URL', 'REDIS_URL'],
  'order-projection': ['DATABASE_URL', 'AMQP_URL', 'REDIS_URL'],
};

describe('docker-compose.yml', () => {
  it('has the broker, Redis, PostgreSQL, the Temporal dev server and every process of the fleet', () => {
    expect(Object.keys(compose.services)).to.include.members([...INFRA, 'migrate', ...FLEET.map(([name]) => name)]);
    expect(Object.keys(NEEDS).sort()).to.deep.equal(FLEET.map(([name]) => name).sort());
  });

  it('exposes the management UI, the Temporal Web UI and the API, and health-checks each', () => {
    expect(compose.services.rabbitmq!.ports).to.include('15672:15672');
    expect(compose.services.temporal!.ports).to.include('8233:8233');
    expect(compose.services['order-api']!.ports).to.include('3000:3000');
    for (const name of [...INFRA, 'order-api']) expect(compose.services[name]!.healthcheck?.test, name).to.be.an('array').with.length.greaterThan(0);
  });

  it('runs the fleet from the one Dockerfile, each with a script of package.json that runs the file npm start runs', () => {
    expect(existsSync(resolve(ROOT, 'Dockerfile'))).to.equal(true);
    for (const [name, file] of FLEET) {
      const service = compose.services[name]!;
      expect(service.build, name).to.equal('.');
      expect(service.image, name).to.equal('order-fulfillment:local');
      const [npm, run, script] = service.command ?? [];
      expect([npm, run], name).to.deep.equal(['npm', 'run']);
      expect(scripts[script!], `${name}: npm run ${script}`).to.equal(`ts-node ${file}`);
    }
    expect(compose.services.migrate!.command).to.deep.equal(['npm', 'run', 'migrate']);
    expect(scripts.migrate).to.be.a('string');
  });

  it('points each process at the compose host names, with its own broker user and password', () => {
    const hashes = new Map((definitions() as { users: Array<{ name: string; password_hash: string }> }).users.map((u) => [u.name, u.password_hash]));
    for (const [name, needs] of Object.entries(NEEDS)) {
      const env = compose.services[name]!.environment ?? {};
      expect(Object.keys(env), name).to.include.members(needs);
      if (env.DATABASE_URL) expect(new URL(env.DATABASE_URL).host, name).to.equal('postgres:5432');
      if (env.REDIS_URL) expect(new URL(env.REDIS_URL).host, name).to.equal('redis:6379');
      if (env.TEMPORAL_ADDRESS) expect(env.TEMPORAL_ADDRESS, name).to.equal('temporal:7233');
      if (env.AMQP_URL) {
        const url = new URL(env.AMQP_URL);
        expect(url.host, name).to.equal('rabbitmq:5672');
        expect(url.username, name).to.equal(name);
        const hash = hashes.get(name);
        expect(hash, `${name} has a user in definitions.json`).to.be.a('string');
        const salt = Buffer.from(hash!, 'base64').subarray(0, 4);
        expect(passwordHash(decodeURIComponent(url.password), salt), `${name}'s password`).to.equal(hash);
        expect(decodeURIComponent(url.password)).to.equal(devPassword(name));
      }
    }
  });

  it('starts the fleet only after the services are healthy and the migration has run', () => {
    for (const [name] of FLEET) {
      const deps = compose.services[name]!.depends_on ?? {};
      for (const infra of INFRA) expect(deps[infra]?.condition, `${name} → ${infra}`).to.equal('service_healthy');
      expect(deps.migrate?.condition, `${name} → migrate`).to.equal('service_completed_successfully');
    }
    expect(compose.services.migrate!.depends_on?.postgres?.condition).to.equal('service_healthy');
  });

  it('gives the broker its plugins, its users and the file that loads them', () => {
    const volumes = compose.services.rabbitmq!.volumes ?? [];
    for (const volume of volumes.filter((v) => v.startsWith('./'))) {
      expect(existsSync(resolve(ROOT, volume.split(':')[0]!)), volume).to.equal(true);
    }
    expect(volumes.some((v) => v.includes('definitions.json:/etc/rabbitmq/definitions.json'))).to.equal(true);
    expect(readFileSync(resolve(ROOT, 'deploy/rabbitmq/rabbitmq.conf'), 'utf8')).to.include('definitions.local.path = /etc/rabbitmq/definitions.json');
    expect(readFileSync(resolve(ROOT, 'deploy/rabbitmq/enabled_plugins'), 'utf8')).to.include('rabbitmq_management').and.include('rabbitmq_consistent_hash_exchange');
  });
});
