/**
 * JSON for the host's `jsonb` columns and pg-boss's job data (also `jsonb`), which refuse the NUL
 * character (`\u0000`, error 22P05) that a user's message or a model's answer may hold and that the
 * stores (JSON in `text` columns) keep. Strings are written with two-character stand-ins of the
 * private-use character U+E000 (`U+E000 U+E002` for NUL, `U+E000 U+E001` for U+E000 itself) and
 * read back as they were; values without either character are written as they are.
 */

const MARK = '\uE000';
const MARK_STANDS_FOR_ITSELF = '\uE000\uE001';
const MARK_STANDS_FOR_NUL = '\uE000\uE002';

/** True when `text` needs stand-ins to be written (see the module's comment). */
function needsStandIns(text: string): boolean {
  return text.includes('\u0000') || text.includes(MARK);
}

function withStandIns(text: string): string {
  return needsStandIns(text)
    ? text.replaceAll(MARK, MARK_STANDS_FOR_ITSELF).replaceAll('\u0000', MARK_STANDS_FOR_NUL)
    : text;
}

function withoutStandIns(text: string): string {
  if (!text.includes(MARK)) return text;
  return text.replace(/\uE000([\uE001\uE002])/g, (_, which: string) =>
    which === '\uE001' ? MARK : '\u0000',
  );
}

/**
 * `value` with every string (keys included) passed through `map`; the same object when none
 * changed. Nothing is allocated for a value whose strings `map` leaves as they are (every step a
 * host writes or reads, in practice): a copy is made from the first changed entry on.
 */
function mapStrings(value: unknown, map: (text: string) => string): unknown {
  if (typeof value === 'string') return map(value);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let index = 0; index < value.length; index++) {
      const item = value[index];
      const mapped = mapStrings(item, map);
      if (mapped !== item) {
        copy ??= value.slice();
        copy[index] = mapped;
      }
    }
    return copy ?? value;
  }
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    const item = record[key];
    const newKey = map(key);
    const newItem = mapStrings(item, map);
    if (copy === undefined && newKey === key && newItem === item) continue;
    if (copy === undefined) {
      // The entries before this one, as they were (keys in the same order).
      copy = {};
      for (const earlier in record) {
        if (earlier === key) break;
        if (Object.hasOwn(record, earlier)) define(copy, earlier, record[earlier]);
      }
    }
    define(copy, newKey, newItem);
  }
  return copy ?? value;
}

/** Sets an own data property (a `__proto__` key stays a key, as `JSON.parse` makes it). */
function define(target: Record<string, unknown>, key: string, item: unknown): void {
  Object.defineProperty(target, key, {
    value: item,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** `value` as it can be written to a `jsonb` column or a pg-boss job (see the module's comment). */
export function toJsonbValue<T>(value: T): T {
  return mapStrings(value, withStandIns) as T;
}

/** The JSON text of `value` for a `jsonb` column ({@link toJsonbValue}, then `JSON.stringify`). */
export function jsonbText(value: unknown): string {
  const text = JSON.stringify(value);
  // Most values hold neither character: their text is written as it is.
  return text.includes('\\u0000') || text.includes(MARK)
    ? JSON.stringify(toJsonbValue(value))
    : text;
}

/** A value read from a `jsonb` column or a pg-boss job as it was before {@link toJsonbValue}. */
export function fromJsonbValue<T>(value: T): T {
  return mapStrings(value, withoutStandIns) as T;
}
