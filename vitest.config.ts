import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Integration tests open real sockets, SQLite files and child processes.
    pool: 'forks',
    // At least two test files at a time: vitest's default (CPUs - 1) is one on a 2-core machine,
    // where most suites wait on sockets, child processes and timers (the whole run 882 → 550 s).
    // It also puts suites beside each other's load, which found a start-up defect (sqlite-store.ts
    // optimize) that one file at a time never showed.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // One real redis-server for the run (or REDIS_URL); see test/support/global-setup.ts. The
    // browser setup only says, once, when the console's browser tests are skipped.
    globalSetup: ['./test/support/global-setup.ts', './test/support/browser-setup.ts'],
  },
});
