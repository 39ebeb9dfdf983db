/**
 * The one edge bundle publisher of a distributed deployment, with real processes (redis-server,
 * `edgeplane api`, one broker node, two `edgeplane worker`s): exactly one worker publishes; when
 * it is killed with SIGKILL the other takes over once the lease has run out, and a change made
 * after the kill reaches a tower that was connected all along and one that connects afterwards;
 * a tower's first event, whichever worker stores it, brings it its tenant's bundle and no other
 * tenant's; a retained part the killed publisher left beyond a bundle's count is cleared by the
 * new one (found in the broker nodes' Redis index), and so is the bundle of a tenant that no
 * longer exists.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import msgpack from 'msgpack-lite';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sessionKeyPrefix } from '../../broker/backends-redis.js';
import { bucketOf } from '../../broker/retained-redis.js';
import { topics } from '../../shared/mqtt/topics.js';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { ApiClient } from '../../simulator/api-client.js';
import { metricsOf, until } from '../support/crash-audit.js';
import { describeWithRedis } from '../support/redis.js';
import { startTopology, TOPOLOGY_ADMIN_EMAIL, TOPOLOGY_ADMIN_PASSWORD, type RoleProcess, type Topology } from '../support/topology.js';

const OWNER_PASSWORD = 'failover-owner-password-1';

/** The `bundle_publisher` gauge of a worker (its /metrics). */
async function publishing(worker: RoleProcess): Promise<number> {
  return (await metricsOf(worker.httpUrl))('bundle_publisher');
}

describeWithRedis('the edge bundle publisher across worker processes', () => {
  let topo: Topology;
  let operator: ApiClient;
  const tenants: Array<{ id: string; owner: ApiClient; device: string }> = [];
  const agents: EdgeAgent[] = [];
  let stateDir: string;

  async function tower(id: string): Promise<EdgeAgent> {
    await operator.post('/api/v1/towers', { id, name: id, lat: 52.5, lon: 13.4, radius_m: 1000 });
    const cred = await operator.post<{ mqtt: { password: string } }>(`/api/v1/towers/${id}/credentials`, {});
    const agent = new EdgeAgent({ url: topo.brokers[0]!.mqttUrl!, towerId: id, password: cred.mqtt.password, stateDir: join(stateDir, id), reconnectMinMs: 50, reconnectMaxMs: 500 });
    agent.on('error', () => {});
    agents.push(agent);
    await agent.start();
    return agent;
  }

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-publisher-failover-'));
    topo = await startTopology({ brokers: 1, workers: 2, env: { EDGEPLANE_BUNDLE_PUBLISHER_LEASE_MS: '1500' } });
    operator = await ApiClient.login(topo.api.httpUrl, TOPOLOGY_ADMIN_EMAIL, TOPOLOGY_ADMIN_PASSWORD);
    for (const name of ['alpha', 'beta']) {
      const email = `owner@${name}.test`;
      const { tenant } = await operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name, plan_id: 'premium', owner: { email, password: OWNER_PASSWORD } });
      const owner = await ApiClient.login(topo.api.httpUrl, email, OWNER_PASSWORD);
      await owner.post('/api/v1/devices', { id: `${name}-phone`, name: `${name} phone` });
      tenants.push({ id: tenant.id, owner, device: `${name}-phone` });
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await topo?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }, 60_000);

  it('one worker publishes; a killed publisher is replaced, and changes made after the kill reach connected and new towers', async () => {
    const [alpha, beta] = tenants as [(typeof tenants)[0], (typeof tenants)[0]];
    await until(async () => (await Promise.all(topo.workers.map(publishing))).sort().join() === '0,1', 20_000, 'one publishing worker');
    const first = await tower('tower-1');
    await until(() => first.tenantOf(alpha.device) === alpha.id && first.tenantOf(beta.device) === beta.id, 20_000, 'the directory at tower-1');
    // Its first event of alpha, stored by either worker: alpha's bundle reaches it, beta's does not.
    await new Promise<void>((resolve) => {
      const { event_id } = first.observe({ device_id: alpha.device, app: 'slack', action: 'open' });
      first.on('decision', (_t, d) => d.event_id === event_id && resolve());
    });
    await until(() => first.knownTenants().includes(alpha.id), 20_000, "alpha's bundle at tower-1");
    expect(first.knownTenants()).toEqual([alpha.id]);

    const gauges = await Promise.all(topo.workers.map(publishing));
    const publisher = topo.workers[gauges.indexOf(1)]!;
    const survivor = topo.workers[gauges.indexOf(0)]!;
    await publisher.kill('SIGKILL');
    // A part the killed publisher left at the broker beyond alpha's bundle's count (as a version
    // with more parts would): written into the broker nodes' store the way a node stores it, now,
    // while the lease still runs. The new publisher must find it and clear it.
    const stalePart = `${topics.policy(alpha.id, 'tower-1')}/7`;
    // And the bundle of a tenant deleted while no process published (a head and a part at tower-1).
    const orphans = [topics.policyPart('gone-tenant', 'tower-1', 0), topics.policy('gone-tenant', 'tower-1')];
    const keyPrefix = sessionKeyPrefix('edgeplane:mqtt:');
    const redis = new Redis(topo.redis.url);
    try {
      for (const topic of [stalePart, ...orphans]) {
        await redis
          .multi()
          .hset(`${keyPrefix}retained`, topic, msgpack.encode({ cmd: 'publish', topic, payload: Buffer.from('left behind'), qos: 1, retain: true }))
          .sadd(`${keyPrefix}retained-index:${bucketOf(topic)}`, topic)
          .exec();
      }
      // A change after the kill: a new device of alpha.
      await alpha.owner.post('/api/v1/devices', { id: 'alpha-tablet', name: 'alpha tablet' });
      await until(async () => (await publishing(survivor)) === 1, 20_000, 'the surviving worker publishing');
      await until(async () => (await redis.hexists(`${keyPrefix}retained`, stalePart)) === 0, 20_000, 'the part left behind cleared');
      // The counter moves once the publish that cleared the part called back, which may be just
      // after Redis shows it gone: wait for it (another process) rather than read it once.
      const cleared = async (metric: string) => (await metricsOf(survivor.httpUrl))(metric);
      await until(async () => (await cleared('bundle_stale_parts_cleared_total')) === 1, 20_000, 'the cleared part counted');
      expect(await cleared('bundle_stale_parts_cleared_total')).toBe(1);
      await until(async () => (await redis.hmget(`${keyPrefix}retained`, ...orphans)).every((v) => v === null), 20_000, "the deleted tenant's bundle cleared");
      await until(async () => (await cleared('bundle_orphans_cleared_total')) >= 2, 20_000, 'both orphans counted');
      expect(await cleared('bundle_orphans_cleared_total')).toBe(2);
    } finally {
      redis.disconnect();
    }
    await until(() => first.tenantOf('alpha-tablet') === alpha.id, 20_000, 'the new device at the tower connected all along');
    const second = await tower('tower-2');
    await until(() => second.tenantOf('alpha-tablet') === alpha.id && second.tenantOf(beta.device) === beta.id, 20_000, 'the directory at a tower connecting after the kill');
    // tower-2 serves no tenant yet: it holds no bundle.
    expect(second.knownTenants()).toEqual([]);
  });
});
