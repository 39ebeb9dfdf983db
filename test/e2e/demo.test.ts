/**
 * The demo as a user runs it (the real CLI in a child process): its temporary data directory is
 * gone when it exits, whether the run ends by itself or by Ctrl-C mid-playback; its live lines
 * carry the p99 of each interval and name a tower while it is offline; and its final report puts
 * the towers' remediation commands next to the control plane's, agreeing.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.js';

const LOOPBACK = ['--http-host', '127.0.0.1', '--http-port', '0', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0'];
/** No data dir from the environment: the demo makes (and must remove) its own. */
const OWN_DATA_DIR = { EDGEPLANE_DATA_DIR: '' };

function dataDirOf(output: string): string {
  const m = /data (\S+) \(removed on exit\)/.exec(output);
  if (!m) throw new Error(`no data dir in the demo's first line:\n${output.slice(0, 500)}`);
  return m[1]!;
}

describe('edgeplane demo', () => {
  it('a finished run reports remediation commands agreeing with the control plane and removes its data dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-demo-e2e-'));
    try {
      const report = join(dir, 'report.json');
      const r = await runCli(['demo', '--duration', '4', '--report', report, ...LOOPBACK], { env: OWN_DATA_DIR });
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
        control_plane: { remediation_counts_agree: boolean; tenants: Array<{ tenant: string; commands_applied: number; towers_applied: number }> };
      };
      expect(json.control_plane.remediation_counts_agree).toBe(true);
      const acme = json.control_plane.tenants.find((t) => t.tenant === 'acme')!;
      expect(acme.commands_applied).toBe(acme.towers_applied);
      expect(acme.commands_applied).toBe(json.commands_applied);
      expect(acme.commands_applied).toBeGreaterThan(0);
      expect(r.stdout).toMatch(/acme .*remediation commands \d+ \(applied \d+\); towers received \d+, applied \d+: agree/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('Ctrl-C in the middle of playback stops the control plane and removes the data dir', async () => {
    const p = startCli(['demo', '--rate', '50', ...LOOPBACK], OWN_DATA_DIR);
    const first = await p.waitForLine((l) => l.includes('removed on exit'));
    const dataDir = dataDirOf(first);
    await p.waitForLine((l) => l.startsWith('Playing'));
    expect(existsSync(dataDir)).toBe(true);
    p.child.kill('SIGINT');
    expect(await p.exit).toBe(0);
    expect(existsSync(dataDir)).toBe(false);
  });
});
