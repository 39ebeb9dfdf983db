/**
 * `edgeplane simulate` flags that name places or levels, wrong (the real bin in a child process):
 * each is one error line naming the flag, exit 2, before anything is provisioned. The API given
 * (when the flag under test is not --api) is a closed port: a run that got as far as provisioning
 * would fail there instead; before, a bad --mqtt or --report surfaced only after provisioning.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../test/support/cli.js';
import { ADMIN_PASSWORD } from '../test/support/control-plane.js';
import { closedPort } from '../test/support/ports.js';

const SMOKE = fileURLToPath(new URL('./scenarios/smoke.yaml', import.meta.url));
const env = { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD };

describe('edgeplane simulate: bad place and level flags', () => {
  let dir: string;
  let api: string;
  let aFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-sim-flags-'));
    api = `http://127.0.0.1:${await closedPort()}`;
    aFile = join(dir, 'a-file');
    await writeFile(aFile, 'x');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
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
    const r = await runCli(['simulate', '--scenario', SMOKE, '--api', api, ...flags()], { env });
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0], r.stderr).toContain(`edgeplane: ${message()}`);
    expect(lines.slice(1), r.stderr).toEqual(['Run with --help for usage.']);
  });
});
