/**
 * vitest globalSetup: one real redis-server for the whole run (tests isolate themselves with a
 * unique key prefix each, as BullMQ's own tests do), unless REDIS_URL points at one already.
 *
 * Without redis-server: outside CI the Redis tests skip, and this prints ONE line naming the
 * install command; under CI=true that is a failure, never a skip.
 */
import type { TestProject } from 'vitest/node';
import { REDIS_INSTALL_HINT, redisServerBinary, startRedisServer, type RedisServerHandle } from '../../cli/bench/redis-process.js';
import { RADCLIENT, RADCLIENT_SKIP_LINE } from './radclient.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the run's Redis, or null when Redis tests are skipped. */
    redisUrl: string | null;
  }
}

let server: RedisServerHandle | null = null;

/** `npm test` runs vitest twice (test/support/run-tests.mjs): the skip lines are said in the first run only. */
export const saySkips = (): boolean => process.env.EDGEPLANE_SKIP_LINES_SHOWN !== '1';

export async function setup(project: TestProject): Promise<void> {
  // The RADIUS suites skip without radclient (one line for the run, here); under CI=true they fail.
  if (!RADCLIENT && process.env.CI !== 'true' && saySkips()) console.log(`RADIUS tests skipped: ${RADCLIENT_SKIP_LINE}`);
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    project.provide('redisUrl', fromEnv);
    return;
  }
  if (!redisServerBinary()) {
    if (process.env.CI === 'true') throw new Error(`redis-server is required under CI=true (${REDIS_INSTALL_HINT})`);
    if (saySkips()) console.log(`Redis tests skipped: redis-server not found (install: ${REDIS_INSTALL_HINT})`);
    project.provide('redisUrl', null);
    return;
  }
  server = await startRedisServer();
  project.provide('redisUrl', server.url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  server = null;
}
