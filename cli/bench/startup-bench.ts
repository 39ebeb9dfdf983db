/**
 * `bench --only startup`: how long `edgeplane start` takes to serve, from the TypeScript sources
 * (tsx, what development runs) and from the compiled dist/ (what production runs), alternating in
 * one run on one data directory. Measured from spawning `node bin/edgeplane.js start` to the first
 * 200 from /readyz and to the first accepted CONNACK for a real tower credential (polled every
 * 5 ms on fixed loopback ports), plus `edgeplane --version` end to end (loader and module graph
 * cost alone). dist/ is built first when it is not current.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { ApiClient } from '../../simulator/api-client.js';
import { findProjectRoot, projectPath } from '../../shared/project-root.js';
import { buildDist, distIsCurrent } from '../build/build-dist.js';
import { BENCH_ADMIN_EMAIL, startBenchControlPlane } from './control-plane.js';
import { freePort } from './redis-process.js';

type Runtime = 'source' | 'dist';

export interface StartupSample {
  readyz_ms: number;
  connack_ms: number;
}

export interface StartupFigures {
  rounds: number;
  readyz_ms: { median: number; min: number; max: number };
  connack_ms: { median: number; min: number; max: number };
  version_ms: { median: number; min: number; max: number };
}

export interface StartupBenchResult {
  rounds: number;
  built_first: boolean;
  source: StartupFigures;
  dist: StartupFigures;
  /** dist / source, medians. */
  readyz_ratio: number;
  connack_ratio: number;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)] ?? 0, min: s[0] ?? 0, max: s[s.length - 1] ?? 0 };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilReady(url: string, deadline: number): Promise<number> {
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return performance.now();
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`${url} not ready in time`);
    await sleep(5);
  }
}

async function untilConnack(url: string, tower: { id: string; password: string }, deadline: number): Promise<number> {
  for (;;) {
    try {
      const c = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, clientId: `tower-${tower.id}`, username: tower.id, password: tower.password, clean: true });
      const at = performance.now();
      await c.endAsync();
      return at;
    } catch {
      // refused (not listening) or not authenticated yet
    }
    if (performance.now() > deadline) throw new Error(`${url}: no CONNACK in time`);
    await sleep(5);
  }
}

function runToExit(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

async function oneStart(runtime: Runtime, dataDir: string, adminPassword: string, tower: { id: string; password: string }): Promise<StartupSample> {
  const http = await freePort();
  const mqttPort = await freePort();
  const env = { ...process.env, EDGEPLANE_RUN: runtime };
  const args = [
    projectPath('bin', 'edgeplane.js'), 'start', '--data-dir', dataDir, `--admin-password=${adminPassword}`, '--log-level', 'warn',
    '--http-host', '127.0.0.1', '--http-port', String(http), '--mqtt-host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--mqtt-ws-port', '0',
  ];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    const deadline = t0 + 60_000;
    const failed = exited.then((code) => Promise.reject(new Error(`edgeplane start (${runtime}) exited ${code}`)));
    failed.catch(() => {}); // it also settles when we stop the child below
    const [ready, connack] = await Promise.race([Promise.all([untilReady(`http://127.0.0.1:${http}/readyz`, deadline), untilConnack(`mqtt://127.0.0.1:${mqttPort}`, tower, deadline)]), failed]);
    return { readyz_ms: ready - t0, connack_ms: connack - t0 };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

export async function benchStartup(opts: { rounds: number; log: (s: string) => void }): Promise<StartupBenchResult> {
  const root = findProjectRoot(import.meta.url);
  let builtFirst = false;
  if (!distIsCurrent(root)) {
    opts.log('  dist/ is missing or older than the sources: npm run build …');
    await buildDist(root, { log: (s) => opts.log(`    ${s}`) });
    builtFirst = true;
  }
  // One data dir for every start, provisioned once (not measured): a tower with a credential.
  const cp = await startBenchControlPlane();
  const operator = await ApiClient.login(cp.urls.http, BENCH_ADMIN_EMAIL, cp.adminPassword);
  await operator.post('/api/v1/towers', { id: 'startup-tower', name: 'start-up bench tower' });
  const cred = await operator.post<{ mqtt: { password: string } }>('/api/v1/towers/startup-tower/credentials', {});
  const tower = { id: 'startup-tower', password: cred.mqtt.password };
  await cp.stop({ remove: false });
  const samples: Record<Runtime, StartupSample[]> = { source: [], dist: [] };
  const versions: Record<Runtime, number[]> = { source: [], dist: [] };
  try {
    // Unreported first start of each: the OS page cache, tsx's transform cache.
    for (const rt of ['source', 'dist'] as const) await oneStart(rt, cp.dataDir, cp.adminPassword, tower);
    for (let i = 0; i < opts.rounds; i++) {
      for (const rt of ['source', 'dist'] as const) {
        const s = await oneStart(rt, cp.dataDir, cp.adminPassword, tower);
        samples[rt].push(s);
        versions[rt].push(await runToExit([projectPath('bin', 'edgeplane.js'), '--version'], { ...process.env, EDGEPLANE_RUN: rt }));
        opts.log(`  round ${i + 1} ${rt.padEnd(6)}: /readyz ${s.readyz_ms.toFixed(0)} ms, CONNACK ${s.connack_ms.toFixed(0)} ms, --version ${versions[rt].at(-1)!.toFixed(0)} ms`);
      }
    }
  } finally {
    await cp.stop({ remove: true });
  }
  const figures = (rt: Runtime): StartupFigures => ({
    rounds: opts.rounds,
    readyz_ms: stats(samples[rt].map((s) => s.readyz_ms)),
    connack_ms: stats(samples[rt].map((s) => s.connack_ms)),
    version_ms: stats(versions[rt]),
  });
  const source = figures('source');
  const dist = figures('dist');
  return {
    rounds: opts.rounds,
    built_first: builtFirst,
    source,
    dist,
    readyz_ratio: source.readyz_ms.median > 0 ? dist.readyz_ms.median / source.readyz_ms.median : 0,
    connack_ratio: source.connack_ms.median > 0 ? dist.connack_ms.median / source.connack_ms.median : 0,
  };
}

export function printStartup(r: StartupBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  log(`  (f) start-up, edgeplane start to first /readyz 200 and first tower CONNACK, median of ${r.rounds}   target: compiled faster than sources`);
  log('      runtime            /readyz ms     CONNACK ms    --version ms');
  for (const [name, f] of [['sources (tsx)', r.source], ['compiled (dist/)', r.dist]] as const) {
    log(`      ${name.padEnd(16)} ${fmt(f.readyz_ms.median).padStart(11)} ${fmt(f.connack_ms.median).padStart(14)} ${fmt(f.version_ms.median).padStart(15)}   (readyz ${fmt(f.readyz_ms.min)}–${fmt(f.readyz_ms.max)})`);
  }
  log(`      compiled / sources         ${fmt(r.readyz_ratio * 100, 0).padStart(5)} %        ${fmt(r.connack_ratio * 100, 0).padStart(5)} %`);
}
