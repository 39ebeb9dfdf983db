import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Integration tests open real sockets, SQLite files and child processes.
    pool: 'forks',
    // One test file at a time on 2 cores (vitest's default, CPUs - 1). Two at a time ran the suite
    // in 515–602 s instead of ~880 and found a start-up defect (sqlite-store.ts optimize), but in
    // 1 of 6 runs after that fix a crash audit's worker missed its 10 s shutdown budget with the
    // machine loaded by both files' process stacks: not a default until the heavy end-to-end
    // suites run apart from the rest (e.g. `--maxWorkers=2` locally for a faster run).
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // One real redis-server for the run (or REDIS_URL); see test/support/global-setup.ts. The
    // browser setup only says, once, when the console's browser tests are skipped.
    globalSetup: ['./test/support/global-setup.ts', './test/support/browser-setup.ts'],
  },
});
