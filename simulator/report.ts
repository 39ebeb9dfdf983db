/**
 * Measurement for a fleet run: every event sent is tracked by id until a decision (or a
 * rejection) comes back, so losses, duplicates and missed violations are counted exactly, and
 * end-to-end latency (observed at the tower → decision received at the tower) goes into an HDR
 * histogram at microsecond resolution. Auto-remediation is checked per injected violation: one
 * that expects a remediation counts as acked once a command that covers it was acked 'applied' at
 * the tower the violation was seen at: for the same device, of the type the deciding rule calls
 * for (a block_app for the violation's app) or a block_device (an escalation), and in force when
 * the violation happened (applied no longer than its duration_s before). "Any command for the
 * device" was too lax: a device's dropbox block acked its tiktok violation, whose own command the
 * run then never checked.
 *
 * Commands are also counted as such, per tenant (distinct command ids received and applied at the
 * towers), so the report can be held against the control plane's own count of remediation
 * commands. Violations and commands are different units: a violation while its block is in force
 * shares that block's command (the control plane does not send it again), and an escalation adds
 * one. So the report also says how many distinct commands the acked violations were acked by
 * (`remediations_acked_by_commands`): "10 acked" beside "9 commands applied" is one repeat
 * violation during a block, not an ack without a command.
 *
 * Live progress is per interval: the p99 printed every second covers the events decided since the
 * previous line, so a spike (an outage's replay) shows when it happens instead of being averaged
 * into the whole run.
 *
 * Edge autonomy (issue #11): decisions a tower made from its bundle (uplink down, or the cloud
 * late) are counted as local, the cloud's later decisions of them as reconciled (and where the
 * effect differs, as disagreements), and events that never reached the cloud as lost: dropped
 * from a full buffer, evicted from a journal over its budget, or still unsent at the end.
 */
import { performance } from 'node:perf_hooks';
import { build, type Histogram } from 'hdr-histogram-js';
import type { RemediationType } from '../shared/domain.js';
import type { Command, Decision } from '../shared/mqtt/payloads.js';

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface TenantCommands {
  tenant_id: string;
  /** Distinct remediation commands the tenant's towers received. */
  received: number;
  /** Of those, acked 'applied'. */
  applied: number;
}

export interface TowerReport {
  tower_id: string;
  events_sent: number;
  events_decided: number;
  events_without_decision: number;
  events_dropped: number;
  outages: number;
  events_decided_locally: number;
  events_lost: number;
}

/** What each agent says at the end of a run (its stats, after the drain). */
export interface TowerEnd {
  dropped: number;
  /** Events that never reached the cloud: dropped, evicted, or still unacknowledged. */
  lost: number;
}

export interface FleetReport {
  scenario: string;
  seed: number;
  started_at: string;
  towers: number;
  tenants: number;
  offered_rate_eps: number;
  playback_s: number;
  drain_s: number;
  events_sent: number;
  /** Sent for a device the tower could not map to a tenant (went to discovery, never decided). */
  events_unmapped: number;
  /** Every decision received, duplicates included. */
  decisions_received: number;
  events_decided: number;
  events_without_decision: number;
  duplicate_decisions: number;
  /** Decisions for event ids this run never sent. */
  unexpected_decisions: number;
  rejected_events: number;
  violations_injected: number;
  violations_caught: number;
  violations_missed: number;
  /** Injected violations that expect a remediation command (premium tenant, rule with one). */
  remediations_expected: number;
  /** Of those, how many saw a command covering them acked 'applied' at their tower. */
  remediations_acked: number;
  /**
   * Distinct commands the acked remediations were acked by: fewer than remediations_acked when a
   * violation came while its block was in force (one command covers both).
   */
  remediations_acked_by_commands: number;
  /** Distinct remediation commands received at the towers, and applied there (all tenants). */
  commands_received: number;
  commands_applied: number;
  commands_per_tenant: TenantCommands[];
  /** Distinct events decided per second of playback. */
  throughput_eps: number;
  latency_ms: LatencySummary;
  events_dropped: number;
  /** Decisions the towers made from their bundles (uplink down, or the cloud's answer late). */
  local_decisions: number;
  /** Of those, whose cloud decision arrived back at the tower; and where the two differ in effect. */
  reconciled_events: number;
  disagreements: number;
  /** Events observed at a tower that never reached the cloud (must be 0). */
  events_lost: number;
  agent_errors: number;
  per_tower: TowerReport[];
  passed: boolean;
}

export interface FleetProgress {
  elapsed_s: number;
  sent: number;
  decided: number;
  /** Events decided since the previous progress report. */
  decided_in_interval: number;
  /** p99 latency of the events decided since the previous progress report (0 when none). */
  p99_ms: number;
  /** Towers whose connection is down at this moment (staged outages, reconnects). */
  offline_towers: string[];
  /** Towers whose staged outage began during this interval (even if already back). */
  outages_started: string[];
}

const PENDING = 0;
const DECIDED = 1;
const REJECTED = 2;

interface EventRecord {
  sentAt: number;
  tower: number;
  violation: boolean;
  state: typeof PENDING | typeof DECIDED | typeof REJECTED;
}

/** An injected violation's remediation, not acked yet. */
interface ExpectedRemediation {
  app: string;
  type: RemediationType;
  /** When the tower observed the violation (the recorder's clock). */
  at: number;
}

/** A command acked 'applied' at a tower, in force (by the recorder's clock) until `until`. */
interface AppliedCommand {
  id: string;
  type: Command['type'];
  app: string | undefined;
  until: number;
}

/** Whether `c` is the command `e` calls for, or stronger (a block of the whole device), in force then. */
function covers(c: AppliedCommand, e: ExpectedRemediation): boolean {
  const kind = c.type === 'block_device' || (c.type === e.type && (e.type !== 'block_app' || c.app === e.app));
  return kind && c.until > e.at;
}

interface TowerTally {
  sent: number;
  decided: number;
  outages: number;
  local: number;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

export class FleetRecorder {
  readonly #towerIds: string[];
  readonly #events = new Map<string, EventRecord>();
  readonly #towers: TowerTally[];
  readonly #histogram: Histogram;
  /** The same latencies since the last progress() call. */
  readonly #interval: Histogram;
  #intervalDecided = 0;
  #intervalOutages: string[] = [];
  readonly #commands = new Map<string, { received: Set<string>; applied: Set<string> }>();
  readonly #now: () => number;
  readonly #settledWaiters = new Set<() => void>();
  readonly #remediationWaiters = new Set<() => void>();
  /** Tower and device → expected remediations not acked yet. */
  readonly #remediationsPending = new Map<string, ExpectedRemediation[]>();
  /** Tower and device → commands acked 'applied' there. */
  readonly #appliedCommands = new Map<string, AppliedCommand[]>();
  /** Commands that acked at least one expected remediation. */
  readonly #ackingCommands = new Set<string>();
  #remediationsExpected = 0;
  #remediationsAcked = 0;
  #sent = 0;
  #unmapped = 0;
  #outstanding = 0;
  #decisions = 0;
  #decided = 0;
  #duplicates = 0;
  #unexpected = 0;
  #rejected = 0;
  #violations = 0;
  #caught = 0;
  #agentErrors = 0;
  #local = 0;
  #reconciled = 0;
  #disagreements = 0;

  constructor(towerIds: string[], now: () => number = () => performance.now()) {
    this.#towerIds = towerIds;
    this.#towers = towerIds.map(() => ({ sent: 0, decided: 0, outages: 0, local: 0 }));
    // Microseconds, 3 significant digits; auto-resizes past an hour if a run ever needs it.
    this.#histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
    this.#interval = build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
    this.#now = now;
  }

  get sent(): number {
    return this.#sent;
  }

  get decided(): number {
    return this.#decided;
  }

  /** Events still waiting for a decision or rejection. */
  get outstanding(): number {
    return this.#outstanding;
  }

  recordSent(eventId: string, tower: number, violation: boolean, mapped: boolean, sentAt = this.#now()): void {
    this.#events.set(eventId, { sentAt, tower, violation, state: PENDING });
    this.#sent++;
    this.#outstanding++;
    this.#towers[tower]!.sent++;
    if (violation) this.#violations++;
    if (!mapped) this.#unmapped++;
  }

  /** `local`: the tower decided it from its bundle (no cloud round trip). */
  recordDecision(decision: Decision, at = this.#now(), local = false): void {
    this.#decisions++;
    const e = this.#events.get(decision.event_id);
    if (!e) {
      this.#unexpected++;
      return;
    }
    if (e.state !== PENDING) {
      this.#duplicates++;
      return;
    }
    e.state = DECIDED;
    this.#decided++;
    this.#towers[e.tower]!.decided++;
    if (local) {
      this.#local++;
      this.#towers[e.tower]!.local++;
    }
    if (e.violation && decision.effect === 'deny') this.#caught++;
    const us = Math.max(1, Math.round((at - e.sentAt) * 1000));
    this.#histogram.recordValue(us);
    this.#interval.recordValue(us);
    this.#intervalDecided++;
    this.#settle();
  }

  /** The cloud's decision of an event a tower had decided locally arrived back at the tower. */
  recordReconciled(disagreement: boolean): void {
    this.#reconciled++;
    if (disagreement) this.#disagreements++;
  }

  recordRejected(eventId: string): void {
    const e = this.#events.get(eventId);
    if (!e || e.state !== PENDING) return;
    e.state = REJECTED;
    this.#rejected++;
    this.#settle();
  }

  /**
   * An injected violation of `app` by `deviceId`, seen at `tower`, whose deciding rule calls for a
   * remediation of `type`. Acked at once if a command covering it is in force there already (the
   * control plane does not send it again).
   */
  recordRemediationExpected(tower: number, deviceId: string, app: string, type: RemediationType, at = this.#now()): void {
    this.#remediationsExpected++;
    const key = `${tower}\u0000${deviceId}`;
    const expected: ExpectedRemediation = { app, type, at };
    const cover = this.#appliedCommands.get(key)?.find((c) => covers(c, expected));
    if (cover) {
      this.#remediationsAcked++;
      this.#ackingCommands.add(cover.id);
    } else {
      const pending = this.#remediationsPending.get(key);
      if (pending) pending.push(expected);
      else this.#remediationsPending.set(key, [expected]);
    }
    this.#checkRemediations();
  }

  /** `tower` received a remediation command (redeliveries included) and acked it with `status`. */
  recordCommand(
    tower: number,
    tenantId: string,
    command: Pick<Command, 'id' | 'type' | 'device_id' | 'app' | 'duration_s'>,
    status: 'applied' | 'failed',
    at = this.#now(),
  ): void {
    let t = this.#commands.get(tenantId);
    if (!t) {
      t = { received: new Set(), applied: new Set() };
      this.#commands.set(tenantId, t);
    }
    t.received.add(command.id);
    if (status !== 'applied' || t.applied.has(command.id)) return;
    t.applied.add(command.id);
    const key = `${tower}\u0000${command.device_id}`;
    // Without a duration the tower holds it until told otherwise.
    const applied: AppliedCommand = { id: command.id, type: command.type, app: command.app, until: command.duration_s === undefined ? Infinity : at + command.duration_s * 1000 };
    const list = this.#appliedCommands.get(key);
    if (list) list.push(applied);
    else this.#appliedCommands.set(key, [applied]);
    const pending = this.#remediationsPending.get(key);
    if (!pending) return;
    const left = pending.filter((e) => !covers(applied, e));
    if (left.length === pending.length) return;
    this.#remediationsAcked += pending.length - left.length;
    this.#ackingCommands.add(command.id);
    if (left.length > 0) this.#remediationsPending.set(key, left);
    else this.#remediationsPending.delete(key);
    this.#checkRemediations();
  }

  /** Resolves when every expected remediation was acked (immediately if that is already so). */
  remediationsSettled(): Promise<void> {
    if (this.#remediationsAcked === this.#remediationsExpected) return Promise.resolve();
    return new Promise((resolve) => {
      const w = (): void => {
        this.#remediationWaiters.delete(w);
        resolve();
      };
      this.#remediationWaiters.add(w);
    });
  }

  recordOutage(tower: number): void {
    this.#towers[tower]!.outages++;
    this.#intervalOutages.push(this.#towerIds[tower]!);
  }

  recordAgentError(): void {
    this.#agentErrors++;
  }

  /** Resolves when nothing is outstanding (immediately if that is already so). */
  settled(): Promise<void> {
    if (this.#outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const w = (): void => {
        this.#settledWaiters.delete(w);
        resolve();
      };
      this.#settledWaiters.add(w);
    });
  }

  /** Progress since the previous call (which it starts a new interval for). */
  progress(elapsedS: number, offlineTowers: string[] = []): FleetProgress {
    const p99 = this.#intervalDecided === 0 ? 0 : this.#ms(percentile(this.#interval, 99));
    const decidedInInterval = this.#intervalDecided;
    const outagesStarted = this.#intervalOutages;
    this.#interval.reset();
    this.#intervalDecided = 0;
    this.#intervalOutages = [];
    return {
      elapsed_s: round2(elapsedS),
      sent: this.#sent,
      decided: this.#decided,
      decided_in_interval: decidedInInterval,
      p99_ms: p99,
      offline_towers: offlineTowers,
      outages_started: outagesStarted,
    };
  }

  report(run: {
    scenario: string;
    seed: number;
    startedAt: Date;
    tenants: number;
    offeredRateEps: number;
    playbackS: number;
    drainS: number;
    /** Per tower, in tower order. */
    ends: TowerEnd[];
  }): FleetReport {
    const withoutPerTower = this.#towers.map(() => 0);
    for (const e of this.#events.values()) if (e.state === PENDING) withoutPerTower[e.tower]!++;
    const violationsCaught = this.#caught;
    const without = this.#outstanding;
    const eventsDropped = run.ends.reduce((a, b) => a + b.dropped, 0);
    const eventsLost = run.ends.reduce((a, b) => a + b.lost, 0);
    const h = this.#histogram;
    const empty = h.totalCount === 0;
    return {
      scenario: run.scenario,
      seed: run.seed,
      started_at: run.startedAt.toISOString(),
      towers: this.#towerIds.length,
      tenants: run.tenants,
      offered_rate_eps: run.offeredRateEps,
      playback_s: round2(run.playbackS),
      drain_s: round2(run.drainS),
      events_sent: this.#sent,
      events_unmapped: this.#unmapped,
      decisions_received: this.#decisions,
      events_decided: this.#decided,
      events_without_decision: without,
      duplicate_decisions: this.#duplicates,
      unexpected_decisions: this.#unexpected,
      rejected_events: this.#rejected,
      violations_injected: this.#violations,
      violations_caught: violationsCaught,
      violations_missed: this.#violations - violationsCaught,
      remediations_expected: this.#remediationsExpected,
      remediations_acked: this.#remediationsAcked,
      remediations_acked_by_commands: this.#ackingCommands.size,
      ...this.#commandTotals(),
      throughput_eps: run.playbackS > 0 ? round2(this.#decided / run.playbackS) : 0,
      latency_ms: {
        p50: empty ? 0 : this.#ms(percentile(h, 50)),
        p90: empty ? 0 : this.#ms(percentile(h, 90)),
        p99: empty ? 0 : this.#ms(percentile(h, 99)),
        max: empty ? 0 : this.#ms(h.maxValue),
      },
      events_dropped: eventsDropped,
      local_decisions: this.#local,
      reconciled_events: this.#reconciled,
      disagreements: this.#disagreements,
      events_lost: eventsLost,
      agent_errors: this.#agentErrors,
      per_tower: this.#towerIds.map((tower_id, i) => ({
        tower_id,
        events_sent: this.#towers[i]!.sent,
        events_decided: this.#towers[i]!.decided,
        events_without_decision: withoutPerTower[i]!,
        events_dropped: run.ends[i]?.dropped ?? 0,
        outages: this.#towers[i]!.outages,
        events_decided_locally: this.#towers[i]!.local,
        events_lost: run.ends[i]?.lost ?? 0,
      })),
      // A rejected event got no decision either (the cloud refused it: over the plan's rate, or a
      // device it maps elsewhere), and the agent answers each event once, so a duplicate is a
      // defect too: a run with either passed while the README promises "every event decided".
      passed:
        without === 0 &&
        this.#rejected === 0 &&
        this.#duplicates === 0 &&
        this.#violations - violationsCaught === 0 &&
        this.#remediationsAcked === this.#remediationsExpected &&
        eventsLost === 0,
    };
  }

  #commandTotals(): Pick<FleetReport, 'commands_received' | 'commands_applied' | 'commands_per_tenant'> {
    const perTenant = [...this.#commands].map(([tenant_id, c]) => ({ tenant_id, received: c.received.size, applied: c.applied.size }));
    perTenant.sort((a, b) => (a.tenant_id < b.tenant_id ? -1 : a.tenant_id > b.tenant_id ? 1 : 0));
    return {
      commands_received: perTenant.reduce((n, t) => n + t.received, 0),
      commands_applied: perTenant.reduce((n, t) => n + t.applied, 0),
      commands_per_tenant: perTenant,
    };
  }

  /** Frees the histograms' buffers. */
  close(): void {
    this.#histogram.destroy();
    this.#interval.destroy();
  }

  #settle(): void {
    this.#outstanding--;
    if (this.#outstanding === 0) for (const w of [...this.#settledWaiters]) w();
  }

  #checkRemediations(): void {
    if (this.#remediationsAcked === this.#remediationsExpected) for (const w of [...this.#remediationWaiters]) w();
  }

  #ms(us: number): number {
    return round2(us / 1000);
  }
}

/** A plain-text summary for terminals and CI logs. */
export function formatReport(r: FleetReport): string {
  const row = (k: string, v: string | number): string => `  ${k.padEnd(26)} ${v}`;
  const lines = [
    `Simulation "${r.scenario}" (seed ${r.seed}) — ${r.passed ? 'PASSED' : 'FAILED'}`,
    row('started', r.started_at),
    row('towers / tenants', `${r.towers} / ${r.tenants}`),
    row('playback / drain', `${r.playback_s} s / ${r.drain_s} s`),
    row('offered rate', `${r.offered_rate_eps} ev/s`),
    row('throughput (decided)', `${r.throughput_eps} ev/s`),
    row('events sent', r.events_sent),
    row('events decided', r.events_decided),
    row('events without decision', r.events_without_decision),
    row('events unmapped', r.events_unmapped),
    row('events dropped (buffers)', r.events_dropped),
    row('decisions received', r.decisions_received),
    row('duplicate decisions', r.duplicate_decisions),
    row('unexpected decisions', r.unexpected_decisions),
    row('rejected events', r.rejected_events),
    row('violations inj/caught/miss', `${r.violations_injected} / ${r.violations_caught} / ${r.violations_missed}`),
    row('remediations exp/acked', `${r.remediations_expected} / ${r.remediations_acked}${ackedBy(r)}`),
    row('remediation commands', `${r.commands_received} received at towers, ${r.commands_applied} applied`),
    row('local decisions', `${r.local_decisions} (reconciled ${r.reconciled_events}, disagreements ${r.disagreements})`),
    row('events lost', r.events_lost),
    row('latency ms p50/p90/p99/max', `${r.latency_ms.p50} / ${r.latency_ms.p90} / ${r.latency_ms.p99} / ${r.latency_ms.max}`),
    row('agent errors', r.agent_errors),
  ];
  if (r.per_tower.length > 0) {
    const header = ['tower', 'sent', 'decided', 'local', 'undecided', 'dropped', 'lost', 'outages'];
    const rows = r.per_tower.map((t) => [t.tower_id, t.events_sent, t.events_decided, t.events_decided_locally, t.events_without_decision, t.events_dropped, t.events_lost, t.outages].map(String));
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
    const fmt = (cells: string[]): string => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    lines.push('', fmt(header), ...rows.map(fmt));
  }
  return lines.join('\n');
}

/**
 * What the acked violations were acked by, so the line is not read against the commands line as
 * the same unit: a violation while its block was in force got no command of its own.
 */
function ackedBy(r: FleetReport): string {
  if (r.remediations_acked === 0) return '';
  const n = r.remediations_acked_by_commands;
  const shared = r.remediations_acked - n;
  const repeats = shared > 0 ? `; ${shared} violation${shared === 1 ? '' : 's'} came during a block already in force` : '';
  return ` (violations, acked by ${n} distinct command${n === 1 ? '' : 's'}${repeats})`;
}

/**
 * A percentile of `h`, at most its largest recorded value: HDR histograms answer a percentile with
 * the highest value of its bucket (3 significant digits), which can lie above every sample (a
 * p99 of 44.22 ms beside a max of 44.2).
 */
export function percentile(h: Histogram, p: number): number {
  return Math.min(h.getValueAtPercentile(p), h.maxValue);
}
