/**
 * An abort state whose `AbortSignal` is made only when something reads {@link LazySignal.signal}.
 *
 * Node makes an `AbortSignal` in about 4 µs (an event target, set up on first read of an
 * `AbortController`'s `signal`), and on Node 20 some of it outlives young-generation collections:
 * more than many a whole in-memory turn step costs. A turn that can be aborted (by its caller, by
 * `close()`, by the loss of its lease) but whose driver and tools never read a signal need not
 * make one. The engine checks {@link aborted} and listens with {@link onAbort}; where a signal is
 * handed to other code (a driver's call options, a hook's or a tool's context) it goes through a
 * getter ({@link withSignalOf}), so it is made when that code reads it.
 */
export class LazySignal {
  #controller: AbortController | undefined = undefined;
  #aborted = false;
  #reason: unknown = undefined;
  #listeners: Set<(reason: unknown) => void> | undefined = undefined;

  /** True once {@link abort} was called. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Why it was aborted (as `AbortSignal.reason`: an `AbortError` when no reason was given). */
  get reason(): unknown {
    return this.#reason;
  }

  /** The `AbortSignal`, made on the first read; already aborted when {@link abort} came first. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Aborts (once; later calls do nothing): the signal fires if it was made, listeners run. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason =
      reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    this.#controller?.abort(this.#reason);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const listener of listeners) listener(this.#reason);
  }

  /**
   * Calls `listener` once with the reason when this aborts (not when it already has: check
   * {@link aborted} first). Returns the function that stops listening.
   */
  onAbort(listener: (reason: unknown) => void): () => void {
    if (this.#aborted) return noop;
    this.#listeners ??= new Set();
    this.#listeners.add(listener);
    return () => {
      this.#listeners?.delete(listener);
    };
  }
}

/** What can abort an operation: an `AbortSignal`, or a {@link LazySignal} that makes one on demand. */
export type SignalSource = AbortSignal | LazySignal;

const noop = (): void => {};

/** The `AbortSignal` of `source` (made now for a {@link LazySignal}); `undefined` for none. */
export function abortSignalOf(source: SignalSource | undefined): AbortSignal | undefined {
  return source instanceof LazySignal ? source.signal : source;
}

/**
 * Calls `listener` once with the reason when `source` aborts (not when it already has: check
 * `source.aborted` first). Returns the function that stops listening. A {@link LazySignal} is
 * listened to without making its signal.
 */
export function onAbortOf(source: SignalSource, listener: (reason: unknown) => void): () => void {
  if (source instanceof LazySignal) return source.onAbort(listener);
  const onAbort = () => listener(source.reason);
  source.addEventListener('abort', onAbort, { once: true });
  return () => source.removeEventListener('abort', onAbort);
}

/** Where an object given a lazy `signal` by {@link withSignalOf} keeps its {@link LazySignal}. */
const LAZY_SIGNAL: unique symbol = Symbol('everruns.lazySignal');

/** The `signal` getter of every object {@link withSignalOf} gives one: one function for all. */
function readLazySignal(this: { [LAZY_SIGNAL]?: LazySignal } | undefined): AbortSignal {
  const state = this?.[LAZY_SIGNAL];
  if (state === undefined) throw new TypeError('signal read from an object that carries none');
  return state.signal;
}

/**
 * `target` with `signal` set from `source`: an `AbortSignal` as it is, a {@link LazySignal}'s
 * through an accessor (`enumerable` as asked; like a getter written in an object literal by
 * default), so it is made only when the code `target` goes to reads it. Nothing is set for no
 * source. The accessor is one shared function, the state kept under a non-enumerable symbol, not
 * a closure per call: V8 keeps an object's accessor functions with its hidden class, and a fresh
 * getter per call made every tool call's context (and, through its closure, the whole turn)
 * survive young-generation collections until the next full one (peer benchmark A: ~15 KB promoted
 * per turn, ~1.4 KB without).
 */
export function withSignalOf<T extends object>(
  target: T,
  source: SignalSource | undefined,
  enumerable = true,
): T & { signal?: AbortSignal } {
  if (source instanceof LazySignal) {
    Object.defineProperty(target, LAZY_SIGNAL, { value: source });
    Object.defineProperty(target, 'signal', {
      get: readLazySignal,
      enumerable,
      configurable: true,
    });
  } else if (source !== undefined) {
    (target as { signal?: AbortSignal }).signal = source;
  }
  return target as T & { signal?: AbortSignal };
}
