// The evolution rules of each compatibility mode (shared/events/compat.ts), the checker that
// applies a type's mode to every pair of its versions, and `npm run schemas:check`.
import { expect } from 'chai';
import { Type, type TSchema } from '@sinclair/typebox';
import { checkCatalog, compareSchemas, directionsOf, extendLock, keepKnownFields, type Compatibility, type JsonSchema } from '../../shared/events/compat';
import { catalog, isMessageType } from '../../shared/events';
import { runTs } from '../helpers/processes';

const V1 = Type.Object({ orderId: Type.String(), amount: Type.Number(), note: Type.Optional(Type.String()) });

/** A catalog of one type, x.happened, with these versions (the last is latest). */
const oneType = (compatibility: Compatibility, ...versions: TSchema[]) => ({
  'x.happened': { latest: versions.length, compatibility, versions: Object.fromEntries(versions.map((v, i) => [i + 1, v])) },
});

describe('schema evolution rules (backward: a newer version reads older messages)', () => {
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

  describe('a union of constants (an enum)', () => {
    const status = (...values: string[]) => Type.Object({ orderId: Type.String(), status: Type.Union(values.map((v) => Type.Literal(v))) });

    it('may gain values: every older message still passes', () => {
      expect(compareSchemas(status('a', 'b'), status('a', 'b', 'c'))).to.deep.equal([]);
      expect(compareSchemas(status('a', 'b'), status('c', 'b', 'a')), 'in any order').to.deep.equal([]);
    });

    it('may not lose one: older messages with it would fail', () => {
      expect(compareSchemas(status('a', 'b', 'c'), status('a', 'c', 'd'))).to.deep.equal([{ path: '$.status', rule: 'enum_value_removed', detail: '"b" removed' }]);
    });

    it('lets a single constant widen into a union that keeps it', () => {
      const v1 = Type.Object({ reason: Type.Literal('out_of_stock') });
      expect(compareSchemas(v1, Type.Object({ reason: Type.Union([Type.Literal('out_of_stock'), Type.Literal('discontinued')]) }))).to.deep.equal([]);
      expect(compareSchemas(v1, Type.Object({ reason: Type.Literal('discontinued') })).map((v) => v.rule)).to.deep.equal(['enum_value_removed']);
    });

    it('is still a type change when it becomes something other than constants', () => {
      const v2 = Type.Object({ orderId: Type.String(), status: Type.String() });
      expect(compareSchemas(status('a', 'b'), v2).map((v) => v.rule)).to.deep.equal(['type_changed']);
      const mixed = Type.Object({ orderId: Type.String(), status: Type.Union([Type.Literal('a'), Type.Literal('b'), Type.Number()]) });
      expect(compareSchemas(status('a', 'b'), mixed).map((v) => v.rule)).to.deep.equal(['type_changed']);
    });
  });

  it('lets order.cancelled v2 add the reasons step_timed_out and step_failed, and the optional failedStep', () => {
    const { 1: v1, 2: v2 } = catalog['order.cancelled'].versions;
    expect(compareSchemas(v1, v2)).to.deep.equal([]);
    expect(compareSchemas(v2, v1).map((v) => `${v.rule} ${v.path}`), 'going back would lose the new reasons').to.deep.equal(['enum_value_removed $.reason']);
  });

});

describe('schema evolution rules (forward: an older version reads newer messages, dropping the fields it does not know)', () => {
  const forward = (older: JsonSchema, newer: JsonSchema) => compareSchemas(older, newer, 'forward').map((v) => `${v.rule} ${v.path}`);

  it('lets a newer version add fields, optional or required: the older reader drops them', () => {
    expect(forward(V1, Type.Object({ ...V1.properties, tip: Type.Optional(Type.Number()) }))).to.deep.equal([]);
    expect(forward(V1, Type.Object({ ...V1.properties, tip: Type.Number() }))).to.deep.equal([]);
  });

  it('lets a newer version drop a field the older has as optional, or make an optional one required', () => {
    expect(forward(V1, Type.Object({ orderId: Type.String(), amount: Type.Number() }))).to.deep.equal([]);
    expect(forward(V1, Type.Object({ orderId: Type.String(), amount: Type.Number(), note: Type.String() }))).to.deep.equal([]);
  });

  it('fails a newer version that drops or relaxes a field the older requires', () => {
    expect(forward(V1, Type.Object({ orderId: Type.String(), note: Type.Optional(Type.String()) }))).to.deep.equal(['required_field_removed $.amount']);
    expect(forward(V1, Type.Object({ orderId: Type.String(), amount: Type.Optional(Type.Number()), note: Type.Optional(Type.String()) }))).to.deep.equal(['field_became_optional $.amount']);
  });

  it('fails a type change and a value added to a union of constants, deep inside objects and arrays', () => {
    const a = Type.Object({ items: Type.Array(Type.Object({ qty: Type.Integer(), unit: Type.Union([Type.Literal('kg'), Type.Literal('pc')]) })) });
    const b = Type.Object({ items: Type.Array(Type.Object({ qty: Type.String(), unit: Type.Union([Type.Literal('kg'), Type.Literal('pc'), Type.Literal('l')]) })) });
    expect(forward(a, b)).to.deep.equal(['type_changed $.items[].qty', 'enum_value_added $.items[].unit']);
    const fewer = Type.Object({ items: Type.Array(Type.Object({ qty: Type.Integer(), unit: Type.Literal('kg') })) });
    expect(forward(a, fewer), 'a value removed: the older reader knows every value left').to.deep.equal([]);
  });

  it("finds order.placed v2 readable by a v1 consumer, and order.cancelled v2's new reasons not", () => {
    expect(forward(catalog['order.placed'].versions[1], catalog['order.placed'].versions[2])).to.deep.equal([]);
    expect(forward(catalog['order.cancelled'].versions[1], catalog['order.cancelled'].versions[2])).to.deep.equal(['enum_value_added $.reason']);
  });
});

describe('compatibility modes', () => {
  it('checks backward, forward, or both (full)', () => {
    expect(directionsOf('backward')).to.deep.equal(['backward']);
    expect(directionsOf('forward')).to.deep.equal(['forward']);
    expect(directionsOf('full')).to.deep.equal(['backward', 'forward']);
  });

  it('gives events full and commands backward unless a type says otherwise: order.cancelled is backward (its v2 added reasons)', () => {
    for (const type of Object.keys(catalog).filter(isMessageType)) {
      const def = catalog[type];
      const expected = type === 'order.cancelled' || def.kind === 'command' ? 'backward' : 'full';
      expect(def.compatibility, type).to.equal(expected);
    }
  });

  it('checks each direction its mode covers, and only those', () => {
    const status = (...values: string[]) => Type.Object({ status: Type.Union(values.map((v) => Type.Literal(v))) });
    const gained = (mode: Compatibility) => checkCatalog(oneType(mode, status('a'), status('a', 'b')), {});
    expect(gained('backward')).to.deep.equal([]);
    expect(gained('forward')).to.deep.equal(['x.happened: v1 reading v2 (forward): enum_value_added at $.status ("b" added: the older version refuses it)']);
    expect(gained('full')).to.deep.equal(gained('forward'));
    const lost = (mode: Compatibility) => checkCatalog(oneType(mode, status('a', 'b'), status('a')), {});
    expect(lost('forward')).to.deep.equal([]);
    expect(lost('backward')).to.deep.equal(['x.happened: v2 reading v1 (backward): enum_value_removed at $.status ("b" removed)']);
  });

  it('checks every pair of versions, not only neighbours: v3 against v1 too', () => {
    // Each step is allowed (an optional field removed, then one added), but v1 and v3 disagree on its type.
    const v1 = Type.Object({ orderId: Type.String(), note: Type.Optional(Type.String()) });
    const v2 = Type.Object({ orderId: Type.String() });
    const v3 = Type.Object({ orderId: Type.String(), note: Type.Optional(Type.Number()) });
    expect(checkCatalog(oneType('full', v1, v2), {})).to.deep.equal([]);
    expect(checkCatalog(oneType('full', v2, v3), {})).to.deep.equal([]);
    expect(checkCatalog(oneType('full', v1, v2, v3), {})).to.deep.equal([
      'x.happened: v3 reading v1 (backward): type_changed at $.note (string became number)',
      'x.happened: v1 reading v3 (forward): type_changed at $.note (string became number)',
    ]);
  });

  it('refuses a mode it does not know', () => {
    const wrong = { 'x.happened': { latest: 1, compatibility: 'transitive' as Compatibility, versions: { 1: V1 } } };
    expect(checkCatalog(wrong, {})).to.deep.equal(['x.happened: compatibility must be backward, forward, full (found transitive)']);
  });
});

describe('keepKnownFields (what an older reader sees of a newer message)', () => {
  const Line = Type.Object({ sku: Type.String(), quantity: Type.Integer() }, { additionalProperties: false });
  const Known = Type.Object({ orderId: Type.String(), lines: Type.Array(Line), meta: Type.Object({}, { additionalProperties: true }) }, { additionalProperties: false });

  it('drops the fields a closed schema does not name, deep inside objects and arrays, and keeps what an open one takes', () => {
    const newer = { orderId: 'o1', giftWrap: true, lines: [{ sku: 'A', quantity: 1, discount: 0.1 }], meta: { anything: 1 } };
    expect(keepKnownFields(Known, newer)).to.deep.equal({ orderId: 'o1', lines: [{ sku: 'A', quantity: 1 }], meta: { anything: 1 } });
    expect(newer, 'the message itself is not changed').to.deep.equal({ orderId: 'o1', giftWrap: true, lines: [{ sku: 'A', quantity: 1, discount: 0.1 }], meta: { anything: 1 } });
  });

  it('leaves a value of the wrong shape as it is, for the schema check to refuse', () => {
    expect(keepKnownFields(Known, { orderId: 'o1', lines: 'none' })).to.deep.equal({ orderId: 'o1', lines: 'none' });
    expect(keepKnownFields(Known, 'text')).to.equal('text');
  });

  it('reads order.placed v2 as v1: its shipping address dropped', () => {
    const v2 = { orderId: 'o1', customerId: 'c', items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1 }], totalAmount: 1, currency: 'EUR', shippingAddress: { city: 'Berlin', country: 'DE' } };
    const { shippingAddress: _dropped, ...v1 } = v2;
    expect(keepKnownFields(catalog['order.placed'].versions[1], v2)).to.deep.equal(v1);
  });
});

describe('the catalog check', () => {
  it('freezes a published version: changing it in place fails, adding v2 passes', () => {
    const published = oneType('full', V1);
    const lock = extendLock(published, {});
    expect(checkCatalog(oneType('full', Type.Object({ orderId: Type.String() })), lock)).to.deep.equal(['x.happened: published v1 was changed; add v2 instead']);
    expect(checkCatalog(oneType('full', V1, Type.Object({ ...V1.properties, tip: Type.Optional(Type.Number()) })), lock)).to.deep.equal([]);
  });

  it('accepts the catalog as it is in the repo', () => {
    expect(checkCatalog(catalog, extendLock(catalog, {}))).to.deep.equal([]);
  });

  it('`npm run schemas:check` fails on a catalog that breaks the rules, naming each problem and the direction it breaks', async () => {
    const child = runTs('scripts/schemas-check.ts', ['--catalog', 'test/fixtures/catalogs/breaking.ts', '--lock', '/nonexistent/lock.json']);
    const { code } = await child.exited();
    const out = child.output.join('\n');
    expect(code).to.equal(1);
    expect(out).to.include('order.placed: v2 reading v1 (backward): required_field_removed at $.customerId');
    expect(out).to.include('order.placed: v2 reading v1 (backward): type_changed at $.totalAmount');
    expect(out).to.include('order.placed: v1 reading v2 (forward): required_field_removed at $.customerId');
  });

  it('`npm run schemas:check` passes on the catalog in the repo', async () => {
    const child = runTs('scripts/schemas-check.ts');
    expect((await child.exited()).code).to.equal(0, child.output.join('\n'));
  });
});
