/**
 * The `edgeplane` CLI as users run it: real child processes, real ports on loopback.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../cli/commands/index.js';
import { provisionWorld } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import { jsonLine, runCli, startCli } from '../support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const SMOKE = fileURLToPath(new URL('../../simulator/scenarios/smoke.yaml', import.meta.url));
const LOOPBACK = ['--http-host', '127.0.0.1', '--http-port', '0', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0'];

describe('edgeplane --help', () => {
  it('lists every command and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const name of Object.keys(COMMANDS)) expect(r.stdout).toContain(name);
  });

  it.each(Object.keys(COMMANDS))('%s --help explains its options and exits 0', async (name) => {
    const r = await runCli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: edgeplane ${name}`);
  });

  it('start --help names every config option with its env var', async () => {
    const r = await runCli(['start', '--help']);
    for (const v of ['EDGEPLANE_HTTP_PORT', 'EDGEPLANE_MQTT_PORT', 'EDGEPLANE_DATA_DIR', '--data-dir', '--mqtt-ws-port']) expect(r.stdout).toContain(v);
  });

  it('rejects an unknown command and an unknown flag with exit 2', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    const bad = await runCli(['start', '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no-such-flag');
  });
});

describe('edgeplane start', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes config from EDGEPLANE_* env vars, serves, and shuts down gracefully on SIGTERM', async () => {
    const p = startCli(['start', '--http-host', '127.0.0.1', '--mqtt-host', '127.0.0.1'], {
      EDGEPLANE_DATA_DIR: dir,
      EDGEPLANE_HTTP_PORT: '0',
      EDGEPLANE_MQTT_PORT: '0',
      EDGEPLANE_MQTT_WS_PORT: '0',
      EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    const started = jsonLine(await p.waitForLine((l) => jsonLine(l)?.msg === 'EdgePlane control plane started'))!;
    const http = started.http as string;
    expect((await fetch(`${http}/readyz`)).status).toBe(200);
    const docs = await fetch(`${http}/docs/json`);
    expect(((await docs.json()) as { openapi: string }).openapi).toMatch(/^3\./);
    expect(existsSync(join(dir, 'edgeplane.db'))).toBe(true);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(p.stdout.some((l) => jsonLine(l)?.msg === 'stopped')).toBe(true);
  });

  it('generates and stores an operator password when none is configured', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'edgeplane-cli-'));
    const p = startCli(['start', ...LOOPBACK, '--data-dir', fresh, '--log-level', 'info']);
    await p.waitForLine((l) => jsonLine(l)?.msg === 'EdgePlane control plane started');
    const password = (await readFile(join(fresh, 'initial-admin-password'), 'utf8')).trim();
    expect(password.length).toBeGreaterThanOrEqual(16);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    await rm(fresh, { recursive: true, force: true });
  });

  it('refuses bad configuration naming the flag and the env var', async () => {
    const r = await runCli(['start', '--data-dir', dir], { env: { EDGEPLANE_HTTP_PORT: 'eighty' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--http-port / EDGEPLANE_HTTP_PORT');
  });
});

describe('edgeplane demo (non-interactive)', () => {
  it('plays the demo and writes a passing JSON report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-demo-test-'));
    const report = join(dir, 'report.json');
    const r = await runCli(['demo', '--duration', '3', '--report', report, ...LOOPBACK], { env: { EDGEPLANE_DATA_DIR: join(dir, 'data') } });
    expect(r.code, r.stderr).toBe(0);
    // The console's address and the logins the demo created, printed before the fleet plays.
    expect(r.stdout).toMatch(/^Console: http:\/\/127\.0\.0\.1:\d+\/ .* operator \S+ \/ \S+; acme \S+ \/ \S+; globex /m);
    const json = JSON.parse(await readFile(report, 'utf8')) as Record<string, unknown>;
    for (const key of ['events_sent', 'decisions_received', 'events_without_decision', 'duplicate_decisions', 'violations_injected', 'violations_caught', 'throughput_eps', 'latency_ms']) {
      expect(json).toHaveProperty(key);
    }
    expect(json.events_without_decision).toBe(0);
    expect(json.violations_caught).toBe(json.violations_injected);
    expect(json.latency_ms).toEqual({ p50: expect.any(Number), p90: expect.any(Number), p99: expect.any(Number), max: expect.any(Number) });
    await rm(dir, { recursive: true, force: true });
  });
});

describe('edgeplane agent and simulate against a running control plane', () => {
  let tcp: TestControlPlane;
  beforeAll(async () => {
    tcp = await startTestControlPlane();
  });
  afterAll(async () => {
    await tcp.destroy();
  });

  it('agent: usage JSON lines in, decisions out; bad lines reported and skipped', async () => {
    const { world } = await provisionWorld(await loadScenario(SMOKE), { apiUrl: tcp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD });
    const tower = world.towers[0]!;
    const device = world.tenants[0]!.device_ids[0]!;
    const p = startCli(['agent', '--url', tcp.cp.mqttUrl, '--tower-id', tower.id, '--log-level', 'info'], { EDGEPLANE_TOWER_PASSWORD: tower.password });
    await p.waitForLine((l) => jsonLine(l)?.msg === 'policy bundle received' && jsonLine(l)?.tenant_id === world.tenants[0]!.id);
    p.child.stdin.write(`{"device_id":"${device}","app":"slack","action":"send_message"}\n`);
    p.child.stdin.write('this is not json\n');
    p.child.stdin.write(`{"device_id":"${device}","app":"dropbox","action":"upload_file"}\n`);
    p.child.stdin.end();
    expect(await p.exit).toBe(0);
    const decisions = p.stdout.map(jsonLine).filter((d): d is Record<string, unknown> => d !== null);
    expect(decisions.map((d) => [d.device_id, d.effect])).toEqual([
      [device, 'allow'],
      [device, 'deny'],
    ]);
    expect(p.stderr.join('\n')).toContain('line 2:');
  });

  it('simulate: provisions the scenario, plays it and exits 0 with a passing report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-sim-'));
    const report = join(dir, 'r.json');
    const r = await runCli(['simulate', '--scenario', SMOKE, '--api', tcp.cp.httpUrl, '--mqtt', tcp.cp.mqttUrl, '--admin-email', ADMIN_EMAIL, '--report', report], {
      env: { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('PASSED');
    const json = JSON.parse(await readFile(report, 'utf8')) as { passed: boolean; events_sent: number };
    expect(json.passed).toBe(true);
    expect(json.events_sent).toBeGreaterThan(0);
    await rm(dir, { recursive: true, force: true });
  });
});
