/**
 * The embedded control plane as the bench runs it: `edgeplane start` in a child process (its own
 * core, as in production) on loopback ports, a fresh data directory and a generated operator
 * password, plus its process id for RSS sampling. The bench world (bench-world.ts) is provisioned
 * on it through the public API.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomSecret } from '../../shared/auth/secrets.js';
import { spawnAndWait, type Child } from './child.js';

export interface BenchControlPlane {
  urls: { http: string; mqtt: string };
  adminPassword: string;
  dataDir: string;
  pid: number;
  child: Child;
  /** Stops the process; the data dir stays (restart with `dataDir`) unless `remove`. */
  stop(opts?: { remove?: boolean }): Promise<void>;
}

/** The operator every benched control plane creates on first start (the config's default). */
export const BENCH_ADMIN_EMAIL = 'admin@edgeplane.local';

/** Flags every benched deployment gets. */
export const BENCH_LIMITS = [
  // The bench offers far more than a real tower's rate; it measures the pipeline, not the limiter.
  '--mqtt-publish-rate', '100000', '--mqtt-publish-burst', '100000',
  // Provisioning the bench world is hundreds of API calls in a few seconds.
  '--rate-limit-per-min', '100000',
];

export interface StartOptions {
  /** Reuse a data dir (and its operator password) from an earlier start. */
  dataDir?: string;
  adminPassword?: string;
  /** More `edgeplane start` flags (after BENCH_LIMITS, so they win). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Fixed ports instead of any free ones (the start-up bench polls them before the log line). */
  ports?: { http: number; mqtt: number };
}

export async function startBenchControlPlane(opts: StartOptions = {}): Promise<BenchControlPlane> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'edgeplane-bench-')));
  const adminPassword = opts.adminPassword ?? randomSecret(16);
  const { child, value: urls } = await spawnAndWait(
    [
      'start',
      '--data-dir', dataDir,
      '--http-host', '127.0.0.1', '--http-port', String(opts.ports?.http ?? 0),
      '--mqtt-host', '127.0.0.1', '--mqtt-port', String(opts.ports?.mqtt ?? 0), '--mqtt-ws-port', '0',
      // One argument: a random secret may begin with '-', which would read as an option.
      `--admin-password=${adminPassword}`,
      '--log-level', 'info',
      ...BENCH_LIMITS,
      ...(opts.args ?? []),
    ],
    (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; http?: string; mqtt?: string };
        return l.msg === 'EdgePlane control plane started' && l.http && l.mqtt ? { http: l.http, mqtt: l.mqtt } : undefined;
      } catch {
        return undefined;
      }
    },
    { useBin: true, ...(opts.env ? { env: opts.env } : {}) },
  );
  return {
    urls,
    adminPassword,
    dataDir,
    pid: child.proc.pid!,
    child,
    async stop(o = {}) {
      await child.stop();
      if (o.remove ?? !opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Resident bytes of the process's brk heap (`[heap]` in /proc/<pid>/smaps): where glibc's main
 * arena puts native allocations made on the main thread (not V8's heap pages, not the thread
 * pool's arenas). 0 where /proc is not there.
 */
export function mallocHeapBytes(pid: number): number {
  try {
    const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
    const at = smaps.search(/^\S+ \S+ \S+ \S+ \S+\s+\[heap\]$/m);
    if (at < 0) return 0;
    const m = /^Rss:\s+(\d+) kB/m.exec(smaps.slice(at));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident set size of a process in bytes (Linux /proc; `ps` elsewhere). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux, or the process is gone: ask ps
  }
  return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) * 1024;
}

export const MB = 1024 * 1024;

/** CPU seconds (user + system) a process has used; null where /proc is not there. */
export function cpuSeconds(pid: number): number | null {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * Resolves once the process has used under `share` of a core for two seconds in a row (its
 * backlog is done), or after `maxMs`; returns how long it waited.
 */
export async function untilIdle(pid: number, opts: { share?: number; maxMs?: number } = {}): Promise<number> {
  const share = opts.share ?? 0.1;
  const t0 = performance.now();
  let quiet = 0;
  const first = cpuSeconds(pid);
  if (first === null) return 0;
  let last: number = first;
  while (quiet < 2 && performance.now() - t0 < (opts.maxMs ?? 600_000)) {
    await new Promise((r) => setTimeout(r, 1000));
    const now: number = cpuSeconds(pid) ?? last;
    quiet = now - last < share ? quiet + 1 : 0;
    last = now;
  }
  return performance.now() - t0;
}
