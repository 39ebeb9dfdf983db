/**
 * `bench --only agent`: the standalone agent bundle (dist/edgeplane-agent.mjs) as a tower runs it —
 * `node edgeplane-agent.mjs`, usage JSON lines on stdin, answers on stdout — against `edgeplane
 * start` on this host: its size, its RSS connected and idle, and its RSS while answering 1,000
 * events/s (after an unreported warm-up). The same agent run from the TypeScript sources through
 * tsx (`edgeplane agent`) is measured the same way as the baseline. RSS is read from /proc every
 * 500 ms; the figure is the median of those samples, with the maximum beside it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';
import { findProjectRoot, projectPath } from '../../shared/project-root.js';
import { bundleAgent } from '../build/bundle-agent.js';
import { AGENT_BUNDLE_FILE, distIsCurrent } from '../build/build-dist.js';
import { provisionBenchWorld } from './bench-world.js';
import { MB, rssBytes, startBenchControlPlane } from './control-plane.js';
import { median } from './stats.js';

export interface AgentRun {
  idle_rss_mb: { median: number; max: number };
  load_rss_mb: { median: number; max: number };
  load: { offered_eps: number; answered_eps: number; seconds: number; p50_ms: number; p99_ms: number };
}

export interface AgentBenchResult {
  bundle: { file: string; from_dist: boolean; bytes: number; gzip_bytes: number };
  bundled: AgentRun;
  /** `edgeplane agent` from the TypeScript sources (tsx), same measurement. */
  sources: AgentRun;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Opts {
  idleSeconds: number;
  loadSeconds: number;
  rateEps: number;
  log: (s: string) => void;
}

async function measure(argv: string[], env: NodeJS.ProcessEnv, devices: string[], opts: Opts): Promise<AgentRun> {
  const child = spawn(process.execPath, argv, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  let answered = 0;
  let firstAnswer: (() => void) | null = null;
  createInterface({ input: child.stdout }).on('line', (l) => {
    const line = (JSON.parse(l) as { line: number }).line;
    const t = sentAt.get(line);
    if (t !== undefined) {
      sentAt.delete(line);
      latencies.push(performance.now() - t);
    }
    answered++;
    firstAnswer?.();
  });
  let lineNo = 0;
  const write = (): void => {
    const d = devices[lineNo % devices.length]!;
    lineNo++;
    sentAt.set(lineNo, performance.now());
    child.stdin.write(`{"device_id":"${d}","app":"slack","action":"send_message"}\n`);
  };
  const sample = async (seconds: number, during?: () => void): Promise<number[]> => {
    const rss: number[] = [];
    const t0 = performance.now();
    let next = t0 + 500;
    while (performance.now() - t0 < seconds * 1000) {
      during?.();
      await sleep(10);
      if (performance.now() >= next) {
        rss.push(rssBytes(child.pid!) / MB);
        next += 500;
      }
    }
    return rss;
  };
  const load = (seconds: number) => {
    const t0 = performance.now();
    let sent = 0;
    return () => {
      const due = Math.floor(((performance.now() - t0) / 1000) * opts.rateEps);
      while (sent < Math.min(due, seconds * opts.rateEps)) {
        write();
        sent++;
      }
    };
  };
  try {
    // Connected, bundles received, first answer back: the agent is up.
    const up = new Promise<void>((r) => (firstAnswer = r));
    write();
    await Promise.race([up, exited.then((c) => Promise.reject(new Error(`agent exited ${c} before answering`)))]);
    firstAnswer = null;
    const idle = await sample(opts.idleSeconds);
    await sample(2, load(2)); // warm-up, unreported
    await sleep(200);
    latencies.length = 0;
    const before = answered;
    const t0 = performance.now();
    const loaded = await sample(opts.loadSeconds, load(opts.loadSeconds));
    const seconds = (performance.now() - t0) / 1000;
    await sleep(200); // the last answers
    const sorted = latencies.sort((a, b) => a - b);
    return {
      idle_rss_mb: { median: median(idle), max: Math.max(...idle) },
      load_rss_mb: { median: median(loaded), max: Math.max(...loaded) },
      load: {
        offered_eps: opts.rateEps,
        answered_eps: (answered - before) / seconds,
        seconds,
        p50_ms: sorted[Math.floor(sorted.length * 0.5)] ?? 0,
        p99_ms: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
      },
    };
  } finally {
    child.stdin.end();
    const code = await exited;
    if (code !== 0) opts.log(`  agent exited ${code}`);
  }
}

export async function benchAgent(opts: Opts): Promise<AgentBenchResult> {
  const root = findProjectRoot(import.meta.url);
  const tmp = await mkdtemp(join(tmpdir(), 'edgeplane-agent-bench-'));
  const fromDist = distIsCurrent(root);
  const file = fromDist ? join(root, 'dist', AGENT_BUNDLE_FILE) : (await bundleAgent(root, join(tmp, AGENT_BUNDLE_FILE))).outfile;
  const bytes = readFileSync(file);
  const cp = await startBenchControlPlane();
  try {
    const { world } = await provisionBenchWorld(cp.urls, cp.adminPassword, { towers: 2 });
    const devices = world.tenants[0]!.device_ids;
    const args = (t: number) => ['--url', cp.urls.mqtt, '--tower-id', world.towers[t]!.id, '--log-level', 'warn'];
    // A bare environment for the bundle: nothing from this process' Node options or module paths.
    const bundled = await measure([file, ...args(0)], { PATH: process.env.PATH ?? '', EDGEPLANE_TOWER_PASSWORD: world.towers[0]!.password }, devices, opts);
    opts.log(`  bundle: idle ${bundled.idle_rss_mb.median.toFixed(1)} MB, at ${opts.rateEps} ev/s ${bundled.load_rss_mb.median.toFixed(1)} MB (max ${bundled.load_rss_mb.max.toFixed(1)})`);
    const sources = await measure(
      [projectPath('bin', 'edgeplane.js'), 'agent', ...args(1)],
      { ...process.env, EDGEPLANE_RUN: 'source', EDGEPLANE_TOWER_PASSWORD: world.towers[1]!.password },
      devices,
      opts,
    );
    opts.log(`  sources (tsx): idle ${sources.idle_rss_mb.median.toFixed(1)} MB, at ${opts.rateEps} ev/s ${sources.load_rss_mb.median.toFixed(1)} MB (max ${sources.load_rss_mb.max.toFixed(1)})`);
    return { bundle: { file, from_dist: fromDist, bytes: bytes.length, gzip_bytes: gzipSync(bytes).length }, bundled, sources };
  } finally {
    await cp.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

export function printAgent(r: AgentBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  log(`  (g) edge agent bundle ${fmt(r.bundle.bytes / 1024)} KB (${fmt(r.bundle.gzip_bytes / 1024)} KB gzipped), one file, Node only   target: report size and RSS`);
  log('      run                      idle RSS MB   RSS at load MB (max)   answered/s   p50/p99 ms');
  for (const [name, a] of [['bundle (node …mjs)', r.bundled], ['sources (tsx)', r.sources]] as const) {
    log(
      `      ${name.padEnd(22)} ${fmt(a.idle_rss_mb.median, 1).padStart(11)} ${fmt(a.load_rss_mb.median, 1).padStart(13)} (${fmt(a.load_rss_mb.max, 1)}) ` +
        `${fmt(a.load.answered_eps).padStart(12)}   ${fmt(a.load.p50_ms, 1)}/${fmt(a.load.p99_ms, 1)}   at ${fmt(a.load.offered_eps)} ev/s offered`,
    );
  }
}
