// npm start's check of the broker's plugins, against the real RabbitMQ. It never disables a
// plugin of the shared broker: an exchange type no plugin provides stands in for a missing one.
import { expect } from 'chai';
import { ensureBrokerPlugins, knowsExchangeType, missingPlugins } from '../../scripts/broker-plugins';
import { getConfig } from '../../shared/config';
import { BrokerRefusedError } from '../../shared/errors';
import { AmqpConnection } from '../../shared/messaging/connection';
import { uniqueName } from '../helpers/names';

describe('the broker plugin check (RabbitMQ)', function () {
  this.timeout(150_000); // enabling a plugin can take a while

  it('reports the consistent-hash plugin present once it has made sure of it', async () => {
    const said: string[] = [];
    const problem = await ensureBrokerPlugins(getConfig(), (line) => said.push(line));
    expect(problem).to.equal(undefined, said.join('\n'));
    // When it had to enable something it said so in one line.
    expect(said.length).to.be.at.most(1);
    if (said.length === 1) expect(said[0]).to.match(/^enabled the RabbitMQ plugins rabbitmq_consistent_hash_exchange(, rabbitmq_management)?$/);
    expect(await missingPlugins(getConfig().amqpUrl)).to.deep.equal([]);
    expect(await knowsExchangeType(getConfig().amqpUrl, 'x-consistent-hash', '')).to.equal(true);
  });

  it('tells an exchange type the broker knows from one it does not, leaving no exchange behind', async () => {
    expect(await knowsExchangeType(getConfig().amqpUrl, 'topic', '')).to.equal(true);
    expect(await knowsExchangeType(getConfig().amqpUrl, 'x-no-such-exchange-type', '')).to.equal(false);
  });

  it('fails a setup hook whose declare the broker refuses by closing the connection with a BrokerRefusedError', async () => {
    const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'test-refused-setup' });
    await connection.start();
    try {
      const refused = connection.addSetup(async (model) => {
        const channel = await model.createChannel();
        channel.on('error', () => undefined);
        await channel.assertExchange(uniqueName('test.refused'), 'x-no-such-exchange-type', { durable: false, autoDelete: true });
      });
      await expect(refused).to.be.rejectedWith(BrokerRefusedError, "the broker refused the topology: COMMAND_INVALID - unknown exchange type 'x-no-such-exchange-type'");
    } finally {
      await connection.close();
    }
  });
});
