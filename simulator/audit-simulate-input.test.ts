/**
 * Bad input as field engineers hand it to `edgeplane simulate` (the real bin in a child process):
 * - scenario files: truncated, not YAML/JSON, wrong types, NaN/infinite/negative numbers, unknown
 *   (misspelt) keys, missing, a directory, far too large;
 * - flags that name places or levels: a --log-level pino does not know, a --mqtt or --api that
 *   is not a usable URL, a --report in a missing directory, a --state-dir that is a file (a bad
 *   --mqtt or --report used to surface only after provisioning).
 * Each is one clear error line, exit 2 (bad input, told apart from exit 1, a run that failed), no
 * stack trace, and nothing provisioned: the API given (unless --api is under test) is a closed
 * port, so a run that got that far would say so instead.
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

let dir: string;
let api: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-sim-input-'));
  api = `http://127.0.0.1:${await closedPort()}`;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `simulate` with `args` and expects exit 2, one error line, then the usage hint and nothing on stdout; returns the error line. */
async function refusedAsUsage(args: string[]): Promise<string> {
  const r = await runCli(['simulate', '--api', api, ...args], { env });
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  // The error line, then the usage hint: no code frame, no stack.
  expect(lines.slice(1), r.stderr).toEqual(['Run with --help for usage.']);
  expect(r.stdout).toBe('');
  return lines[0]!;
}

describe('edgeplane simulate: bad scenario files', () => {
  let smoke: string;
  beforeAll(async () => {
    smoke = await readFile(SMOKE, 'utf8');
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
    const line = await refusedAsUsage(['--scenario', file]);
    expect(line).toContain(`edgeplane: invalid scenario ${file}`);
    expect(line).toMatch(reason);
  });

  it.each([
    ['missing', 'missing.yaml', /cannot read it: no such file/],
    ['a directory', 'adir.yaml', /not a regular file|cannot read it: EISDIR/],
  ])('a %s scenario file: one error line, exit 2', async (_what, name, reason) => {
    const file = join(dir, name);
    if (name === 'adir.yaml') await mkdir(file, { recursive: true });
    const line = await refusedAsUsage(['--scenario', file]);
    expect(line).toMatch(reason);
    expect(line).toContain(`edgeplane: invalid scenario ${file}`);
  });

  it('every shipped scenario still loads under the strict schema', async () => {
    for (const name of ['demo.yaml', 'smoke.yaml', 'long-outage.yaml', 'remediation-smoke.yaml']) {
      await expect(loadScenario(fileURLToPath(new URL(`./scenarios/${name}`, import.meta.url)))).resolves.toBeTruthy();
    }
  });
});

describe('edgeplane simulate: bad place and level flags', () => {
  let aFile: string;
  beforeAll(async () => {
    aFile = join(dir, 'a-file');
    await writeFile(aFile, 'x');
  });

  const cases: Array<[string, () => string[], () => string]> = [
    ['an unknown --log-level', () => ['--log-level', 'loud'], () => '--log-level must be one of'],
    ['a --mqtt scheme the agent cannot use', () => ['--mqtt', 'http://127.0.0.1:1883'], () => '--mqtt http://127.0.0.1:1883: the scheme must be'],
    ['a --mqtt that is not a URL', () => ['--mqtt', 'broker-1'], () => '--mqtt "broker-1" is not a URL'],
    ['a --mqtt failover list with ws://', () => ['--mqtt', 'mqtt://a:1883,ws://b:8083'], () => '--mqtt: a failover list takes mqtt:// or mqtts:// URLs'],
    ['an --api that is not a URL', () => ['--api', 'localhost'], () => '--api "localhost" is not a URL'],
    ['a --report in a directory that does not exist', () => ['--report', join(dir, 'nope', 'r.json')], () => `--report ${join(dir, 'nope', 'r.json')}: directory`],
    ['a --state-dir that is a file', () => ['--state-dir', aFile], () => `--state-dir ${aFile} exists and is not a directory`],
  ];

  it.each(cases)('%s: one error line, exit 2', async (_what, flags, message) => {
    // A later --api overrides the closed port for the --api case.
    expect(await refusedAsUsage(['--scenario', SMOKE, ...flags()])).toContain(`edgeplane: ${message()}`);
  });
});
