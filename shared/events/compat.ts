// The evolution rules between consecutive versions of a message schema, as pure functions.
// A new version may add optional fields and relax required ones to optional. It may not
// remove a required field, change a field's type, or add a required field (messages of
// the older version would fail it).

/** The subset of JSON Schema the rules look at. */
export interface JsonSchema {
  type?: string | string[];
  const?: unknown;
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
}

export interface Violation {
  path: string;
  rule: 'required_field_removed' | 'type_changed' | 'required_field_added' | 'field_became_required';
  detail: string;
}

function signature(schema: JsonSchema): string {
  if (schema.anyOf) return `anyOf(${schema.anyOf.map(signature).sort().join('|')})`;
  if (schema.const !== undefined) return `const(${JSON.stringify(schema.const)})`;
  if (Array.isArray(schema.type)) return [...schema.type].sort().join('|');
  return schema.type ?? 'any';
}

export function compareSchemas(older: JsonSchema, newer: JsonSchema, path = '$'): Violation[] {
  const before = signature(older);
  const after = signature(newer);
  if (before !== after) {
    return [{ path, rule: 'type_changed', detail: `${before} became ${after}` }];
  }
  const violations: Violation[] = [];
  if (older.items && newer.items) violations.push(...compareSchemas(older.items, newer.items, `${path}[]`));
  if (older.properties || newer.properties) {
    const oldProps = older.properties ?? {};
    const newProps = newer.properties ?? {};
    const oldRequired = new Set(older.required ?? []);
    const newRequired = new Set(newer.required ?? []);
    for (const [name, oldProp] of Object.entries(oldProps)) {
      const at = `${path}.${name}`;
      const newProp = newProps[name];
      if (!newProp) {
        if (oldRequired.has(name)) {
          violations.push({ path: at, rule: 'required_field_removed', detail: 'a required field was removed' });
        }
        continue;
      }
      if (!oldRequired.has(name) && newRequired.has(name)) {
        violations.push({ path: at, rule: 'field_became_required', detail: 'an optional field became required' });
      }
      violations.push(...compareSchemas(oldProp, newProp, at));
    }
    for (const name of Object.keys(newProps)) {
      if (!(name in oldProps) && newRequired.has(name)) {
        violations.push({ path: `${path}.${name}`, rule: 'required_field_added', detail: 'a new field must be optional' });
      }
    }
  }
  return violations;
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
  [type: string]: { latest: number; versions: Readonly<Record<number, unknown>> };
}

/**
 * Checks a whole catalog: versions numbered 1..n with `latest` among them, each version
 * compatible with the one before, and every version in the lock unchanged.
 */
export function checkCatalog(catalog: CatalogLike, lock: SchemaLock): string[] {
  const problems: string[] = [];
  for (const [type, def] of Object.entries(catalog)) {
    const numbers = Object.keys(def.versions).map(Number).sort((a, b) => a - b);
    numbers.forEach((n, i) => {
      if (n !== i + 1) problems.push(`${type}: versions must be numbered 1..n, found v${n} at position ${i + 1}`);
    });
    if (!numbers.includes(def.latest)) problems.push(`${type}: latest version v${def.latest} is not defined`);
    for (let i = 1; i < numbers.length; i++) {
      const from = numbers[i - 1] as number;
      const to = numbers[i] as number;
      for (const v of compareSchemas(def.versions[from] as JsonSchema, def.versions[to] as JsonSchema)) {
        problems.push(`${type}: v${from} -> v${to}: ${v.rule} at ${v.path} (${v.detail})`);
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
