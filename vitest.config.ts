import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * Test files that start whole process stacks (control planes, brokers and workers as child
 * processes, kill -9 / SIGSTOP / SIGTERM audits, the CLI end to end) or drive third-party clients
 * as processes. They run one at a time: several of them hold shutdown deadlines and lock timeouts
 * that two stacks side by side on 2 cores would squeeze. (The crash-audit failure first blamed on
 * that load was a product defect, found running alone and fixed: workers/usage-writer.ts.)
 */
export const SERIAL_FILES = [
  'test/e2e/**/*.test.ts',
  'broker/audit-interop-clients.test.ts',
  'broker/audit-third-party-clients.test.ts',
  'broker/command-delivery.test.ts',
  'broker/write-behind-kill.test.ts',
  'cli/audit-ops-config.test.ts',
  'cli/audit-ops-shutdown.test.ts',
  'cli/audit-wiring-broker-role.test.ts',
  'edge-agent/audit-agent-cli.test.ts',
  'edge-agent/audit-output-backpressure.test.ts',
  'shared/logger.test.ts',
  'simulator/audit-simulate-cli.test.ts',
  'simulator/audit-simulate-stop.test.ts',
  'shared/store/sqlite/sqlite-store.test.ts',
  'shared/workflow/redis/bullmq-takeover.test.ts',
];

// `npm test` (test/support/run-tests.mjs) runs the suite as two vitest runs, one after the other:
// EDGEPLANE_TEST_GROUP=parallel (every other file, as many at a time as there are cores; none of
// them failed in 6 earlier runs of the whole suite two files at a time), then =serial
// (SERIAL_FILES, one at a time). On 2 cores under CI=true: 292 s + 408 s, against ~870 s for every
// file one at a time. Unset (`npx vitest run <file>`): every file, one at a time (vitest's default
// on 2 cores).
const group = process.env.EDGEPLANE_TEST_GROUP;
if (group !== undefined && group !== 'parallel' && group !== 'serial') throw new Error(`EDGEPLANE_TEST_GROUP must be parallel or serial, not ${group}`);

export default defineConfig({
  test: {
    include: group === 'serial' ? SERIAL_FILES : ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', ...(group === 'parallel' ? SERIAL_FILES : [])],
    // Integration tests open real sockets, SQLite files and child processes.
    pool: 'forks',
    ...(group === 'parallel' ? { maxWorkers: Math.max(2, availableParallelism()) } : group === 'serial' ? { maxWorkers: 1 } : {}),
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // One real redis-server for the run (or REDIS_URL); see test/support/global-setup.ts. The
    // browser setup only says, once, when the console's browser tests are skipped.
    globalSetup: ['./test/support/global-setup.ts', './test/support/browser-setup.ts'],
  },
});
