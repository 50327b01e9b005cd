// Checks envelopes and data against a catalog, at publish and at consume. Every schema is
// compiled once, at construction. A producer's message is checked as it is (check); a
// consumer reads every version as its catalog's latest (read): an older one upcast, a newer
// one, when its type's mode is forward or full, with the fields the latest does not know
// dropped (docs/messaging.md#how-a-consumer-reads-another-version). A held-back producer
// publishes an older version (downcast). Messages at the latest, nearly all of them, cost
// one check.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { DowncastError, PoisonMessageError } from '../errors';
import { catalog as defaultCatalog, EnvelopeSchema, type Catalog, type Envelope, type MessageDefinition } from '../events';
import { keepKnownFields, type JsonSchema } from '../events/compat';
import { upcast } from '../events/upcast';
import { silentLogger, type Logger } from '../observability/logger';

/** The value a JSON pointer (an error's instancePath) names. */
function valueAt(data: unknown, pointer: string): unknown {
  let value = data;
  for (const key of pointer.split('/').slice(1)) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return value;
}

function describe(errors: ErrorObject[] | null | undefined, data: unknown): string {
  const all = errors ?? [];
  // A union's failure comes with one error per branch before its own: keep the union's.
  const unions = new Set(all.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  return all
    .filter((e) => e.keyword === 'anyOf' || !unions.has(e.instancePath))
    .slice(0, 5)
    .map((e) => {
      const path = e.instancePath || '/';
      if (e.keyword === 'anyOf') return `${path} ${JSON.stringify(valueAt(data, e.instancePath))} is not one of the values it allows`;
      const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
      return `${path} ${e.message ?? 'is invalid'}${extra}`;
    })
    .join('; ');
}

export interface MessageValidatorOptions {
  /** Where read() says, once per type and version, that a newer version is on the wire. */
  logger?: Logger;
}

export class MessageValidator {
  private readonly envelope: ValidateFunction;
  /** Each type's compiled data schemas, by version. */
  private readonly data = new Map<string, Map<number, ValidateFunction>>();
  private readonly logger: Logger;
  /** The newer versions read so far (`type@version`), each logged once. */
  private readonly newerSeen = new Set<string>();

  constructor(
    readonly catalog: Catalog = defaultCatalog,
    options: MessageValidatorOptions = {},
  ) {
    this.logger = options.logger ?? silentLogger;
    // multipleOfPrecision: money is checked as multipleOf 0.01, which plain floats fail (19.99 / 0.01).
    const ajv = new Ajv({ allErrors: false, strict: true, multipleOfPrecision: 9 });
    addFormats(ajv, ['date-time']);
    this.envelope = ajv.compile(EnvelopeSchema);
    for (const [type, def] of Object.entries(catalog)) {
      this.data.set(type, new Map(Object.entries(def.versions).map(([version, schema]) => [Number(version), ajv.compile(schema)])));
    }
  }

  /** The exchange a type is published to, or undefined for an unknown type. */
  exchangeOf(type: string): string | undefined {
    return this.definitionOf(type)?.exchange;
  }

  latestVersion(type: string): number | undefined {
    return this.definitionOf(type)?.latest;
  }

  private definitionOf(type: string): MessageDefinition | undefined {
    return Object.prototype.hasOwnProperty.call(this.catalog, type) ? this.catalog[type] : undefined;
  }

  /** Parses a delivered message body and reads it (read); throws PoisonMessageError with the reason. */
  parse(body: Buffer): Envelope {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new PoisonMessageError('bad_json', err instanceof Error ? err.message : 'not JSON');
    }
    return this.read(value);
  }

  /** Checks a message as it is, against the schema of its own version: what a producer may publish. */
  check(value: unknown): Envelope {
    const { envelope, def } = this.checkEnvelope(value);
    return this.checkVersion(envelope, def);
  }

  /**
   * A delivered message as its handler gets it: at its type's latest version in this
   * catalog, its data valid under the latest's schema. An older version is checked against
   * its own schema and upcast (shared/events/upcast.ts). A newer one (unknown here, or known
   * but past latest) is read as the latest only when the type's mode is forward or full, and
   * that a newer version is on the wire is logged once per type and version; backward only,
   * it is poison (unknown_version). Either way the fields the latest does not know are
   * dropped and the rest checked against it (schema_validation, naming both versions).
   * Returns a new envelope: the message as delivered is never changed, so a retried or
   * dead-lettered copy is the original.
   */
  read(value: unknown): Envelope {
    const { envelope, def } = this.checkEnvelope(value);
    const { eventType: type, schemaVersion: version } = envelope;
    const latest = def.latest;
    if (version === latest) return this.checkVersion(envelope, def);
    if (version > latest && def.compatibility === 'backward') {
      throw new PoisonMessageError(
        'unknown_version',
        `${type} v${version} is newer than v${latest}, the latest this consumer knows, and ${type} is backward compatible only: it cannot be read as v${latest}`,
      );
    }
    // An older version, or a newer one this catalog has (staged past latest), must pass its own schema first.
    const known = Object.prototype.hasOwnProperty.call(def.versions, version);
    const given = version < latest || known ? this.checkVersion(envelope, def) : envelope;
    const data = keepKnownFields(def.versions[latest] as JsonSchema, version < latest ? upcast(given, latest).data : given.data);
    const validate = this.validatorOf(type, latest);
    if (!validate(data)) {
      throw new PoisonMessageError('schema_validation', `${type} v${version} read as v${latest}, the latest this consumer knows: ${describe(validate.errors, data)}`);
    }
    if (version > latest && !this.newerSeen.has(`${type}@${version}`)) {
      this.newerSeen.add(`${type}@${version}`);
      this.logger.warn({ eventType: type, schemaVersion: version, readAs: latest }, 'a newer schema version is on the wire: reading it as the latest this consumer knows, its unknown fields ignored');
    }
    return { ...envelope, schemaVersion: latest, data: data as Record<string, unknown> };
  }

  /**
   * A checked envelope as version `version` of its type (PUBLISH_HOLD_BACK): the fields that
   * version does not have dropped, the rest checked against its schema. Throws DowncastError
   * when the data cannot be said in that version (a value or a required field only a newer
   * version has). An envelope at or below `version` comes back as it is.
   */
  downcast(envelope: Envelope, version: number): Envelope {
    const def = this.definitionOf(envelope.eventType);
    if (envelope.schemaVersion <= version || !def) return envelope;
    const what = `${envelope.eventType} v${envelope.schemaVersion} cannot be published as v${version}`;
    if (!Object.prototype.hasOwnProperty.call(def.versions, version)) throw new DowncastError(`${what}: ${envelope.eventType} has no v${version}`);
    const data = keepKnownFields(def.versions[version] as JsonSchema, envelope.data);
    const validate = this.validatorOf(envelope.eventType, version);
    if (!validate(data)) throw new DowncastError(`${what} (held back by PUBLISH_HOLD_BACK): ${describe(validate.errors, data)}`);
    return { ...envelope, schemaVersion: version, data: data as Record<string, unknown> };
  }

  /** Checks the envelope's shape and that its type is in the catalog. */
  private checkEnvelope(value: unknown): { envelope: Envelope; def: MessageDefinition } {
    if (!this.envelope(value)) throw new PoisonMessageError('invalid_envelope', describe(this.envelope.errors, value));
    const envelope = value as Envelope;
    const def = this.definitionOf(envelope.eventType);
    if (!def) throw new PoisonMessageError('unknown_type', `no schema for "${envelope.eventType}"`);
    return { envelope, def };
  }

  /** Checks the envelope's data against the schema of its own version, which the catalog must have. */
  private checkVersion(envelope: Envelope, def: MessageDefinition): Envelope {
    if (!Object.prototype.hasOwnProperty.call(def.versions, envelope.schemaVersion)) {
      throw new PoisonMessageError('unknown_version', `${envelope.eventType} v${envelope.schemaVersion} is not in this catalog (its latest is v${def.latest})`);
    }
    this.checkData(envelope, envelope.schemaVersion);
    return envelope;
  }

  /** Checks the envelope's data against the schema of a version the catalog has. */
  private checkData(envelope: Envelope, version: number): void {
    const validate = this.validatorOf(envelope.eventType, version);
    if (!validate(envelope.data)) {
      throw new PoisonMessageError('schema_validation', `${envelope.eventType} v${version}: ${describe(validate.errors, envelope.data)}`);
    }
  }

  private validatorOf(type: string, version: number): ValidateFunction {
    const validate = this.data.get(type)?.get(version);
    if (!validate) throw new Error(`no compiled schema for ${type} v${version}`);
    return validate;
  }
}
