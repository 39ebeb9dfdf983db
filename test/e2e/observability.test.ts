/**
 * What an operator watches, against the real embedded control plane and a real agent: operational
 * events in the logs (one line each, a stable `event` field, no key twice in a line), and
 * /metrics scraped with the static --metrics-token, checked by `promtool check metrics` where
 * promtool is installed (it is skipped with one line otherwise; CI does not install it).
 */
import { execFile, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedHandle } from '../../cli/embedded.js';
import { HealthServer } from '../../cli/roots/health-server.js';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld, type Provisioned } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import { duplicateKeys, LogCapture } from '../support/log-lines.js';

const SMOKE = fileURLToPath(new URL('../../simulator/scenarios/smoke.yaml', import.meta.url));
const EMAIL = 'admin@observability.test';
const PASSWORD = 'observability-operator-1234';
const TOKEN = 'scrape-token-0123456789abcdef';

const promtool = await promisify(execFile)('promtool', ['--version']).then(
  () => true,
  () => false,
);

/** `promtool check metrics` on an exposition: its exit code and what it said. */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics']);
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
    p.stdin.end(text);
  });
}

function checkWithPromtool(text: string): Promise<void> | void {
  if (!promtool) {
    console.warn('promtool check skipped: promtool is not installed (apt-get install -y prometheus)');
    return;
  }
  return promtoolCheck(text).then((r) => {
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  });
}

/** Every family has HELP and TYPE. */
function familiesWithoutHelp(text: string): string[] {
  const help = new Set([...text.matchAll(/^# HELP (\S+) /gm)].map((m) => m[1]!));
  return [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!).filter((n) => !help.has(n));
}

describe('logs and metrics of a running control plane', () => {
  let dir: string;
  let cp: EmbeddedHandle;
  let capture: LogCapture;
  let provisioned: Provisioned;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-obs-'));
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
        metrics_token: TOKEN,
        rate_limit_per_min: 100_000,
      },
      {},
    );
    cp = await startEmbedded(config, { logger: createLogger('info', capture) });
    provisioned = await provisionWorld(await loadScenario(SMOKE), { apiUrl: cp.httpUrl, adminEmail: EMAIL, adminPassword: PASSWORD });
  });

  afterAll(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs refused logins, towers online/offline, alerts and remediations as events; no line repeats a key', async () => {
    const { world, owners } = provisioned;
    const tower = world.towers[0]!;
    const tenant = world.tenants[0]!;
    const device = tenant.device_ids[0]!;

    await expect(
      mqtt.connectAsync(cp.mqttUrl, { protocolVersion: 4, clientId: `tower-${tower.id}`, username: tower.id, password: 'not-the-secret', reconnectPeriod: 0 }),
    ).rejects.toThrow();
    await expect.poll(() => capture.events('mqtt_login_refused').length).toBe(1);
    const refused = capture.events('mqtt_login_refused')[0]!;
    expect(refused).toMatchObject({ level: 40, username: tower.id, reason: 'malformed_password' });
    // Where it came from (address:port of the TCP peer), for operators tracing password guessing.
    expect(refused.peer).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1):\d+$/);

    const agent = new EdgeAgent({ url: cp.mqttUrl, towerId: tower.id, password: tower.password, bundleSettleMs: 50 });
    agent.on('error', () => undefined);
    await agent.start();
    await expect.poll(() => capture.events('tower_online').some((e) => e.tower_id === tower.id)).toBe(true);

    const denied = new Promise<void>((resolve) => agent.on('decision', (_t, d) => d.effect === 'deny' && resolve()));
    agent.observe({ device_id: device, app: 'dropbox', action: 'upload_file' });
    await denied;
    await expect.poll(() => capture.events('alert_opened').length).toBe(1);
    expect(capture.events('alert_opened')[0]).toMatchObject({ level: 40, tenant_id: tenant.id, device_id: device, severity: 'high' });

    const owner = await ApiClient.login(cp.httpUrl, owners[0]!.email, owners[0]!.password);
    const { command } = await owner.post<{ command: { id: string } }>('/api/v1/remedial-actions', { device_id: device, type: 'notify', reason: 'observability test' });
    await expect.poll(() => capture.events('remediation_applied').some((e) => e.command_id === command.id)).toBe(true);
    expect(capture.events('remediation_issued').filter((e) => e.command_id === command.id)).toEqual([
      expect.objectContaining({ tenant_id: tenant.id, type: 'notify', source: 'manual', tower_id: tower.id }),
    ]);

    await agent.stop();
    await expect.poll(() => capture.events('tower_offline').some((e) => e.tower_id === tower.id)).toBe(true);

    const repeated = capture.lines.map((l) => ({ line: l, dups: duplicateKeys(l) })).filter((r) => r.dups.length > 0);
    expect(repeated).toEqual([]);
  });

  it('serves /metrics to the static token (and operators), with HELP on every family; promtool finds no problem', async () => {
    expect((await fetch(`${cp.httpUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${cp.httpUrl}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const res = await fetch(`${cp.httpUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const family of [
      'mqtt_connected_towers',
      'mqtt_connections',
      'ingest_in_flight',
      'decision_latency_seconds',
      'ingest_batch_events',
      'ingest_duration_seconds',
      'usage_events_stored_total',
      'mqtt_auth_failures_total',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toMatch(new RegExp(`^# HELP ${family} `, 'm'));
    }
    expect(text).toMatch(/^decision_latency_seconds_count [1-9]/m);
    expect(familiesWithoutHelp(text)).toEqual([]);
    await checkWithPromtool(text);

    const operator = await ApiClient.login(cp.httpUrl, EMAIL, PASSWORD);
    expect(await operator.request<string>('GET', '/metrics')).toContain('# HELP usage_batches_total');
  });

  it('broker and worker health ports: /metrics needs the token when one is set', async () => {
    const counters = new Counters();
    counters.collectProcessMetrics();
    counters.inc('uplink_jobs_processed_total', undefined, 3);
    counters.gauge('uplink_queue_depth', async () => 7);
    const health = new HealthServer({ host: '127.0.0.1', port: 0, role: 'worker', counters, metricsToken: TOKEN, readiness: async () => ({}) });
    await health.start();
    try {
      const url = `http://127.0.0.1:${health.port}/metrics`;
      const refused = await fetch(url);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/^uplink_jobs_processed_total 3$/m);
      expect(text).toMatch(/^uplink_queue_depth 7$/m);
      expect(familiesWithoutHelp(text)).toEqual([]);
      await checkWithPromtool(text);
      expect((await fetch(`http://127.0.0.1:${health.port}/healthz`)).status).toBe(200);
    } finally {
      await health.stop();
    }
  });

  it('health ports bound slow and numerous clients: a late request gets 408 and is closed, connections beyond the cap are closed on accept', async () => {
    const health = new HealthServer({ host: '127.0.0.1', port: 0, role: 'broker', counters: new Counters(), readiness: async () => ({}), requestTimeoutMs: 200, maxConnections: 2 });
    await health.start();
    /** A raw connection: what it received and whether the server closed it, once it is closed. */
    const open = (send: string) => {
      const socket = connect(health.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('error', () => {});
      const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
      socket.on('connect', () => socket.write(send));
      return { socket, closed };
    };
    try {
      // Headers never finished: Node's default waited 60 s for them, and 300 s for a whole request.
      const slow = open('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      const silent = open('');
      expect(await slow.closed).toMatch(/^HTTP\/1\.1 408/);
      expect(await silent.closed).toMatch(/^HTTP\/1\.1 408/);
      // Two held, the third is closed unanswered; once they close, a probe is served again.
      const a = open('');
      const b = open('');
      // Accepted by the server (not only connected on the client's side) before the third comes.
      for (let i = 0; i < 1000 && (await health.openConnections()) < 2; i++) await new Promise<void>((r) => setImmediate(r));
      expect(await health.openConnections()).toBe(2);
      const third = open('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await third.closed).toBe('');
      a.socket.destroy();
      b.socket.destroy();
      await Promise.all([a.closed, b.closed]);
      expect((await fetch(`http://127.0.0.1:${health.port}/healthz`)).status).toBe(200);
    } finally {
      await health.stop();
    }
  });
});
