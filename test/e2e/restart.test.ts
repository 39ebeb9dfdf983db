/**
 * Restarts of the embedded control plane under load (issue #7): `edgeplane start` as a real
 * child process on fixed loopback ports and one data dir, provisioned through the API, with real
 * edge agents (the edge-agent library, as the simulator plays it) sending steady usage from three
 * towers. Three faults, one after the other on the same data dir:
 *   (a) kill -9 and an immediate restart, (b) SIGTERM and a restart, (c) kill -9, 30 s of
 *   downtime (the agents keep observing and buffer), then a restart.
 * After each: every event the towers observed ends with exactly one decision at its tower (the
 * agents' 'decision' events, counted per event id), none is lost, and the SQLite file holds
 * exactly one usage row per observed event, with the effect the tower was told.
 *
 * The broker's per-client publish limit is set to 200/s (burst 400) and the agents pace their
 * publishes at 150/s (burst 50): at the default limit (1,000/s) this machine cannot process one
 * tower's replay fast enough to reach it, so without the lower limit the 30 s backlog (about
 * 1,500 one-event batches per tower) would never test the pacing. Without pacing, that backlog
 * trips the limit, the broker drops the connection and the PUBACKs with it.
 * The load is bounded (50 events/s per tower) and stops by itself; everything is on loopback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { jsonLine, startCli, type Running } from '../support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../support/control-plane.js';
import { freePort } from '../../cli/bench/redis-process.js';

const SMOKE = fileURLToPath(new URL('../../simulator/scenarios/smoke.yaml', import.meta.url));
const TOWERS = 3;
const EVENTS_PER_S_PER_TOWER = 50;
const BROKER_PUBLISH_RATE = 200;
const BROKER_PUBLISH_BURST = 400;
const AGENT_PUBLISH_RATE = 150;
const AGENT_PUBLISH_BURST = 50;
/** Events played around each fault: before it, and again once every tower is back. */
const EVENTS_AROUND_FAULT = 300;
const DOWNTIME_MS = 30_000;
/** Longest wait for the last decisions after a restart (a 30 s backlog replays within it). */
const SETTLE_TIMEOUT_MS = 30_000;

/** Counts what the towers observed and the cloud decisions they received, per event id. */
class Tally {
  readonly observed = new Set<string>();
  readonly decisions = new Map<string, { count: number; effect: string }>();
  #waiters = new Set<() => void>();

  observe(id: string): void {
    this.observed.add(id);
  }

  decide(id: string, effect: string): void {
    const d = this.decisions.get(id);
    if (d) d.count++;
    else this.decisions.set(id, { count: 1, effect });
    for (const w of [...this.#waiters]) w();
  }

  undecided(): number {
    let n = 0;
    for (const id of this.observed) if (!this.decisions.has(id)) n++;
    return n;
  }

  /** Events decided more than once, and decisions for events no tower observed. */
  duplicates(): number {
    let n = 0;
    for (const [id, d] of this.decisions) if (d.count > 1 || !this.observed.has(id)) n++;
    return n;
  }

  /** Resolves true once every observed event is decided, false after `timeoutMs`. */
  allDecided(timeoutMs: number): Promise<boolean> {
    if (this.undecided() === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(ok);
      };
      const check = (): void => {
        if (this.undecided() === 0) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(check);
    });
  }
}

/** Steady usage from every tower: EVENTS_PER_S_PER_TOWER each, in 10 ms slices. */
class Load {
  readonly #agents: EdgeAgent[];
  readonly #tally: Tally;
  readonly #devices: string[];
  #timer: NodeJS.Timeout | null = null;
  #emitted = 0;
  #next = 0;
  #waiters = new Set<() => void>();

  constructor(agents: EdgeAgent[], tally: Tally, devices: string[]) {
    this.#agents = agents;
    this.#tally = tally;
    this.#devices = devices;
  }

  start(): void {
    if (this.#timer) return;
    let last = performance.now();
    let owed = 0;
    this.#timer = setInterval(() => {
      const now = performance.now();
      owed += ((now - last) / 1000) * EVENTS_PER_S_PER_TOWER;
      last = now;
      for (; owed >= 1; owed--) for (const agent of this.#agents) this.#emit(agent);
      for (const w of [...this.#waiters]) w();
    }, 10);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Resolves once `count` more events have been observed (the load must be running). */
  more(count: number): Promise<void> {
    const target = this.#emitted + count;
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.#emitted < target) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  #emit(agent: EdgeAgent): void {
    const i = this.#next++;
    const device = this.#devices[i % this.#devices.length]!;
    // One in four is a violation (dropbox upload is denied by the smoke policy).
    const [app, action] = i % 4 === 0 ? ['dropbox', 'upload_file'] : ['slack', 'send_message'];
    const { event_id, tenant_id } = agent.observe({ device_id: device, app, action });
    if (tenant_id === null) throw new Error(`device ${device} not mapped at ${agent.towerId}`);
    this.#tally.observe(event_id);
    this.#emitted++;
  }
}

interface PhaseReport {
  phase: string;
  events_observed: number;
  lost: number;
  duplicates: number;
  usage_rows: number;
  rate_limited_publishes: number;
  redeliveries_ignored: number;
}

let dataDir: string;
let ports: { http: number; mqtt: number; ws: number };
let cp: Running;
let world: ProvisionedWorld;
let agents: EdgeAgent[] = [];
let load: Load;
const tally = new Tally();
const runs: Running[] = [];

function startControlPlane(): Running {
  const p = startCli(
    [
      'start',
      '--data-dir', dataDir,
      '--http-host', '127.0.0.1', '--http-port', String(ports.http),
      '--mqtt-host', '127.0.0.1', '--mqtt-port', String(ports.mqtt), '--mqtt-ws-port', String(ports.ws),
      '--mqtt-publish-rate', String(BROKER_PUBLISH_RATE), '--mqtt-publish-burst', String(BROKER_PUBLISH_BURST),
      '--admin-email', ADMIN_EMAIL,
      '--log-level', 'info',
    ],
    { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD },
  );
  runs.push(p);
  return p;
}

async function started(p: Running): Promise<void> {
  await p.waitForLine((l) => jsonLine(l)?.msg === 'EdgePlane control plane started');
}

/** Resolves once every agent is connected and subscribed again. */
function allOnline(): Promise<void> {
  return Promise.all(agents.map((a) => (a.online ? undefined : new Promise<void>((resolve) => a.once('connect', () => resolve()))))).then(() => undefined);
}

function rateLimited(): number {
  return runs.reduce((n, r) => n + r.stdout.filter((l) => jsonLine(l)?.msg === 'publish refused: rate limit exceeded').length, 0);
}

/** Usage rows of the tenant in the SQLite file (read-only; the control plane keeps running). */
function storedUsage(): Map<string, string> {
  const db = new Database(join(dataDir, 'edgeplane.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT id, effect FROM usage WHERE tenant_id = ?').all(world.tenants[0]!.id) as Array<{ id: string; effect: string }>;
    return new Map(rows.map((r) => [r.id, r.effect]));
  } finally {
    db.close();
  }
}

/**
 * Stops the load, drains the agents, waits for the last decisions and checks every count so far;
 * the load resumes afterwards either way, so each phase is measured even if one before failed.
 */
async function settleAndCheck(phase: string): Promise<void> {
  load.stop();
  try {
    await Promise.all(agents.map((a) => a.flush(SETTLE_TIMEOUT_MS)));
    await tally.allDecided(SETTLE_TIMEOUT_MS);
    const rows = storedUsage();
    const report: PhaseReport = {
      phase,
      events_observed: tally.observed.size,
      lost: tally.undecided(),
      duplicates: tally.duplicates(),
      usage_rows: rows.size,
      rate_limited_publishes: rateLimited(),
      redeliveries_ignored: agents.reduce((n, a) => n + a.stats().redeliveries_ignored, 0),
    };
    console.info(`restart e2e (cumulative): ${JSON.stringify(report)}`);
    expect(report.lost).toBe(0);
    expect(report.duplicates).toBe(0);
    // One row per observed event (the key is (tenant, event id)), with the effect the tower got.
    expect(rows.size).toBe(tally.observed.size);
    const mismatched = [...tally.observed].filter((id) => rows.get(id) !== tally.decisions.get(id)?.effect);
    expect(mismatched).toEqual([]);
  } finally {
    load.start();
  }
}

/** Ends the process the way `signal` does and waits until it is gone. */
async function stopControlPlane(signal: 'SIGKILL' | 'SIGTERM'): Promise<number | null> {
  cp.child.kill(signal);
  return cp.exit;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-restart-'));
  ports = { http: await freePort(), mqtt: await freePort(), ws: await freePort() };
  cp = startControlPlane();
  await started(cp);
  // Restarts are measured here, not the plan's event-rate budget (the free plan's 200 events/s
  // would refuse part of a replayed backlog): lift it on this throwaway control plane.
  const operator = await ApiClient.login(`http://127.0.0.1:${ports.http}`, ADMIN_EMAIL, ADMIN_PASSWORD);
  await operator.patch('/api/v1/plans/free', { max_events_per_s: null });
  const smoke = await loadScenario(SMOKE);
  ({ world } = await provisionWorld(
    { ...smoke, name: 'restart', towers: { count: TOWERS, id_prefix: 'restart-tower' }, outages: [] },
    { apiUrl: `http://127.0.0.1:${ports.http}`, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD },
  ));
  const tenant = world.tenants[0]!;
  agents = world.towers.map(
    (t) =>
      new EdgeAgent({
        url: `mqtt://127.0.0.1:${ports.mqtt}`,
        towerId: t.id,
        password: t.password,
        reconnectMinMs: 100,
        reconnectMaxMs: 1000,
        publishRatePerS: AGENT_PUBLISH_RATE,
        publishBurst: AGENT_PUBLISH_BURST,
      }),
  );
  for (const agent of agents) {
    agent.on('decision', (_tenant, d) => tally.decide(d.event_id, d.effect));
    // Socket errors while the control plane is down are expected; the agent reconnects.
    agent.on('error', () => undefined);
  }
  await Promise.all(agents.map((a) => a.start()));
  // Ready once every tower maps every device to the tenant (from the retained PolicyBundle).
  await Promise.all(
    agents.map(
      (a) =>
        new Promise<void>((resolve) => {
          const ready = (): boolean => tenant.device_ids.every((d) => a.tenantOf(d) === tenant.id);
          if (ready()) return resolve();
          const onBundle = (): void => {
            if (!ready()) return;
            a.off('bundle', onBundle);
            resolve();
          };
          a.on('bundle', onBundle);
        }),
    ),
  );
  load = new Load(agents, tally, tenant.device_ids);
  load.start();
}, 60_000);

afterAll(async () => {
  load?.stop();
  await Promise.all(agents.map((a) => a.stop()));
  if (cp && cp.child.exitCode === null && cp.child.signalCode === null) {
    cp.child.kill('SIGTERM');
    await cp.exit;
  }
  await rm(dataDir, { recursive: true, force: true });
}, 60_000);

describe('edgeplane start restarted under load on the same data dir', () => {
  it('kill -9, then an immediate restart: every event decided exactly once, stored once', async () => {
    await load.more(EVENTS_AROUND_FAULT);
    await stopControlPlane('SIGKILL');
    cp = startControlPlane();
    await started(cp);
    await allOnline();
    await load.more(EVENTS_AROUND_FAULT);
    await settleAndCheck('kill -9');
  }, 90_000);

  it('SIGTERM, then a restart: every event decided exactly once, stored once', async () => {
    await load.more(EVENTS_AROUND_FAULT);
    expect(await stopControlPlane('SIGTERM')).toBe(0);
    cp = startControlPlane();
    await started(cp);
    await allOnline();
    await load.more(EVENTS_AROUND_FAULT);
    await settleAndCheck('SIGTERM');
  }, 90_000);

  it('kill -9, 30 s of downtime while the towers buffer, then a restart: the backlog replays within the broker limits', async () => {
    await load.more(EVENTS_AROUND_FAULT);
    const limitedBefore = rateLimited();
    await stopControlPlane('SIGKILL');
    // The downtime is the scenario itself: the agents keep observing and buffering meanwhile.
    await delay(DOWNTIME_MS);
    cp = startControlPlane();
    await started(cp);
    await allOnline();
    await load.more(EVENTS_AROUND_FAULT);
    await settleAndCheck('30 s down');
    // The agents paced their replay: the broker never had to refuse a publish for its rate.
    expect(rateLimited() - limitedBefore).toBe(0);
  }, 150_000);
});
