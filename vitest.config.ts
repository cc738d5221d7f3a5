import { defineConfig } from 'vitest/config';

/**
 * One vitest run for the whole monorepo. Workspace packages resolve to their TypeScript sources
 * through the `@everruns-ts/source` export condition, so a test never depends on another
 * package's build output.
 */
export default defineConfig({
  resolve: { conditions: ['@everruns-ts/source'] },
  ssr: { resolve: { conditions: ['@everruns-ts/source'] } },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'internal/*/src/**/*.test.ts',
      'apps/**/*.test.ts',
      'docs/**/*.test.ts',
      'bench/**/*.test.ts',
      'scripts/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
    // The JSON report feeds the closing line CI prints (scripts/print-test-summary.mjs).
    // The latency run of the attack suites (`pnpm run test:latency`) writes its own report.
    reporters: [
      'default',
      [
        'json',
        {
          outputFile: process.env.EVERRUNS_VITEST_REPORT ?? 'node_modules/.vitest/results.json',
        },
      ],
    ],
    // Two test files at once. Vitest's default on a 2-core machine is one (cores - 1), but most
    // files wait on PostgreSQL, child processes or timers rather than the CPU; the latency run of
    // the attack suites (`pnpm run test:latency`) stays one file at a time.
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
