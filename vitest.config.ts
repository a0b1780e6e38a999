import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // One real control plane per run (test/env/global-setup.ts), a namespace per test.
          globalSetup: ['test/env/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Files share one API server and some tests start controllers: run files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
