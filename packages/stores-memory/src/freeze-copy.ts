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
  return Array.isArray(source)
    ? { source, copy: new Array(source.length), keys: undefined, next: 0 }
    : { source, copy: {}, keys: Object.keys(source), next: 0 };
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
