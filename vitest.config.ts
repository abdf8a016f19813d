import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Tests import the packages by name; these aliases point them at the sources so that `vitest` needs no build.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@flint\/core\/testing$/, replacement: src('./packages/core/src/testing/index.ts') },
      { find: /^@flint\/core$/, replacement: src('./packages/core/src/index.ts') },
      { find: /^@flint\/backends$/, replacement: src('./packages/backends/src/index.ts') },
      { find: /^@flint\/trainer$/, replacement: src('./packages/trainer/src/index.ts') },
      { find: /^@flint\/callbacks$/, replacement: src('./packages/callbacks/src/index.ts') },
      { find: /^@flint\/loggers$/, replacement: src('./packages/loggers/src/index.ts') },
      { find: /^@flint\/metrics$/, replacement: src('./packages/metrics/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'bench/src/**/*.test.ts', 'docs/**/*.test.ts'],
    setupFiles: ['./vitest.setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    typecheck: { enabled: true, include: ['packages/*/src/**/*.test-d.ts'], tsconfig: './tsconfig.test.json' },
  },
});
