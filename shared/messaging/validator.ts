// Checks envelopes and data against the catalog, at publish and at consume.
// Every schema is compiled once, at construction.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { PoisonMessageError } from '../errors';
import { catalog as defaultCatalog, EnvelopeSchema, type Catalog, type Envelope } from '../events';

function describe(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : ''}`)
    .join('; ');
}

export class MessageValidator {
  private readonly envelope: ValidateFunction;
  private readonly data = new Map<string, ValidateFunction>();

  constructor(readonly catalog: Catalog = defaultCatalog) {
    // multipleOfPrecision: money is checked as multipleOf 0.01, which plain floats fail (19.99 / 0.01).
    const ajv = new Ajv({ allErrors: false, strict: true, multipleOfPrecision: 9 });
    addFormats(ajv, ['date-time']);
    this.envelope = ajv.compile(EnvelopeSchema);
    for (const [type, def] of Object.entries(catalog)) {
      for (const [version, schema] of Object.entries(def.versions)) {
        this.data.set(`${type}@${version}`, ajv.compile(schema));
      }
    }
  }

  /** The exchange a type is published to, or undefined for an unknown type. */
  exchangeOf(type: string): string | undefined {
    return Object.prototype.hasOwnProperty.call(this.catalog, type) ? this.catalog[type]?.exchange : undefined;
  }

  latestVersion(type: string): number | undefined {
    return Object.prototype.hasOwnProperty.call(this.catalog, type) ? this.catalog[type]?.latest : undefined;
  }

  /** Parses and checks a message body; throws PoisonMessageError with the reason. */
  parse(body: Buffer): Envelope {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new PoisonMessageError('bad_json', err instanceof Error ? err.message : 'not JSON');
    }
    return this.check(value);
  }

  /** Checks a parsed value: envelope shape, known type and version, data schema. */
  check(value: unknown): Envelope {
    if (!this.envelope(value)) throw new PoisonMessageError('invalid_envelope', describe(this.envelope.errors));
    const envelope = value as Envelope;
    if (!Object.prototype.hasOwnProperty.call(this.catalog, envelope.eventType)) {
      throw new PoisonMessageError('unknown_type', `no schema for "${envelope.eventType}"`);
    }
    const validate = this.data.get(`${envelope.eventType}@${envelope.schemaVersion}`);
    if (!validate) {
      throw new PoisonMessageError('unknown_type', `no schema for "${envelope.eventType}" version ${envelope.schemaVersion}`);
    }
    if (!validate(envelope.data)) {
      throw new PoisonMessageError('schema_validation', `${envelope.eventType} v${envelope.schemaVersion}: ${describe(validate.errors)}`);
    }
    return envelope;
  }
}
