import { expect } from 'chai';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary } from '../../shared/temporal/binaries';

function fakeBinary(dir: string, name: string): string {
  const path = join(dir, name);
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, 0o755);
  return path;
}

describe('finding the Temporal binaries', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bins-'));
  const onPath = fakeBinary(dir, 'some-temporal-tool');

  it('prefers the path from the environment', () => {
    const fromEnv = fakeBinary(mkdtempSync(join(tmpdir(), 'env-')), 'temporal');
    expect(findBinary('temporal', fromEnv, dir)).to.deep.equal({ path: fromEnv, source: 'env' });
  });

  it('refuses an environment path that is not an executable', () => {
    expect(() => findBinary('temporal', '/nonexistent/temporal', dir)).to.throw(/not an executable/);
  });

  it("then the project's virtualenv (scripts/install-temporal.sh)", () => {
    const venvBin = mkdtempSync(join(tmpdir(), 'venv-'));
    const inVenv = fakeBinary(venvBin, 'some-temporal-tool');
    expect(findBinary('some-temporal-tool', undefined, dir, venvBin)).to.deep.equal({ path: inVenv, source: 'venv' });
  });

  it('then PATH', () => {
    expect(findBinary('some-temporal-tool', undefined, `/nonexistent:${dir}`, '/nonexistent')).to.deep.equal({ path: onPath, source: 'path' });
  });

  it('else nothing, so that the SDK downloads its own', () => {
    expect(findBinary('no-such-temporal-tool', undefined, dir)).to.equal(undefined);
  });
});
