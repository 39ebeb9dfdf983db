/**
 * The standalone agent bundle (cli/build/bundle-agent.ts): one file, run by plain Node from a
 * directory no node_modules is reachable from, against the real embedded control plane — the
 * same answers as `edgeplane agent`, and the same exit status when the broker refuses it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleAgent, type AgentBundle } from '../../cli/build/bundle-agent.js';
import { findProjectRoot } from '../../shared/project-root.js';
import { provisionWorld } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import { jsonLine } from '../support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const ROOT = findProjectRoot(import.meta.url);
const SMOKE = join(ROOT, 'simulator', 'scenarios', 'smoke.yaml');

function runBundle(file: string, args: string[], opts: { input: string; env?: NodeJS.ProcessEnv; cwd: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // A bare environment: no NODE_OPTIONS (vitest's loaders), no NODE_PATH.
    const env = { PATH: process.env.PATH ?? '', HOME: opts.cwd, ...opts.env };
    const child = spawn(process.execPath, [file, ...args], { cwd: opts.cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input);
  });
}

describe('standalone agent bundle', () => {
  let dir: string;
  let bundle: AgentBundle;
  let tcp: TestControlPlane;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-agent-bundle-'));
    bundle = await bundleAgent(ROOT, join(dir, 'edgeplane-agent.mjs'));
    tcp = await startTestControlPlane();
  }, 60_000);
  afterAll(async () => {
    await tcp?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('is one executable ES module with its dependencies inside', () => {
    // Nothing could be resolved from where it runs: what it needs is in the file.
    expect(() => createRequire(join(dir, 'x.js')).resolve('mqtt')).toThrow();
    const text = readFileSync(bundle.outfile, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(bundle.packages).toEqual(expect.arrayContaining(['mqtt', 'zod', 'pino']));
    // No bare import of a package is left (only node: built-ins).
    const bare = [...text.matchAll(/\bfrom\s*["']([^"'./][^"']*)["']|\bimport\(\s*["']([^"'./][^"']*)["']\s*\)/g)].map((m) => m[1] ?? m[2]).filter((s) => !s!.startsWith('node:'));
    expect(bare).toEqual([]);
  });

  it('answers every input line against the real control plane, like `edgeplane agent`', async () => {
    const { world } = await provisionWorld(await loadScenario(SMOKE), { apiUrl: tcp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD });
    const tower = world.towers[0]!;
    const tenant = world.tenants[0]!;
    const device = tenant.device_ids[0]!;
    const input = [
      `{"device_id":"${device}","app":"slack","action":"send_message"}`,
      'this is not json',
      `{"device_id":"${device}","app":"dropbox","action":"upload_file"}`,
      '{"device_id":"never-registered","app":"slack","action":"send_message"}',
    ].join('\n');
    const r = await runBundle(bundle.outfile, ['--url', tcp.cp.mqttUrl, '--tower-id', tower.id, '--log-level', 'warn'], {
      input: input + '\n',
      env: { EDGEPLANE_TOWER_PASSWORD: tower.password },
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    const byLine = new Map(r.stdout.split('\n').filter(Boolean).map((l) => { const o = jsonLine(l)!; return [o.line as number, o]; }));
    expect([...byLine.keys()].sort()).toEqual([1, 2, 3, 4]);
    expect(byLine.get(1)).toMatchObject({ tenant_id: tenant.id, device_id: device, effect: 'allow', source: 'cloud' });
    expect(byLine.get(2)).toMatchObject({ event_id: null, rejected: 'invalid_input' });
    expect(byLine.get(3)).toMatchObject({ tenant_id: tenant.id, device_id: device, effect: 'deny', reason: 'rule', source: 'cloud' });
    expect(byLine.get(4)).toMatchObject({ tenant_id: null, reason: 'unknown_device', source: 'local' });
  });

  it('exits 4 with one line on stderr when the broker refuses the credentials', async () => {
    const r = await runBundle(bundle.outfile, ['--url', tcp.cp.mqttUrl, '--tower-id', 'no-such-tower', '--connect-timeout-ms', '5000'], {
      input: '',
      env: { EDGEPLANE_TOWER_PASSWORD: 'nope.nope' },
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^edgeplane agent: the broker at .* refused the connection/);
    expect(r.stdout).toBe('');
  });
});
