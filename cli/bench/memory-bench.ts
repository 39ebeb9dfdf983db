/**
 * `bench --only memory`: the control plane's memory (`edgeplane start`, RSS read from /proc).
 *  - Per connected idle tower: towers provisioned through the API, then connected as real agents
 *    from a separate process (idle-towers.ts) on loopback, 2,000 then 5,000 of them by default;
 *    (RSS with n connected − RSS with none) / n, each RSS the median of 10 samples taken once the
 *    control plane is idle again (retained messages delivered) and after a full garbage collection (forced through the V8 inspector on
 *    loopback, inspector.ts), so the figure is what the connections hold, not GC timing; the
 *    JavaScript heap in use after that collection is reported beside it.
 *  - Drift under load: a fresh control plane at a steady load (half the max sustained rate of the
 *    pipeline part when it ran, else --memory-load-eps) for --memory-minutes, after an unreported
 *    warm-up; RSS sampled every second; drift = mean of the last tenth of the run over the mean of
 *    the first tenth, minus one.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { spawn } from 'node:child_process';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionBenchWorld } from './bench-world.js';
import { nodeArgsFor, siblingScript } from './child.js';
import { BENCH_ADMIN_EMAIL, MB, mallocHeapBytes, rssBytes, startBenchControlPlane, untilIdle, type BenchControlPlane } from './control-plane.js';
import { InspectorClient } from './inspector.js';
import { LoadFleet } from './load-fleet.js';
import { freePort } from './redis-process.js';
import { median } from './stats.js';

export interface IdleTowersRow {
  towers: number;
  connected: number;
  rss_mb: number;
  /** RSS per tower beyond the first WARM_TOWERS: (RSS − warm RSS) / (connected − warm connected). */
  kb_per_tower: number;
  /** RSS per tower counted from the control plane that never served a tower: one-time costs included. */
  kb_per_tower_from_cold: number;
  /**
   * RSS per tower added since the previous count (the first: since the warm baseline): the cost
   * of one more tower once the bounded caches the first connections fill are full.
   */
  kb_per_tower_step: number;
  heap_used_mb: number;
  heap_kb_per_tower: number;
  /** RSS of the main thread's malloc heap (glibc's brk arena): native memory outside V8's heap. */
  malloc_heap_mb: number;
}

export interface DriftResult {
  load_eps: number;
  load_from: string;
  minutes: number;
  warmup_s: number;
  samples: number;
  first_mb: number;
  last_mb: number;
  max_mb: number;
  drift_percent: number;
  achieved_eps: number;
  p99_ms: number;
  undecided: number;
  /**
   * Each minute: RSS, V8's heap (committed and in use, without forcing a GC) and the main
   * thread's malloc heap, so a rise can be told apart as JavaScript heap or native memory.
   */
  by_minute: Array<{ minute: number; rss_mb: number; v8_heap_total_mb: number; v8_heap_used_mb: number; array_buffers_mb: number; external_mb: number; malloc_heap_mb: number }>;
}

export interface MemoryBenchResult {
  idle: {
    baseline_rss_mb: number;
    baseline_heap_used_mb: number;
    baseline_malloc_heap_mb: number;
    /** After WARM_TOWERS connected: the baseline of kb_per_tower. */
    warm: { connected: number; rss_mb: number; heap_used_mb: number; malloc_heap_mb: number };
    rows: IdleTowersRow[];
  };
  drift: DriftResult | null;
}

/** Towers connected before the baseline of the per-tower figures (see benchIdle). */
const WARM_TOWERS = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** After the connections settled and a full GC: median RSS of 10 samples, and heap in use. */
async function settled(pid: number, inspector: InspectorClient): Promise<{ rss: number; heapUsed: number; mallocHeap: number }> {
  // SUBACK is not the end of a connection's cost: the retained messages its subscriptions match
  // are still being delivered. Wait until the control plane is idle.
  await untilIdle(pid);
  await sleep(2000);
  await inspector.collectGarbage();
  await inspector.collectGarbage();
  await sleep(1000);
  const xs: number[] = [];
  for (let i = 0; i < 10; i++) {
    xs.push(rssBytes(pid));
    await sleep(500);
  }
  return { rss: median(xs), heapUsed: (await inspector.memoryUsage()).heapUsed, mallocHeap: mallocHeapBytes(pid) };
}

async function provisionTowers(cp: BenchControlPlane, n: number, log: (s: string) => void): Promise<Array<{ id: string; password: string }>> {
  const operator = await ApiClient.login(cp.urls.http, BENCH_ADMIN_EMAIL, cp.adminPassword);
  const towers: Array<{ id: string; password: string }> = new Array(n);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const id = `idle-${i}`;
      await operator.post('/api/v1/towers', { id, name: `idle tower ${i}` });
      const cred = await operator.post<{ mqtt: { password: string } }>(`/api/v1/towers/${id}/credentials`, {});
      towers[i] = { id, password: cred.mqtt.password };
      if ((i + 1) % 1000 === 0) log(`    towers provisioned: ${i + 1}/${n}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return towers;
}

async function benchIdle(counts: number[], log: (s: string) => void): Promise<MemoryBenchResult['idle']> {
  const max = Math.max(...counts);
  const inspectPort = await freePort();
  const cp = await startBenchControlPlane({ args: ['--rate-limit-per-min', '1000000000'], env: { ...process.env, NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` } });
  const inspector = new InspectorClient(inspectPort);
  try {
    await inspector.start();
    // One small tenant, so every tower receives a policy bundle as in production.
    await provisionBenchWorld(cp.urls, cp.adminPassword, { users: 10, towers: 1 });
    const towers = await provisionTowers(cp, max, log);
    const file = join(cp.dataDir, 'idle-towers.json');
    await writeFile(file, JSON.stringify(towers));
    const baseline = await settled(cp.pid, inspector);
    log(`  control plane with no tower connected: RSS ${(baseline.rss / MB).toFixed(1)} MB, heap used ${(baseline.heapUsed / MB).toFixed(1)} MB`);
    const child = spawn(process.execPath, [...nodeArgsFor(siblingScript(import.meta.url, 'idle-towers')), cp.urls.mqtt, file], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const connectUpTo = async (n: number): Promise<{ connected: number; errors: number }> => {
      child.stdin.write(JSON.stringify({ connect: n }) + '\n');
      const next = await answers.next();
      if (next.done) throw new Error(`idle-towers exited (${await exited})`);
      return JSON.parse(next.value) as { connected: number; errors: number };
    };
    const rows: IdleTowersRow[] = [];
    let warm: MemoryBenchResult['idle']['warm'];
    try {
      // The first towers pay for what a process builds once, on first use (compiled code, the
      // MQTT writers' state): measured from here, the rows are what each further tower costs.
      const first = await connectUpTo(WARM_TOWERS);
      const w = await settled(cp.pid, inspector);
      warm = { connected: first.connected, rss_mb: w.rss / MB, heap_used_mb: w.heapUsed / MB, malloc_heap_mb: w.mallocHeap / MB };
      log(`  ${first.connected} towers connected (warm baseline): RSS ${warm.rss_mb.toFixed(1)} MB, heap used ${warm.heap_used_mb.toFixed(1)} MB`);
      let previous = { rss: w.rss, connected: first.connected };
      for (const n of [...counts].sort((a, b) => a - b)) {
        const { connected, errors } = await connectUpTo(n);
        const m = await settled(cp.pid, inspector);
        const per = (bytes: number) => bytes / 1024 / Math.max(1, connected - first.connected);
        const step = (m.rss - previous.rss) / 1024 / Math.max(1, connected - previous.connected);
        previous = { rss: m.rss, connected };
        const row = {
          towers: n,
          connected,
          rss_mb: m.rss / MB,
          kb_per_tower: per(m.rss - w.rss),
          kb_per_tower_from_cold: (m.rss - baseline.rss) / 1024 / Math.max(1, connected),
          kb_per_tower_step: step,
          heap_used_mb: m.heapUsed / MB,
          heap_kb_per_tower: per(m.heapUsed - w.heapUsed),
          malloc_heap_mb: m.mallocHeap / MB,
        };
        rows.push(row);
        // EDGEPLANE_BENCH_HEAP_SNAPSHOT=<dir>: a heap snapshot of the control plane at each count,
        // to diff what the added towers hold (after the figures above: a snapshot allocates).
        const snapshots = process.env.EDGEPLANE_BENCH_HEAP_SNAPSHOT;
        if (snapshots) await inspector.writeHeapSnapshot(join(snapshots, `control-plane-${connected}-towers.heapsnapshot`));
        log(`  ${connected}/${n} idle towers connected${errors ? ` (${errors} agent errors)` : ''}: RSS ${row.rss_mb.toFixed(1)} MB, ${row.kb_per_tower.toFixed(1)} KB per tower beyond the first ${first.connected} (${row.kb_per_tower_from_cold.toFixed(1)} KB from cold, ${row.kb_per_tower_step.toFixed(1)} KB each since the previous count; heap ${row.heap_kb_per_tower.toFixed(1)} KB, malloc heap ${row.malloc_heap_mb.toFixed(1)} MB)`);
      }
    } finally {
      child.stdin.end();
      await exited;
    }
    return { baseline_rss_mb: baseline.rss / MB, baseline_heap_used_mb: baseline.heapUsed / MB, baseline_malloc_heap_mb: baseline.mallocHeap / MB, warm, rows };
  } finally {
    await inspector.stop();
    await cp.stop();
  }
}

async function benchDrift(opts: { loadEps: number; loadFrom: string; minutes: number; log: (s: string) => void }): Promise<DriftResult> {
  const inspectPort = await freePort();
  const cp = await startBenchControlPlane({ env: { ...process.env, NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` } });
  const inspector = new InspectorClient(inspectPort);
  try {
    await inspector.start();
    const { world } = await provisionBenchWorld(cp.urls, cp.adminPassword);
    const fleet = new LoadFleet(world, cp.urls.mqtt);
    await fleet.start();
    try {
      const seconds = opts.minutes * 60;
      const warmupS = Math.min(60, Math.max(5, seconds / 10));
      await fleet.play({ rateEps: opts.loadEps, seconds: warmupS });
      const samples: number[] = [];
      const minutes: Array<Promise<DriftResult['by_minute'][number]>> = [];
      const minuteOf = async (minute: number, rss: number): Promise<DriftResult['by_minute'][number]> => {
        const v8 = await inspector.memoryUsage();
        // Optional, to diff what the load leaves behind from one minute to the next (a snapshot pauses the process).
        const snapshots = process.env.EDGEPLANE_BENCH_HEAP_SNAPSHOT;
        if (snapshots) await inspector.writeHeapSnapshot(join(snapshots, `control-plane-drift-${minute}-min.heapsnapshot`));
        const row = { minute, rss_mb: rss, v8_heap_total_mb: v8.heapTotal / MB, v8_heap_used_mb: v8.heapUsed / MB, array_buffers_mb: v8.arrayBuffers / MB, external_mb: v8.external / MB, malloc_heap_mb: mallocHeapBytes(cp.pid) / MB };
        opts.log(`    ${minute} min: RSS ${rss.toFixed(1)} MB (V8 heap ${row.v8_heap_total_mb.toFixed(1)} MB committed, ${row.v8_heap_used_mb.toFixed(1)} in use; ArrayBuffers ${row.array_buffers_mb.toFixed(1)} MB of ${row.external_mb.toFixed(1)} external; malloc heap ${row.malloc_heap_mb.toFixed(1)} MB)`);
        return row;
      };
      const r = await fleet.play({
        rateEps: opts.loadEps,
        seconds,
        onSecond: (s) => {
          samples.push(rssBytes(cp.pid) / MB);
          if (Math.floor(s) % 60 === 0) minutes.push(minuteOf(Math.floor(s / 60), samples[samples.length - 1]!));
        },
      });
      const byMinute = await Promise.all(minutes);
      const tenth = Math.max(5, Math.floor(samples.length / 10));
      const first = mean(samples.slice(0, tenth));
      const last = mean(samples.slice(-tenth));
      return {
        load_eps: opts.loadEps,
        load_from: opts.loadFrom,
        minutes: opts.minutes,
        warmup_s: warmupS,
        samples: samples.length,
        first_mb: first,
        last_mb: last,
        max_mb: Math.max(...samples),
        drift_percent: ((last - first) / first) * 100,
        achieved_eps: r.achieved_eps,
        p99_ms: r.latency_ms.p99,
        undecided: r.undecided,
        by_minute: byMinute,
      };
    } finally {
      await fleet.stop();
    }
  } finally {
    await inspector.stop();
    await cp.stop();
  }
}

export async function benchMemory(opts: { towers: number[]; minutes: number; loadEps: number; loadFrom: string; log: (s: string) => void }): Promise<MemoryBenchResult> {
  const idle = opts.towers.length > 0 ? await benchIdle(opts.towers, opts.log) : { baseline_rss_mb: 0, baseline_heap_used_mb: 0, baseline_malloc_heap_mb: 0, warm: { connected: 0, rss_mb: 0, heap_used_mb: 0, malloc_heap_mb: 0 }, rows: [] };
  const drift = opts.minutes > 0 ? await benchDrift(opts) : null;
  if (drift) opts.log(`  drift over ${drift.minutes} min at ${drift.load_eps} ev/s: ${drift.first_mb.toFixed(1)} → ${drift.last_mb.toFixed(1)} MB (${drift.drift_percent.toFixed(1)} %)`);
  return { idle, drift };
}

export function printMemory(r: MemoryBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  log(`  (j) control plane memory   targets: ≤ 20 KB RSS per connected idle tower; < 5 % RSS drift at half the max sustained load`);
  if (r.idle.rows.length > 0) {
    const w = r.idle.warm;
    log(`      after a full GC; KB/tower counted beyond the first ${fmt(w.connected)} towers (from a cold control plane in brackets), and for the towers added since the previous line`);
    log('                                         RSS MB   RSS KB/tower          added    heap used MB   heap KB/tower   malloc heap MB');
    log(`      no tower connected             ${fmt(r.idle.baseline_rss_mb, 1).padStart(9)}                                ${fmt(r.idle.baseline_heap_used_mb, 1).padStart(13)}                 ${fmt(r.idle.baseline_malloc_heap_mb, 1).padStart(14)}`);
    log(`      ${fmt(w.connected).padStart(6)} towers (warm baseline)  ${fmt(w.rss_mb, 1).padStart(9)}                                ${fmt(w.heap_used_mb, 1).padStart(13)}                 ${fmt(w.malloc_heap_mb, 1).padStart(14)}`);
  }
  for (const row of r.idle.rows) {
    log(`      ${fmt(row.connected).padStart(6)} idle towers connected  ${fmt(row.rss_mb, 1).padStart(9)} ${fmt(row.kb_per_tower, 1).padStart(14)} ${`(${fmt(row.kb_per_tower_from_cold, 1)})`.padStart(8)} ${fmt(row.kb_per_tower_step, 1).padStart(8)} ${fmt(row.heap_used_mb, 1).padStart(13)} ${fmt(row.heap_kb_per_tower, 1).padStart(15)} ${fmt(row.malloc_heap_mb, 1).padStart(16)}`);
  }
  const d = r.drift;
  if (d) {
    log(`      drift, ${fmt(d.minutes, 1)} min at ${fmt(d.load_eps)} ev/s (${d.load_from}), after ${fmt(d.warmup_s)} s warm-up: first tenth ${fmt(d.first_mb, 1)} MB → last tenth ${fmt(d.last_mb, 1)} MB = ${fmt(d.drift_percent, 1)} % (max ${fmt(d.max_mb, 1)} MB)`);
    log(`      meanwhile ${fmt(d.achieved_eps)} ev/s decided, p99 ${fmt(d.p99_ms, 2)} ms, undecided ${d.undecided}`);
  }
}
