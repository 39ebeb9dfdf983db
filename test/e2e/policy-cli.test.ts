/**
 * `edgeplane policy what-if` as a user runs it: the real bin in a child process against the real
 * control plane, with usage recorded by a real edge agent.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import type { Decision } from '../../shared/mqtt/payloads.js';
import { ApiClient } from '../../simulator/api-client.js';
import { runCli } from '../support/cli.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { closedPort } from '../support/ports.js';

const EMAIL = 'owner@cli-whatif.test';
const PASSWORD = 'cli-whatif-owner-password';

let tcp: TestControlPlane;
let dir: string;
let tenantId: string;
let policyId: string;
let draftFile: string;
const uploads: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-policy-cli-'));
  tcp = await startTestControlPlane();
  ({
    tenant: { id: tenantId },
  } = await tcp.operator.post<{ tenant: { id: string } }>('/api/v1/tenants', { name: 'cli-co', owner: { email: EMAIL, password: PASSWORD } }));
  const owner = await ApiClient.login(tcp.cp.httpUrl, EMAIL, PASSWORD);
  for (const [kind, key] of [['apps', 'dropbox'], ['actions', 'upload'], ['actions', 'open']] as const) await owner.post(`/api/v1/${kind}`, { key, name: key });
  const { role } = await owner.post<{ role: { id: string } }>('/api/v1/roles', { name: 'staff' });
  ({
    policy: { id: policyId },
  } = await owner.post<{ policy: { id: string } }>('/api/v1/policies', { name: 'files' }));
  await owner.post('/api/v1/roles/policies/assign', { role_id: role.id, policy_id: policyId });
  const { user } = await owner.post<{ user: { id: string } }>('/api/v1/users', { name: 'ann' });
  await owner.post('/api/v1/users/roles/assign', { user_id: user.id, role_id: role.id });
  await owner.post('/api/v1/devices', { id: 'cli-phone', name: 'phone', user_id: user.id });
  await tcp.operator.post('/api/v1/towers', { id: 'cli-tower', name: 'CLI St' });
  const cred = await tcp.operator.post<{ mqtt: { password: string } }>('/api/v1/towers/cli-tower/credentials', {});

  const agent = new EdgeAgent({ url: tcp.cp.mqttUrl, towerId: 'cli-tower', password: cred.mqtt.password, batchMaxDelayMs: 2 });
  const ready = new Promise<void>((resolve) => agent.on('bundle', () => resolve()));
  await agent.start();
  await ready;
  const pending: Array<Promise<void>> = [];
  for (const action of ['upload', 'open', 'upload', 'open', 'upload']) {
    const { event_id } = agent.observe({ device_id: 'cli-phone', app: 'dropbox', action });
    if (action === 'upload') uploads.push(event_id);
    pending.push(
      new Promise((resolve) => {
        const on = (_t: string | null, d: Decision) => {
          if (d.event_id !== event_id) return;
          agent.off('decision', on);
          resolve();
        };
        agent.on('decision', on);
      }),
    );
  }
  await Promise.all(pending);
  await agent.stop();
  draftFile = join(dir, 'draft.json');
  await writeFile(draftFile, JSON.stringify({ rules: { add: [{ policy_id: policyId, app: 'dropbox', action: 'upload', permission: 'deny' }] } }));
});

afterAll(async () => {
  await tcp?.destroy();
  await rm(dir, { recursive: true, force: true });
});

const auth = () => ['--api', tcp.cp.httpUrl, '--email', EMAIL, '--password', PASSWORD];

describe('edgeplane policy what-if', () => {
  it('reports the flips of a draft over the last hour, streaming every flip to a file', async () => {
    const flips = join(dir, 'flips.ndjson');
    const r = await runCli(['policy', 'what-if', '--tenant', tenantId, '--draft', draftFile, '--since', '1h', '--flips', flips, '--json', ...auth()]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { evaluated: number; flips: { total: number; allow_to_deny: number } };
    expect(result.evaluated).toBe(5);
    expect(result.flips).toMatchObject({ total: 3, allow_to_deny: 3 });
    const lines = (await readFile(flips, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event_id: string });
    expect(lines.map((l) => l.event_id).sort()).toEqual([...uploads].sort());
  });

  it('prints a readable summary, and exits 3 on flips with --fail-on-flips', async () => {
    const r = await runCli(['policy', 'what-if', '--tenant', tenantId, '--draft', draftFile, '--since', '1h', '--fail-on-flips', ...auth()]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/events replayed\s+5 /);
    expect(r.stdout).toMatch(/decisions flipped\s+3 \(allow→deny 3, deny→allow 0\)/);
    expect(r.stdout).toContain('by app                   dropbox +3/-0');
  });

  it('names what a narrowly scoped key was not shown, and a --fail-on-flips gate that cannot see the tests does not pass', async () => {
    const owner = await ApiClient.login(tcp.cp.httpUrl, EMAIL, PASSWORD);
    await owner.post('/api/v1/policy-tests', { name: 'phones open dropbox', device_id: 'cli-phone', app: 'dropbox', action: 'open', expected_effect: 'allow' });
    const { key } = await owner.post<{ key: string }>('/api/v1/api-keys', { name: 'ci gate', scopes: ['policies:simulate'] });
    const quiet = join(dir, 'quiet.json');
    await writeFile(quiet, JSON.stringify({ rules: { add: [{ policy_id: policyId, app: 'dropbox', action: 'open', permission: 'allow' }] } }));
    const args = ['policy', 'what-if', '--tenant', tenantId, '--since', '1h', '--api', tcp.cp.httpUrl, '--api-key', key];
    const gate = await runCli([...args, '--draft', quiet, '--fail-on-flips']);
    expect(gate.stdout).toMatch(/decisions flipped\s+0 /);
    expect(gate.stdout).toContain('left out                 what needs usage:read, policies:read');
    expect(gate.stderr).toContain('cannot tell whether stored policy tests break: these credentials lack policies:read');
    expect(gate.code).toBe(1);
    // Flips are still seen, and fail the gate as ever.
    expect((await runCli([...args, '--draft', draftFile, '--fail-on-flips'])).code).toBe(3);
  });

  it('refuses bad usage with exit 2, and another tenant than the account’s with exit 1', async () => {
    const missing = await runCli(['policy', 'what-if', '--tenant', tenantId, '--since', '1h', ...auth()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--draft is required');
    const badDraft = join(dir, 'bad.json');
    await writeFile(badDraft, JSON.stringify({ rules: { add: [{ app: 'dropbox' }] } }));
    const invalid = await runCli(['policy', 'what-if', '--tenant', tenantId, '--draft', badDraft, '--since', '1h', ...auth()]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/--draft: rules\.add\.0\.policy_id/);
    const when = await runCli(['policy', 'what-if', '--tenant', tenantId, '--draft', draftFile, '--since', 'yesterday-ish', ...auth()]);
    expect(when.code).toBe(2);
    const other = await runCli(['policy', 'what-if', '--tenant', '01J0000000000000000000000Z', '--draft', draftFile, '--since', '1h', ...auth()]);
    expect(other.code).toBe(1);
  });

  it('names the API it cannot reach and why, not just "fetch failed"', async () => {
    const port = await closedPort();
    const r = await runCli(['policy', 'what-if', '--tenant', tenantId, '--draft', draftFile, '--since', '1h', '--api', `http://127.0.0.1:${port}`, '--api-key', 'k']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the API at http://127.0.0.1:${port}: ECONNREFUSED`);
  });
});

