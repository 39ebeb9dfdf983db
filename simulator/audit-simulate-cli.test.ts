/**
 * `edgeplane simulate` at its edges, as a user runs it (the real bin in a child process): a
 * --rate or --duration of 0 and a fleet too big for one process are one clear error (exit 2) before
 * anything is provisioned; SIGINT during playback stops the fleet, which drains and prints its
 * report instead of dying with its connections and temporary state left behind.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli, startCli } from '../test/support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';
import { closedPort } from '../test/support/ports.js';
import { loadScenario, SCENARIO_LIMITS } from './scenario.js';

const SMOKE = fileURLToPath(new URL('./scenarios/smoke.yaml', import.meta.url));
const env = { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD };

describe('edgeplane simulate: bad flags and oversized fleets', () => {
  let dir: string;
  let api: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-sim-audit-'));
    // Nothing listens there: a run that got as far as provisioning would fail on it instead.
    api = `http://127.0.0.1:${await closedPort()}`;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['--rate', '--duration'])('%s 0 is refused (exit 2), not silently replaced by the scenario value', async (flag) => {
    const r = await runCli(['simulate', '--scenario', SMOKE, '--api', api, flag, '0'], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${flag} must be greater than 0`);
  });

  it('a --rate that makes more events than one process can track is refused before provisioning', async () => {
    const r = await runCli(['simulate', '--scenario', SMOKE, '--api', api, '--rate', '1e9'], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`at most ${SCENARIO_LIMITS.events}`);
    expect(r.stderr).not.toContain('cannot reach the API');
  });

  it('a scenario with too many towers or devices names the field', async () => {
    const smoke = await loadScenario(SMOKE);
    const huge = join(dir, 'huge.yaml');
    const tenant = smoke.tenants[0]!;
    await writeFile(
      huge,
      stringify({ ...smoke, towers: { ...smoke.towers, count: 1_000_000 }, tenants: [{ ...tenant, users: { ...tenant.users, count: 50_000_000 } }] }),
    );
    const r = await runCli(['simulate', '--scenario', huge, '--api', api], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`towers.count: Too big`);
    expect(r.stderr).toContain(`devices in all (users.count × devices_per_user): at most ${SCENARIO_LIMITS.devices}`);
    expect(r.stderr).not.toContain('cannot reach the API');
  });
});

describe('edgeplane simulate: SIGINT', () => {
  let tcp: TestControlPlane;
  beforeAll(async () => {
    tcp = await startTestControlPlane();
  });
  afterAll(async () => {
    await tcp.destroy();
  });

  it('stops the playback, drains and prints the report for what was played', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-sim-audit-'));
    try {
      const report = join(dir, 'r.json');
      // Far longer than the test may take: only the signal can end it in time.
      const p = startCli(
        ['simulate', '--scenario', SMOKE, '--api', tcp.cp.httpUrl, '--mqtt', tcp.cp.mqttUrl, '--admin-email', ADMIN_EMAIL, '--duration', '3600', '--report', report],
        env,
      );
      await p.waitForLine((l) => /^t=\d+s sent=[1-9]/.test(l));
      p.child.kill('SIGINT');
      const code = await p.exit;
      // Exited by itself (a process killed by the signal has no exit code), with its summary.
      expect(code, p.stderr.join('\n')).not.toBeNull();
      expect(p.stdout.join('\n')).toMatch(/^Simulation "smoke" \(seed 7\)/m);
      const json = JSON.parse(await readFile(report, 'utf8')) as { events_sent: number; events_without_decision: number };
      expect(json.events_sent).toBeGreaterThan(0);
      expect(json.events_without_decision).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
