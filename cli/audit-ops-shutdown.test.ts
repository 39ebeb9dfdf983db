/**
 * Audit (operations): SIGTERM to `edgeplane start` before it is ready. A start waiting on a store
 * that does not answer (MongoDB's server selection gives up after 30 s) used to be waited for by
 * the shutdown, which ran into --shutdown-timeout-ms and exited 1 ("graceful shutdown timed out")
 * however early the signal came. Now the signal gives the start up: what had started is stopped,
 * the data dir's lock released, and the process exits 0; an immediate restart on the same data
 * dir starts. The real bin in a child process (test/support/cli.ts); the MongoDB URL is a closed
 * loopback port. The distributed roles go through the same code (cli/shutdown.ts runUntilSignal).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './bench/redis-process.js';
import { jsonLine, startCli, type Running } from '../test/support/cli.js';
import { until } from '../test/support/crash-audit.js';

let dir: string;
const running: Running[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ep-audit-ops-shutdown-'));
});

afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

function start(dataDir: string, extra: string[]): Running {
  const p = startCli([
    'start', '--data-dir', dataDir,
    '--http-host', '127.0.0.1', '--http-port', '0', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0',
    '--shutdown-timeout-ms', '5000', '--log-format', 'json', ...extra,
  ]);
  running.push(p);
  return p;
}

/** The lock is free: no file, or one marked released. */
function lockFree(dataDir: string): boolean {
  const file = join(dataDir, 'edgeplane.lock');
  return !existsSync(file) || (JSON.parse(readFileSync(file, 'utf8')) as { released_at?: string }).released_at !== undefined;
}

describe('SIGTERM while the control plane is starting', () => {
  it('gives the start up: exit 0, the lock released, and an immediate restart starts', async () => {
    const dataDir = join(dir, 'data');
    const unanswered = `mongodb://127.0.0.1:${await freePort()}/edgeplane?serverSelectionTimeoutMS=30000`;
    const p = start(dataDir, ['--store-url', unanswered]);
    // The lock is taken once the start is under way, with the signal handler in place.
    await until(() => existsSync(join(dataDir, 'edgeplane.lock')), 30_000, 'the data dir lock');
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(p.stderr.filter((l) => l.startsWith('edgeplane:'))).toEqual([]);
    expect(p.stderr.map(jsonLine).filter((l) => l?.msg === 'graceful shutdown timed out')).toEqual([]);
    expect(lockFree(dataDir)).toBe(true);

    const again = start(dataDir, []);
    await again.waitForLine((l) => jsonLine(l)?.msg === 'EdgePlane control plane started');
    again.child.kill('SIGTERM');
    expect(await again.exit).toBe(0);
  }, 60_000);
});
