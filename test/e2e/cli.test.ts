/**
 * The `edgeplane` CLI as users run it: real child processes, real ports on loopback.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../cli/commands/index.js';
import { provisionWorld } from '../../simulator/provision.js';
import { loadScenario } from '../../simulator/scenario.js';
import { BIN, jsonLine, runCli, startCli } from '../support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { closedPort } from '../support/ports.js';

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

  it('one process per data dir: a second start is refused naming the holder; a dead holder\'s lock is taken over', async () => {
    const d = await mkdtemp(join(tmpdir(), 'edgeplane-lock-'));
    const args = ['start', ...LOOPBACK, '--data-dir', d, '--admin-password', ADMIN_PASSWORD];
    const started = (l: string) => jsonLine(l)?.msg === 'EdgePlane control plane started';
    const spawned: Array<ReturnType<typeof startCli>> = [];
    try {
      const first = startCli(args);
      spawned.push(first);
      await first.waitForLine(started);
      const second = await runCli(args);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(new RegExp(`^edgeplane: --data-dir .+ is in use by another edgeplane process \\(pid ${first.child.pid},`));
      expect(second.stderr).not.toMatch(/\n\s+at /);
      // kill -9 leaves the lock file behind; its holder is gone, so the next start takes it over.
      first.child.kill('SIGKILL');
      await first.exit;
      expect(existsSync(join(d, 'edgeplane.lock'))).toBe(true);
      const third = startCli(args);
      spawned.push(third);
      await third.waitForLine(started);
      // The operator exists already: the password given again is not applied, and that is said.
      expect(third.stdout.map(jsonLine).some((l) => l?.event === 'admin_password_ignored' && l.level === 40)).toBe(true);
      third.child.kill('SIGTERM');
      expect(await third.exit).toBe(0);
      expect(existsSync(join(d, 'edgeplane.lock'))).toBe(false);
    } finally {
      for (const p of spawned) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await rm(d, { recursive: true, force: true });
    }
  });

  it('a start that cannot run names the option to change, prints no stack trace and writes nothing', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    try {
      for (const [flag, env] of [
        ['--http-port', 'EDGEPLANE_HTTP_PORT'],
        ['--mqtt-port', 'EDGEPLANE_MQTT_PORT'],
      ] as const) {
        const fresh = join(dir, `never-created-${flag.slice(2)}`);
        const ports = { '--http-port': '0', '--mqtt-port': '0', [flag]: String(port) };
        const r = await runCli([
          'start', '--data-dir', fresh, '--http-host', '127.0.0.1', '--mqtt-host', '127.0.0.1', '--mqtt-ws-port', '0',
          '--http-port', ports['--http-port'], '--mqtt-port', ports['--mqtt-port'],
        ]);
        expect(r.code).toBe(1);
        expect(r.stderr.trim()).toBe(`edgeplane: ${flag} ${port} is in use on 127.0.0.1: another process listens there; stop it or choose another port (${flag} / ${env})`);
        expect(r.stdout).toBe('');
        expect(existsSync(fresh)).toBe(false);
      }
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
    const file = join(dir, 'a-regular-file');
    await writeFile(file, 'not a directory');
    const bad = await runCli(['start', ...LOOPBACK, '--data-dir', join(file, 'data')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^edgeplane: --data-dir .+ cannot be created: .+a-regular-file is a file \(--data-dir \/ EDGEPLANE_DATA_DIR\)$/);
  });

  it('stdout on a pipe nobody reads (a stopped `| tee`): requests are still served and SIGTERM still stops it', async () => {
    const d = await mkdtemp(join(tmpdir(), 'edgeplane-pipe-'));
    const fifo = join(d, 'stdout.fifo');
    execFileSync('mkfifo', [fifo]);
    // Opened read-write so the open never blocks; the test never reads from it.
    const reader = openSync(fifo, 'r+');
    const writer = openSync(fifo, 'w');
    const httpPort = await closedPort();
    const child = spawn(
      process.execPath,
      [BIN, 'start', ...LOOPBACK.slice(0, 2), '--http-port', String(httpPort), ...LOOPBACK.slice(4), '--data-dir', join(d, 'data'), '--admin-password', ADMIN_PASSWORD, '--shutdown-timeout-ms', '3000'],
      { stdio: ['ignore', writer, 'pipe'] },
    );
    closeSync(writer);
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const base = `http://127.0.0.1:${httpPort}`;
      await expect.poll(() => fetch(`${base}/readyz`).then((r) => r.status, () => 0), { timeout: 20_000 }).toBe(200);
      // Each request logs its ~8 kB URL: 40 of them overfill the 64 kB pipe many times over.
      // (An unknown path: any answer counts, the point is that the server keeps answering.)
      let answered = 0;
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${base}/no-such-page-${'x'.repeat(8000)}`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
        if (res?.status === 404) answered++;
      }
      expect(answered).toBe(40);
      child.kill('SIGTERM');
      const code = await Promise.race([exit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]);
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      closeSync(reader);
      await rm(d, { recursive: true, force: true });
    }
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

  it('agent: every input line gets exactly one output line, read right from the start (the README example)', async () => {
    const { world } = await provisionWorld(await loadScenario(SMOKE), { apiUrl: tcp.cp.httpUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD });
    const tower = world.towers[0]!;
    const tenant = world.tenants[0]!;
    const device = tenant.device_ids[0]!;
    // All of stdin is there before the agent has even connected: nothing may be taken for an
    // unknown device because its policy bundle had not arrived yet.
    const input = [
      `{"device_id":"${device}","app":"slack","action":"send_message"}`,
      'this is not json',
      `{"device_id":"${device}","app":"dropbox","action":"upload_file"}`,
      '',
      '{"device_id":"never-registered","app":"slack","action":"send_message"}',
      '{"device_id":"bad id!","app":"slack","action":"send_message"}',
    ].join('\n');
    const r = await runCli(['agent', '--url', tcp.cp.mqttUrl, '--tower-id', tower.id, '--log-level', 'warn'], { env: { EDGEPLANE_TOWER_PASSWORD: tower.password }, input: input + '\n' });
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout.split('\n').filter(Boolean).map((l) => jsonLine(l)!);
    const byLine = new Map(out.map((o) => [o.line as number, o]));
    expect(out).toHaveLength(5);
    expect([...byLine.keys()].sort()).toEqual([1, 2, 3, 5, 6]);
    expect(byLine.get(1)).toMatchObject({ tenant_id: tenant.id, device_id: device, effect: 'allow', source: 'cloud' });
    expect(byLine.get(2)).toMatchObject({ event_id: null, rejected: 'invalid_input', message: expect.stringMatching(/not JSON/) });
    expect(byLine.get(3)).toMatchObject({ tenant_id: tenant.id, device_id: device, effect: 'deny', reason: 'rule' });
    expect(byLine.get(5)).toMatchObject({ tenant_id: null, device_id: 'never-registered', effect: 'allow', reason: 'unknown_device', source: 'local' });
    expect(byLine.get(6)).toMatchObject({ rejected: 'invalid_input', message: expect.stringMatching(/device_id/) });
  });

  it('agent: an unreachable broker (closed port, unknown host) is one line on stderr and exit 3; a wrong scheme exit 2', async () => {
    const env = { EDGEPLANE_TOWER_PASSWORD: 'unused.secret' };
    const base = ['agent', '--tower-id', 'T1', '--connect-timeout-ms', '1000'];
    for (const url of [`mqtt://127.0.0.1:${await closedPort()}`, 'mqtt://no-such-host.invalid:1883']) {
      const r = await runCli([...base, '--url', url], { env });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^edgeplane agent: cannot reach the broker at ${url.replace(/[.]/g, '\\.')} within 1000 ms \\(.+\\); check --url`))]);
      expect(r.stdout).toBe('');
    }
    // A --state-dir without the bundles of an earlier run changes nothing: there is nothing to
    // decide from (with them the agent starts offline: test/e2e/edge-autonomy.test.ts).
    const stateDir = await mkdtemp(join(tmpdir(), 'edgeplane-agent-state-'));
    try {
      const url = `mqtt://127.0.0.1:${await closedPort()}`;
      const r = await runCli([...base, '--url', url, '--state-dir', stateDir], { env });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(`edgeplane agent: cannot reach the broker at ${url} within 1000 ms`);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
    const wrong = await runCli([...base, '--url', 'http://127.0.0.1:1883'], { env });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('--url http://127.0.0.1:1883: the scheme must be mqtt://, mqtts://, ws:// or wss://');
    // A failover list rotates over mqtt(s):// nodes only: refused as usage, before connecting.
    const list = await runCli([...base, '--url', 'mqtt://127.0.0.1:1883,ws://127.0.0.1:8083'], { env });
    expect(list.code).toBe(2);
    expect(list.stderr).toContain('--url: a failover list takes mqtt:// or mqtts:// URLs, got ws://127.0.0.1:8083');
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
