// The RabbitMQ plugins the fleet needs, and `npm start`'s check that the broker has them. A
// broker with its default plugins refuses the order-projection's x-consistent-hash exchange,
// and that process can only fail until someone enables the plugin; `npm start` does it
// itself when the broker is on this machine, else stops before starting anything.
import { spawnSync } from 'node:child_process';
import * as amqp from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { newId } from '../shared/ids';
import { redact, systemPath, type Config } from '../shared/config';
import { errorMessage } from '../shared/errors';
import { EXCHANGE_TYPE_PLUGINS, inNamespace, refusalBehind, requiredPlugins } from '../shared/messaging/topology';
import { findBinary } from '../shared/temporal/binaries';
import { fleetAccess } from './rabbitmq-definitions';

/** The plugins the fleet's topologies need: without one, a process cannot start. */
export const REQUIRED_PLUGINS: readonly string[] = [...new Set(fleetAccess().flatMap((access) => requiredPlugins(access.topology)))];

/** The management UI: wanted by the design, and enabled along with the others, but the fleet runs without it. */
export const OPTIONAL_PLUGINS: readonly string[] = ['rabbitmq_management'];

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * Declares a throwaway exchange of the type: the only way to ask a broker without the
 * management plugin whether it knows an exchange type. RabbitMQ answers an unknown type by
 * closing the whole connection (503 COMMAND_INVALID), so each check has a connection of its own.
 */
export async function knowsExchangeType(amqpUrl: string, type: string, namespace: string): Promise<boolean> {
  let connection: ChannelModel;
  try {
    connection = await amqp.connect(amqpUrl, { timeout: 10_000, clientProperties: { connection_name: 'npm start: plugin check' } });
  } catch (err) {
    throw new Error(`cannot ask RabbitMQ at ${redact(amqpUrl)} for its plugins: ${errorMessage(err)}`, { cause: err });
  }
  connection.on('error', () => undefined);
  // The declare fails with "Channel ended" as soon as the channel goes; the reason comes
  // with the connection's close, which may arrive a moment later.
  const closed = new Promise<unknown>((done) => connection.once('close', (err?: unknown) => done(err)));
  const name = inNamespace(namespace, `start.plugin-check.${newId().toLowerCase()}`);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.assertExchange(name, type, { durable: false, autoDelete: true });
    } catch (err) {
      const refused = await refusalBehind(err, closed);
      if (refused?.replyCode === 503 && refused.unknownExchangeType === type) return false;
      throw refused ?? err;
    }
    // Auto-delete removes an exchange only once it loses its last binding, and this one never had one.
    await channel.deleteExchange(name);
    return true;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** The REQUIRED_PLUGINS the broker at the URL lacks. */
export async function missingPlugins(amqpUrl: string, namespace = ''): Promise<string[]> {
  const missing: string[] = [];
  for (const [type, plugin] of Object.entries(EXCHANGE_TYPE_PLUGINS)) {
    if (plugin && REQUIRED_PLUGINS.includes(plugin) && !(await knowsExchangeType(amqpUrl, type, namespace))) missing.push(plugin);
  }
  return missing;
}

/** Runs `rabbitmq-plugins enable`; undefined when it worked, else what it said, on one line. */
function enable(cli: string, plugins: readonly string[]): string | undefined {
  const run = spawnSync(cli, ['-q', 'enable', ...plugins], { encoding: 'utf8', timeout: 120_000 });
  if (run.status === 0) return undefined;
  const said = `${run.stderr ?? ''} ${run.stdout ?? ''}`.replace(/\s+/g, ' ').trim().slice(0, 300);
  return said || (run.error ? errorMessage(run.error) : `exit ${String(run.status ?? run.signal)}`);
}

/**
 * Makes sure the broker has REQUIRED_PLUGINS. When one is missing and the broker is on this
 * machine with `rabbitmq-plugins` on PATH, enables it (with OPTIONAL_PLUGINS) and says so
 * through `say` in one line. Returns what is still wrong, in one line, or undefined when
 * the broker has every plugin.
 */
export async function ensureBrokerPlugins(config: Pick<Config, 'amqpUrl' | 'busNamespace'>, say: (line: string) => void): Promise<string | undefined> {
  const missing = await missingPlugins(config.amqpUrl, config.busNamespace);
  if (missing.length === 0) return undefined;
  const lacks = `RabbitMQ at ${redact(config.amqpUrl)} lacks the plugin${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  const command = `rabbitmq-plugins enable ${missing.join(' ')}`;
  const local = LOCAL_HOSTS.has(new URL(config.amqpUrl).hostname);
  const cli = local ? findBinary('rabbitmq-plugins', undefined, systemPath()) : undefined;
  if (!cli) {
    const where = local ? 'rabbitmq-plugins is not on PATH' : 'the broker is not on this machine';
    return `${lacks} and ${where}: enable it on the broker with \`${command}\` (the broker of \`docker compose up -d rabbitmq\` has it already)`;
  }
  // The management plugin is optional: when enabling it fails, the required ones alone will do.
  let enabled = [...missing, ...OPTIONAL_PLUGINS];
  if (enable(cli.path, enabled) !== undefined) {
    enabled = missing;
    const failed = enable(cli.path, enabled);
    if (failed !== undefined) return `${lacks} and \`${command}\` failed: ${failed}`;
  }
  say(`enabled the RabbitMQ plugins ${enabled.join(', ')}`);
  const still = await missingPlugins(config.amqpUrl, config.busNamespace);
  return still.length === 0 ? undefined : `RabbitMQ at ${redact(config.amqpUrl)} still lacks ${still.join(', ')} after \`${command}\`: is the rabbitmq-plugins on PATH that of this broker?`;
}
