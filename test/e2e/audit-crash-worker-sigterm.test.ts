/**
 * Crash audit: SIGTERM to a distributed WORKER in the middle of an uplink job (the kill -9 of a
 * worker holding jobs is test/e2e/topology.test.ts). Real processes: a redis-server (AOF on),
 * `edgeplane api`, one `broker`, two `worker`s on one SQLite file, two real edge agents at
 * ~100 events/s.
 *
 * Worker 1 is stopped (SIGSTOP) and the test holds the SQLite write lock, so the usage job worker 0
 * takes cannot finish; worker 0 gets SIGTERM while that job is in BullMQ's active list, the lock is
 * released once it logged that it is shutting down. Expected: it finishes that job and exits 0
 * (within --shutdown-timeout-ms, else it would exit 1); worker 1 takes every later job; every
 * observed event is answered by the cloud and stored exactly once. Then worker 0 is started again
 * and shares the load with no duplicate.
 */
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { crashScenario, metricsOf, processState, startFleet, storedUsage, until, type Fleet } from '../support/crash-audit.js';
import { jsonLine } from '../support/cli.js';
import { describeWithRedis } from '../support/redis.js';
import { startTopology, type Topology } from '../support/topology.js';

describeWithRedis('crash audit: SIGTERM to a worker in the middle of an uplink job', () => {
  let topo: Topology;
  let fleet: Fleet;

  beforeAll(async () => {
    topo = await startTopology({ brokers: 1, workers: 2, env: { EDGEPLANE_QUEUE_LOCK_MS: '2000', EDGEPLANE_SHUTDOWN_TIMEOUT_MS: '10000' } });
    fleet = await startFleet(topo, crashScenario('wsig'));
  }, 90_000);

  afterAll(async () => {
    await fleet?.stop();
    await topo?.stop();
  }, 60_000);

  it('the terminated worker finishes its job and exits 0; nothing lost or stored twice; the restarted worker joins', async () => {
    const { ledger } = fleet;
    const stopLoad = fleet.play(2);
    const held: string[] = [];
    let exitCode: number | null = null;
    let delayAfterExit = NaN;
    let signalledAt = NaN;
    let stopMs = NaN;
    try {
      await ledger.until(() => ledger.cloudAnswered.size >= 200, 30_000, '200 answers');
      const paused = topo.workers[1]!.run.child;
      // Worker 1 stopped, the store's write lock held by the test (retrying when worker 1 was
      // frozen inside a write transaction).
      let release: (() => void) | null = null;
      for (let attempt = 0; release === null; attempt++) {
        paused.kill('SIGSTOP');
        await until(() => processState(paused.pid!) === 'T', 10_000, 'worker 1 stopped');
        release = holdStoreWriteLock(topo.storeUrl);
        if (release === null) {
          if (attempt >= 20) throw new Error('worker 1 kept the store write lock through 20 stops');
          paused.kill('SIGCONT');
          await until(() => processState(paused.pid!) !== 'T', 10_000, 'worker 1 running');
        }
      }
      const redis = new Redis(topo.redis.url);
      const w0 = topo.workers[0]!;
      try {
        const before = new Set(await redis.lrange('edgeplane:uplinks:active', 0, -1));
        const lockedAt = Date.now();
        const takenSince = async () => {
          const stale = Date.now() - lockedAt > 5_000;
          for (const id of await redis.lrange('edgeplane:uplinks:active', 0, -1)) {
            if ((stale || !before.has(id)) && ((await redis.hget(`edgeplane:uplinks:${id}`, 'data')) ?? '').includes('/usage')) held.push(id);
          }
          return held.length > 0;
        };
        await until(takenSince, 20_000, 'worker 0 holding a job of usage events');
        w0.run.child.kill('SIGTERM');
        // Its time, not when this test saw it: a line can wait behind a blocked event loop.
        signalledAt = Number(jsonLine(await w0.run.waitForLine((l) => jsonLine(l)?.msg === 'shutting down gracefully'))?.time);
      } finally {
        release();
        await redis.quit();
      }
      exitCode = await w0.run.exit;
      stopMs = Date.now() - signalledAt;
      // A failed stop says why in the worker's own log: its lines from the signal on.
      if (exitCode !== 0) {
        const lines = [...w0.run.stdout, ...w0.run.stderr];
        const from = lines.findIndex((l) => jsonLine(l)?.msg === 'shutting down gracefully');
        console.info(`worker 0 exited ${exitCode}; its log from the signal on:\n${lines.slice(Math.max(0, from - 5)).slice(0, 60).join('\n')}`);
      }
      paused.kill('SIGCONT');
      const answeredAtExit = ledger.cloudAnswered.size;
      await ledger.until(() => ledger.cloudAnswered.size >= answeredAtExit + 200, 30_000, '200 answers from worker 1 alone');
      delayAfterExit = ledger.medianDelay(answeredAtExit);
      // Worker 0 again: both share the rest.
      topo.workers[0] = await topo.startWorker('worker-0b');
      const answeredAtRestart = ledger.cloudAnswered.size;
      await ledger.until(() => ledger.cloudAnswered.size >= answeredAtRestart + 300, 30_000, '300 answers after the restart');
      // Back to answers within the agents' local-decision deadline (1 s) once the backlog drained.
      await ledger.until(() => ledger.answerDelays.length - answeredAtRestart >= 100 && ledger.medianDelay(ledger.answerDelays.length - 100) < 1000, 30_000, 'answers on time again');
    } finally {
      stopLoad();
    }
    await Promise.all(fleet.agents.map((a) => a.flush(30_000)));
    await ledger.until(() => ledger.unansweredByCloud().length === 0, 30_000, 'the last answers').catch(() => undefined);

    const stored = await storedUsage(topo.api.httpUrl, fleet.owner);
    const restarted = await metricsOf(topo.workers[0]!.httpUrl);
    const survivor = await metricsOf(topo.workers[1]!.httpUrl);
    console.info(
      `audit-crash worker SIGTERM: ${ledger.observed.size} events, exit ${exitCode} after ${stopMs} ms, held job(s) ${held.length}, stored ${stored.size}, ` +
        `unanswered ${ledger.unansweredByCloud().length}, decided locally first (cloud later than 1 s) ${fleet.agents.reduce((n, a) => n + a.stats().events_decided_locally, 0)}, ` +
        `median answer delay ${ledger.medianDelay(0)} ms (first 200 after the exit ${delayAfterExit} ms, last 100 ${ledger.medianDelay(ledger.answerDelays.length - 100)} ms), ` +
        `survivor jobs ${survivor('uplink_jobs_processed_total')} (retried ${survivor('uplink_jobs_retried_total')}), restarted worker jobs ${restarted('uplink_jobs_processed_total')}`,
    );
    expect(exitCode).toBe(0);
    expect(ledger.unansweredByCloud()).toEqual([]);
    expect(ledger.duplicates()).toEqual([]);
    expect([...stored].filter(([, n]) => n !== 1)).toEqual([]);
    expect([...ledger.observed].filter((id) => !stored.has(id))).toEqual([]);
    expect(stored.size).toBe(ledger.observed.size);
    // The job worker 0 held was finished by worker 0 itself (a finished job is removed), not
    // abandoned to a lock expiry.
    const redis = new Redis(topo.redis.url);
    try {
      expect((await Promise.all(held.map((id) => redis.exists(`edgeplane:uplinks:${id}`)))).every((n) => n === 0)).toBe(true);
    } finally {
      await redis.quit();
    }
    expect(restarted('uplink_jobs_processed_total')).toBeGreaterThan(0);
  }, 150_000);
});

/** On SQLite, takes the file's write lock until the returned function is called (null when busy for 2 s); else a no-op. */
function holdStoreWriteLock(storeUrl: string): (() => void) | null {
  if (!storeUrl.startsWith('sqlite:')) return () => {};
  const db = new Database(storeUrl.slice('sqlite:'.length), { timeout: 2000 });
  try {
    db.exec('BEGIN IMMEDIATE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return null;
    throw err;
  }
  return () => {
    db.exec('ROLLBACK');
    db.close();
  };
}
