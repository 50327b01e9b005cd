import { expect } from 'chai';
import { Type } from '@sinclair/typebox';
import { checkCatalog, compareSchemas, extendLock } from '../../shared/events/compat';
import { catalog } from '../../shared/events';
import { runTs } from '../helpers/processes';

const V1 = Type.Object({ orderId: Type.String(), amount: Type.Number(), note: Type.Optional(Type.String()) });

describe('schema evolution rules', () => {
  it('lets a new version add an optional field', () => {
    const v2 = Type.Object({ orderId: Type.String(), amount: Type.Number(), note: Type.Optional(Type.String()), tip: Type.Optional(Type.Number()) });
    expect(compareSchemas(V1, v2)).to.deep.equal([]);
  });

  it('fails a new version that removes a required field', () => {
    const v2 = Type.Object({ orderId: Type.String(), note: Type.Optional(Type.String()) });
    expect(compareSchemas(V1, v2)).to.deep.equal([{ path: '$.amount', rule: 'required_field_removed', detail: 'a required field was removed' }]);
  });

  it("fails a new version that changes a field's type", () => {
    const v2 = Type.Object({ orderId: Type.String(), amount: Type.String(), note: Type.Optional(Type.String()) });
    expect(compareSchemas(V1, v2).map((v) => v.rule)).to.deep.equal(['type_changed']);
  });

  it('fails a type change deep inside arrays of objects', () => {
    const a = Type.Object({ items: Type.Array(Type.Object({ qty: Type.Integer() })) });
    const b = Type.Object({ items: Type.Array(Type.Object({ qty: Type.String() })) });
    expect(compareSchemas(a, b)).to.deep.equal([{ path: '$.items[].qty', rule: 'type_changed', detail: 'integer became string' }]);
  });

  it('fails a new version that adds a required field (older messages would fail it)', () => {
    const v2 = Type.Object({ orderId: Type.String(), amount: Type.Number(), note: Type.Optional(Type.String()), tip: Type.Number() });
    expect(compareSchemas(V1, v2).map((v) => v.rule)).to.deep.equal(['required_field_added']);
  });

  it('fails an optional field that becomes required', () => {
    const v2 = Type.Object({ orderId: Type.String(), amount: Type.Number(), note: Type.String() });
    expect(compareSchemas(V1, v2).map((v) => v.rule)).to.deep.equal(['field_became_required']);
  });

  it('lets a new version remove an optional field or relax a required one', () => {
    const v2 = Type.Object({ orderId: Type.String(), amount: Type.Optional(Type.Number()) });
    expect(compareSchemas(V1, v2)).to.deep.equal([]);
  });

  it('freezes a published version: changing it in place fails, adding v2 passes', () => {
    const published = { 'x.happened': { latest: 1, versions: { 1: V1 } } };
    const lock = extendLock(published, {});
    const edited = { 'x.happened': { latest: 1, versions: { 1: Type.Object({ orderId: Type.String() }) } } };
    expect(checkCatalog(edited, lock)).to.deep.equal(['x.happened: published v1 was changed; add v2 instead']);
    const evolved = { 'x.happened': { latest: 2, versions: { 1: V1, 2: Type.Object({ ...V1.properties, tip: Type.Optional(Type.Number()) }) } } };
    expect(checkCatalog(evolved, lock)).to.deep.equal([]);
  });

  it('accepts the catalog as it is in the repo', () => {
    expect(checkCatalog(catalog, extendLock(catalog, {}))).to.deep.equal([]);
  });

  it('`npm run schemas:check` fails on a catalog that breaks the rules, naming each problem', async () => {
    const child = runTs('scripts/schemas-check.ts', ['--catalog', 'test/fixtures/catalogs/breaking.ts', '--lock', '/nonexistent/lock.json']);
    const { code } = await child.exited();
    const out = child.output.join('\n');
    expect(code).to.equal(1);
    expect(out).to.include('order.placed: v1 -> v2: required_field_removed at $.customerId');
    expect(out).to.include('order.placed: v1 -> v2: type_changed at $.totalAmount');
  });

  it('`npm run schemas:check` passes on the catalog in the repo', async () => {
    const child = runTs('scripts/schemas-check.ts');
    expect((await child.exited()).code).to.equal(0, child.output.join('\n'));
  });
});
