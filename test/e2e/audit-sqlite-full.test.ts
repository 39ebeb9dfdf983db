/**
 * Audit (fault injection): the control plane's SQLite database becomes full (SQLITE_FULL), then
 * space comes back. The real embedded control plane (`startEmbedded`) on loopback with a temp data
 * dir, real MQTT sockets (a real edge agent and a raw mqtt.js tower), real HTTP.
 *
 * "Full" is simulated on the store's own connection: the free pages are used up by a filler table
 * and `PRAGMA max_page_count` is set to the current page count, so every write that needs a new
 * page fails with SQLITE_FULL; raising it again is "space is back".
 *
 * While full: no usage event is acknowledged (no PUBACK, no decision, nothing stored), the process
 * keeps serving reads (/healthz, API GETs), an API write that needs space answers 503 UNAVAILABLE
 * naming the storage (not a 500) and leaves nothing behind, the refusals are counted, and the
 * episode is logged once, not once per refused message or request.
 * When space is back: every event the towers retransmit is stored once and answered once, nothing
 * acknowledged before was lost, the API writes again and /readyz is ready.
 *
 * Then the same file is made busy instead: a second connection (as another process on the file
 * would) holds BEGIN IMMEDIATE with a pending write, past the 5 s busy timeout. The same
 * properties hold, logged and counted as a busy episode; after the first refusal has waited out
 * the timeout, later writes are refused without waiting, so the process keeps answering.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedHandle } from '../../cli/embedded.js';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { loadConfig } from '../../shared/config.js';
import { createIdFactory } from '../../shared/ids.js';
import { createLogger } from '../../shared/logger.js';
import type { DecisionBatch, UsageBatch } from '../../shared/mqtt/payloads.js';
import { filters, topics } from '../../shared/mqtt/topics.js';
import { ApiClient, ApiError } from '../../simulator/api-client.js';
import { provisionWorld, type TenantOwnerLogin } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { LogCapture } from '../support/log-lines.js';

const SMOKE = fileURLToPath(new URL('../../simulator/scenarios/smoke.yaml', import.meta.url));
const EMAIL = 'admin@edgeplane.test';
const PASSWORD = 'e2e-operator-password-1234';
/** Events per batch: more than a 4 KiB page holds, so storing a batch needs a new page. */
const EVENTS_PER_BATCH = 40;
/** Refused deliveries to wait for while full: several rounds of redelivery by each tower. */
const REFUSALS_WHILE_FULL = 6;
const WAIT_MS = 20_000;

const newId = createIdFactory();

let dir: string;
let cp: EmbeddedHandle;
let capture: LogCapture;
let world: ProvisionedWorld;
let ownerLogin: TenantOwnerLogin;
let owner: ApiClient;
let tenantId: string;
let devices: string[];
let agent: EdgeAgent;
let raw: MqttClient;
/** The cloud's answers the agent received (decisions and reconciliations), per event id. */
const agentDecisions = new Map<string, number>();
/** Decisions the raw tower received, per event id. */
const rawDecisions = new Map<string, number>();

/** The store's own connection: `max_page_count` is a setting of the connection, not the file. */
function storeDb(): Database.Database {
  const db = (cp.store as unknown as { db: Database.Database | null }).db;
  if (!db) throw new Error('the store is not open');
  return db;
}

let originalMaxPages = 0;
/** The SQLITE_FULL error the store's connection gave (for the one write the cap cannot reach). */
let fullError: Error | null = null;

/** Uses up every free page, then caps the file at its size: a write needing a page fails. */
function diskFull(): void {
  const db = storeDb();
  originalMaxPages = db.pragma('max_page_count', { simple: true }) as number;
  db.exec('CREATE TABLE IF NOT EXISTS audit_disk_filler (x BLOB) STRICT');
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
  const fill = db.prepare('INSERT INTO audit_disk_filler (x) VALUES (randomblob(?))');
  for (let size = 64 * 1024; size >= 64; ) {
    try {
      fill.run(size);
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_FULL') throw err;
      fullError = err as Error;
      size /= 2;
    }
  }
}

function spaceBack(): void {
  storeDb().pragma(`max_page_count = ${originalMaxPages}`);
}

/** Usage rows per event id, read from the file by a connection of its own: what is committed. */
function storedCounts(ids: readonly string[]): Map<string, number> {
  const db = new Database(join(dir, 'edgeplane.db'), { readonly: true, fileMustExist: true });
  try {
    const stmt = db.prepare<[string, string], { n: number }>('SELECT COUNT(*) AS n FROM usage WHERE tenant_id = ? AND id = ?');
    return new Map(ids.map((id) => [id, stmt.get(tenantId, id)!.n]));
  } finally {
    db.close();
  }
}

function usageBatch(n: number): UsageBatch {
  const now = Date.now();
  return {
    v: 1,
    id: newId(),
    sent_at: now,
    events: Array.from({ length: n }, (_, i) => ({ id: newId(), ts: now, device_id: devices[i % devices.length]!, app: i % 5 === 0 ? 'dropbox' : 'slack', action: i % 5 === 0 ? 'upload_file' : 'send_message' })),
  };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function logLines(): Array<Record<string, unknown>> {
  return capture.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-full-'));
  capture = new LogCapture();
  const config = loadConfig(
    {
      data_dir: dir,
      http_host: '127.0.0.1',
      http_port: 0,
      mqtt_host: '127.0.0.1',
      mqtt_port: 0,
      mqtt_ws_port: 0,
      admin_email: EMAIL,
      admin_password: PASSWORD,
      rate_limit_per_min: 100_000,
    },
    {},
  );
  cp = await startEmbedded(config, { logger: createLogger('info', capture) });
  const operator = await ApiClient.login(cp.httpUrl, EMAIL, PASSWORD);
  await operator.patch('/api/v1/plans/free', { max_events_per_s: null });
  const provisioned = await provisionWorld({ ...(await loadScenario(SMOKE)), outages: [] }, { apiUrl: cp.httpUrl, adminEmail: EMAIL, adminPassword: PASSWORD });
  world = provisioned.world;
  ownerLogin = provisioned.owners[0]!;
  owner = await ApiClient.login(cp.httpUrl, ownerLogin.email, ownerLogin.password);
  tenantId = world.tenants[0]!.id;
  devices = world.tenants[0]!.device_ids;

  const agentTower = world.towers[0]!;
  agent = new EdgeAgent({ url: cp.mqttUrl, towerId: agentTower.id, password: agentTower.password, reconnectMinMs: 50, reconnectMaxMs: 200, bundleSettleMs: 50 });
  agent.on('error', () => undefined);
  // The cloud's answer to each event: a decision, or (for an event the agent had to decide
  // locally meanwhile) the reconciliation with its local decision.
  const answered = (id: string): void => void agentDecisions.set(id, (agentDecisions.get(id) ?? 0) + 1);
  agent.on('decision', (_t, d, origin) => origin.source === 'cloud' && answered(d.event_id));
  agent.on('reconciled', (r) => answered(r.event_id));
  await agent.start();
  await agent.whenReady();

  const rawTower = world.towers[1]!;
  raw = await mqtt.connectAsync(cp.mqttUrl, {
    protocolVersion: 4,
    clientId: `tower-${rawTower.id}`,
    username: rawTower.id,
    password: rawTower.password,
    // A persistent session and reconnects: mqtt.js resends an unacknowledged QoS 1 PUBLISH.
    clean: false,
    reconnectPeriod: 100,
  });
  raw.on('error', () => undefined);
  await raw.subscribeAsync(filters.towerDecisions(rawTower.id), { qos: 1 });
  raw.on('message', (topic, payload) => {
    if (topic !== topics.decisions(tenantId, rawTower.id)) return;
    const batch = JSON.parse(payload.toString()) as DecisionBatch;
    for (const d of batch.decisions) rawDecisions.set(d.event_id, (rawDecisions.get(d.event_id) ?? 0) + 1);
  });
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await raw?.endAsync(true);
  await cp?.stop();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

async function dashboardUsage(): Promise<number> {
  return (await owner.get<{ metrics: { usage_total: number } }>('/api/v1/dashboard/metrics')).metrics.usage_total;
}

/** A counter or gauge from /metrics (real HTTP, operator token), summed over label sets matching `labels`. */
async function scrape(operator: ApiClient, name: string, labels = ''): Promise<number> {
  const text = await operator.get<string>('/metrics');
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if ((m[1] ?? '').includes(labels)) sum += Number(m[2]);
  return sum;
}

describe('the SQLite store becomes full, then space comes back', () => {
  it('refuses events without acknowledging them, keeps serving, and processes the retransmissions exactly once', async () => {
    const operator = await ApiClient.login(cp.httpUrl, EMAIL, PASSWORD);
    // Acknowledged before the episode: must survive it.
    const before = Array.from({ length: 10 }, (_, i) => agent.observe({ device_id: devices[i % devices.length]!, app: 'slack', action: 'send_message' }).event_id);
    await until(() => before.every((id) => agentDecisions.has(id)), 'the first decisions');
    const usageBefore = await dashboardUsage();
    const { key } = await owner.post<{ key: string }>('/api/v1/api-keys', { name: 'reader', scopes: ['devices:read'] });
    const rolesBefore = (await owner.get<{ roles: Array<{ name: string }> }>('/api/v1/roles')).roles.length;

    diskFull();
    const linesAtStart = capture.lines.length;
    expect(fullError).toMatchObject({ code: 'SQLITE_FULL' });

    // The agent's events (one batch) and the raw tower's batch: neither may be acknowledged.
    const agentIds = Array.from({ length: EVENTS_PER_BATCH }, (_, i) => agent.observe({ device_id: devices[i % devices.length]!, app: 'slack', action: 'send_message' }).event_id);
    const batch = usageBatch(EVENTS_PER_BATCH);
    let pubacked = false;
    const published = raw.publishAsync(topics.usage(tenantId, world.towers[1]!.id), JSON.stringify(batch), { qos: 1 }).then(() => (pubacked = true));
    const rawIds = batch.events.map((e) => e.id);

    // Both towers redeliver, several times each, and are refused every time.
    await until(async () => (await scrape(operator, 'store_full_errors_total', 'source="ingest"')) >= REFUSALS_WHILE_FULL, 'refused deliveries while full');
    expect(pubacked).toBe(false);
    expect(agentIds.filter((id) => agentDecisions.has(id))).toEqual([]);
    expect(rawIds.filter((id) => rawDecisions.has(id))).toEqual([]);
    expect([...storedCounts([...agentIds, ...rawIds]).values()].filter((n) => n !== 0)).toEqual([]);

    // Reads keep working: liveness, readiness, API GETs (a token, an API key).
    expect((await fetch(`${cp.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${cp.httpUrl}/readyz`)).status).toBe(200);
    expect(await dashboardUsage()).toBe(usageBefore);
    expect((await owner.get<{ devices: unknown[] }>('/api/v1/devices')).devices.length).toBeGreaterThan(0);
    // The key's first use stamps its last_used_at: a write. The page cap cannot reach that
    // in-place UPDATE (a full disk does), so here it fails as this store's writes fail.
    const apiKeys = cp.store.apiKeys;
    const touch = apiKeys.touch.bind(apiKeys);
    apiKeys.touch = () => Promise.reject(fullError!);
    try {
      expect((await fetch(`${cp.httpUrl}/api/v1/devices`, { headers: { 'x-api-key': key } })).status).toBe(200);
    } finally {
      apiKeys.touch = touch;
    }

    // Writes that need space: 503 naming the storage, and nothing of them is left behind.
    let refused: ApiError | null = null;
    const created: string[] = [];
    for (let i = 0; i < 20 && refused === null; i++) {
      try {
        await owner.post('/api/v1/roles', { name: `full-${i}`, description: 'x'.repeat(2000) });
        created.push(`full-${i}`);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        refused = err;
      }
    }
    expect(refused?.status).toBe(503);
    expect(refused?.body).toEqual({ error: { code: 'UNAVAILABLE', message: expect.stringMatching(/^storage is full/) } });
    const refusedName = `full-${created.length}`;
    const roles = (await owner.get<{ roles: Array<{ name: string }> }>('/api/v1/roles?limit=100')).roles;
    expect(roles.map((r) => r.name)).not.toContain(refusedName);
    expect(roles.length).toBe(rolesBefore + created.length);

    // Counted, and logged once for the whole episode, not once per refusal.
    expect(await scrape(operator, 'store_full_errors_total', 'source="api"')).toBeGreaterThanOrEqual(1);
    expect(await scrape(operator, 'store_full')).toBe(1);
    const during = logLines().slice(linesAtStart);
    expect(during.filter((l) => l.event === 'store_full')).toHaveLength(1);
    expect(during.filter((l) => l.msg === 'uplink refused: ingest failed' || l.msg === 'request failed' || l.msg === 'audit record could not be written')).toEqual([]);

    // Space is back: what the towers retransmit is stored once and answered once.
    spaceBack();
    await published;
    await until(() => agentIds.every((id) => agentDecisions.has(id)) && rawIds.every((id) => rawDecisions.has(id)), 'decisions after space came back');
    expect([...storedCounts([...before, ...agentIds, ...rawIds]).entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect([...before, ...agentIds].filter((id) => agentDecisions.get(id) !== 1)).toEqual([]);
    expect(rawIds.filter((id) => rawDecisions.get(id) !== 1)).toEqual([]);
    expect(await dashboardUsage()).toBe(usageBefore + agentIds.length + rawIds.length);
    expect((await fetch(`${cp.httpUrl}/readyz`)).status).toBe(200);
    // The refused write goes through now (nothing half-written stood in its way).
    await owner.post('/api/v1/roles', { name: refusedName, description: 'x'.repeat(2000) });
    expect(await scrape(operator, 'store_full')).toBe(0);
    const episodes = logLines().slice(linesAtStart);
    expect(episodes.filter((l) => l.event === 'store_full')).toHaveLength(1);
    expect(episodes.filter((l) => l.event === 'store_writable')).toHaveLength(1);
  }, 60_000);
});

describe('another process holds the SQLite write lock, then releases it', () => {
  it('refuses events without acknowledging them, once per episode in the log, and processes the retransmissions exactly once', async () => {
    const operator = await ApiClient.login(cp.httpUrl, EMAIL, PASSWORD);
    const usageBefore = await dashboardUsage();
    const other = new Database(join(dir, 'edgeplane.db'));
    let linesAtStart = capture.lines.length;
    let agentIds: string[] = [];
    let rawIds: string[] = [];
    let published: Promise<unknown> = Promise.resolve();
    let pubacked = false;
    try {
      other.exec('BEGIN IMMEDIATE');
      other.prepare('UPDATE tenants SET name = name WHERE id = ?').run(tenantId);
      linesAtStart = capture.lines.length;

      agentIds = Array.from({ length: EVENTS_PER_BATCH }, (_, i) => agent.observe({ device_id: devices[i % devices.length]!, app: 'slack', action: 'send_message' }).event_id);
      const batch = usageBatch(EVENTS_PER_BATCH);
      published = raw.publishAsync(topics.usage(tenantId, world.towers[1]!.id), JSON.stringify(batch), { qos: 1 }).then(() => (pubacked = true));
      rawIds = batch.events.map((e) => e.id);

      // Both towers redeliver and are refused each time: after the first refusal's wait, at once.
      await until(async () => (await scrape(operator, 'store_busy_errors_total', 'source="ingest"')) >= REFUSALS_WHILE_FULL, 'refused deliveries while busy');
      expect(pubacked).toBe(false);
      expect(agentIds.filter((id) => agentDecisions.has(id))).toEqual([]);
      expect(rawIds.filter((id) => rawDecisions.has(id))).toEqual([]);
      expect((await fetch(`${cp.httpUrl}/healthz`)).status).toBe(200);
      expect(await dashboardUsage()).toBe(usageBefore);
      // An API write is refused the same way (503), counted in the same episode.
      const refused = await owner.post('/api/v1/roles', { name: 'busy-role' }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(ApiError);
      expect((refused as ApiError).status).toBe(503);
      expect((refused as ApiError).body).toEqual({ error: { code: 'UNAVAILABLE', message: expect.stringMatching(/^storage is busy/) } });
      expect(await scrape(operator, 'store_busy')).toBe(1);
      const during = logLines().slice(linesAtStart);
      expect(during.filter((l) => l.event === 'store_busy')).toHaveLength(1);
      expect(during.filter((l) => l.msg === 'uplink refused: ingest failed' || l.msg === 'request failed' || l.msg === 'audit record could not be written')).toEqual([]);
      other.exec('COMMIT');
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }

    // Released: what the towers retransmit is stored once and answered once.
    await published;
    await until(() => agentIds.every((id) => agentDecisions.has(id)) && rawIds.every((id) => rawDecisions.has(id)), 'decisions after the lock was released');
    expect([...storedCounts([...agentIds, ...rawIds]).entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(agentIds.filter((id) => agentDecisions.get(id) !== 1)).toEqual([]);
    expect(rawIds.filter((id) => rawDecisions.get(id) !== 1)).toEqual([]);
    expect(await dashboardUsage()).toBe(usageBefore + agentIds.length + rawIds.length);
    await owner.post('/api/v1/roles', { name: 'busy-role' });
    expect(await scrape(operator, 'store_busy')).toBe(0);
    const episode = logLines().slice(linesAtStart);
    expect(episode.filter((l) => l.event === 'store_busy')).toHaveLength(1);
    expect(episode.filter((l) => l.event === 'store_writable')).toEqual([expect.objectContaining({ kind: 'busy' })]);
  }, 60_000);
});
