// docker-compose.yml, checked without Docker: every process of the fleet is there, built
// from the one Dockerfile, running a script that package.json has and that runs the same
// file `npm start` runs; its environment points at the compose host names with its own
// broker user; and it starts only after what it needs is healthy. The same for the profile
// `cluster`: three RabbitMQ nodes forming one cluster, Temporal on PostgreSQL with its Web UI,
// and the fleet with replicas, each process listing every node. And what observes both:
// Prometheus scraping every process on its port, Grafana with its dashboard, Jaeger.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { loadConfig } from '../../shared/config';
import { definitions, devPassword, passwordHash } from '../../scripts/rabbitmq-definitions';
import { FLEET, fleetCopies } from '../../scripts/fleet';

const ROOT = resolve(__dirname, '../..');

interface Service {
  image?: string;
  build?: string;
  profiles?: string[];
  hostname?: string;
  entrypoint?: string[];
  deploy?: { replicas?: number };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
  volumes?: string[];
  ulimits?: { nofile?: { soft?: number; hard?: number } };
}

const compose = parse(readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const scripts = (JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const INFRA = ['rabbitmq', 'redis', 'postgres', 'temporal'];
/** What observes the fleet, in either shape. */
const OBSERVING = ['prometheus', 'grafana', 'jaeger'];

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
  'customer-orders': ['DATABASE_URL'],
};

describe('docker-compose.yml', () => {
  it('has the broker, Redis, PostgreSQL, the Temporal dev server and every process of the fleet', () => {
    expect(Object.keys(compose.services)).to.include.members([...INFRA, 'migrate', ...FLEET.map(({ name }) => name)]);
    expect(Object.keys(NEEDS).sort()).to.deep.equal(FLEET.map(({ name }) => name).sort());
    for (const name of [...INFRA, 'migrate', ...FLEET.map((p) => p.name)]) expect(compose.services[name]!.profiles, `${name} runs without a profile`).to.equal(undefined);
  });

  it('exposes the management UI, the Temporal Web UI and the API, and health-checks each', () => {
    expect(compose.services.rabbitmq!.ports).to.include('15672:15672');
    expect(compose.services.temporal!.ports).to.include('8233:8233');
    expect(compose.services['order-api']!.ports).to.include('3000:3000');
    for (const name of [...INFRA, 'order-api']) expect(compose.services[name]!.healthcheck?.test, name).to.be.an('array').with.length.greaterThan(0);
  });

  it('runs the fleet from the one Dockerfile, each with a script of package.json that runs the file npm start runs', () => {
    expect(existsSync(resolve(ROOT, 'Dockerfile'))).to.equal(true);
    for (const { name, file } of FLEET) {
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
    for (const { name } of FLEET) {
      const deps = compose.services[name]!.depends_on ?? {};
      for (const infra of INFRA) expect(deps[infra]?.condition, `${name} → ${infra}`).to.equal('service_healthy');
      expect(deps.migrate?.condition, `${name} → migrate`).to.equal('service_completed_successfully');
    }
    expect(compose.services.migrate!.depends_on?.postgres?.condition).to.equal('service_healthy');
  });

  it('keeps the Temporal dev server\'s state in a file on a volume, so that a restart keeps every saga', () => {
    const temporal = compose.services.temporal!;
    const command = temporal.command ?? [];
    const file = command[command.indexOf('--db-filename') + 1];
    expect(command, 'the temporal command').to.include('--db-filename');
    const volume = (temporal.volumes ?? []).find((v) => file?.startsWith(`${v.split(':')[1]!}/`));
    expect(volume, `a volume holding ${file}`).to.be.a('string');
    expect(volume!.startsWith('./'), 'a named volume, not a folder of the project').to.equal(false);
  });

  it('gives the broker file descriptors for many quorum queues (a soft limit of 1,024 made a broker stop answering handshakes)', () => {
    expect(compose.services.rabbitmq!.ulimits?.nofile).to.deep.equal({ soft: 65536, hard: 65536 });
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

describe('docker-compose.yml, profile cluster', () => {
  const NODES = ['rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3'];
  const CLUSTER_INFRA = [...NODES, 'temporal-schema', 'temporal-server', 'temporal-namespace', 'temporal-ui'];
  const clusterService = (name: string): Service => compose.services[`cluster-${name}`]!;
  const envOf = (service: Service): Record<string, string> => service.environment ?? {};

  it('adds only services of the profile: the default shape starts as it did', () => {
    const added = [...CLUSTER_INFRA, ...FLEET.map((p) => `cluster-${p.name}`), 'cluster'];
    expect(Object.keys(compose.services)).to.include.members(added);
    for (const name of added) expect(compose.services[name]!.profiles, name).to.deep.equal(['cluster']);
    const unprofiled = Object.entries(compose.services).filter(([, s]) => s.profiles === undefined).map(([name]) => name);
    expect(unprofiled.sort()).to.deep.equal([...INFRA, 'migrate', ...OBSERVING, ...FLEET.map((p) => p.name)].sort());
  });

  it('runs three RabbitMQ nodes that form one cluster from their configuration, with one Erlang cookie', () => {
    const conf = readFileSync(resolve(ROOT, 'deploy/rabbitmq/cluster.conf'), 'utf8');
    expect(conf).to.match(/^cluster_formation\.peer_discovery_backend = classic_config$/m);
    const cookies = new Set<string>();
    for (const name of NODES) {
      const node = compose.services[name]!;
      expect(node.image, name).to.equal(compose.services.rabbitmq!.image);
      expect(node.hostname, name).to.equal(name);
      expect(conf, `${name} is listed`).to.match(new RegExp(`^cluster_formation\\.classic_config\\.nodes\\.\\d+ = rabbit@${name}$`, 'm'));
      const volumes = node.volumes ?? [];
      expect(volumes, name).to.include('./deploy/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/30-cluster.conf:ro');
      expect(volumes, name).to.include('./deploy/rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro');
      expect(volumes.filter((v) => v.endsWith(':/var/lib/rabbitmq')), `${name} has a data volume of its own`).to.have.length(1);
      expect(node.ulimits?.nofile, name).to.deep.equal({ soft: 65536, hard: 65536 });
      expect(node.healthcheck?.test, name).to.be.an('array').with.length.greaterThan(0);
      cookies.add(envOf(node).RABBITMQ_ERLANG_COOKIE ?? '');
    }
    expect([...cookies]).to.have.length(1);
    expect([...cookies][0]).to.not.equal('');
    const dataVolumes = NODES.map((name) => compose.services[name]!.volumes!.find((v) => v.endsWith(':/var/lib/rabbitmq'))!);
    expect(new Set(dataVolumes).size).to.equal(NODES.length);
  });

  it('runs a Temporal server on PostgreSQL, its schema set up first, with its Web UI, from the images Temporal publishes', () => {
    const schema = compose.services['temporal-schema']!;
    const server = compose.services['temporal-server']!;
    const ui = compose.services['temporal-ui']!;
    const namespace = compose.services['temporal-namespace']!;
    expect(schema.image).to.match(/^temporalio\/admin-tools:/);
    expect(namespace.image).to.match(/^temporalio\/admin-tools:/);
    expect(server.image).to.match(/^temporalio\/server:/);
    expect(ui.image).to.match(/^temporalio\/ui:/);
    expect(envOf(schema)).to.include({ SQL_PLUGIN: 'postgres12', SQL_HOST: 'postgres' });
    expect(envOf(server)).to.include({ DB: 'postgres12', POSTGRES_SEEDS: 'postgres' });
    expect(envOf(ui).TEMPORAL_ADDRESS).to.equal('temporal-server:7233');
    expect(schema.depends_on?.postgres?.condition).to.equal('service_healthy');
    expect(server.depends_on?.['temporal-schema']?.condition).to.equal('service_completed_successfully');
    expect(namespace.depends_on?.['temporal-server']?.condition).to.equal('service_healthy');
    expect(server.healthcheck?.test).to.be.an('array').with.length.greaterThan(0);
    for (const s of [schema, namespace]) {
      const script = /\/setup\/(\S+\.sh)$/.exec((s.entrypoint ?? []).join(' '))?.[1];
      expect(script, 'a setup script of deploy/temporal').to.be.a('string');
      expect(existsSync(resolve(ROOT, 'deploy/temporal', script!)), script).to.equal(true);
    }
    const dynamic = (server.volumes ?? []).find((v) => v.startsWith('./deploy/temporal/dynamicconfig.yaml:'));
    expect(dynamic, 'the dynamic configuration').to.be.a('string');
    expect(dynamic!.split(':')[1]).to.equal(envOf(server).DYNAMIC_CONFIG_FILE_PATH);
    expect(existsSync(resolve(ROOT, 'deploy/temporal/dynamicconfig.yaml'))).to.equal(true);
  });

  it('runs every process of the fleet with replicas, its script, and every node in its AMQP_URL with its own broker user', () => {
    const hashes = new Map((definitions() as { users: Array<{ name: string; password_hash: string }> }).users.map((u) => [u.name, u.password_hash]));
    for (const { name, script, replicas } of FLEET) {
      const service = clusterService(name);
      expect(service.command, name).to.deep.equal(['npm', 'run', script]);
      expect(service.build, name).to.equal('.');
      expect(service.image, name).to.equal('order-fulfillment:local');
      expect(service.deploy?.replicas ?? 1, `${name} runs replicas`).to.be.at.least(Math.max(2, replicas));
      const env = envOf(service);
      expect(Object.keys(env), name).to.include.members(NEEDS[name]!);
      expect(new URL(env.DATABASE_URL!).host, name).to.equal('postgres:5432');
      if (env.REDIS_URL) expect(new URL(env.REDIS_URL).host, name).to.equal('redis:6379');
      if (env.TEMPORAL_ADDRESS) expect(env.TEMPORAL_ADDRESS, name).to.equal('temporal-server:7233');
      if (NEEDS[name]!.includes('AMQP_URL')) {
        const urls = env.AMQP_URL!.split(',').map((u) => new URL(u));
        expect(urls.map((u) => u.host), name).to.deep.equal(NODES.map((n) => `${n}:5672`));
        for (const url of urls) {
          expect(url.username, name).to.equal(name);
          const hash = hashes.get(name)!;
          expect(passwordHash(decodeURIComponent(url.password), Buffer.from(hash, 'base64').subarray(0, 4)), `${name}'s password`).to.equal(hash);
        }
        expect(env.QUORUM_GROUP_SIZE, name).to.equal('3');
      }
      const deps = service.depends_on ?? {};
      for (const dep of [...NODES, 'redis', 'postgres', 'temporal-server']) expect(deps[dep]?.condition, `${name} → ${dep}`).to.equal('service_healthy');
      expect(deps.migrate?.condition, `${name} → migrate`).to.equal('service_completed_successfully');
    }
  });

  it('gives the replicated API a host port each, and an entry service that starts the cluster shape alone', () => {
    const api = clusterService('order-api');
    const [range] = api.ports ?? [];
    const [, first, last] = /^(\d+)-(\d+):3000$/.exec(range ?? '') ?? [];
    expect(Number(last) - Number(first) + 1, 'host ports for the API replicas').to.equal(api.deploy?.replicas);
    const entry = compose.services.cluster!;
    expect(Object.keys(entry.depends_on ?? {}).sort()).to.deep.equal([...FLEET.map((p) => `cluster-${p.name}`), 'temporal-ui', ...OBSERVING].sort());
  });
});

describe('docker-compose.yml, observing the fleet', () => {
  interface ScrapeJob {
    job_name: string;
    dns_sd_configs?: Array<{ names: string[]; type: string; port: number }>;
  }
  const prometheus = parse(readFileSync(resolve(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: ScrapeJob[] };
  const jobNamed = (name: string): ScrapeJob | undefined => prometheus.scrape_configs.find((j) => j.job_name === name);
  /** Where Prometheus finds a job's targets: the DNS names and their port. */
  const targetsOf = (job: ScrapeJob | undefined): { names: string[]; port?: number } => ({
    names: (job?.dns_sd_configs ?? []).flatMap((c) => c.names),
    port: job?.dns_sd_configs?.[0]?.port,
  });
  const envOf = (name: string): Record<string, string> => compose.services[name]!.environment ?? {};

  it('pins the image of each', () => {
    for (const name of OBSERVING) expect(compose.services[name]!.image, name).to.match(/:v?\d+\.\d+\.\d+$/);
  });

  it('scrapes every process of the fleet, in both shapes, at the port it serves its metrics on: its METRICS_PORT, order-api included', () => {
    const volumes = compose.services.prometheus!.volumes ?? [];
    expect(volumes).to.include('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    // The ports npm start gives one copy of each, from the same rule and the same default base.
    for (const copy of fleetCopies(new Map(), loadConfig({}).metricsPortBase)) {
      const { name } = copy.process;
      const port = copy.metricsPort;
      expect(targetsOf(jobNamed(name)), `the job ${name}`).to.deep.equal({ names: [name, `cluster-${name}`], port });
      expect(jobNamed(name)!.dns_sd_configs![0]!.type, name).to.equal('A'); // one record per replica
      for (const service of [name, `cluster-${name}`]) expect(envOf(service).METRICS_PORT, service).to.equal(String(port));
    }
  });

  it("scrapes the broker's own metrics on every node", () => {
    expect(targetsOf(jobNamed('rabbitmq'))).to.deep.equal({ names: ['rabbitmq', 'rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3'], port: 15692 });
    expect(compose.services.rabbitmq!.ports).to.include('15692:15692');
    expect(readFileSync(resolve(ROOT, 'deploy/rabbitmq/enabled_plugins'), 'utf8')).to.include('rabbitmq_prometheus');
  });

  describe('Grafana', () => {
    const volumes = compose.services.grafana!.volumes ?? [];
    /** Where a folder of the project is mounted in the Grafana container. */
    const mountOf = (folder: string): string | undefined => volumes.find((v) => v.startsWith(`${folder}:`))?.split(':')[1];
    const provisioning = resolve(ROOT, 'deploy/grafana/provisioning');
    const dashboardFile = resolve(ROOT, 'deploy/grafana/dashboards/fleet.json');

    it('has Prometheus as its provisioned data source', () => {
      expect(mountOf('./deploy/grafana/provisioning')).to.equal('/etc/grafana/provisioning');
      const sources = readdirSync(join(provisioning, 'datasources')).flatMap((f) => (parse(readFileSync(join(provisioning, 'datasources', f), 'utf8')) as { datasources: Array<{ type: string; url: string; uid: string }> }).datasources);
      expect(sources.map(({ type, url, uid }) => ({ type, url, uid }))).to.deep.include({ type: 'prometheus', url: 'http://prometheus:9090', uid: 'prometheus' });
    });

    it('loads the dashboards from the folder they are mounted in', () => {
      const providers = readdirSync(join(provisioning, 'dashboards')).flatMap((f) => (parse(readFileSync(join(provisioning, 'dashboards', f), 'utf8')) as { providers: Array<{ options: { path: string } }> }).providers);
      expect(providers.map((p) => p.options.path)).to.include(mountOf('./deploy/grafana/dashboards'));
    });

    it("has the fleet's dashboard, valid JSON whose panels use only the metrics the code registers, and every one that matters", () => {
      const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { uid: string; panels: Array<{ title: string; datasource?: { uid?: string }; targets: Array<{ expr: string }> }> };
      expect(dashboard.uid).to.be.a('string');
      const registered = registeredMetrics();
      const used = new Set<string>();
      for (const panel of dashboard.panels) {
        expect(panel.datasource?.uid, panel.title).to.equal('prometheus');
        expect(panel.targets, panel.title).to.have.length.greaterThan(0);
        for (const { expr } of panel.targets) {
          const names = metricsOf(expr);
          expect(names, `${panel.title}: ${expr}`).to.have.length.greaterThan(0);
          for (const name of names) {
            expect(registered, `${panel.title}: ${name} is registered in the code`).to.include(name);
            used.add(name);
          }
        }
      }
      const required = ['messages_consumed_total', 'message_handler_duration_seconds', 'publish_confirm_seconds', 'outbox_oldest_unsent_age_seconds', 'sagas_finished_total', 'queue_depth_messages', 'dlq_depth_messages', 'dependency_connected'];
      expect([...used]).to.include.members(required);
    });
  });

  it('has Jaeger taking OTLP over HTTP, and every process of the fleet, in both shapes, sending its traces there', () => {
    const jaeger = compose.services.jaeger!;
    expect(jaeger.image).to.match(/^jaegertracing\/all-in-one:/);
    expect(jaeger.ports).to.include.members(['16686:16686', '4318:4318']);
    for (const { name } of FLEET) {
      for (const service of [name, `cluster-${name}`]) {
        expect(envOf(service), service).to.include({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' });
      }
    }
  });
});

/** The metric names the code registers (`new Counter({ name: '…'`, and Gauge, Histogram, Summary), from its sources. */
function registeredMetrics(): string[] {
  const names: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        for (const m of readFileSync(path, 'utf8').matchAll(/new (?:Counter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\{\s*name: '([a-z_:][a-z0-9_:]*)'/g)) names.push(m[1]!);
      }
    }
  };
  for (const dir of ['shared', 'services', 'workers', 'activities']) walk(resolve(ROOT, dir));
  return names;
}

/** PromQL functions whose names look like metrics. */
const PROMQL_FUNCTIONS = new Set(['histogram_quantile', 'label_replace', 'label_join']);

/** The metrics a PromQL expression reads, a histogram's series by their histogram's name. */
function metricsOf(expr: string): string[] {
  const bare = expr
    .replace(/"[^"]*"/g, '') // label values
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\b(?:by|without)\s*\([^)]*\)/g, ''); // grouping labels
  const tokens = bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return [...new Set(tokens.filter((t) => t.includes('_') && !PROMQL_FUNCTIONS.has(t)).map((t) => t.replace(/_(bucket|sum|count)$/, '')))];
}
