/**
 * `--help`, OpenAPI and behaviour say the same thing where they used to disagree: where a
 * generated admin password goes, the demo's own defaults, what an API key looks like, and which
 * spellings a boolean accepts (flags, env vars and query strings alike).
 */
import { describe, expect, it } from 'vitest';
import { demoHelp } from '../cli/commands/demo.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareDataDir } from '../cli/data-dir.js';
import { loadScenario } from '../simulator/scenario.js';
import { BOOLEAN_WORDS, CONFIG_OPTIONS, configHelp, loadConfig } from '../shared/config.js';
import { API_KEY_MARKER, API_KEY_PREFIX_LENGTH, generateApiKey } from './auth/api-keys.js';
import { startHarness } from './test-support.js';

describe('help texts agree with behaviour', () => {
  it('a generated admin password is written to the data dir, not printed', async () => {
    const help = configHelp();
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-help-'));
    const fileName = basename((await prepareDataDir(dir)).initialAdminPassword);
    await rm(dir, { recursive: true, force: true });
    expect(help).toContain(`<data-dir>/${fileName}`);
    expect(help).not.toMatch(/printed once/);
  });

  it("the demo's help shows the demo's defaults, not those of 'edgeplane start'", () => {
    expect(demoHelp).toMatch(/--data-dir .*\(demo default: a new temp dir, removed when the demo ends\)/);
    expect(demoHelp).toMatch(/--log-level .*\(demo default: warn\)/);
    expect(demoHelp).toMatch(/--rate-limit-per-min .*\(demo default: 100000\)/);
    expect(demoHelp).not.toMatch(/--data-dir .*default: \.\/\.edgeplane/);
    expect(demoHelp).toMatch(/500 events\/s for 30 s, 20 injected violations, one tower outage/);
  });

  it("the demo's help describes the demo scenario it plays", async () => {
    const s = await loadScenario(fileURLToPath(new URL('../simulator/scenarios/demo.yaml', import.meta.url)));
    const devices = s.tenants.reduce((n, t) => n + t.users.count * t.devices_per_user, 0);
    expect(demoHelp).toContain(`(${s.tenants.length} tenants, ${devices} devices, ${s.towers.count} towers)`);
    expect(demoHelp).toContain(`${s.rate_eps} events/s for ${s.duration_s} s, ${s.violations.count} injected violations, ${s.outages.length === 1 ? 'one tower outage' : `${s.outages.length} tower outages`}`);
  });

  it('boolean options list the spellings they accept, and the API accepts the same ones', () => {
    expect(CONFIG_OPTIONS.allow_anonymous.describe).toContain('true/false, 1/0 or yes/no');
    for (const word of BOOLEAN_WORDS) expect(() => loadConfig({ allow_anonymous: word }, {})).not.toThrow();
    expect(() => loadConfig({ allow_anonymous: 'on' }, {})).toThrow(/--allow-anonymous/);
  });
});

describe('OpenAPI agrees with behaviour', () => {
  it('API key examples look like the keys the API issues', async () => {
    const h = await startHarness();
    try {
      const spec = (await h.app.inject({ method: 'GET', url: '/docs/json' })).json<{
        components: { schemas: Record<string, { example?: { prefix?: string } }> };
        paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { properties?: Record<string, { example?: string }> } }> }> }>>;
      }>();
      const real = generateApiKey();
      const example = spec.paths['/api/v1/api-keys']!.post!.responses['201']!.content!['application/json']!.schema.properties!.key!.example!;
      expect(example.startsWith(API_KEY_MARKER)).toBe(true);
      expect(example).toHaveLength(real.key.length);
      const prefix = spec.components.schemas.ApiKey!.example!.prefix!;
      expect(prefix).toBe(example.slice(0, API_KEY_PREFIX_LENGTH));
      expect(JSON.stringify(spec)).not.toContain('ep_live_');
    } finally {
      await h.close();
    }
  });
});
