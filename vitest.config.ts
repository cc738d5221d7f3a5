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
      'apps/**/*.test.ts',
      'docs/**/*.test.ts',
      'bench/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
