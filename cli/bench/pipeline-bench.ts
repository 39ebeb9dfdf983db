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
import { BENCH_ADMIN_EMAIL, startBenchControlPlane } from './control-plane.js';
import { ServerWindow, type ServerFigures, type ServerProbe } from './server-window.js';
import { RelayBroker, relayStream, summarizeStream, type RecordedStream, type RelayResult, type StreamSummary } from './relay-bench.js';

export { BENCH_LIMITS } from './control-plane.js';

/** One load step; ServerFigures are what the measured servers did over it (server-window.ts). */
export interface PipelineStep extends ServerFigures {
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
   * The CPU this process used over the same window (every agent, their MQTT clients and the
   * recorder; all threads), per event decided and as cores busy: what offering the step's load
   * with real agents costs on this host, beside the control plane's `server_cpu`. On a 2-core
   * host the two must fit on the two cores.
   */
  generator_cpu: { us_per_event: number; cores: number };
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
  /** What each step reports of the servers: their CPU, and the control plane's own figures. */
  server?: ServerProbe;
}

/** Plays `world` at `rate` for `seconds`, recording every usage batch each tower's agent sends. */
async function playStep(world: ProvisionedWorld, mqttUrl: string, rate: number, seconds: number, probe: ServerProbe = {}) {
  const perTower: number[][] = world.towers.map(() => []);
  // Over playback and drain only: connecting 20 agents and loading their bundles is not the step.
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const server = new ServerWindow(probe);
  // The agents' CPU over the same window (assigned in onPhase).
  const generator = { cpuStart: process.cpuUsage(), usedUs: 0, startedAt: 0, seconds: 0 };
  const report = await runFleet(
    { ...world, scenario: { ...world.scenario, rate_eps: rate, duration_s: seconds, violations: { count: 0, pick: [] } } },
    {
      mqttUrl,
      drainTimeoutMs: 10_000,
      onPhase: (phase) => {
        if (phase === 'playback') {
          delay.enable();
          server.open();
          generator.startedAt = performance.now();
          generator.cpuStart = process.cpuUsage();
        } else {
          delay.disable();
          server.close();
          generator.seconds = (performance.now() - generator.startedAt) / 1000;
          const used = process.cpuUsage(generator.cpuStart);
          generator.usedUs = used.user + used.system;
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
  // The monitor's figures include its 1 ms sampling period: the delay is what lies beyond it.
  const beyond = (ns: number): number => Math.round(Math.max(0, ns - 1e6) / 1e4) / 100;
  const decided = report.events_sent - report.events_without_decision;
  return {
    report,
    stream: { perTower } satisfies RecordedStream,
    generatorDelay: { p99: beyond(delay.percentile(99)), max: beyond(delay.max) },
    generatorCpu: {
      us_per_event: decided > 0 ? Math.round((generator.usedUs / decided) * 10) / 10 : 0,
      cores: generator.seconds > 0 ? Math.round((generator.usedUs / 1e6 / generator.seconds) * 100) / 100 : 0,
    },
    server: await server.figures(decided),
  };
}

/** benchSteps plus the recorded stream of each step (same order as `result.steps`). */
export async function runSteps(urls: { http: string; mqtt: string }, adminPassword: string, opts: StepOptions): Promise<{ result: PipelineBenchResult; streams: RecordedStream[] }> {
  const { world } = await provisionBenchWorld(urls, adminPassword);
  // Warm-up, not reported: the first seconds after start are dominated by JIT compilation in
  // every process (measured: 150-340 ms latencies for ~1.5 s), not by the pipeline.
  await playStep(world, urls.mqtt, opts.steps[0] ?? 2000, opts.warmupSeconds, opts.server);
  const steps: PipelineStep[] = [];
  const streams: RecordedStream[] = [];
  for (const rate of opts.steps) {
    const { report: r, stream, generatorDelay, generatorCpu, server } = await playStep(world, urls.mqtt, rate, opts.stepSeconds, opts.server);
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
      generator_cpu: generatorCpu,
      ...server,
    };
    steps.push(step);
    streams.push(stream);
    opts.log(
      `  ${opts.label ?? 'pipeline'} offered ${rate} ev/s → ${step.achieved_eps} ev/s in ${Math.round(step.stream.msgs_per_s)} msg/s ` +
        `(mean ${step.stream.mean_batch_events.toFixed(1)} events/batch), p50 ${step.p50_ms} ms, p99 ${step.p99_ms} ms` +
        ` (load generator's loop delay p99 ${step.generator_delay_ms.p99} / max ${step.generator_delay_ms.max} ms, ` +
        `its CPU ${step.generator_cpu.us_per_event} µs/event (${step.generator_cpu.cores} cores))` +
        (server.server_cpu ? `, server CPU ${server.server_cpu.us_per_event} µs/event (${server.server_cpu.cores} cores)` : '') +
        (server.accept_ms ? `, accept p50 ${server.accept_ms.p50} / p99 ${server.accept_ms.p99} ms` : '') +
        (server.server_delay_ms ? `, control plane's loop delay p99 ${server.server_delay_ms.p99} / max ${server.server_delay_ms.max} ms` : '') +
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
  /** More `edgeplane start` flags for the control plane measured. */
  controlPlaneArgs?: string[];
}

/** Reads /metrics as the operator, signing in again when the token has expired; null on failure. */
function operatorMetrics(httpUrl: string, adminPassword: string): () => Promise<string | null> {
  let client: ApiClient | null = null;
  return async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        client ??= await ApiClient.login(httpUrl, BENCH_ADMIN_EMAIL, adminPassword);
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
  const cp = await startBenchControlPlane({ args: opts.controlPlaneArgs ?? [] });
  let run: Awaited<ReturnType<typeof runSteps>>;
  try {
    run = await runSteps(cp.urls, cp.adminPassword, { ...opts, server: { pids: [cp.pid], metrics: operatorMetrics(cp.urls.http, cp.adminPassword) } });
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
