/**
 * Audit (operations): durations that become Node timers. Node does not refuse a delay beyond
 * 2^31 - 1 ms (~24.8 days): it prints a TimeoutOverflowWarning and fires after 1 ms. So a monthly
 * `--retention-interval-s 2592000` ran the retention pass in a busy loop (thousands of passes a
 * second, a warning line each), and `--shutdown-timeout-ms 3000000000` cut every graceful
 * shutdown after 1 ms (exit 1, nothing drained). The real `edgeplane start`, as an operator runs it:
 * such values are refused at start, in one line naming the option, and nothing is written.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../shared/config.js';
import { runCli } from '../test/support/cli.js';

const LOOPBACK = ['--http-host', '127.0.0.1', '--http-port', '0', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0'];

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ep-audit-ops-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('durations beyond the longest Node timer', () => {
  it('are refused at start in one line naming the flag and the env var, and nothing is written', async () => {
    for (const [flag, value, env] of [
      ['--retention-interval-s', '2592000', 'EDGEPLANE_RETENTION_INTERVAL_S'],
      ['--shutdown-timeout-ms', '3000000000', 'EDGEPLANE_SHUTDOWN_TIMEOUT_MS'],
      ['--command-ttl-s', '2592000', 'EDGEPLANE_COMMAND_TTL_S'],
    ] as const) {
      const fresh = join(dir, `never-created-${flag.slice(2)}`);
      const r = await runCli(['start', ...LOOPBACK, '--data-dir', fresh, flag, value]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(new RegExp(`^edgeplane: invalid configuration: ${flag} / ${env}: must be at most \\d+ m?s \\(~24\\.8 days\\), the longest timer Node keeps$`)),
      ]);
      expect(r.stdout).toBe('');
      expect(existsSync(fresh)).toBe(false);
    }
  });

  it('the same from the environment; the longest timer itself is accepted', () => {
    expect(() => loadConfig({}, { EDGEPLANE_RETENTION_INTERVAL_S: '2592000' })).toThrow(/--retention-interval-s \/ EDGEPLANE_RETENTION_INTERVAL_S: must be at most 2147483 s/);
    expect(() => loadConfig({}, { EDGEPLANE_MQTT_DRAIN_TIMEOUT_MS: String(2 ** 31) })).toThrow(/--mqtt-drain-timeout-ms/);
    const c = loadConfig({ retention_interval_s: '2147483', shutdown_timeout_ms: String(2 ** 31 - 1) }, {});
    expect(c).toMatchObject({ retention_interval_s: 2147483, shutdown_timeout_ms: 2 ** 31 - 1 });
    // Token lifetimes are not timers: a 30-day refresh token (the default) stays valid.
    expect(loadConfig({ refresh_token_ttl_s: String(90 * 24 * 3600) }, {}).refresh_token_ttl_s).toBe(90 * 24 * 3600);
  });

  it('several bad values are still one line', async () => {
    const r = await runCli(['start', ...LOOPBACK, '--data-dir', join(dir, 'never'), '--shutdown-timeout-ms', '3000000000'], { env: { EDGEPLANE_MQTT_MAX_TOPIC_LEVELS: '1000' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--shutdown-timeout-ms / EDGEPLANE_SHUTDOWN_TIMEOUT_MS');
    expect(r.stderr).toContain('--mqtt-max-topic-levels / EDGEPLANE_MQTT_MAX_TOPIC_LEVELS');
  });
});
