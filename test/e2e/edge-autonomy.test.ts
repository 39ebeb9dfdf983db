/**
 * Edge autonomy end to end (issue #11), with `edgeplane start` and `edgeplane agent` as real
 * processes on loopback, one data dir and one agent state dir:
 *   1. online, the tower's first event is decided by the cloud, and the tower (now serving the
 *      tenant) gets the tenant's policy bundle;
 *   2. the control plane stops; every event gets a local decision from that bundle, at once,
 *      with the effect the policy says, printed as "source":"local" with the bundle version;
 *   3. the agent is killed with -9 while still offline (its journal holds the events), and
 *      restarted while the control plane is still down: it decides more events at once from
 *      the bundle it copied under --state-dir, and is killed with -9 again;
 *   4. the control plane restarts and the policy changes meanwhile (slack sends now denied);
 *   5. the agent restarts: it replays the journal, the cloud decides every event again and
 *      stores each exactly once, records the local decision and flags each disagreement, counts
 *      it and logs every local allow it now denies.
 * Then `edgeplane simulate` plays the long-outage scenario (shortened) against the same control
 * plane, and its JSON report counts local decisions, reconciled events and no lost event.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../cli/bench/redis-process.js';
import type { FleetReport } from '../../simulator/report.js';
import { ApiClient } from '../../simulator/api-client.js';
import { jsonLine, runCli, startCli, type Running } from '../support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../support/control-plane.js';

const LONG_OUTAGE = fileURLToPath(new URL('../../simulator/scenarios/long-outage.yaml', import.meta.url));
const OWNER = { email: 'owner@edge.test', password: 'edge-owner-password-1' };
const OFFLINE_EVENTS = 40;
/** Events the agent restarted while the control plane is down decides (step 3). */
const RESTART_EVENTS = 4;
const JOURNALLED = OFFLINE_EVENTS + RESTART_EVENTS;

let dataDir: string;
let stateDir: string;
let ports: { http: number; mqtt: number; ws: number };
let cp: Running;
let owner: ApiClient;
let tenantId: string;
let policyId: string;
let towerPassword: string;
const processes: Running[] = [];

function startControlPlane(): Running {
  const p = startCli(
    [
      'start',
      '--data-dir', dataDir,
      '--http-host', '127.0.0.1', '--http-port', String(ports.http),
      '--mqtt-host', '127.0.0.1', '--mqtt-port', String(ports.mqtt), '--mqtt-ws-port', String(ports.ws),
      '--admin-email', ADMIN_EMAIL,
      '--log-level', 'info', '--log-format', 'json',
    ],
    { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD },
  );
  processes.push(p);
  return p;
}

async function started(p: Running): Promise<void> {
  await p.waitForLine((l) => jsonLine(l)?.msg === 'EdgePlane control plane started');
}

function startAgent(extra: string[] = []): Running {
  const p = startCli(
    [
      'agent',
      ...extra,
      '--url', `mqtt://127.0.0.1:${ports.mqtt}`,
      '--tower-id', 'edge-tower',
      '--state-dir', stateDir,
      '--batch-max-delay-ms', '2',
      '--decision-timeout-ms', '30000',
      '--log-format', 'json', '--log-level', 'info',
    ],
    { EDGEPLANE_TOWER_PASSWORD: towerPassword },
  );
  processes.push(p);
  return p;
}

/** The agent's answer to input line `n` (stdout, JSON). */
function answer(agent: Running, n: number): Promise<Record<string, unknown>> {
  return agent.waitForLine((l) => jsonLine(l)?.line === n).then((l) => jsonLine(l)!);
}

function logged(p: Running, event: string, extra: (j: Record<string, unknown>) => boolean = () => true): Promise<string> {
  return p.waitForLine((l) => {
    const j = jsonLine(l);
    return j?.event === event && extra(j);
  });
}

function usageRows(): Map<string, { effect: string; local_effect: string | null; local_policy_version: number | null; disagreement: number }> {
  const db = new Database(join(dataDir, 'edgeplane.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('SELECT id, effect, local_effect, local_policy_version, disagreement FROM usage WHERE tenant_id = ?')
      .all(tenantId) as Array<{ id: string; effect: string; local_effect: string | null; local_policy_version: number | null; disagreement: number }>;
    return new Map(rows.map(({ id, ...r }) => [id, r]));
  } finally {
    db.close();
  }
}

async function currentVersion(): Promise<number> {
  const { versions } = await owner.get<{ versions: Array<{ version: number }> }>('/api/v1/policy-versions?limit=1');
  return versions[0]!.version;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-autonomy-cp-'));
  stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-autonomy-agent-'));
  ports = { http: await freePort(), mqtt: await freePort(), ws: await freePort() };
  cp = startControlPlane();
  await started(cp);
  const operator = await ApiClient.login(`http://127.0.0.1:${ports.http}`, ADMIN_EMAIL, ADMIN_PASSWORD);
  ({ tenant: { id: tenantId } } = await operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name: 'edge-co', owner: OWNER }));
  owner = await ApiClient.login(`http://127.0.0.1:${ports.http}`, OWNER.email, OWNER.password);
  for (const [kind, key] of [['apps', 'dropbox'], ['apps', 'slack'], ['actions', 'upload'], ['actions', 'send']] as const) await owner.post(`/api/v1/${kind}`, { key, name: key });
  const { role } = await owner.post<{ role: { id: string } }>('/api/v1/roles', { name: 'staff' });
  ({ policy: { id: policyId } } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: 'files', severity: 'high' }));
  await owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policyId });
  await owner.post('/api/v1/policy-rules', { policy_id: policyId, app: 'dropbox', action: 'upload', permission: 'deny' });
  const { user } = await owner.post<{ user: { id: string } }>('/api/v1/users', { name: 'erin' });
  await owner.post('/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id });
  await owner.post('/api/v1/devices', { id: 'edge-phone', name: 'phone', user_id: user.id });
  await owner.post('/api/v1/devices', { id: 'edge-tablet', name: 'tablet' });
  await operator.post('/api/v1/towers', { id: 'edge-tower', name: 'Edge St' });
  ({ mqtt: { password: towerPassword } } = await operator.post<{ mqtt: { password: string } }>('/api/v1/towers/edge-tower/credentials', {}));
}, 60_000);

afterAll(async () => {
  for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(processes.map((p) => p.exit));
  await rm(dataDir, { recursive: true, force: true });
  await rm(stateDir, { recursive: true, force: true });
}, 30_000);

/** What the bundle says for each offline line: device, app, action, effect, reason. */
function offlineEvent(i: number): { device: string; app: string; action: string; effect: string; reason: string } {
  switch (i % 4) {
    case 0:
      return { device: 'edge-phone', app: 'dropbox', action: 'upload', effect: 'deny', reason: 'rule' };
    case 1:
      return { device: 'edge-phone', app: 'slack', action: 'send', effect: 'allow', reason: 'default' };
    case 2:
      return { device: 'edge-tablet', app: 'dropbox', action: 'upload', effect: 'allow', reason: 'default' };
    default:
      return { device: 'edge-tablet', app: 'slack', action: 'send', effect: 'allow', reason: 'default' };
  }
}

describe('the tower decides alone, survives kill -9, and reconciles', () => {
  it('local decisions offline, journal across kill -9, every event stored once, disagreements recorded', async () => {
    // 1. Online: the cloud decides; the tower now serves the tenant and gets its bundle.
    let agent = startAgent();
    await logged(agent, 'connected');
    const bundleApplied = logged(agent, 'bundle_applied', (j) => j.kind === 'policy');
    agent.child.stdin.write('{"device_id":"edge-phone","app":"slack","action":"send"}\n');
    const first = await answer(agent, 1);
    expect(first).toMatchObject({ tenant_id: tenantId, effect: 'allow', source: 'cloud' });
    await bundleApplied;
    const v = await currentVersion();

    // 2. The control plane stops: every event is decided from the bundle, at once.
    const offline = logged(agent, 'offline');
    cp.child.kill('SIGTERM');
    expect(await cp.exit).toBe(0);
    await offline;
    for (let i = 0; i < OFFLINE_EVENTS; i++) {
      const e = offlineEvent(i);
      agent.child.stdin.write(JSON.stringify({ device_id: e.device, app: e.app, action: e.action }) + '\n');
    }
    const answers = await Promise.all(Array.from({ length: OFFLINE_EVENTS }, (_, i) => answer(agent, i + 2)));
    answers.forEach((a, i) => {
      const e = offlineEvent(i);
      expect(a, `line ${i + 2}`).toMatchObject({ tenant_id: tenantId, device_id: e.device, effect: e.effect, reason: e.reason, source: 'local', bundle_version: v });
    });
    const offlineIds = answers.map((a) => a.event_id as string);

    // 3. kill -9 while still offline: nothing was sent; the journal holds every event.
    agent.child.kill('SIGKILL');
    await agent.exit;
    expect((await readdir(join(stateDir, 'journal-edge-tower'))).some((n) => n.endsWith('.seg'))).toBe(true);

    // Restarted while the control plane is still down: the bundle copied under --state-dir
    // decides at once, with the same version (an agent without it would have nothing to decide
    // from, and would exit 3 when the broker cannot be reached at start).
    agent = startAgent(['--connect-timeout-ms', '500']);
    const restored = jsonLine(await logged(agent, 'bundles_restored'))!;
    expect(restored).toMatchObject({ tenants: 1, invalid: 0, unreadable: 0 });
    await logged(agent, 'started_offline');
    for (let i = 0; i < RESTART_EVENTS; i++) {
      const e = offlineEvent(OFFLINE_EVENTS + i);
      agent.child.stdin.write(JSON.stringify({ device_id: e.device, app: e.app, action: e.action }) + '\n');
    }
    const afterRestart = await Promise.all(Array.from({ length: RESTART_EVENTS }, (_, i) => answer(agent, i + 1)));
    afterRestart.forEach((a, i) => {
      const e = offlineEvent(OFFLINE_EVENTS + i);
      expect(a, `restarted, line ${i + 1}`).toMatchObject({ tenant_id: tenantId, device_id: e.device, effect: e.effect, reason: e.reason, source: 'local', bundle_version: v });
    });
    offlineIds.push(...afterRestart.map((a) => a.event_id as string));
    agent.child.kill('SIGKILL');
    await agent.exit;

    // 4. The control plane comes back; the policy changes meanwhile: staff may not send on slack.
    cp = startControlPlane();
    await started(cp);
    owner = await ApiClient.login(`http://127.0.0.1:${ports.http}`, OWNER.email, OWNER.password);
    await owner.post('/api/v1/policy-rules', { policy_id: policyId, app: 'slack', action: 'send', permission: 'deny' });
    expect(await currentVersion()).toBe(v + 1);

    // 5. The agent restarts: it replays the journal (then input ends, and it drains and exits).
    agent = startAgent();
    await logged(agent, 'journal_replay', (j) => j.events === JOURNALLED);
    await logged(agent, 'connected');
    agent.child.stdin.end();
    expect(await agent.exit).toBe(0);
    const stopped = jsonLine(agent.stderr.find((l) => jsonLine(l)?.event === 'stopped')!)!;
    expect(stopped).toMatchObject({ journal_pending_events: 0, events_replayed: JOURNALLED, local_decisions_reconciled: JOURNALLED, local_disagreements: JOURNALLED / 4 });

    // Every journalled event stored exactly once, with the tower's local decision beside the
    // cloud's; the edge-phone slack sends (allowed locally, denied by the new rule) disagree.
    const rows = usageRows();
    expect(rows.size).toBe(JOURNALLED + 1);
    expect([...rows.keys()].sort()).toEqual([first.event_id as string, ...offlineIds].sort());
    const expectedDisagreements: string[] = [];
    offlineIds.forEach((id, i) => {
      const e = offlineEvent(i);
      const row = rows.get(id)!;
      expect(row, `line ${i + 2}`).toMatchObject({ local_effect: e.effect, local_policy_version: v });
      const cloud = i % 4 === 1 ? 'deny' : e.effect;
      expect(row.effect, `line ${i + 2}`).toBe(cloud);
      expect(row.disagreement, `line ${i + 2}`).toBe(cloud !== e.effect ? 1 : 0);
      if (cloud !== e.effect) expectedDisagreements.push(id);
    });
    expect(expectedDisagreements).toHaveLength(JOURNALLED / 4);
    expect(rows.get(first.event_id as string)).toMatchObject({ local_effect: null, disagreement: 0 });

    // Visible in the API, and alerted on: every local allow the cloud denies is logged.
    const { usage } = await owner.get<{ usage: Array<{ id: string; disagreement: boolean; local_effect: string }> }>('/api/v1/app-usage?disagreement=true&limit=100');
    expect(usage.map((u) => u.id).sort()).toEqual([...expectedDisagreements].sort());
    expect(usage.every((u) => u.disagreement && u.local_effect === 'allow')).toBe(true);
    await cp.waitForLine((l) => jsonLine(l)?.event === 'local_allow_overturned');
    const overturned = cp.stdout.filter((l) => jsonLine(l)?.event === 'local_allow_overturned').map((l) => jsonLine(l)!.event_id);
    expect(overturned.sort()).toEqual([...expectedDisagreements].sort());
    // An unknown query parameter is still refused; the filter is part of the route's schema.
    await expect(owner.get('/api/v1/app-usage?disagrement=true')).rejects.toThrow(/400|disagrement/);
  }, 120_000);

  it('edgeplane simulate: a long outage reports local decisions, reconciled events and no event lost', async () => {
    const report = join(stateDir, 'long-outage.json');
    const r = await runCli([
      'simulate',
      '--scenario', LONG_OUTAGE,
      '--api', `http://127.0.0.1:${ports.http}`,
      '--mqtt', `mqtt://127.0.0.1:${ports.mqtt}`,
      '--admin-email', ADMIN_EMAIL, '--admin-password', ADMIN_PASSWORD,
      '--duration', '12', '--rate', '100',
      '--report', report,
    ]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const json = JSON.parse(await readFile(report, 'utf8')) as FleetReport;
    console.info(`long-outage simulation: ${JSON.stringify({ local: json.local_decisions, reconciled: json.reconciled_events, disagreements: json.disagreements, lost: json.events_lost, sent: json.events_sent })}`);
    expect(json.per_tower[0]!.outages).toBe(1);
    expect(json.local_decisions).toBeGreaterThan(0);
    expect(json).toMatchObject({ events_lost: 0, events_without_decision: 0, violations_missed: 0, reconciled_events: json.local_decisions, disagreements: 0, passed: true });
  }, 120_000);
});
