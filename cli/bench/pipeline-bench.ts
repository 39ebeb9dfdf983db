/**
 * (b) The full embedded pipeline: `edgeplane start` in a child process (its own core, as in
 * production), a provisioned bench world, and real edge agents in this process offering load in
 * increasing steps until p99 decision latency passes the limit or the offered load is no longer
 * sustained.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomSecret } from '../../shared/auth/secrets.js';
import { ApiClient } from '../../simulator/api-client.js';
import { runFleet } from '../../simulator/fleet.js';
import { provisionWorld } from '../../simulator/provision.js';
import { parseScenario, type ScenarioInput } from '../../simulator/scenario.js';
import { spawnAndWait } from './child.js';

export interface PipelineStep {
  offered_eps: number;
  achieved_eps: number;
  events: number;
  undecided: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  sustained: boolean;
}

export interface PipelineBenchResult {
  towers: number;
  devices: number;
  batch_events: number;
  step_seconds: number;
  warmup_seconds: number;
  p99_limit_ms: number;
  steps: PipelineStep[];
  max_sustained_eps: number;
  p99_at_max_sustained_ms: number | null;
  /** Highest offered load carried (all decided, ≥ 95 % of it) whatever the latency. */
  max_carried_eps: number;
}

const BENCH_SCENARIO: ScenarioInput = {
  name: 'bench',
  seed: 7,
  duration_s: 5,
  rate_eps: 1000,
  arrival: 'poisson',
  towers: { count: 20, id_prefix: 'bench-tower' },
  batch: { max_events: 100, max_delay_ms: 5 },
  tenants: [
    {
      name: 'bench',
      // Premium: 500 devices exceed the free plan's limit.
      plan: 'premium',
      default_effect: 'allow',
      apps: ['slack', 'dropbox', 'github', 'tiktok'],
      actions: ['open', 'send_message', 'upload_file', 'download_file'],
      roles: [{ name: 'staff' }, { name: 'contractor' }],
      policies: [
        { name: 'dlp', severity: 'high', roles: ['contractor'], rules: [{ app: 'dropbox', action: 'upload_file', permission: 'deny' }] },
        { name: 'social', severity: 'medium', roles: ['staff', 'contractor'], rules: [{ app: 'tiktok', action: '*', permission: 'deny' }, { app: 'slack', action: '*', permission: 'allow' }] },
      ],
      users: { count: 250, roles: ['staff', 'contractor'] },
      devices_per_user: 2,
      mix: [
        { app: 'slack', action: 'send_message', weight: 60 },
        { app: 'github', action: 'download_file', weight: 30 },
        { app: 'dropbox', action: 'download_file', weight: 10 },
      ],
    },
  ],
  violations: { count: 10, pick: [{ tenant: 'bench', app: 'dropbox', action: 'upload_file' }] },
  outages: [],
};

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
}

/**
 * Provisions the bench world on a running control plane (any mode) and offers load in steps.
 * The plan's event-rate limit is lifted first: the bench measures the pipeline, not the limiter.
 */
export async function benchSteps(urls: { http: string; mqtt: string }, adminPassword: string, opts: StepOptions): Promise<PipelineBenchResult> {
  const base = parseScenario(BENCH_SCENARIO);
  const operator = await ApiClient.login(urls.http, 'admin@edgeplane.local', adminPassword);
  await operator.patch('/api/v1/plans/premium', { max_events_per_s: null });
  const { world } = await provisionWorld(base, { apiUrl: urls.http, adminEmail: 'admin@edgeplane.local', adminPassword });
  // Warm-up, not reported: the first seconds after start are dominated by JIT compilation in
  // every process (measured: 150-340 ms latencies for ~1.5 s), not by the pipeline.
  await runFleet(
    { ...world, scenario: { ...world.scenario, rate_eps: opts.steps[0] ?? 2000, duration_s: opts.warmupSeconds, violations: { count: 0, pick: [] } } },
    { mqttUrl: urls.mqtt, drainTimeoutMs: 10_000 },
  );
  const steps: PipelineStep[] = [];
  for (const rate of opts.steps) {
    const r = await runFleet(
      { ...world, scenario: { ...world.scenario, rate_eps: rate, duration_s: opts.stepSeconds, violations: { count: 0, pick: [] } } },
      { mqttUrl: urls.mqtt, drainTimeoutMs: 10_000 },
    );
    const step: PipelineStep = {
      offered_eps: rate,
      achieved_eps: r.throughput_eps,
      events: r.events_sent,
      undecided: r.events_without_decision,
      p50_ms: r.latency_ms.p50,
      p99_ms: r.latency_ms.p99,
      max_ms: r.latency_ms.max,
      sustained: r.events_without_decision === 0 && r.throughput_eps >= rate * 0.95 && r.latency_ms.p99 <= opts.p99LimitMs,
    };
    steps.push(step);
    opts.log(`  ${opts.label ?? 'pipeline'} offered ${rate} ev/s → ${step.achieved_eps} ev/s, p50 ${step.p50_ms} ms, p99 ${step.p99_ms} ms${step.sustained ? '' : '  (not sustained)'}`);
    const carried = step.undecided === 0 && step.achieved_eps >= rate * 0.95;
    if (!step.sustained && !(opts.continuePastLatency && carried)) break;
  }
  const best = [...steps].reverse().find((s) => s.sustained) ?? null;
  return {
    towers: world.towers.length,
    devices: world.tenants.reduce((n, t) => n + t.device_ids.length, 0),
    batch_events: base.batch.max_events,
    step_seconds: opts.stepSeconds,
    warmup_seconds: opts.warmupSeconds,
    p99_limit_ms: opts.p99LimitMs,
    steps,
    max_sustained_eps: best?.achieved_eps ?? 0,
    p99_at_max_sustained_ms: best?.p99_ms ?? null,
    max_carried_eps: Math.max(0, ...steps.filter((x) => x.undecided === 0 && x.achieved_eps >= x.offered_eps * 0.95).map((x) => x.achieved_eps)),
  };
}

/** The embedded control plane (`edgeplane start`) in a child process, on its own core. */
export async function benchPipeline(opts: StepOptions): Promise<PipelineBenchResult> {
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-bench-'));
  const adminPassword = randomSecret(16);
  const { child, value: urls } = await spawnAndWait(
    [
      'start',
      '--data-dir', dataDir,
      '--http-host', '127.0.0.1', '--http-port', '0',
      '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--mqtt-ws-port', '0',
      '--admin-password', adminPassword,
      '--log-level', 'info',
      ...BENCH_LIMITS,
    ],
    (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; http?: string; mqtt?: string };
        return l.msg === 'EdgePlane control plane started' && l.http && l.mqtt ? { http: l.http, mqtt: l.mqtt } : undefined;
      } catch {
        return undefined;
      }
    },
    { useBin: true },
  );
  try {
    return await benchSteps(urls, adminPassword, opts);
  } finally {
    await child.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Flags every benched deployment gets. */
export const BENCH_LIMITS = [
  // The bench offers far more than a real tower's rate; it measures the pipeline, not the limiter.
  '--mqtt-publish-rate', '100000', '--mqtt-publish-burst', '100000',
  // Provisioning the bench world is hundreds of API calls in a few seconds.
  '--rate-limit-per-min', '100000',
];
