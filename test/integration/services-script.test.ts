// scripts/services.sh (what .ci/run, `npm run setup` and the chaos run's broker restart use)
// against the machine's own RabbitMQ: it leaves a broker that answers alone, and restarts one
// that answers `ping` but no client, the state in which a broker fails every test after it.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { getConfig } from '../../shared/config';
import { ROOT } from '../helpers/processes';

const run = promisify(execFile);
const SERVICES = join(ROOT, 'scripts/services.sh');

async function services(): Promise<string> {
  const { stdout } = await run('bash', [SERVICES, 'rabbitmq'], { timeout: 360_000 });
  return stdout;
}

/** The operating-system pid of the broker's Erlang VM. */
async function brokerPid(): Promise<number> {
  const { stdout } = await run('rabbitmqctl', ['-q', 'eval', 'os:getpid().'], { timeout: 30_000 });
  return Number(JSON.parse(stdout.trim()));
}

async function connects(): Promise<boolean> {
  const connection = await amqp.connect(getConfig().amqpUrl, { timeout: 5_000 });
  await connection.close();
  return true;
}

describe('scripts/services.sh and the local RabbitMQ', function () {
  this.timeout(400_000); // the script gives a stuck node 30 s to answer ping and 120 s to boot

  it('leaves a broker that answers clients running', async () => {
    const before = await brokerPid();
    const { stdout: version } = await run('rabbitmqctl', ['-q', 'version'], { timeout: 30_000 });
    expect(await services()).to.equal(`services: RabbitMQ is up (${version.trim()})\n`);
    expect(await brokerPid()).to.equal(before);
  });

  it('restarts a broker that answers ping but no client, with its open-files limit raised to the hard one', async () => {
    const before = await brokerPid();
    // A node that answers ping but no client: its listeners suspended, it refuses connections.
    await run('rabbitmqctl', ['-q', 'suspend_listeners'], { timeout: 30_000 });
    let said: string;
    try {
      await expect(amqp.connect(getConfig().amqpUrl, { timeout: 5_000 })).to.be.rejected;
      said = await services();
    } finally {
      // Whatever failed, the broker must take clients again for the tests after this one.
      if ((await brokerPid().catch(() => undefined)) === before) await run('rabbitmqctl', ['-q', 'resume_listeners'], { timeout: 30_000 });
    }

    expect(said).to.match(/^services: RabbitMQ is running but does not answer clients: restarting it\nservices: RabbitMQ is up \(/);
    const after = await brokerPid();
    expect(after).to.not.equal(before);
    expect(await connects()).to.equal(true);
    const limits = readFileSync(`/proc/${after}/limits`, 'utf8').match(/^Max open files\s+(\d+)\s+(\d+)/m);
    expect(limits, 'open-files line of the broker').to.not.equal(null);
    expect(limits?.[1]).to.equal(limits?.[2]);
  });
});
