import type { RuntimeBackends } from '@everruns-ts/core';
import { afterAll, beforeAll, describe } from 'vitest';
import type { RuntimeStoreInitializer, RuntimeStoreTestContext } from './types.js';

let insideAggregate = false;

/** Runs `register` with area functions knowing that the aggregate owns the lifecycle hooks. */
export function asPartOfAggregate(register: () => void): void {
  insideAggregate = true;
  try {
    register();
  } finally {
    insideAggregate = false;
  }
}

/** Releases a backend made by the initializer. */
export async function destroyBackends(
  initializer: RuntimeStoreInitializer,
  backends: RuntimeBackends,
): Promise<void> {
  if (initializer.destroy) await initializer.destroy(backends);
  else await backends.close?.();
}

/**
 * Registers one area: a `describe` with a backend created before its tests and destroyed after.
 * Called on its own (not from `runtimeStoreConformance`) it also runs the initializer's
 * `beforeAll`/`afterAll`.
 */
export function defineRuntimeArea(
  initializer: RuntimeStoreInitializer,
  title: string,
  body: (context: RuntimeStoreTestContext) => void,
): void {
  const ownLifecycle = !insideAggregate;
  describe(ownLifecycle ? `${initializer.name}: ${title}` : title, () => {
    const context = backendsContext(initializer, ownLifecycle);
    body(context);
  });
}

/** Registers the hooks that create and destroy the area's backend; returns the test context. */
export function backendsContext(
  initializer: RuntimeStoreInitializer,
  ownLifecycle: boolean,
): RuntimeStoreTestContext {
  let current: RuntimeBackends | undefined;
  beforeAll(async () => {
    if (ownLifecycle) await initializer.beforeAll?.();
    current = await initializer.create();
  });
  afterAll(async () => {
    if (current !== undefined) await destroyBackends(initializer, current);
    current = undefined;
    if (ownLifecycle) await initializer.afterAll?.();
  });
  return {
    backends() {
      if (current === undefined) throw new Error('The backend is only available inside a test');
      return current;
    },
    async withFreshBackends(body) {
      const backends = await initializer.create();
      try {
        return await body(backends);
      } finally {
        await destroyBackends(initializer, backends);
      }
    },
  };
}
