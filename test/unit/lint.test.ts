// The lint rules of docs/architecture.md#rules-of-the-code fail the build: Node-only imports in workflows, floating promises.
import { expect } from 'chai';
import { ESLint } from 'eslint';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/processes';

describe('lint', function () {
  this.timeout(60_000);
  const probe = join(ROOT, 'workflows', `lint-probe-${process.pid}.ts`);
  after(() => rmSync(probe, { force: true }));

  it('fails workflow code that imports Node-only modules or leaves a promise floating', async () => {
    writeFileSync(
      probe,
      [
        "import { Pool } from 'pg';",
        "import Redis from 'ioredis';",
        "import { container } from 'tsyringe';",
        "import 'reflect-metadata';",
        "import * as amqp from 'amqplib';",
        "import { readFileSync } from 'node:fs';",
        "import { createHash } from 'crypto';",
        "import { getConfig } from '../shared/config';",
        "import type { Envelope } from '../shared/events';",
        "import { PermanentError } from '../shared/errors';",
        'async function step(): Promise<void> {}',
        'export function run(): void { step(); }',
        'export const used = [Pool, Redis, container, amqp, readFileSync, createHash, getConfig, PermanentError];',
        'export type E = Envelope;',
      ].join('\n'),
    );
    const [result] = await new ESLint({ cwd: ROOT }).lintFiles([probe]);
    const byRule = (result?.messages ?? []).map((m) => `${m.line}:${m.ruleId ?? ''}`);
    expect(byRule).to.have.members([
      '1:no-restricted-imports',
      '2:no-restricted-imports',
      '3:no-restricted-imports',
      '4:no-restricted-imports',
      '5:no-restricted-imports',
      '6:no-restricted-imports',
      '7:no-restricted-imports',
      '8:no-restricted-imports',
      '12:@typescript-eslint/no-floating-promises',
    ]);
  });
});
