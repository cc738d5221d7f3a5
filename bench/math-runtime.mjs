// What the PostgreSQL benchmarks share: the math-turn runtime on given backends and the dropping
// of a benchmark's schema.
import { PlatformDefinition } from '@everruns-ts/core';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import pg from 'pg';
import { createScenario } from './peer-adapter/scenario.mjs';

/** The harness every session of {@link mathRuntimeOn} uses. */
export const MATH_HARNESS_ID = 'harness_bench';

/** A platform with the peer scenario's calculator capability and fake model (`fake`). */
export function mathPlatform() {
  const { calculator, fakeModel } = createScenario();
  const platform = new PlatformDefinition();
  platform.capabilities.register(calculator);
  platform.drivers.register(fakeModel);
  return platform;
}

/**
 * An in-process runtime on `backends` with {@link mathPlatform}, and the harness
 * {@link MATH_HARNESS_ID}; it keeps no turn contexts.
 */
export function mathRuntimeOn(backends) {
  return new InProcessRuntimeBuilder()
    .platformDefinition(mathPlatform())
    .defaultModel({ model: 'fake-model', providerType: 'fake' })
    .backends(backends)
    .harness({ id: MATH_HARNESS_ID, name: 'bench', capabilities: [{ id: 'calculator' }] })
    .options({ keepTurnContexts: 0 })
    .build();
}

/** Drops `schema` (and everything in it) from the database at `url`. */
export async function dropBenchSchema(url, schema) {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
}
