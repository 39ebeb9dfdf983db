/**
 * Fleet playback: one real EdgeAgent per provisioned tower (each its own MQTT connection and
 * credentials), fed usage at the scenario's offered rate and arrival pattern, with injected
 * violations and staged outages, measured end to end by a FleetRecorder.
 *
 * The simulator deliberately imports edge-agent/ (it plays the real agent): the documented
 * exception to "apps never import each other".
 *
 * Sequence: start agents → wait until every agent maps every world device to its tenant (from the
 * retained PolicyBundles) → play → flush agents (connections stay up) → wait for outstanding
 * decisions, then for every expected remediation command to be acked, both within the drain
 * timeout → stop agents → report. Agents are stopped only after the drain because decisions and
 * commands reach a tower through its own connection.
 *
 * Outages: at `at_s` the tower's socket is destroyed without DISCONNECT (the broker fires its
 * will); the agent stays offline for `duration_s`, deciding locally from its bundles (and with a
 * state dir journalling every event), then reconnects at once and replays. If that reconnect
 * fails, its normal backoff takes over. The report counts local decisions, their reconciliation
 * and events lost (which fails the run).
 */
import { EdgeAgent, type EdgeAgentOptions } from '../edge-agent/edge-agent.js';
import type { Enforcer } from '../edge-agent/enforcer.js';
import type { Logger } from '../shared/logger.js';
import { EventPlan, type PlannedEvent } from './playback.js';
import { FleetRecorder, type FleetProgress, type FleetReport } from './report.js';
import { checkWorld, type ProvisionedWorld } from './world.js';

export interface RunFleetOptions {
  /** mqtt://127.0.0.1:1883 or ws://… */
  mqttUrl: string;
  logger?: Logger;
  /** Called every `progressIntervalMs` (default 1 s) during playback and drain. */
  onProgress?: (p: FleetProgress) => void;
  progressIntervalMs?: number;
  /** Upper bound for flushing agents plus waiting for outstanding decisions (default 5 s). */
  drainTimeoutMs?: number;
  /** Upper bound for every agent to connect and learn all tenants' devices (default 15 s). */
  readyTimeoutMs?: number;
  /** Shortest sleep between two playback ticks (default 1 ms: the timer's granularity). */
  sliceMs?: number;
  /** Agent tuning beyond the scenario's batch settings. */
  agent?: Partial<
    Pick<EdgeAgentOptions, 'reconnectMinMs' | 'reconnectMaxMs' | 'bufferMaxEvents' | 'agentVersion' | 'stopTimeoutMs' | 'connectTimeoutMs' | 'localDecisionDeadlineMs' | 'journalMaxBytes'>
  >;
  /** Every agent journals its events (and keeps its state) under this directory (files are per tower). */
  stateDir?: string;
  /** Per-tower enforcer (default: the agent's LoggingEnforcer). */
  enforcer?: (towerId: string) => Enforcer;
  /** Ends playback early; the report covers what was played. */
  signal?: AbortSignal;
  /** Sees each agent before it starts (the bench records the batches it sends). */
  onAgent?: (agent: EdgeAgent, towerIndex: number) => void;
  /** Told when playback starts (agents connected and ready) and when the drain ends. */
  onPhase?: (phase: 'playback' | 'drained') => void;
}

export async function runFleet(world: ProvisionedWorld, opts: RunFleetOptions): Promise<FleetReport> {
  const problems = checkWorld(world);
  if (problems.length > 0) throw new Error(`provisioned world does not fit scenario "${world.scenario.name}": ${problems.join('; ')}`);
  const s = world.scenario;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 5_000;
  const plan = new EventPlan(world);
  const recorder = new FleetRecorder(world.towers.map((t) => t.id));
  const agents = world.towers.map(
    (t) =>
      new EdgeAgent({
        url: opts.mqttUrl,
        towerId: t.id,
        password: t.password,
        batchMaxEvents: s.batch.max_events,
        batchMaxDelayMs: s.batch.max_delay_ms,
        ...opts.agent,
        ...(opts.stateDir !== undefined ? { stateDir: opts.stateDir } : {}),
        ...(opts.enforcer ? { enforcer: opts.enforcer(t.id) } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
      }),
  );
  agents.forEach((agent, i) => opts.onAgent?.(agent, i));
  agents.forEach((agent, towerIndex) => {
    agent.on('decision', (_tenantId, decision, origin) => recorder.recordDecision(decision, undefined, 'bundle_version' in origin));
    agent.on('reconciled', (r) => recorder.recordReconciled(r.disagreement));
    agent.on('decisionBatch', (_tenantId, batch) => {
      for (const r of batch.rejected) recorder.recordRejected(r.event_id);
    });
    agent.on('command', (tenantId, command, ack) => {
      recorder.recordCommand(towerIndex, tenantId, command, ack.status);
    });
    agent.on('error', () => recorder.recordAgentError());
  });

  let progressTimer: NodeJS.Timeout | undefined;
  const offline = (): string[] => agents.filter((a) => !a.online).map((a) => a.towerId);
  let playbackS = 0;
  let drainS = 0;
  const startedAt = new Date();
  try {
    const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
    const readyBy = performance.now() + readyTimeoutMs;
    // Interruptible from the start: a broker that does not answer kept a Ctrl-C waiting for the
    // whole ready timeout, then failed with "could not connect" instead of saying it was stopped.
    const connected = await settledWithin(Promise.all(agents.map((a) => a.start())), readyTimeoutMs, opts.signal);
    if (connected === 'aborted') throw interruptedBeforePlayback();
    if (!connected) {
      const down = agents.filter((a) => !a.online).map((a) => a.towerId);
      throw new Error(`towers could not connect to ${opts.mqttUrl} within ${readyTimeoutMs} ms: ${down.slice(0, 10).join(', ')}`);
    }
    await waitUntilReady(agents, world, Math.max(0, readyBy - performance.now()), opts.signal);

    opts.onPhase?.('playback');
    const t0 = performance.now();
    if (opts.onProgress) {
      const onProgress = opts.onProgress;
      progressTimer = setInterval(() => onProgress(recorder.progress((performance.now() - t0) / 1000, offline())), opts.progressIntervalMs ?? 1000);
    }
    playbackS = await play(plan, agents, recorder, world.scenario.outages, opts.sliceMs ?? 1, opts.signal);

    const drainStart = performance.now();
    await Promise.all(agents.map((a) => a.flush(drainTimeoutMs)));
    const left = (): number => Math.max(0, drainTimeoutMs - (performance.now() - drainStart));
    await settledWithin(recorder.settled(), left());
    // A remediation command follows its decision (the cloud issues it after storing the deny).
    await settledWithin(recorder.remediationsSettled(), left());
    drainS = (performance.now() - drainStart) / 1000;
    opts.onPhase?.('drained');
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    await Promise.all(agents.map((a) => a.stop()));
  }
  opts.onProgress?.(recorder.progress(playbackS + drainS, []));
  const report = recorder.report({
    scenario: s.name,
    seed: s.seed,
    startedAt,
    tenants: world.tenants.length,
    offeredRateEps: s.rate_eps,
    playbackS,
    drainS,
    ends: agents.map((a) => {
      const st = a.stats();
      // Dropped (a full buffer without a journal, or evicted from the journal) or never acknowledged.
      return { dropped: st.events_dropped, lost: st.events_dropped + st.journal_pending_events };
    }),
  });
  recorder.close();
  return report;
}

/** What runFleet throws when its signal aborts before playback began: there is nothing to report. */
export function interruptedBeforePlayback(): Error {
  return new Error('interrupted while the towers were connecting: nothing was played');
}

/** Resolves when every agent knows every world tenant and maps each world device to it. */
async function waitUntilReady(agents: EdgeAgent[], world: ProvisionedWorld, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const ready = (a: EdgeAgent): boolean =>
    world.tenants.every((t) => t.device_ids.every((d) => a.tenantOf(d) === t.id));
  const pending = new Set(agents.filter((a) => !ready(a)));
  if (pending.size === 0) return;
  if (signal?.aborted) throw interruptedBeforePlayback();
  await new Promise<void>((resolve, reject) => {
    const listeners = new Map<EdgeAgent, () => void>();
    const onAbort = (): void => {
      cleanup();
      reject(interruptedBeforePlayback());
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      for (const [a, l] of listeners) a.off('bundle', l);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      cleanup();
      const ids = [...pending].map((a) => a.towerId);
      reject(new Error(`towers not ready after ${timeoutMs} ms (no complete policy bundles): ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}`));
    }, timeoutMs);
    for (const a of pending) {
      const l = (): void => {
        if (!ready(a)) return;
        pending.delete(a);
        if (pending.size === 0) {
          cleanup();
          resolve();
        }
      };
      listeners.set(a, l);
      a.on('bundle', l);
    }
  });
}

/** A tick also comes at least this often (the abort signal is looked at on ticks). */
const MAX_SLEEP_MS = 100;

/**
 * Emits every event when its planned time has come: each tick plays the events now due, then
 * sleeps until the next planned event (an outage's start, or the end), but at least `sliceMs`,
 * the timer's granularity. The offered rate holds whatever the timer does (a late tick plays a
 * larger burst). With fixed 5 ms slices every tower's events of a slice went out at the same
 * instant: 20 towers could send at most ~3,400 batches/s together, and the control plane got
 * synchronized bursts that no fleet of independent towers produces (bench (b) at 2,000 events/s:
 * p50 1.7–1.9 ms with 5 ms slices, 0.8 ms with 1 ms ones).
 * Resolves with the actual playback time in seconds.
 */
export function play(
  plan: Pick<EventPlan, 'durationS' | 'violationTimes' | 'nextArrival' | 'nextEvent' | 'nextViolation'>,
  agents: ReadonlyArray<Pick<EdgeAgent, 'observe' | 'simulateOutage'>>,
  recorder: Pick<FleetRecorder, 'recordSent' | 'recordRemediationExpected' | 'recordOutage'>,
  outagePlan: ReadonlyArray<{ at_s: number; tower_index: number; duration_s: number }>,
  sliceMs: number,
  signal?: AbortSignal,
): Promise<number> {
  const duration = plan.durationS;
  const outages = outagePlan.map((o) => ({ ...o, started: false }));
  const emit = (ev: PlannedEvent): void => {
    const agent = agents[ev.towerIndex]!;
    const { event_id, tenant_id } = agent.observe({ device_id: ev.deviceId, app: ev.app, action: ev.action });
    recorder.recordSent(event_id, ev.towerIndex, ev.violation, tenant_id !== null);
    if (ev.remediation) recorder.recordRemediationExpected(ev.towerIndex, ev.deviceId, ev.app, ev.remediation);
  };
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let nextRegular = plan.nextArrival();
    let violationIndex = 0;
    const tick = (): void => {
      const elapsed = (performance.now() - t0) / 1000;
      const horizon = Math.min(elapsed, duration);
      try {
        for (const o of outages) {
          if (o.started || o.at_s > horizon) continue;
          o.started = true;
          recorder.recordOutage(o.tower_index);
          agents[o.tower_index]!.simulateOutage({ holdMs: o.duration_s * 1000 });
        }
        for (;;) {
          const nextViolation = plan.violationTimes[violationIndex] ?? Infinity;
          const t = Math.min(nextRegular, nextViolation);
          if (t > horizon || t >= duration) break;
          if (nextViolation <= nextRegular) {
            violationIndex++;
            emit(plan.nextViolation());
          } else {
            emit(plan.nextEvent());
            nextRegular = plan.nextArrival();
          }
        }
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (elapsed >= duration || signal?.aborted) {
        resolve(elapsed);
        return;
      }
      let next = Math.min(nextRegular, plan.violationTimes[violationIndex] ?? Infinity, duration);
      for (const o of outages) if (!o.started) next = Math.min(next, o.at_s);
      const untilNextMs = (next - (performance.now() - t0) / 1000) * 1000;
      setTimeout(tick, Math.min(MAX_SLEEP_MS, Math.max(sliceMs, untilNextMs)));
    };
    tick();
  });
}

/**
 * True when `p` fulfils within `ms`; rejects if `p` rejects first; false on timeout; 'aborted'
 * when `signal` aborts first (or already has).
 */
function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean>;
function settledWithin(p: Promise<unknown>, ms: number, signal: AbortSignal | undefined): Promise<boolean | 'aborted'>;
function settledWithin(p: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<boolean | 'aborted'> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      resolve('aborted');
    };
    const timer = setTimeout(() => {
      done();
      resolve(false);
    }, ms);
    p.then(
      () => {
        done();
        resolve(true);
      },
      (err: unknown) => {
        done();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
    // After p.then: a `p` that rejects later is still handled.
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}
