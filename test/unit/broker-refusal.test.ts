// A broker's refusal of the topology as a typed error, and the plugins a topology needs.
import type { Channel } from 'amqplib';
import { expect } from 'chai';
import { BrokerRefusedError, IncurableError } from '../../shared/errors';
import { brokerRefusal, coreTopology, declareTopology, refusalBehind, requiredPlugins } from '../../shared/messaging/topology';
import { REQUIRED_PLUGINS } from '../../scripts/broker-plugins';
import { paymentsTopology } from '../../workers/payments/topology';
import { projectionTopology } from '../../workers/order-projection/topology';

/** An error as amqplib makes it from a broker's close frame. */
const amqpError = (message: string, code: number): Error => Object.assign(new Error(message), { code });

describe('a refusal of the topology by the broker', () => {
  it('names the plugin to enable for an unknown exchange type (a connection-level close)', () => {
    const err = brokerRefusal(amqpError(`Connection closed: 503 (COMMAND-INVALID) with message "COMMAND_INVALID - unknown exchange type 'x-consistent-hash'"`, 503));
    expect(err).to.be.instanceOf(BrokerRefusedError).and.instanceOf(IncurableError);
    expect(err?.name).to.equal('BrokerRefusedError');
    expect(err?.replyCode).to.equal(503);
    expect(err?.unknownExchangeType).to.equal('x-consistent-hash');
    expect(err?.message).to.equal(
      "the broker refused the topology: COMMAND_INVALID - unknown exchange type 'x-consistent-hash' (enable the plugin: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange)",
    );
  });

  it('names the plugin too when the broker says "invalid exchange type" (a plugin disabled after it was loaded)', () => {
    const err = brokerRefusal(amqpError(`Connection closed: 503 (COMMAND-INVALID) with message "COMMAND_INVALID - invalid exchange type 'x-consistent-hash'"`, 503));
    expect(err?.message).to.contain('(enable the plugin: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange)');
    expect(err?.unknownExchangeType).to.equal('x-consistent-hash');
  });

  it('says what was being declared when a queue exists with other arguments', () => {
    const said = "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'payments.commands' in vhost '/': received the value 'quorum' of type 'longstr' but current is none";
    const err = brokerRefusal(amqpError(`Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "${said}"`, 406), "queue 'payments.commands'");
    expect(err?.message).to.equal(`the broker refused the topology (queue 'payments.commands'): ${said} (it exists with other arguments, which the broker keeps until it is deleted)`);
    expect(err?.unknownExchangeType).to.equal(undefined);
  });

  it("says that the archive's retention differs when the stream exists with other arguments", async () => {
    const said = "PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue 'events.archive' in vhost '/': received '7D' but current is '30D'";
    const refused = Object.assign(new Error(`Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "${said}"`), { code: 406 });
    const channel = { assertExchange: async () => ({}), bindExchange: async () => ({}), bindQueue: async () => ({}), assertQueue: async () => Promise.reject(refused) };
    const declared = declareTopology(channel as unknown as Channel, coreTopology(''), { retention: { maxAge: '7D', maxBytes: 1_000_000 } });
    await expect(declared).to.be.rejectedWith(BrokerRefusedError, `the broker refused the topology (stream 'events.archive'): ${said} (its retention differs:`);
    await expect(declared).to.be.rejectedWith(/ARCHIVE_MAX_AGE and ARCHIVE_MAX_BYTES .* docs\/operations\.md#the-archives-retention/);
  });

  it('leaves alone what a retry can cure: a forced close, a lost socket, an unknown queue, a non-error', () => {
    expect(brokerRefusal(amqpError('Connection closed: 320 (CONNECTION-FORCED) with message "CONNECTION_FORCED - broker forced connection closure"', 320))).to.equal(undefined);
    expect(brokerRefusal(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).to.equal(undefined);
    expect(brokerRefusal(amqpError(`Operation failed: QueueBind; 404 (NOT-FOUND) with message "NOT_FOUND - no exchange 'x'"`, 404))).to.equal(undefined);
    expect(brokerRefusal(new Error('Channel ended, no reply will be forthcoming'))).to.equal(undefined);
    expect(brokerRefusal(undefined)).to.equal(undefined);
  });

  it('finds the refusal behind a declare that only learned "Channel ended" in the error the connection closes with', async () => {
    const closedWith = amqpError(`Connection closed: 503 (COMMAND-INVALID) with message "COMMAND_INVALID - invalid exchange type 'x-consistent-hash'"`, 503);
    const refused = await refusalBehind(new Error('Channel ended, no reply will be forthcoming'), Promise.resolve(closedWith));
    expect(refused).to.be.instanceOf(BrokerRefusedError);
    expect([refused?.replyCode, refused?.unknownExchangeType]).to.deep.equal([503, 'x-consistent-hash']);
    // A refusal that closed only the channel is the declare's own error: no close to wait for.
    const own = brokerRefusal(amqpError(`Operation failed: ExchangeDeclare; 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - inequivalent arg 'type'"`, 406));
    expect(await refusalBehind(own, new Promise<never>(() => undefined))).to.equal(own);
    expect(await refusalBehind(new Error('Channel ended, no reply will be forthcoming'), Promise.resolve(undefined))).to.equal(undefined);
  });

  it('knows the fleet needs the consistent-hash plugin because of the order-projection topology', () => {
    expect(requiredPlugins(projectionTopology('ns'))).to.deep.equal(['rabbitmq_consistent_hash_exchange']);
    expect(requiredPlugins(paymentsTopology('ns'))).to.deep.equal([]);
    expect(REQUIRED_PLUGINS).to.deep.equal(['rabbitmq_consistent_hash_exchange']);
  });
});
