/**
 * A steady load of real edge agents for the bench parts that run long or track single events
 * (remediation round trips, memory drift): unlike simulator/fleet.ts (which keeps a record per
 * event for its report), memory here is bounded by the events in flight, and the agents stay
 * connected across phases (warm-up, measurement).
 *
 * Arrivals are evenly spaced at the offered rate, played in 1 ms slices; every device has a home
 * tower (device index modulo towers). A violation goes to a device that has never violated in this
 * fleet, so each one expects its own remediation command (a block already in force is not re-sent).
 */
import { performance } from 'node:perf_hooks';
import { build, type Histogram } from 'hdr-histogram-js';
import { EdgeAgent } from '../../edge-agent/edge-agent.js';
import { mulberry32 } from '../../simulator/prng.js';
import { percentile } from '../../simulator/report.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { VIOLATION } from './bench-world.js';

const MIX = [
  { app: 'slack', action: 'send_message' },
  { app: 'slack', action: 'send_message' },
  { app: 'github', action: 'download_file' },
  { app: 'dropbox', action: 'download_file' },
];

export interface PlayOptions {
  rateEps: number;
  seconds: number;
  /** Every n-th event is a violation (0: none). */
  violationEvery?: number;
  /** Called about once a second during playback, with the seconds elapsed. */
  onSecond?: (elapsedS: number) => void;
  /** After playback: bound on flushing agents and waiting for decisions and commands. */
  drainTimeoutMs?: number;
}

export interface ViolationRecord {
  device_id: string;
  tower_id: string;
  /** Wall clock (epoch ms) when the tower observed it: compared with the cloud's acked_at. */
  observed_at: number;
  /** Observed at the tower → the remediation command applied there (ms), if it came. */
  applied_after_ms: number | null;
}

export interface PlayResult {
  offered_eps: number;
  playback_s: number;
  sent: number;
  decided: number;
  undecided: number;
  achieved_eps: number;
  latency_ms: { p50: number; p99: number; max: number };
  violations: ViolationRecord[];
}

interface Pending {
  at: number;
}

export class LoadFleet {
  readonly #world: ProvisionedWorld;
  readonly #url: string;
  readonly #devices: Array<{ id: string; tower: number }>;
  #agents: EdgeAgent[] = [];
  #nextViolator = 0;
  readonly #pending = new Map<string, Pending>();
  /** device → violation awaiting its command in the current play. */
  readonly #violations = new Map<string, { record: ViolationRecord; at: number }>();
  #histogram: Histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  #decided = 0;
  #drained: (() => void) | null = null;

  constructor(world: ProvisionedWorld, mqttUrl: string) {
    this.#world = world;
    this.#url = mqttUrl;
    const ids = world.tenants.flatMap((t) => t.device_ids);
    this.#devices = ids.map((id, i) => ({ id, tower: i % world.towers.length }));
  }

  get agents(): readonly EdgeAgent[] {
    return this.#agents;
  }

  /** Connects one agent per tower and waits until each maps every device to its tenant. */
  async start(): Promise<void> {
    const s = this.#world.scenario;
    this.#agents = this.#world.towers.map((t) => new EdgeAgent({ url: this.#url, towerId: t.id, password: t.password, batchMaxEvents: s.batch.max_events, batchMaxDelayMs: s.batch.max_delay_ms }));
    for (const agent of this.#agents) {
      agent.on('decision', (_tenant, d) => this.#onDecision(d.event_id));
      agent.on('rejected', (r) => this.#onDecision(r.event_id));
      agent.on('command', (_tenant, command) => {
        const v = this.#violations.get(command.device_id);
        if (v && v.record.applied_after_ms === null) v.record.applied_after_ms = performance.now() - v.at;
        this.#checkDrained();
      });
    }
    await Promise.all(this.#agents.map((a) => a.start()));
    await Promise.all(this.#agents.map((a) => a.whenReady()));
    const unmapped = this.#devices.filter((d) => this.#agents[d.tower]!.tenantOf(d.id) === undefined);
    if (unmapped.length > 0) throw new Error(`${unmapped.length} devices not in any policy bundle the towers received`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.#agents.map((a) => a.stop()));
    this.#agents = [];
  }

  #onDecision(eventId: string): void {
    const p = this.#pending.get(eventId);
    if (!p) return;
    this.#pending.delete(eventId);
    this.#decided++;
    this.#histogram.recordValue(Math.max(1, Math.round((performance.now() - p.at) * 1000)));
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (this.#drained && this.#pending.size === 0 && [...this.#violations.values()].every((v) => v.record.applied_after_ms !== null)) this.#drained();
  }

  async play(opts: PlayOptions): Promise<PlayResult> {
    this.#histogram.reset();
    this.#decided = 0;
    this.#violations.clear();
    const rnd = mulberry32(7);
    let sent = 0;
    const emit = (): void => {
      sent++;
      if (opts.violationEvery && sent % opts.violationEvery === 0) {
        const d = this.#devices[this.#nextViolator++];
        if (!d) throw new Error(`every one of the ${this.#devices.length} devices has violated already: provision more`);
        const at = performance.now();
        const { event_id } = this.#agents[d.tower]!.observe({ device_id: d.id, ...VIOLATION });
        this.#pending.set(event_id, { at });
        this.#violations.set(d.id, { at, record: { device_id: d.id, tower_id: this.#world.towers[d.tower]!.id, observed_at: Date.now(), applied_after_ms: null } });
        return;
      }
      const d = this.#devices[Math.floor(rnd() * this.#devices.length)]!;
      const m = MIX[Math.floor(rnd() * MIX.length)]!;
      const { event_id } = this.#agents[d.tower]!.observe({ device_id: d.id, app: m.app, action: m.action });
      this.#pending.set(event_id, { at: performance.now() });
    };
    const t0 = performance.now();
    let lastSecond = 0;
    await new Promise<void>((resolve, reject) => {
      const tick = (): void => {
        try {
          const elapsed = Math.min(opts.seconds, (performance.now() - t0) / 1000);
          const due = Math.floor(elapsed * opts.rateEps);
          while (sent < due) emit();
          if (elapsed >= lastSecond + 1) {
            lastSecond = Math.floor(elapsed);
            opts.onSecond?.(elapsed);
          }
          if (elapsed >= opts.seconds) resolve();
          // Every 1 ms (the timer's granularity): events leave spread out as a fleet's would,
          // not in synchronized bursts (see simulator/fleet.ts play).
          else setTimeout(tick, 1);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      tick();
    });
    const playbackS = (performance.now() - t0) / 1000;
    const drainMs = opts.drainTimeoutMs ?? 10_000;
    await Promise.all(this.#agents.map((a) => a.flush(drainMs)));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, drainMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#drained = done;
      this.#checkDrained();
    });
    this.#drained = null;
    const undecided = this.#pending.size;
    this.#pending.clear();
    const h = this.#histogram;
    const ms = (us: number): number => Math.round(us / 10) / 100;
    return {
      offered_eps: opts.rateEps,
      playback_s: playbackS,
      sent,
      decided: this.#decided,
      undecided,
      achieved_eps: this.#decided / playbackS,
      latency_ms: { p50: ms(percentile(h, 50)), p99: ms(percentile(h, 99)), max: ms(h.maxValue) },
      violations: [...this.#violations.values()].map((v) => v.record),
    };
  }
}
