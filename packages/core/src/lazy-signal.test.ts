import { afterEach, describe, expect, it, vi } from 'vitest';
import { EverrunsError, throwIfAborted } from './errors.js';
import { abortSignalOf, LazySignal, onAbortOf, withSignalOf } from './lazy-signal.js';

/** Counts `new AbortController()` while `run` runs. */
function countControllers(run: () => void): number {
  const Original = globalThis.AbortController;
  let made = 0;
  globalThis.AbortController = class extends Original {
    constructor() {
      super();
      made++;
    }
  };
  try {
    run();
  } finally {
    globalThis.AbortController = Original;
  }
  return made;
}

describe('LazySignal', () => {
  afterEach(() => vi.restoreAllMocks());

  it('makes no AbortController until its signal is read, and aborts and listens without one', () => {
    const calls: unknown[] = [];
    const made = countControllers(() => {
      const lazy = new LazySignal();
      lazy.onAbort((reason) => calls.push(reason));
      expect(lazy.aborted).toBe(false);
      lazy.abort('stop');
      expect(lazy.aborted).toBe(true);
      expect(lazy.reason).toBe('stop');
      expect(() => throwIfAborted(lazy)).toThrow(EverrunsError);
    });
    expect(made).toBe(0);
    expect(calls).toEqual(['stop']);
  });

  it('hands out one AbortSignal that fires with the reason, whether read before or after the abort', () => {
    const before = new LazySignal();
    const signal = before.signal;
    expect(before.signal).toBe(signal);
    const fired = vi.fn();
    signal.addEventListener('abort', fired);
    expect(signal.aborted).toBe(false);
    before.abort('first');
    expect(fired).toHaveBeenCalledTimes(1);
    expect(signal.reason).toBe('first');

    const after = new LazySignal();
    const reason = new Error('gone');
    after.abort(reason);
    expect(after.signal.aborted).toBe(true);
    expect(after.signal.reason).toBe(reason);
  });

  it('gives an AbortError as the reason when aborted without one, as AbortController does', () => {
    const lazy = new LazySignal();
    lazy.abort();
    const native = new AbortController();
    native.abort();
    expect(lazy.reason).toBeInstanceOf(DOMException);
    expect((lazy.reason as DOMException).name).toBe((native.signal.reason as DOMException).name);
    expect(lazy.signal.reason).toBe(lazy.reason);
  });

  it('aborts once: a later abort keeps the first reason and calls no listener again', () => {
    const lazy = new LazySignal();
    const listener = vi.fn();
    lazy.onAbort(listener);
    lazy.abort('first');
    lazy.abort('second');
    expect(lazy.reason).toBe('first');
    expect(listener).toHaveBeenCalledTimes(1);
    // Listening after the abort does nothing: the caller checks `aborted` first.
    const late = vi.fn();
    lazy.onAbort(late)();
    expect(late).not.toHaveBeenCalled();
  });

  it('stops calling a listener once it stopped listening', () => {
    const lazy = new LazySignal();
    const kept = vi.fn();
    const dropped = vi.fn();
    lazy.onAbort(kept);
    const stop = lazy.onAbort(dropped);
    stop();
    lazy.abort('x');
    expect(kept).toHaveBeenCalledWith('x');
    expect(dropped).not.toHaveBeenCalled();
  });
});

describe('signal sources', () => {
  it('abortSignalOf gives an AbortSignal as it is and makes a LazySignal one', () => {
    const native = new AbortController().signal;
    expect(abortSignalOf(native)).toBe(native);
    expect(abortSignalOf(undefined)).toBeUndefined();
    const lazy = new LazySignal();
    expect(abortSignalOf(lazy)).toBe(lazy.signal);
  });

  it('onAbortOf listens to both kinds once, and stops when asked', () => {
    const controller = new AbortController();
    const lazy = new LazySignal();
    const heard: unknown[] = [];
    onAbortOf(controller.signal, (reason) => heard.push(['native', reason]));
    onAbortOf(lazy, (reason) => heard.push(['lazy', reason]));
    const stopNative = onAbortOf(controller.signal, () => heard.push('never'));
    const stopLazy = onAbortOf(lazy, () => heard.push('never'));
    stopNative();
    stopLazy();
    controller.abort('a');
    controller.abort('b');
    lazy.abort('c');
    expect(heard).toEqual([
      ['native', 'a'],
      ['lazy', 'c'],
    ]);
  });

  it('withSignalOf sets a getter for a LazySignal, the signal for an AbortSignal, nothing for none', () => {
    const lazy = new LazySignal();
    let made = 0;
    const target = countControllersAround(
      () => withSignalOf({ id: 1 }, lazy),
      (n) => {
        made = n;
      },
    );
    expect(made).toBe(0);
    expect(Object.keys(target)).toEqual(['id', 'signal']);
    expect(target.signal).toBe(lazy.signal);
    // Spread (as a driver might copy its options) reads the getter: the copy holds the signal.
    expect({ ...target }.signal).toBe(lazy.signal);

    const native = new AbortController().signal;
    expect(withSignalOf({}, native).signal).toBe(native);
    expect('signal' in withSignalOf({}, undefined)).toBe(false);
  });
});

/** Runs `make`, reports how many AbortControllers it made, and returns what it made. */
function countControllersAround<T>(make: () => T, report: (made: number) => void): T {
  let value: T | undefined;
  report(
    countControllers(() => {
      value = make();
    }),
  );
  return value as T;
}
