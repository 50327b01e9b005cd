// The evolution rules between versions of a message schema, as pure functions, for each
// compatibility mode a message type declares (docs/messaging.md#schemas-and-their-evolution):
//  - backward: a newer version reads messages of an older one. It may add optional fields,
//    drop optional ones (its reader drops them too), relax required ones to optional, and
//    add values to a union of constants (an enum gaining a symbol, as in Avro): every
//    message of the older version still passes it. It may not remove a required field,
//    change a field's type, remove a value from a union of constants, or add a required
//    field (messages of the older version would fail it).
//  - forward: an older version reads messages of a newer one once the fields it does not know
//    are dropped (keepKnownFields). The newer may add fields, required or not, and drop
//    fields the older has as optional; it may not drop or relax a field the older requires,
//    change a field's type, or add a value to a union of constants (the older reader would
//    refuse it).
//  - full: both.
// checkCatalog applies a type's mode to every pair of its versions, not only to consecutive
// ones. Workflow-safe: no Node, no I/O.

/** Which readers a message type promises to keep working (catalog.ts gives each type one). */
export type Compatibility = 'backward' | 'forward' | 'full';
export const COMPATIBILITIES: readonly Compatibility[] = ['backward', 'forward', 'full'];

/** The subset of JSON Schema the rules look at. */
export interface JsonSchema {
  type?: string | string[];
  const?: unknown;
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: unknown;
}

/** Who reads whom: backward, a newer version reads an older one's messages; forward, the other way. */
export type Direction = 'backward' | 'forward';

/** The directions a mode checks. */
export function directionsOf(mode: Compatibility): Direction[] {
  return mode === 'full' ? ['backward', 'forward'] : [mode];
}

export interface Violation {
  path: string;
  rule: 'required_field_removed' | 'type_changed' | 'enum_value_removed' | 'enum_value_added' | 'required_field_added' | 'field_became_required' | 'field_became_optional';
  detail: string;
}

const own = (record: Record<string, JsonSchema>, name: string): JsonSchema | undefined =>
  Object.prototype.hasOwnProperty.call(record, name) ? record[name] : undefined;

function signature(schema: JsonSchema): string {
  if (schema.anyOf) return `anyOf(${schema.anyOf.map(signature).sort().join('|')})`;
  if (schema.const !== undefined) return `const(${JSON.stringify(schema.const)})`;
  if (Array.isArray(schema.type)) return [...schema.type].sort().join('|');
  return schema.type ?? 'any';
}

/** The values of a union of constants (a lone constant is a union of one), else undefined. */
function constantsOf(schema: JsonSchema): string[] | undefined {
  if (schema.const !== undefined) return [JSON.stringify(schema.const)];
  if (!schema.anyOf?.length || !schema.anyOf.every((s) => s.const !== undefined)) return undefined;
  return schema.anyOf.map((s) => JSON.stringify(s.const));
}

/**
 * What keeps one version of a schema from reading messages of the other: backward (the
 * default), the newer reading the older; forward, the older reading the newer once the
 * fields it does not know are dropped. Deep inside objects and arrays too.
 */
export function compareSchemas(older: JsonSchema, newer: JsonSchema, direction: Direction = 'backward', path = '$'): Violation[] {
  const oldValues = constantsOf(older);
  const newValues = constantsOf(newer);
  if (oldValues && newValues) {
    if (direction === 'backward') {
      const removed = oldValues.filter((v) => !newValues.includes(v));
      return removed.length === 0 ? [] : [{ path, rule: 'enum_value_removed', detail: `${removed.join(', ')} removed` }];
    }
    const added = newValues.filter((v) => !oldValues.includes(v));
    return added.length === 0 ? [] : [{ path, rule: 'enum_value_added', detail: `${added.join(', ')} added: the older version refuses it` }];
  }
  const before = signature(older);
  const after = signature(newer);
  if (before !== after) {
    return [{ path, rule: 'type_changed', detail: `${before} became ${after}` }];
  }
  const violations: Violation[] = [];
  if (older.items && newer.items) violations.push(...compareSchemas(older.items, newer.items, direction, `${path}[]`));
  if (older.properties || newer.properties) {
    const oldProps = older.properties ?? {};
    const newProps = newer.properties ?? {};
    const oldRequired = new Set(older.required ?? []);
    const newRequired = new Set(newer.required ?? []);
    for (const [name, oldProp] of Object.entries(oldProps)) {
      const at = `${path}.${name}`;
      const newProp = own(newProps, name);
      if (!newProp) {
        if (oldRequired.has(name)) {
          violations.push({ path: at, rule: 'required_field_removed', detail: 'a required field was removed' });
        }
        continue;
      }
      if (direction === 'backward' && !oldRequired.has(name) && newRequired.has(name)) {
        violations.push({ path: at, rule: 'field_became_required', detail: 'an optional field became required' });
      }
      if (direction === 'forward' && oldRequired.has(name) && !newRequired.has(name)) {
        violations.push({ path: at, rule: 'field_became_optional', detail: 'the older version requires it' });
      }
      violations.push(...compareSchemas(oldProp, newProp, direction, at));
    }
    // Forward, a field the older version does not know is dropped before it reads: any may be added.
    for (const name of Object.keys(newProps)) {
      if (direction === 'backward' && !own(oldProps, name) && newRequired.has(name)) {
        violations.push({ path: `${path}.${name}`, rule: 'required_field_added', detail: 'a new field must be optional' });
      }
    }
  }
  return violations;
}

/**
 * A value as a reader of `schema` sees it: each object whose schema is closed
 * (additionalProperties false) keeps only the properties the schema names, deep inside
 * objects and arrays; anything else is kept as it is, for the schema check that follows to
 * judge. A new value: the input is never changed.
 */
export function keepKnownFields(schema: JsonSchema, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((item) => keepKnownFields(schema.items as JsonSchema, item)) : value;
  if (value === null || typeof value !== 'object' || !schema.properties) return value;
  const properties = schema.properties;
  const kept: Array<[string, unknown]> = [];
  for (const [name, field] of Object.entries(value)) {
    const fieldSchema = own(properties, name);
    if (fieldSchema) kept.push([name, keepKnownFields(fieldSchema, field)]);
    else if (schema.additionalProperties !== false) kept.push([name, field]);
  }
  return Object.fromEntries(kept);
}

/** Serialises a schema with sorted keys so that equal schemas compare equal as text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)));
    }
    return v;
  });
}

export type SchemaLock = Record<string, Record<string, unknown>>;

export interface CatalogLike {
  [type: string]: { latest: number; compatibility: Compatibility; versions: Readonly<Record<number, unknown>> };
}

/**
 * Checks a whole catalog: versions numbered 1..n with `latest` among them, every pair of
 * versions compatible in each direction the type's mode covers (a reader may be any number
 * of versions behind or ahead), and every version in the lock unchanged.
 */
export function checkCatalog(catalog: CatalogLike, lock: SchemaLock): string[] {
  const problems: string[] = [];
  for (const [type, def] of Object.entries(catalog)) {
    const numbers = Object.keys(def.versions).map(Number).sort((a, b) => a - b);
    numbers.forEach((n, i) => {
      if (n !== i + 1) problems.push(`${type}: versions must be numbered 1..n, found v${n} at position ${i + 1}`);
    });
    if (!numbers.includes(def.latest)) problems.push(`${type}: latest version v${def.latest} is not defined`);
    if (!COMPATIBILITIES.includes(def.compatibility)) {
      problems.push(`${type}: compatibility must be ${COMPATIBILITIES.join(', ')} (found ${String(def.compatibility)})`);
    } else {
      for (const [i, older] of numbers.entries()) {
        for (const newer of numbers.slice(i + 1)) {
          for (const direction of directionsOf(def.compatibility)) {
            const [reader, written] = direction === 'backward' ? [newer, older] : [older, newer];
            for (const v of compareSchemas(def.versions[older] as JsonSchema, def.versions[newer] as JsonSchema, direction)) {
              problems.push(`${type}: v${reader} reading v${written} (${direction}): ${v.rule} at ${v.path} (${v.detail})`);
            }
          }
        }
      }
    }
    for (const [version, frozen] of Object.entries(lock[type] ?? {})) {
      const current = def.versions[Number(version)];
      if (current === undefined) problems.push(`${type}: published v${version} was removed`);
      else if (canonicalJson(current) !== canonicalJson(frozen)) {
        problems.push(`${type}: published v${version} was changed; add v${Number(version) + 1} instead`);
      }
    }
  }
  for (const type of Object.keys(lock)) {
    if (!(type in catalog)) problems.push(`${type}: a published message type was removed`);
  }
  return problems;
}

/** The lock with every version of the catalog in it (existing entries are kept as they are). */
export function extendLock(catalog: CatalogLike, lock: SchemaLock): SchemaLock {
  const next: SchemaLock = {};
  for (const [type, def] of Object.entries(catalog)) {
    next[type] = { ...(lock[type] ?? {}) };
    for (const [version, schema] of Object.entries(def.versions)) {
      next[type][version] ??= JSON.parse(JSON.stringify(schema)) as unknown;
    }
  }
  return next;
}
