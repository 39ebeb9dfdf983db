/**
 * Crash audit: kill -9 of redis-server under the running distributed stack, restarted on the same
 * port with its data dir (append-only file on, `appendfsync everysec`, as docker-compose.yml and
 * the README run it). Real processes: `edgeplane api`, one `broker`, one `worker` on one SQLite
 * file, two real edge agents at ~100 events/s.
 *
 * The worker is stopped (SIGSTOP) first, so what the broker acknowledged exists only as BullMQ jobs
 * in Redis; the agents flush (every event observed so far has its PUBACK), and Redis is killed in
 * the same instant, the load still running. Expected: Redis reloads every acknowledged job from its
 * AOF (a process kill loses nothing the server had written: the AOF write(2) precedes the reply;
 * only a host crash can lose the last second); no role exits; once Redis is back and the worker
 * continues, every observed event (acknowledged before the kill, or refused and resent after) is
 * answered by the cloud and stored exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { redisServerBinary } from '../../cli/bench/redis-process.js';
import { crashScenario, processState, startFleet, storedUsage, until, type Fleet } from '../support/crash-audit.js';
import { describeWithRedis } from '../support/redis.js';
import { startTopology, type Topology } from '../support/topology.js';

describeWithRedis('crash audit: kill -9 of redis-server under the distributed stack', () => {
  let topo: Topology;
  let fleet: Fleet;
  let restarted: ChildProcess | null = null;

  beforeAll(async () => {
    topo = await startTopology({ brokers: 1, workers: 1, env: { EDGEPLANE_QUEUE_LOCK_MS: '2000' } });
    fleet = await startFleet(topo, crashScenario('rkill'));
  }, 90_000);

  afterAll(async () => {
    await fleet?.stop();
    // The roles stop first (they need Redis to stop cleanly), then the restarted server.
    await topo?.stop();
    if (restarted && restarted.exitCode === null && restarted.signalCode === null) {
      const exited = new Promise((r) => restarted!.once('exit', r));
      restarted.kill('SIGTERM');
      await exited;
    }
  }, 60_000);

  it('every event acknowledged before the kill is reloaded from the AOF and stored exactly once; the rest are resent', async () => {
    const { ledger } = fleet;
    const worker = topo.workers[0]!.run.child;
    let stopLoad = fleet.play(2);
    let acknowledged: string[] = [];
    let queuedBefore = 0;
    let queuedAfter = 0;
    try {
      await ledger.until(() => ledger.cloudAnswered.size >= 200, 30_000, '200 answers');
      worker.kill('SIGSTOP');
      await until(() => processState(worker.pid!) === 'T', 10_000, 'worker stopped');
      // Some load with no worker, then every event so far PUBACKed: it exists only in Redis.
      const target = ledger.observed.size + 200;
      await until(() => ledger.observed.size >= target, 10_000, '200 more events observed');
      stopLoad();
      const flushed = await Promise.all(fleet.agents.map((a) => a.flush(20_000)));
      expect(flushed).toEqual(fleet.agents.map(() => true));
      acknowledged = ledger.unansweredByCloud();
      const redis = new Redis(topo.redis.url);
      try {
        queuedBefore = (await redis.llen('edgeplane:uplinks:wait')) + (await redis.llen('edgeplane:uplinks:active'));
      } finally {
        redis.disconnect();
      }
      stopLoad = fleet.play(2);
      // kill -9 right after the PUBACKs (within the AOF's fsync second), the load running.
      const exited = new Promise((r) => topo.redis.process.once('exit', r));
      topo.redis.process.kill('SIGKILL');
      await exited;
      await until(async () => (await fetch(`${topo.brokers[0]!.httpUrl}/readyz`)).status === 503, 10_000, 'the broker to report Redis down');
      const grown = ledger.observed.size + 100;
      await until(() => ledger.observed.size >= grown, 10_000, '100 events observed while Redis is down');
      restarted = await restartRedis(topo.redis.port, topo.redis.dir);
      const redis2 = new Redis(topo.redis.url);
      try {
        queuedAfter = (await redis2.llen('edgeplane:uplinks:wait')) + (await redis2.llen('edgeplane:uplinks:active'));
      } finally {
        redis2.disconnect();
      }
      worker.kill('SIGCONT');
      const answered = ledger.cloudAnswered.size;
      await ledger.until(() => ledger.cloudAnswered.size >= answered + 300, 60_000, '300 answers after Redis came back');
    } finally {
      stopLoad();
      if (processState(worker.pid!) === 'T') worker.kill('SIGCONT');
    }
    await Promise.all(fleet.agents.map((a) => a.flush(30_000)));
    await ledger.until(() => ledger.unansweredByCloud().length === 0, 60_000, 'the last answers').catch(() => undefined);

    const stored = await storedUsage(topo.api.httpUrl, fleet.owner);
    const lostAcked = acknowledged.filter((id) => !stored.has(id));
    console.info(
      `audit-crash redis kill -9: ${ledger.observed.size} events; ${acknowledged.length} acknowledged and only in Redis at the kill ` +
        `(${queuedBefore} uplink jobs waiting or active; ${queuedAfter} after the restart); lost of those ${lostAcked.length}; stored ${stored.size}; ` +
        `unanswered ${ledger.unansweredByCloud().length}; roles alive ${[topo.api, ...topo.brokers, ...topo.workers].filter((r) => r.run.child.exitCode === null).length}/3`,
    );
    expect(acknowledged.length).toBeGreaterThan(0);
    // Jobs queued between the count and the kill (the load runs on) are reloaded too.
    expect(queuedAfter).toBeGreaterThanOrEqual(queuedBefore);
    expect(lostAcked).toEqual([]);
    expect([topo.api, ...topo.brokers, ...topo.workers].map((r) => r.run.child.exitCode)).toEqual([null, null, null]);
    expect(ledger.unansweredByCloud()).toEqual([]);
    expect(ledger.duplicates()).toEqual([]);
    expect([...stored].filter(([, n]) => n !== 1)).toEqual([]);
    expect(stored.size).toBe(ledger.observed.size);
  }, 150_000);
});

/** redis-server again on `port` with the data dir `dir` (its AOF), as the first one ran. */
async function restartRedis(port: number, dir: string): Promise<ChildProcess> {
  const bin = redisServerBinary()!;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--protected-mode', 'yes', '--loglevel', 'notice'];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = await new Promise<boolean>((resolve) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('Ready to accept connections')) resolve(true);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', () => resolve(false));
  });
  if (!ready) throw new Error(`redis-server did not restart on port ${port}:\n${out}`);
  child.stdout.resume();
  child.stderr.resume();
  return child;
}
