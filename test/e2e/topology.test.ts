/**
 * The distributed topology on one host, real processes end to end (issue #7): a real
 * redis-server, one `edgeplane api`, two `edgeplane broker` nodes and two `edgeplane worker`
 * processes sharing Redis and one store (an SQLite file in WAL mode; MongoDB when MONGODB_URL is
 * set), real edge agents spread over both broker nodes.
 *
 * Proves: every event observed at the towers ends with exactly one decision at its tower and one
 * stored row, through a kill -9 of a worker mid-run (its jobs are taken over) and a kill -9 of a
 * broker node (its towers reconnect to the other node and replay); one violation decided by two
 * workers yields one command; a remediation issued through the API reaches a tower connected to
 * another node than the one the workers publish through, and is acked.
 */
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import type { CommandRecord } from '../../shared/domain.js';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld, type TenantOwnerLogin } from '../../simulator/provision.js';
import { parseScenario } from '../../simulator/scenario.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { describeWithRedis } from '../support/redis.js';
import { startTopology, TOPOLOGY_ADMIN_EMAIL, TOPOLOGY_ADMIN_PASSWORD, type Topology } from '../support/topology.js';

const scenario = parseScenario({
  name: 'topology',
  seed: 7,
  duration_s: 1,
  rate_eps: 100,
  towers: { count: 4, id_prefix: 'topo-tower' },
  batch: { max_events: 20, max_delay_ms: 5 },
  tenants: [
    {
      name: 'topo-co',
      plan: 'premium',
      default_effect: 'allow',
      apps: ['slack', 'dropbox'],
      actions: ['send_message', 'upload_file'],
      roles: [{ name: 'member' }],
      policies: [
        {
          name: 'no-uploads',
          severity: 'high',
          roles: ['member'],
          rules: [{ app: 'dropbox', action: 'upload_file', permission: 'deny', remediation: { type: 'block_app', duration_s: 600 } }],
        },
      ],
      users: { count: 6, roles: ['member'] },
      devices_per_user: 1,
      mix: [{ app: 'slack', action: 'send_message', weight: 1 }],
    },
  ],
  violations: { count: 1, pick: [{ tenant: 'topo-co', app: 'dropbox', action: 'upload_file' }] },
});

/**
 * Decisions per event id as the towers' enforcement saw them (the cloud's, or the agent's own when
 * the cloud's was late), which events were observed, and which the cloud has answered.
 */
class Ledger {
  readonly observed = new Set<string>();
  readonly decided = new Map<string, number>();
  readonly cloudAnswered = new Set<string>();
  #waiters: Array<() => void> = [];

  decision(eventId: string): void {
    this.decided.set(eventId, (this.decided.get(eventId) ?? 0) + 1);
    for (const w of this.#waiters.splice(0)) w();
  }

  cloudAnswer(eventId: string): void {
    this.cloudAnswered.add(eventId);
    for (const w of this.#waiters.splice(0)) w();
  }

  undecided(): string[] {
    return [...this.observed].filter((id) => !this.decided.has(id));
  }

  /** Events the workers have not answered yet (an agent's local answer does not count). */
  unansweredByCloud(): string[] {
    return [...this.observed].filter((id) => !this.cloudAnswered.has(id));
  }

  duplicates(): string[] {
    return [...this.decided].filter(([, n]) => n > 1).map(([id]) => id);
  }

  /** Resolves once `cond` holds, re-checked on every decision; rejects after `timeoutMs`. */
  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

describeWithRedis('distributed topology: 2 brokers, 2 workers, 1 api on one host', () => {
  let topo: Topology;
  let world: ProvisionedWorld;
  let owner: TenantOwnerLogin;
  let agents: EdgeAgent[];
  const ledger = new Ledger();
  const commands: Array<{ tower: string; id: string; status: string }> = [];
  const connects = new Map<string, number>();

  beforeAll(async () => {
    // A short lock: a job whose worker is killed is taken over within seconds.
    topo = await startTopology({ brokers: 2, workers: 2, env: { EDGEPLANE_QUEUE_LOCK_MS: '2000' } });
    const p = await provisionWorld(scenario, { apiUrl: topo.api.httpUrl, adminEmail: TOPOLOGY_ADMIN_EMAIL, adminPassword: TOPOLOGY_ADMIN_PASSWORD });
    world = p.world;
    owner = p.owners[0]!;
    const tenant = world.tenants[0]!;
    // Towers alternate between the two broker nodes; each lists the other node to fail over to.
    agents = world.towers.map((t, i) => {
      const nodes = [topo.brokers[i % 2]!.mqttUrl!, topo.brokers[(i + 1) % 2]!.mqttUrl!];
      const agent = new EdgeAgent({ url: nodes.join(','), towerId: t.id, password: t.password, batchMaxEvents: 20, batchMaxDelayMs: 5, reconnectMinMs: 100, reconnectMaxMs: 1000 });
      agent.on('decision', (_tenant, d) => ledger.decision(d.event_id));
      // The workers' answers: an agent answers an event itself when the cloud's answer is late
      // (edge autonomy), and the cloud's still has to come for every event.
      agent.on('decisionBatch', (_tenant, b) => {
        for (const d of b.decisions) ledger.cloudAnswer(d.event_id);
      });
      agent.on('command', (_tenant, c, ack) => commands.push({ tower: t.id, id: c.id, status: ack.status }));
      agent.on('error', () => {});
      agent.on('connect', () => connects.set(t.id, (connects.get(t.id) ?? 0) + 1));
      return agent;
    });
    await Promise.all(agents.map((a) => a.start()));
    // Each tower maps every device of the tenant once its retained bundle arrived.
    await until(() => agents.every((a) => tenant.device_ids.every((d) => a.tenantOf(d) === tenant.id)), 20_000, 'policy bundles at every tower');
  }, 120_000);

  afterAll(async () => {
    await Promise.all((agents ?? []).map((a) => a.stop()));
    await topo?.stop();
  }, 60_000);

  it('decides every event exactly once through a worker kill -9 and a broker node kill -9', async () => {
    /** Jobs of usage events worker 0 held when it was killed. */
    const held: string[] = [];
    const devices = world.tenants[0]!.device_ids;
    let n = 0;
    const play = (count: number) => {
      for (let i = 0; i < count; i++, n++) {
        const agent = agents[n % agents.length]!;
        const r = agent.observe({ device_id: devices[n % devices.length]!, app: 'slack', action: 'send_message' });
        ledger.observed.add(r.event_id);
      }
    };
    // About 250 events/s for as long as the phases take, from every tower.
    const load = setInterval(() => play(5), 20);
    try {
      await ledger.until(() => ledger.decided.size >= 300, 30_000, '300 decisions');
      // Kill worker 0 while it holds jobs: worker 1 is paused so worker 0 takes every job; on
      // SQLite the test also holds the store's write lock, so the job worker 0 takes cannot finish
      // (its write waits) and is still in BullMQ's active list when worker 0 dies.
      // Jobs worker 1 held when it stopped stay in the active list too: worker 0's is one that
      // appears there after the stop.
      const paused = topo.workers[1]!.run.child;
      // SIGSTOP can freeze worker 1 inside a write transaction, holding the lock the test needs
      // (seen once in CI: 'database is locked'): then let it run a moment and stop it again.
      let release: (() => void) | null = null;
      for (let attempt = 0; release === null; attempt++) {
        paused.kill('SIGSTOP');
        await until(() => processState(paused.pid!) === 'T', 10_000, 'worker 1 stopped');
        release = holdStoreWriteLock(topo.storeUrl);
        if (release === null) {
          if (attempt >= 20) throw new Error('worker 1 kept the store write lock through 20 stops');
          paused.kill('SIGCONT');
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const redis = new Redis(topo.redis.url);
      held.length = 0;
      try {
        const before = new Set(await redis.lrange('edgeplane:uplinks:active', 0, -1));
        const lockedAt = Date.now();
        // A job of usage events (those need the store's write lock; a status or discovery job may not).
        // Worker 0 may have taken its job between the lock and the read above (a busy host): then
        // nothing new appears, and after 5 s the usage jobs still active since the read are taken
        // as held (worker 0's is blocked on the lock; worker 1's, stopped, finish after SIGCONT).
        const takenSince = async () => {
          const stale = Date.now() - lockedAt > 5_000;
          for (const id of await redis.lrange('edgeplane:uplinks:active', 0, -1)) {
            if ((stale || !before.has(id)) && ((await redis.hget(`edgeplane:uplinks:${id}`, 'data')) ?? '').includes('/usage')) held.push(id);
          }
          return held.length > 0;
        };
        await until(takenSince, 20_000, 'worker 0 holding a job of usage events');
        await topo.workers[0]!.kill('SIGKILL');
      } finally {
        release();
        await redis.quit();
      }
      paused.kill('SIGCONT');
      await ledger.until(() => ledger.decided.size >= 900, 60_000, '900 decisions after the worker died');
      await topo.brokers[0]!.kill('SIGKILL');
      await ledger.until(() => ledger.decided.size >= 1500, 60_000, '1500 decisions after the broker node died');
    } finally {
      clearInterval(load);
    }
    // A timeout here shows up as the missing event ids below.
    await ledger.until(() => ledger.unansweredByCloud().length === 0, 60_000, 'the last decisions').catch(() => undefined);
    expect(ledger.unansweredByCloud()).toEqual([]);
    expect(ledger.undecided()).toEqual([]);
    expect(ledger.duplicates()).toEqual([]);
    // The events of the dead worker's job may have been answered already (the towers report what
    // they decided themselves in a later batch); the job itself is taken over once its lock
    // lapses, and finishes (a finished job is removed).
    const redis = new Redis(topo.redis.url);
    try {
      await until(async () => (await Promise.all(held.map((id) => redis.exists(`edgeplane:uplinks:${id}`)))).every((n) => n === 0), 60_000, 'the dead worker\'s job taken over');
    } finally {
      await redis.quit();
    }
    expect(ledger.decided.size).toBe(ledger.observed.size);
    // The towers of the dead node resumed on the other one; the others never noticed.
    expect(world.towers.map((t) => (connects.get(t.id) ?? 0) > 1)).toEqual([true, false, true, false]);
    const metric = await metricsOf(topo.workers[1]!.httpUrl);
    // Jobs the dead worker held were taken over by the survivor (and decided once: above).
    console.log(
      `topology: ${ledger.observed.size} events, surviving worker processed ${metric('uplink_jobs_processed_total')} jobs, retried ${metric('uplink_jobs_retried_total')}, ` +
        `found ${metric('usage_events_duplicate_total')} events already stored, started ${metric('uplink_jobs_started_total')}, failed ${metric('uplink_jobs_failed_total')}`,
    );
    expect(metric('uplink_jobs_retried_total')).toBeGreaterThan(0);

    // Stored exactly once each, read back through the API.
    const api = await ApiClient.login(topo.api.httpUrl, owner.email, owner.password);
    const stored = new Map<string, number>();
    let cursor: string | null = null;
    do {
      const page: { usage: Array<{ id: string }>; next_cursor: string | null } = await api.get(
        `/api/v1/app-usage?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      for (const r of page.usage) stored.set(r.id, (stored.get(r.id) ?? 0) + 1);
      cursor = page.next_cursor;
    } while (cursor);
    expect([...stored.values()].every((c) => c === 1)).toBe(true);
    for (const id of ledger.observed) expect(stored.has(id), `event ${id} stored`).toBe(true);
  }, 240_000);

  it('one violation decided by the workers yields one command, applied at the tower', async () => {
    const tenant = world.tenants[0]!;
    const agent = agents[1]!;
    const device = tenant.device_ids[0]!;
    const r = agent.observe({ device_id: device, app: 'dropbox', action: 'upload_file' });
    await until(() => commands.some((c) => c.tower === world.towers[1]!.id && c.status === 'applied'), 30_000, 'the block applied at the tower');
    const api = await ApiClient.login(topo.api.httpUrl, owner.email, owner.password);
    const listed: { remedial_actions: CommandRecord[] } = await api.get(`/api/v1/remedial-actions?device_id=${device}`);
    const forRule = listed.remedial_actions.filter((c) => c.source === 'auto' && c.tower_id === world.towers[1]!.id);
    expect(forRule).toHaveLength(1);
    expect(ledger.decided.get(r.event_id)).toBe(1);
  }, 60_000);

  it('a remediation issued through the API reaches a tower on another node and is acked', async () => {
    const tenant = world.tenants[0]!;
    const api = await ApiClient.login(topo.api.httpUrl, owner.email, owner.password);
    const tower = world.towers[3]!;
    const feed = await openFeed(topo.api.httpUrl, await accessToken(topo.api.httpUrl, owner));
    try {
      const created: { command: CommandRecord } = await api.post('/api/v1/remedial-actions', {
        device_id: tenant.device_ids[2]!,
        type: 'notify',
        tower_id: tower.id,
        reason: 'topology test',
      });
      await feed.until((m) => m.type === 'remediation' && m.data.id === created.command.id && m.data.status === 'applied', 30_000);
      expect(commands.filter((c) => c.id === created.command.id && c.tower === tower.id)).toHaveLength(1);
    } finally {
      feed.close();
    }
  }, 60_000);
});

/** The state letter of a Linux process (R running, S sleeping, T stopped …). */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/**
 * On SQLite, takes the file's write lock until the returned function is called (null when another
 * connection holds it for 2 s); else a no-op.
 */
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

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A role's counters (its /metrics), by name, summed over labels. */
async function metricsOf(httpUrl: string): Promise<(name: string) => number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  return (name) => {
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))) sum += Number(m[1]);
    return sum;
  };
}

async function accessToken(httpUrl: string, who: TenantOwnerLogin): Promise<string> {
  const res = await fetch(`${httpUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: who.email, password: who.password }),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

interface FeedMessage {
  type: string;
  data: { id?: string; status?: string };
}

/** The tenant's /ws/alerts feed: remediation updates arrive as they happen. */
async function openFeed(httpUrl: string, token: string) {
  const ws = new WebSocket(`${httpUrl.replace('http', 'ws')}/ws/alerts`, ['bearer', token]);
  const seen: FeedMessage[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (raw) => {
    seen.push(JSON.parse(raw.toString()) as FeedMessage);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    async until(match: (m: FeedMessage) => boolean, timeoutMs: number): Promise<FeedMessage> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = seen.find(match);
        if (m) return m;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('timed out waiting for a feed message');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    close: () => ws.close(),
  };
}
