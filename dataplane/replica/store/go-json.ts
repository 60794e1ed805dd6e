// JSON the way Go's encoding/json writes and reads it, for the replica's meta files: Longhorn's
// structs have no json tags, so their capitalised Go field names are the keys, and a replica directory
// must stay byte-compatible in both directions (migration to and from Longhorn is a feature).

/**
 * Serialise like `json.NewEncoder(f).Encode(v)`: compact, a trailing newline, and the HTML-safe
 * escapes Go applies by default (<, >, & and the JS line separators). Those characters can only occur
 * inside strings in JSON output, so replacing them everywhere is safe. Key order is the caller's: Go
 * writes struct fields in declaration order and map keys sorted, so build objects that way.
 */
export function stringifyLikeGo(value: unknown): string {
  return `${JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, escapeChar)}\n`;
}

function escapeChar(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** A plain object whose keys are sorted, as Go orders a map[string]string. */
export function sortedRecord(map: Record<string, string>): Record<string, string> {
  // fromEntries defines own properties, so a label named "__proto__" stays a label.
  return Object.fromEntries(
    Object.keys(map)
      .sort()
      .map((key) => [key, map[key]!]),
  );
}

/**
 * Typed field access to a decoded JSON object with Go's decoding rules: a missing or null field keeps
 * its zero value, keys match case-insensitively when no exact key exists, and a value of the wrong
 * type is an error that names the file.
 */
export class GoJsonObject {
  private constructor(
    private readonly fields: Record<string, unknown>,
    /** Names the file in error messages. */
    readonly source: string,
  ) {}

  static parse(text: string, source: string): GoJsonObject {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new Error(`${source}: invalid JSON: ${(cause as Error).message}`, { cause });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error(`${source}: expected a JSON object, got ${describe(value)}`);
    }
    return new GoJsonObject(value as Record<string, unknown>, source);
  }

  string(field: string): string {
    const v = this.get(field);
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw this.typeError(field, 'a string', v);
    return v;
  }

  bool(field: string): boolean {
    const v = this.get(field);
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw this.typeError(field, 'a boolean', v);
    return v;
  }

  /** An int64 field; JS numbers carry it exactly up to 2^53, far beyond any volume size or counter. */
  integer(field: string, zero = 0): number {
    const v = this.get(field);
    if (v === undefined || v === null) return zero;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw this.typeError(field, 'an integer', v);
    return v;
  }

  stringMap(field: string): Record<string, string> {
    const v = this.get(field);
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw this.typeError(field, 'an object of strings', v);
    const entries = Object.entries(v as Record<string, unknown>);
    for (const [key, value] of entries) {
      if (typeof value !== 'string') throw this.typeError(`${field}.${key}`, 'a string', value);
    }
    // fromEntries defines own properties, so a label named "__proto__" stays a label.
    return Object.fromEntries(entries) as Record<string, string>;
  }

  private get(field: string): unknown {
    if (Object.hasOwn(this.fields, field)) return this.fields[field];
    const folded = field.toLowerCase();
    for (const key of Object.keys(this.fields)) {
      if (key.toLowerCase() === folded) return this.fields[key];
    }
    return undefined;
  }

  private typeError(field: string, expected: string, got: unknown): Error {
    return new Error(`${this.source}: field ${field} must be ${expected}, got ${describe(got)}`);
  }
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
