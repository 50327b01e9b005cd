// docs/asyncapi.yaml is what the code says (regenerated, byte for byte), and it is a valid
// AsyncAPI 3.0 document as the ecosystem's own parser reads it, naming every message type,
// queue and process of the fleet.
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import { expect } from 'chai';
import { ASYNCAPI_FILE, renderAsyncApi } from '../../scripts/asyncapi';
import { topicMatches } from '../../shared/messaging/topology';
import { fleetAccess } from '../../scripts/rabbitmq-definitions';
import { catalog } from '../../shared/events';
import { SAGA_STEPS } from '../../shared/saga';
import { runTs } from '../helpers/processes';

describe('docs/asyncapi.yaml', function () {
  this.timeout(60_000);
  const committed = readFileSync(ASYNCAPI_FILE, 'utf8');

  it('is what the code says: run `npm run asyncapi` after changing a message, a topology or a step', () => {
    const current = renderAsyncApi();
    if (current !== committed) expect.fail('docs/asyncapi.yaml is stale: run `npm run asyncapi` and commit the file');
    expect(renderAsyncApi(), 'the same code gives the same bytes').to.equal(current);
  });

  it('`npm run asyncapi -- --check` says whether the file is current, and a mistyped flag is refused rather than taken as a request to write', async () => {
    const check = runTs('scripts/asyncapi.ts', ['--check']);
    expect((await check.exited()).code, check.output.join('\n')).to.equal(0);
    const typo = runTs('scripts/asyncapi.ts', ['--chek']);
    expect((await typo.exited()).code).to.equal(2);
    expect(typo.output.join('\n')).to.include("Unknown option '--chek'");
    expect(readFileSync(ASYNCAPI_FILE, 'utf8')).to.equal(committed);
  });

  it('routes topic patterns as RabbitMQ does', () => {
    expect(topicMatches('payments.*', 'payments.capture')).to.equal(true);
    expect(topicMatches('payments.*', 'payment.captured')).to.equal(false);
    expect(topicMatches('order.*', 'order.placed')).to.equal(true);
    expect(topicMatches('#', 'order.placed')).to.equal(true);
    expect(topicMatches('order.#', 'order')).to.equal(true);
    expect(topicMatches('*.placed', 'order.placed.v2')).to.equal(false);
  });

  it('passes @asyncapi/parser with no error and no warning, and names every message, queue and process', async () => {
    const { document, diagnostics } = await new Parser().parse(committed);
    // Information and hints (such as "a newer AsyncAPI version exists") are no fault of the document.
    const seriousLevels: number[] = [DiagnosticSeverity.Error, DiagnosticSeverity.Warning];
    const serious = diagnostics.filter((d) => seriousLevels.includes(d.severity));
    expect(serious.map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`)).to.deep.equal([]);
    expect(document, 'a parsed document').to.not.equal(undefined);
    expect(document!.version()).to.equal('3.0.0');

    const messages = document!.components().messages().all().map((m) => m.id());
    for (const [type, def] of Object.entries(catalog)) {
      for (const v of Object.keys(def.versions)) expect(messages, `${type} v${v}`).to.include(`${type}.v${v}`);
    }
    const addresses = document!.channels().all().map((c) => c.address());
    const operations = document!.operations().all().map((o) => o.id());
    for (const access of fleetAccess('')) {
      for (const queue of access.topology.queues) {
        expect(addresses, queue.name).to.include(queue.name);
        expect(operations, `${access.user} receives ${queue.name}`).to.include(`${access.user}.receives.${queue.name}`);
      }
    }
    for (const step of SAGA_STEPS) {
      for (const command of [step.command, step.undo.command]) expect(operations).to.include(`temporal-worker.sends.${command}`);
      const worker = step.command.split('.')[0]!;
      for (const result of [step.ok, step.fail, step.undo.ok]) expect(operations, `${worker} sends ${result}`).to.include(`${worker}.sends.${result}`);
    }
  });
});
