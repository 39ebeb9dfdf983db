/**
 * The demo as a user runs it (the real CLI in a child process): its temporary data directory is
 * gone when it exits, whether the run ends by itself or by Ctrl-C mid-playback; its live lines
 * carry the p99 of each interval and name a tower while it is offline, with the control plane's
 * log lines in a file it names instead of between them; and its final report puts the towers'
 * remediation commands next to the control plane's, agreeing.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.js';

const LOOPBACK = ['--http-host', '127.0.0.1', '--http-port', '0', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0'];
/** No data dir from the environment: the demo makes (and must remove) its own. */
const OWN_DATA_DIR = { EDGEPLANE_DATA_DIR: '' };

function logFileOf(output: string): string {
  const m = /control plane log: (\S+) \(/.exec(output);
  if (!m) throw new Error(`no log file named at the demo's start:\n${output.slice(0, 500)}`);
  return m[1]!;
}

function dataDirOf(output: string): string {
  const m = /data (\S+) \(removed on exit\)/.exec(output);
  if (!m) throw new Error(`no data dir in the demo's first line:\n${output.slice(0, 500)}`);
  return m[1]!;
}

describe('edgeplane demo', () => {
  it('a bad scenario file is one line and exit 2, before anything starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-demo-bad-'));
    try {
      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, 'name: x\nduration_s: 10\nrate_eps: 5\narival: uniform\n');
      const r = await runCli(['demo', '--scenario', bad, ...LOOPBACK], { env: OWN_DATA_DIR });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('Unrecognized key: "arival"');
      expect(r.stdout).not.toContain('control plane up');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a finished run reports remediation commands agreeing with the control plane and removes its data dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-demo-e2e-'));
    let logFile: string | undefined;
    try {
      const report = join(dir, 'report.json');
      const r = await runCli(['demo', '--duration', '4', '--report', report, ...LOOPBACK], { env: OWN_DATA_DIR });
      logFile = logFileOf(r.stdout);
      // The verdict (every event decided) is the pipeline's and the broker's business: on this
      // main a few decisions still get lost on the way down (fixed with the broker's session
      // store), so the exit code is not what this test is about.
      expect([0, 1], r.stderr).toContain(r.code);
      const dataDir = dataDirOf(r.stdout);
      expect(existsSync(dataDir)).toBe(false);
      expect(r.stdout).toMatch(/p99 [\d.]+ ms \(last interval, \d+ events\)/);
      // The outage (tower 3 at 1/3 of the run, scaled) is named while the tower is down.
      expect(r.stdout).toMatch(/OUTAGE: demo-tower3 (offline|was offline \(staged outage, back\))/);
      const json = JSON.parse(await readFile(report, 'utf8')) as {
        commands_applied: number;
        control_plane: { remediation_counts_agree: boolean; remediations_not_resent: number; tenants: Array<{ tenant: string; commands_applied: number; towers_applied: number }> };
      };
      expect(json.control_plane.remediation_counts_agree).toBe(true);
      expect(json.control_plane.remediations_not_resent).toBeGreaterThanOrEqual(0);
      const acme = json.control_plane.tenants.find((t) => t.tenant === 'acme')!;
      expect(acme.commands_applied).toBe(acme.towers_applied);
      expect(acme.commands_applied).toBe(json.commands_applied);
      expect(acme.commands_applied).toBeGreaterThan(0);
      expect(r.stdout).toMatch(/acme .*remediation commands \d+ \(applied \d+\); towers received \d+, applied \d+: agree/);
      expect(r.stdout).toMatch(/remediations exp\/acked\s+\d+ \/ \d+ \(violations, acked by \d+ distinct commands?/);
      expect(r.stdout).toMatch(/violations that issued no command \(a block already in force for the device\): \d+/);
      // The control plane's warn lines (an alert per violation, every tower going offline at the
      // end) are in the log file, not between the live lines; the file outlives the data dir.
      expect(r.stdout.split('\n').filter((l) => l.startsWith('{'))).toEqual([]);
      expect(r.stdout).toContain(`Control plane log: ${logFile}`);
      const events = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { event?: string }).event);
      expect(events).toContain('tower_offline');
      expect(events).toContain('alert_opened');
    } finally {
      await rm(dir, { recursive: true, force: true });
      if (logFile !== undefined) await rm(logFile, { force: true });
    }
  });

  it('Ctrl-C in the middle of playback stops the control plane and removes the data dir', async () => {
    const p = startCli(['demo', '--rate', '50', ...LOOPBACK], OWN_DATA_DIR);
    const first = await p.waitForLine((l) => l.includes('removed on exit'));
    const dataDir = dataDirOf(first);
    const logFile = logFileOf(await p.waitForLine((l) => l.includes('control plane log:')));
    try {
      await p.waitForLine((l) => l.startsWith('Playing'));
      expect(existsSync(dataDir)).toBe(true);
      p.child.kill('SIGINT');
      expect(await p.exit).toBe(0);
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      await rm(logFile, { force: true });
    }
  });
});
