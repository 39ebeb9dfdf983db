/**
 * Bad scenario files as field engineers hand them to `edgeplane simulate` (the real bin in a
 * child process): truncated, not YAML/JSON, wrong types, NaN/infinite/negative numbers, unknown
 * (misspelt) keys, missing, a directory, far too large. Each is one clear error naming the file,
 * exit 2 (bad input, told apart from exit 1, a run that failed), no stack trace, and nothing
 * provisioned: the API given is a closed port, so a run that got that far would say so instead.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../test/support/cli.js';
import { ADMIN_PASSWORD } from '../test/support/control-plane.js';
import { closedPort } from '../test/support/ports.js';
import { loadScenario, SCENARIO_MAX_BYTES } from './scenario.js';

const SMOKE = fileURLToPath(new URL('./scenarios/smoke.yaml', import.meta.url));
const env = { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD };

describe('edgeplane simulate: bad scenario files', () => {
  let dir: string;
  let api: string;
  let smoke: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-sim-input-'));
    api = `http://127.0.0.1:${await closedPort()}`;
    smoke = await readFile(SMOKE, 'utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, string, () => Promise<string>, RegExp]> = [
    ['truncated YAML', 'trunc.yaml', async () => smoke.slice(0, 200), /not valid YAML: /],
    ['truncated JSON', 'trunc.json', async () => '{"name": "x", "duration_s":', /not valid JSON: /],
    ['NaN duration', 'nan.yaml', async () => smoke.replace('duration_s: 3', 'duration_s: .nan'), /duration_s: /],
    ['infinite rate', 'inf.yaml', async () => smoke.replace('rate_eps: 50', 'rate_eps: .inf'), /rate_eps: /],
    ['negative duration', 'neg.yaml', async () => smoke.replace('duration_s: 3', 'duration_s: -3'), /duration_s: /],
    ['a string for a number', 'str.yaml', async () => smoke.replace('rate_eps: 50', 'rate_eps: fifty'), /rate_eps: /],
    // A misspelt optional key used to be dropped in silence: the run then played the default.
    ['a misspelt top-level key', 'typo.yaml', async () => smoke.replace('arrival: uniform', 'arival: uniform'), /\(root\): Unrecognized key: "arival"/],
    ['a misspelt nested key', 'typo2.yaml', async () => smoke.replace('id_prefix: smoke-tower', 'id_prefx: smoke-tower'), /towers: Unrecognized key: "id_prefx"/],
    ['a file over the size limit', 'huge.yaml', async () => smoke + `# ${'x'.repeat(SCENARIO_MAX_BYTES)}\n`, /at most \d+ bytes/],
  ];

  it.each(cases)('%s: one error line, exit 2', async (_what, name, content, reason) => {
    const file = join(dir, name);
    await writeFile(file, await content());
    const r = await runCli(['simulate', '--scenario', file, '--api', api], { env });
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0], r.stderr).toContain(`edgeplane: invalid scenario ${file}`);
    expect(lines[0], r.stderr).toMatch(reason);
    // The error line, then the usage hint: no code frame, no stack.
    expect(lines.slice(1), r.stderr).toEqual(['Run with --help for usage.']);
    expect(r.stdout).toBe('');
  });

  it.each([
    ['missing', 'missing.yaml', /cannot read it: no such file/],
    ['a directory', 'adir.yaml', /not a regular file|cannot read it: EISDIR/],
  ])('a %s scenario file: one error line, exit 2', async (_what, name, reason) => {
    const file = join(dir, name);
    if (name === 'adir.yaml') await mkdir(file, { recursive: true });
    const r = await runCli(['simulate', '--scenario', file, '--api', api], { env });
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0], r.stderr).toMatch(reason);
    expect(lines[0], r.stderr).toContain(`edgeplane: invalid scenario ${file}`);
    expect(lines.slice(1), r.stderr).toEqual(['Run with --help for usage.']);
  });

  it('every shipped scenario still loads under the strict schema', async () => {
    for (const name of ['demo.yaml', 'smoke.yaml', 'long-outage.yaml', 'remediation-smoke.yaml']) {
      await expect(loadScenario(fileURLToPath(new URL(`./scenarios/${name}`, import.meta.url)))).resolves.toBeTruthy();
    }
  });
});
