/**
 * Crash audit: kill -9 of the only distributed BROKER node while the towers publish, restarted on
 * the same port (two nodes, the towers failing over to the other, are test/e2e/topology.test.ts).
 * Real processes: a redis-server (AOF on), `edgeplane api`, one `broker`, one `worker` on one
 * SQLite file, two real edge agents at ~100 events/s.
 *
 * The worker is stopped (SIGSTOP) first, so what the node acknowledged exists only as BullMQ jobs
 * in Redis when it dies; the agents flush (every event so far has its PUBACK), the load resumes,
 * and the node is killed with publishes in flight. Expected: every acknowledged job is still
 * queued after the kill, the towers reconnect to the restarted node (their persistent sessions are
 * in Redis) and resend what had no PUBACK, and once the worker continues every observed event is
 * answered by the cloud and stored exactly once.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { crashScenario, processState, startFleet, storedUsage, until, type Fleet } from '../support/crash-audit.js';
import { describeWithRedis } from '../support/redis.js';
import { startTopology, type Topology } from '../support/topology.js';

describeWithRedis('crash audit: kill -9 of the only broker node while towers publish', () => {
  let topo: Topology;
  let fleet: Fleet;

  beforeAll(async () => {
    topo = await startTopology({ brokers: 1, workers: 1, env: { EDGEPLANE_QUEUE_LOCK_MS: '2000' } });
    fleet = await startFleet(topo, crashScenario('bkill'));
  }, 90_000);

  afterAll(async () => {
    await fleet?.stop();
    await topo?.stop();
  }, 60_000);

  it('every acknowledged event stays queued through the kill and is stored once; the rest are resent to the restarted node', async () => {
    const { ledger, agents } = fleet;
    const worker = topo.workers[0]!.run.child;
    const queued = async () => {
      const redis = new Redis(topo.redis.url);
      try {
        return (await redis.llen('edgeplane:uplinks:wait')) + (await redis.llen('edgeplane:uplinks:active'));
      } finally {
        redis.disconnect();
      }
    };
    let stopLoad = fleet.play(2);
    let acknowledged: string[] = [];
    let queuedBefore = 0;
    let queuedAfterKill = 0;
    let reconnected = 0;
    try {
      await ledger.until(() => ledger.cloudAnswered.size >= 200, 30_000, '200 answers');
      worker.kill('SIGSTOP');
      await until(() => processState(worker.pid!) === 'T', 10_000, 'worker stopped');
      const target = ledger.observed.size + 200;
      await until(() => ledger.observed.size >= target, 10_000, '200 more events observed');
      stopLoad();
      expect(await Promise.all(agents.map((a) => a.flush(20_000)))).toEqual(agents.map(() => true));
      acknowledged = ledger.unansweredByCloud();
      queuedBefore = await queued();
      stopLoad = fleet.play(2);
      // Publishes in flight when the node dies.
      const more = ledger.observed.size + 50;
      await until(() => ledger.observed.size >= more, 10_000, '50 more events observed');
      const node = topo.brokers[0]!;
      const port = new URL(node.mqttUrl!).port;
      const back = agents.map((a) => new Promise<void>((resolve) => a.once('connect', () => resolve())));
      await node.kill('SIGKILL');
      queuedAfterKill = await queued();
      topo.brokers[0] = await topo.startBroker('broker-0b', { EDGEPLANE_MQTT_PORT: port });
      await Promise.all(back);
      reconnected = agents.length;
      worker.kill('SIGCONT');
      const answered = ledger.cloudAnswered.size;
      await ledger.until(() => ledger.cloudAnswered.size >= answered + 300, 60_000, '300 answers after the restart');
    } finally {
      stopLoad();
      if (processState(worker.pid!) === 'T') worker.kill('SIGCONT');
    }
    await Promise.all(agents.map((a) => a.flush(30_000)));
    await ledger.until(() => ledger.unansweredByCloud().length === 0, 60_000, 'the last answers').catch(() => undefined);

    const stored = await storedUsage(topo.api.httpUrl, fleet.owner);
    const lostAcked = acknowledged.filter((id) => !stored.has(id));
    console.info(
      `audit-crash broker kill -9: ${ledger.observed.size} events; ${acknowledged.length} acknowledged and only queued in Redis ` +
        `(${queuedBefore} uplink jobs; ${queuedAfterKill} right after the kill); towers reconnected ${reconnected}/${agents.length}; ` +
        `lost of the acknowledged ${lostAcked.length}; stored ${stored.size}; unanswered ${ledger.unansweredByCloud().length}`,
    );
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(queuedAfterKill).toBeGreaterThanOrEqual(queuedBefore);
    expect(lostAcked).toEqual([]);
    expect(ledger.unansweredByCloud()).toEqual([]);
    expect(ledger.duplicates()).toEqual([]);
    expect([...stored].filter(([, n]) => n !== 1)).toEqual([]);
    expect(stored.size).toBe(ledger.observed.size);
  }, 150_000);
});
