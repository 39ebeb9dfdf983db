import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Integration tests open real sockets, SQLite files and child processes.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // One real redis-server for the run (or REDIS_URL); see test/support/global-setup.ts. The
    // browser setup only says, once, when the console's browser tests are skipped.
    globalSetup: ['./test/support/global-setup.ts', './test/support/browser-setup.ts'],
  },
});
