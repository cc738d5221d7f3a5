/**
 * A deeply frozen copy of plain data (objects, arrays, primitives). Stores keep these copies so
 * that nothing a caller holds, before or after the call, can change what the store has. Values
 * that are not plain objects or arrays (a `Date`, a class instance) are kept as they are. Every
 * key is copied as data, `__proto__` and `constructor` included.
 */
export function freezeCopy<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const copy = new Array(value.length);
    for (let index = 0; index < value.length; index++) copy[index] = freezeCopy(value[index]);
    return Object.freeze(copy) as T;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    // Defined, not assigned: a key such as `__proto__` stays a plain own key of the copy instead
    // of replacing its prototype.
    Object.defineProperty(copy, key, {
      value: freezeCopy((value as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return Object.freeze(copy) as T;
}

/** Keys of `map` that start with `prefix` (compared literally), sorted. */
export function sortedKeysWithPrefix(map: Map<string, unknown> | undefined, prefix = ''): string[] {
  if (map === undefined) return [];
  const keys: string[] = [];
  for (const key of map.keys()) if (key.startsWith(prefix)) keys.push(key);
  return keys.sort(compareStrings);
}

/** Orders strings by UTF-16 code units, as `Array.prototype.sort` does by default. */
export function compareStrings(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}
