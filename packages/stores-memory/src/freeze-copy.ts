/** `Object.prototype.hasOwnProperty`, for `for…in` loops over plain data (call it with the object). */
export const ownKey = Object.prototype.hasOwnProperty;

/** A plain object or array: what {@link freezeCopy} copies (anything else is kept as it is). */
function isPlainData(value: unknown): value is Record<string, unknown> | unknown[] {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return true;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** An object or array being copied: its source, its copy, and how far the copy has got. */
interface CopyFrame {
  source: Record<string, unknown> | unknown[];
  copy: Record<string, unknown> | unknown[];
  /** Keys to copy (objects); undefined for arrays, copied by index. */
  keys: string[] | undefined;
  next: number;
}

function frameOf(source: Record<string, unknown> | unknown[]): CopyFrame {
  if (Array.isArray(source)) {
    return { source, copy: new Array(source.length), keys: undefined, next: 0 };
  }
  const keys = Object.keys(source);
  return { source, copy: plainObjectFor(keys.length), keys, next: 0 };
}

/**
 * One constructor per key count (0 to 16) whose instances are plain objects (their prototype is
 * `Object.prototype`, so `constructor` is `Object`): V8 sizes a constructor's instances to the
 * properties they are given (in-object slack tracking), whereas `{}` always reserves four slots
 * and keeps a fifth key onwards in a separate property array. A copy of two keys then takes 40
 * bytes instead of 56, one of six 72 instead of 96.
 */
const PLAIN_OBJECT_MAKERS: ReadonlyArray<new () => Record<string, unknown>> = Array.from(
  { length: 17 },
  () => {
    const maker = function PlainObject() {} as unknown as new () => Record<string, unknown>;
    maker.prototype = Object.prototype;
    return maker;
  },
);

/**
 * An empty plain object sized for `keyCount` properties (see {@link PLAIN_OBJECT_MAKERS}); `{}`
 * past 16 keys. Set its keys by assignment (define `__proto__`, as assigning it would set the
 * prototype).
 */
export function plainObjectFor(keyCount: number): Record<string, unknown> {
  const Maker = PLAIN_OBJECT_MAKERS[keyCount];
  return Maker === undefined ? {} : new Maker();
}

/**
 * A deeply frozen copy of plain data (objects, arrays, primitives). Stores keep these copies so
 * that nothing a caller holds, before or after the call, can change what the store has. Values
 * that are not plain objects or arrays (a `Date`, a class instance) are kept as they are. Every
 * key is copied as data, `__proto__` and `constructor` included. The copy keeps its own stack
 * (no recursion), so data nested 100,000 levels deep (a model's tool arguments, say) costs no
 * call stack; a value that contains itself is a `TypeError`.
 */
export function freezeCopy<T>(value: T): T {
  if (!isPlainData(value)) return value;
  // Most data is shallow: copy it recursively, and only data nested deeper than a few levels
  // takes the slower copy that keeps its own stack. A value that contains itself nests without
  // end, so it reaches that copy too, which finds the cycle and throws.
  const quick = quickFreezeCopy(value, 0);
  return (quick === TOO_DEEP ? stackFreezeCopy(value) : quick) as T;
}

/** Returned by {@link quickFreezeCopy} when the data nests deeper than {@link QUICK_DEPTH}. */
const TOO_DEEP: unique symbol = Symbol('too deep');

/** How deep {@link quickFreezeCopy} goes on the call stack before giving up. */
const QUICK_DEPTH = 32;

/**
 * {@link freezeCopy} by recursion, for plain data nested at most {@link QUICK_DEPTH} levels
 * (`depth` is the level of `source`); no list of ancestors is kept, since a cycle ends up too deep.
 */
function quickFreezeCopy(
  source: Record<string, unknown> | unknown[],
  depth: number,
): Record<string, unknown> | unknown[] | typeof TOO_DEEP {
  if (depth >= QUICK_DEPTH) return TOO_DEEP;
  let copy: Record<string, unknown> | unknown[];
  if (Array.isArray(source)) {
    const array = new Array(source.length);
    for (let index = 0; index < source.length; index++) {
      const child = source[index];
      if (isPlainData(child)) {
        const copied = quickFreezeCopy(child, depth + 1);
        if (copied === TOO_DEEP) return TOO_DEEP;
        array[index] = copied;
      } else array[index] = child;
    }
    copy = array;
  } else {
    // Own enumerable keys by `for…in` (as `Object.keys` lists them, in the same order) without
    // the array of them: counted first, for the copy's size.
    let count = 0;
    for (const key in source) if (ownKey.call(source, key)) count++;
    const object = plainObjectFor(count);
    for (const key in source) {
      if (!ownKey.call(source, key)) continue;
      let child = source[key];
      if (isPlainData(child)) {
        const copied = quickFreezeCopy(child, depth + 1);
        if (copied === TOO_DEEP) return TOO_DEEP;
        child = copied;
      }
      if (key === '__proto__') {
        // Defined, not assigned: the key stays a plain own key instead of replacing the prototype.
        Object.defineProperty(object, key, {
          value: child,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else object[key] = child;
    }
    copy = object;
  }
  Object.freeze(copy);
  return copy;
}

/** {@link freezeCopy} with its own stack, for data nested any depth. */
function stackFreezeCopy<T>(value: T & (Record<string, unknown> | unknown[])): T {
  const root = frameOf(value);
  const stack: CopyFrame[] = [root];
  const copying = new Set<object>([value]);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as CopyFrame;
    const length =
      frame.keys === undefined ? (frame.source as unknown[]).length : frame.keys.length;
    if (frame.next >= length) {
      stack.pop();
      copying.delete(frame.source);
      Object.freeze(frame.copy);
      continue;
    }
    const index = frame.next++;
    const key = frame.keys === undefined ? index : (frame.keys[index] as string);
    const child = (frame.source as Record<string | number, unknown>)[key];
    let copied = child;
    if (isPlainData(child)) {
      if (copying.has(child)) throw new TypeError('freezeCopy: the value contains itself');
      const childFrame = frameOf(child);
      copied = childFrame.copy;
      stack.push(childFrame);
      copying.add(child);
    }
    if (frame.keys === undefined) (frame.copy as unknown[])[index] = copied;
    else {
      // Defined, not assigned: a key such as `__proto__` stays a plain own key of the copy
      // instead of replacing its prototype.
      Object.defineProperty(frame.copy, key, {
        value: copied,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return root.copy as T;
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
