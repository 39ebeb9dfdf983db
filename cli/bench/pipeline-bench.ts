/**
 * (b) The full embedded pipeline: `edgeplane start` in a child process (its own core, as in
 * production), a provisioned bench world, and real edge agents in this process offering load in
 * increasing steps until p99 decision latency passes the limit or the offered load is no longer
 * sustained.
 *
 * Every usage batch the agents publish in a step is recorded (which tower, how many events: the
 * agents batch adaptively, so sizes follow the load). After the control plane has stopped, each
 * step's stream is replayed through a bare Aedes (relay-bench.ts): the fair ceiling for that step,
 * and the ratio pipeline / relay on the same stream.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runFleet } from '../../simulator/fleet.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { provisionBenchWorld } from './bench-world.js';
import { ApiClient } from '../../simulator/api-client.js';
import { cpuSeconds, startBenchControlPlane } from './control-plane.js';
import { bucketQuantile, bucketsDelta, gaugeValue, histogramBuckets, type HistogramBuckets } from './stats.js';
import { RelayBroker, relayStream, summarizeStream, type RecordedStream, type RelayResult, type StreamSummary } from './relay-bench.js';

export { BENCH_LIMITS } from './control-plane.js';

export interface PipelineStep {
  offered_eps: number;
  achieved_eps: number;
  events: number;
  undecided: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  sustained: boolean;
  /** Usage batches the agents published in this step (MQTT messages), and their sizes. */
  stream: StreamSummary & { msgs_per_s: number };
  /**
   * The load generator's own event-loop delay during the step (sampled every 1 ms; the delay
   * beyond that period), p99 and max: all agents share this process, so its stalls (its own work
   * and garbage collection) are in the measured latency too, and a decision p99 below them cannot
   * be measured here.
   */
  generator_delay_ms: { p99: number; max: number };
  /**
   * The control plane's event-loop delay over the step (prom-client's monitor, sampled every
   * 10 ms, read and reset by the scrapes at either end; the delay beyond that period), p99 and
   * max: a message that arrives while the loop is held waits at least that long to be read.
   * Embedded mode only.
   */
  server_delay_ms?: { p99: number; max: number };
  /**
   * CPU the measured processes (StepOptions.serverPids) used from playback start to the end of the
   * drain, per event decided and as cores busy: less noisy than latency on a VM whose speed moves
   * (compare builds by it). Absent where /proc is not there or no pids were given.
   */
  server_cpu?: { us_per_event: number; cores: number };
  /**
   * The control plane's own time to accept a usage message (decided, stored, answered; its
   * `ingest_duration_seconds` histogram over the same window), p50 and p99 interpolated in its
   * buckets (0.5, 1, 2.5, 5, 10 ms …): the share of the tower's latency spent after the message
   * was read from the socket. What the tower measures beyond it is queueing before that read,
   * the network and the load generator. Embedded mode only.
   */
  accept_ms?: { p50: number; p99: number };
  /** The bare relay on this step's stream (benchPipeline only). */
  relay?: RelayResult;
  /** achieved_eps / relay.events_per_s (benchPipeline only). */
  ratio_to_relay?: number;
}

export interface PipelineBenchResult {
  towers: number;
  devices: number;
  batch_max_events: number;
  step_seconds: number;
  warmup_seconds: number;
  p99_limit_ms: number;
  steps: PipelineStep[];
  max_sustained_eps: number;
  p99_at_max_sustained_ms: number | null;
  /** Highest offered load carried (all decided, ≥ 95 % of it) whatever the latency. */
  max_carried_eps: number;
  /** Pipeline / relay on the stream of the max sustained step (benchPipeline only). */
  ratio_to_relay_at_max_sustained?: number | null;
}

export interface StepOptions {
  steps: number[];
  stepSeconds: number;
  warmupSeconds: number;
  p99LimitMs: number;
  log: (s: string) => void;
  /** Prefix of the progress lines (which deployment is measured). */
  label?: string;
  /**
   * Keep stepping past the latency limit while the offered load is still carried (all decided,
   * ≥ 95 % of it): comparisons then show each deployment's throughput ceiling as well.
   */
  continuePastLatency?: boolean;
  /** Processes whose CPU time each step reports (the control plane; a deployment's roles). */
  serverPids?: number[];
  /** The control plane's /metrics exposition (embedded mode), for `accept_ms`; null when unreadable. */
  serverMetrics?: () => Promise<string | null>;
}

const ACCEPT_HISTOGRAM = 'ingest_duration_seconds';

/** prom-client's event-loop monitor samples every 10 ms; its figures include that period. */
const SERVER_LOOP_SAMPLE_S = 0.01;

async function scrape(metrics: StepOptions['serverMetrics']): Promise<string | null> {
  return metrics ? await metrics() : null;
}

/** Plays `world` at `rate` for `seconds`, recording every usage batch each tower's agent sends. */
async function playStep(world: ProvisionedWorld, mqttUrl: string, rate: number, seconds: number, server: Pick<StepOptions, 'serverPids' | 'serverMetrics'> = {}) {
  const serverPids = server.serverPids ?? [];
  const perTower: number[][] = world.towers.map(() => []);
  // Over playback and drain only: connecting 20 agents and loading their bundles is not the step.
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const serverCpu = (): number | null => {
    let sum = 0;
    for (const pid of serverPids) {
      const s = cpuSeconds(pid);
      if (s === null) return null;
      sum += s;
    }
    return serverPids.length > 0 ? sum : null;
  };
  let cpu: { start: number | null; end: number | null; seconds: number } = { start: null, end: null, seconds: 0 };
  let t0 = 0;
  let scrapeBefore: Promise<string | null> = Promise.resolve(null);
  let scrapeAfter: Promise<string | null> = Promise.resolve(null);
  const report = await runFleet(
    { ...world, scenario: { ...world.scenario, rate_eps: rate, duration_s: seconds, violations: { count: 0, pick: [] } } },
    {
      mqttUrl,
      drainTimeoutMs: 10_000,
      onPhase: (phase) => {
        if (phase === 'playback') {
          delay.enable();
          t0 = performance.now();
          cpu = { start: serverCpu(), end: null, seconds: 0 };
          scrapeBefore = scrape(server.serverMetrics);
        } else {
          delay.disable();
          cpu = { ...cpu, end: serverCpu(), seconds: (performance.now() - t0) / 1000 };
          scrapeAfter = scrape(server.serverMetrics);
        }
      },
      onAgent: (agent, i) => {
        agent.on('sent', (item) => {
          if (item.kind === 'usage') perTower[i]!.push(item.batch.events.length);
        });
      },
    },
  );
  delay.disable();
  const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
  const used = cpu.start !== null && cpu.end !== null ? cpu.end - cpu.start : null;
  const decided = report.events_sent - report.events_without_decision;
  const serverCpuUsed = used !== null && decided > 0 && cpu.seconds > 0 ? { us_per_event: Math.round((used / decided) * 1e7) / 10, cores: Math.round((used / cpu.seconds) * 100) / 100 } : null;
  const [before, after] = await Promise.all([scrapeBefore, scrapeAfter]);
  const usageAccepts = (text: string): HistogramBuckets => histogramBuckets(text, ACCEPT_HISTOGRAM, ['kind="usage"']);
  const accepted = before !== null && after !== null ? bucketsDelta(usageAccepts(before), usageAccepts(after)) : null;
  const lag = (name: string): number | null => {
    const v = after === null ? null : gaugeValue(after, name);
    return v === null ? null : Math.round(Math.max(0, v - SERVER_LOOP_SAMPLE_S) * 1e5) / 100;
  };
  const [lagP99, lagMax] = [lag('nodejs_eventloop_lag_p99_seconds'), lag('nodejs_eventloop_lag_max_seconds')];
  const serverDelay = lagP99 !== null && lagMax !== null ? { p99: lagP99, max: lagMax } : null;
  const q = (x: number): number | null => (accepted ? bucketQuantile(accepted, x) : null);
  const [p50, p99] = [q(0.5), q(0.99)];
  const accept = p50 !== null && p99 !== null ? { p50: Math.round(p50 * 1e5) / 100, p99: Math.round(p99 * 1e5) / 100 } : null;
  // The monitor's figures include its 1 ms sampling period: the delay is what lies beyond it.
  const beyond = (ns: number): number => ms(Math.max(0, ns - 1e6));
  return { report, stream: { perTower } satisfies RecordedStream, generatorDelay: { p99: beyond(delay.percentile(99)), max: beyond(delay.max) }, server: serverCpuUsed, accept, serverDelay };
}

/** benchSteps plus the recorded stream of each step (same order as `result.steps`). */
export async function runSteps(urls: { http: string; mqtt: string }, adminPassword: string, opts: StepOptions): Promise<{ result: PipelineBenchResult; streams: RecordedStream[] }> {
  const { world } = await provisionBenchWorld(urls, adminPassword);
  // Warm-up, not reported: the first seconds after start are dominated by JIT compilation in
  // every process (measured: 150-340 ms latencies for ~1.5 s), not by the pipeline.
  await playStep(world, urls.mqtt, opts.steps[0] ?? 2000, opts.warmupSeconds, opts);
  const steps: PipelineStep[] = [];
  const streams: RecordedStream[] = [];
  for (const rate of opts.steps) {
    const { report: r, stream, generatorDelay, server, accept, serverDelay } = await playStep(world, urls.mqtt, rate, opts.stepSeconds, opts);
    const summary = summarizeStream(stream);
    const step: PipelineStep = {
      offered_eps: rate,
      achieved_eps: r.throughput_eps,
      events: r.events_sent,
      undecided: r.events_without_decision,
      p50_ms: r.latency_ms.p50,
      p99_ms: r.latency_ms.p99,
      max_ms: r.latency_ms.max,
      sustained: r.events_without_decision === 0 && r.throughput_eps >= rate * 0.95 && r.latency_ms.p99 <= opts.p99LimitMs,
      stream: { ...summary, msgs_per_s: r.playback_s > 0 ? summary.batches / r.playback_s : 0 },
      generator_delay_ms: generatorDelay,
      ...(server && { server_cpu: server }),
      ...(accept && { accept_ms: accept }),
      ...(serverDelay && { server_delay_ms: serverDelay }),
    };
    steps.push(step);
    streams.push(stream);
    opts.log(
      `  ${opts.label ?? 'pipeline'} offered ${rate} ev/s → ${step.achieved_eps} ev/s in ${Math.round(step.stream.msgs_per_s)} msg/s ` +
        `(mean ${step.stream.mean_batch_events.toFixed(1)} events/batch), p50 ${step.p50_ms} ms, p99 ${step.p99_ms} ms` +
        ` (load generator's loop delay p99 ${step.generator_delay_ms.p99} / max ${step.generator_delay_ms.max} ms)` +
        (server ? `, server CPU ${server.us_per_event} µs/event (${server.cores} cores)` : '') +
        (accept ? `, accept p50 ${accept.p50} / p99 ${accept.p99} ms` : '') +
        (serverDelay ? `, control plane's loop delay p99 ${serverDelay.p99} / max ${serverDelay.max} ms` : '') +
        (step.sustained ? '' : '  (not sustained)'),
    );
    const carried = step.undecided === 0 && step.achieved_eps >= rate * 0.95;
    if (!step.sustained && !(opts.continuePastLatency && carried)) break;
  }
  const best = [...steps].reverse().find((s) => s.sustained) ?? null;
  const result: PipelineBenchResult = {
    towers: world.towers.length,
    devices: world.tenants.reduce((n, t) => n + t.device_ids.length, 0),
    batch_max_events: world.scenario.batch.max_events,
    step_seconds: opts.stepSeconds,
    warmup_seconds: opts.warmupSeconds,
    p99_limit_ms: opts.p99LimitMs,
    steps,
    max_sustained_eps: best?.achieved_eps ?? 0,
    p99_at_max_sustained_ms: best?.p99_ms ?? null,
    max_carried_eps: Math.max(0, ...steps.filter((x) => x.undecided === 0 && x.achieved_eps >= x.offered_eps * 0.95).map((x) => x.achieved_eps)),
  };
  return { result, streams };
}

/** Provisions the bench world on a running control plane (any mode) and offers load in steps. */
export async function benchSteps(urls: { http: string; mqtt: string }, adminPassword: string, opts: StepOptions): Promise<PipelineBenchResult> {
  return (await runSteps(urls, adminPassword, opts)).result;
}

export interface PipelineOptions extends StepOptions {
  /** Seconds of relay measurement per step's stream (after `relayWarmupSeconds`); 0 skips it. */
  relaySeconds: number;
  relayWarmupSeconds?: number;
}

/** Reads /metrics as the operator, signing in again when the token has expired; null on failure. */
function operatorMetrics(httpUrl: string, adminPassword: string): () => Promise<string | null> {
  let client: ApiClient | null = null;
  return async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        client ??= await ApiClient.login(httpUrl, 'admin@edgeplane.local', adminPassword);
        return await client.get<string>('/metrics');
      } catch {
        client = null;
      }
    }
    return null;
  };
}

/** The embedded control plane (`edgeplane start`) in a child process, then the relay per step. */
export async function benchPipeline(opts: PipelineOptions): Promise<PipelineBenchResult> {
  const cp = await startBenchControlPlane();
  let run: Awaited<ReturnType<typeof runSteps>>;
  try {
    run = await runSteps(cp.urls, cp.adminPassword, { ...opts, serverPids: [cp.pid], serverMetrics: operatorMetrics(cp.urls.http, cp.adminPassword) });
  } finally {
    await cp.stop();
  }
  const { result, streams } = run;
  if (opts.relaySeconds <= 0) return result;
  // The control plane is gone: the relay gets the same machine the pipeline had.
  const broker = new RelayBroker();
  await broker.start();
  try {
    for (const [i, step] of result.steps.entries()) {
      const relay = await relayStream(broker.url, streams[i]!, { seconds: opts.relaySeconds, warmupSeconds: opts.relayWarmupSeconds ?? 1, window: 16 });
      step.relay = relay;
      step.ratio_to_relay = relay.events_per_s > 0 ? step.achieved_eps / relay.events_per_s : 0;
      opts.log(
        `  relay on the stream of ${step.offered_eps} ev/s: ${Math.round(relay.events_per_s)} ev/s in ${Math.round(relay.msgs_per_s)} msg/s ` +
          `(${relay.towers} towers, mean ${relay.mean_batch_events.toFixed(1)} events/msg) → pipeline / relay ${(step.ratio_to_relay * 100).toFixed(1)} %`,
      );
    }
  } finally {
    await broker.stop();
  }
  const best = [...result.steps].reverse().find((s) => s.sustained);
  result.ratio_to_relay_at_max_sustained = best?.ratio_to_relay ?? null;
  return result;
}
