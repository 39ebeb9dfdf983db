/**
 * Mirrors live alerts, remediations and usage counters from the bus to a realtime database
 * (Firebase Realtime Database in production) for dashboards. Off unless the composition root
 * builds one (config firebase_database_url).
 *
 * Path layout (also exported as FIREBASE_PATHS for the README):
 *   tenants/{tenantId}/alerts/{alertId}          {device_id, rule_id, policy_id, app, action, severity,
 *                                                  count, first_seen, last_seen, status, tower_id,
 *                                                  acknowledged_by/_at, assigned_to/_at/_by, resolved_by/_at,
 *                                                  note} (an unset field is absent: RTDB drops nulls)
 *   tenants/{tenantId}/remediations/{commandId}  {type, device_id, app, tower_id, status, source,
 *                                                  attempts, updated_at, expires_at}
 *   tenants/{tenantId}/counters/events           server increment: usage events decided
 *   tenants/{tenantId}/counters/denied           server increment: of which denied
 *   tenants/{tenantId}/counters/updated_at       epoch ms of the last usage batch counted
 * Times are epoch milliseconds. Records are written whole (the latest state replaces the node).
 *
 * Batching and rate limiting: bus events only change a pending path → value map (a later value
 * for a path replaces the earlier one; increments for a path add up). A timer flushes that map as
 * ONE multi-path update at most every `flushMs`, and only one write is in flight at a time, so a
 * burst of any size costs one write per interval. A failed write is merged back under the newer
 * values (increments summed, so no count is lost) and retried at the next flush.
 */
import type { Bus } from '../bus.js';
import type { Alert, CommandRecord, UsageRecord } from '../domain.js';
import type { Counters } from '../metrics.js';
import { INCREMENT, isIncrement, type RealtimeWriter } from './realtime-writer.js';

const ALERT_FIELDS = [
  'device_id',
  'rule_id',
  'policy_id',
  'app',
  'action',
  'severity',
  'count',
  'first_seen',
  'last_seen',
  'status',
  'tower_id',
  'acknowledged_by',
  'acknowledged_at',
  'assigned_to',
  'assigned_at',
  'assigned_by',
  'resolved_by',
  'resolved_at',
  'note',
] as const satisfies ReadonlyArray<keyof Alert>;

const REMEDIATION_FIELDS = [
  'type',
  'device_id',
  'app',
  'tower_id',
  'status',
  'source',
  'attempts',
  'updated_at',
  'expires_at',
] as const satisfies ReadonlyArray<keyof CommandRecord>;

export interface FirebasePathDescription {
  path: string;
  value: string;
  from: readonly string[];
}

/** The layout written by FirebaseSink, for documentation (README) and dashboard authors. */
export const FIREBASE_PATHS: readonly FirebasePathDescription[] = [
  {
    path: 'tenants/{tenantId}/alerts/{alertId}',
    value: `{${ALERT_FIELDS.join(', ')}}`,
    from: ['alert.opened', 'alert.updated', 'alert.acknowledged', 'alert.assigned', 'alert.resolved'],
  },
  { path: 'tenants/{tenantId}/remediations/{commandId}', value: `{${REMEDIATION_FIELDS.join(', ')}}`, from: ['command.updated'] },
  { path: 'tenants/{tenantId}/counters/events', value: 'server increment: usage events decided', from: ['usage.decided'] },
  { path: 'tenants/{tenantId}/counters/denied', value: 'server increment: usage events denied', from: ['usage.decided'] },
  { path: 'tenants/{tenantId}/counters/updated_at', value: 'epoch ms of the last counted usage batch', from: ['usage.decided'] },
];

export interface FirebaseSinkOptions {
  bus: Bus;
  writer: RealtimeWriter;
  counters: Counters;
  /** Shortest interval between two writes (config firebase_flush_ms). */
  flushMs: number;
  now?: () => number;
  /** Write failures (the sink retries them itself); the composition root logs them. */
  onError?: (err: unknown) => void;
}

/** Realtime Database keys may not contain . $ # [ ] / (nor %, to keep the encoding reversible). */
function key(segment: string): string {
  return segment.replace(/[.$#[\]/%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

function pick<T, const K extends keyof T>(record: T, fields: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const f of fields) out[f] = record[f];
  return out;
}

/** `newer` wins, except that two increments of the same path add up. */
function merge(older: unknown, newer: unknown): unknown {
  return isIncrement(older) && isIncrement(newer) ? INCREMENT(older['.sv'].increment + newer['.sv'].increment) : newer;
}

export class FirebaseSink {
  readonly #opts: FirebaseSinkOptions;
  readonly #now: () => number;
  #pending = new Map<string, unknown>();
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  #started = false;

  constructor(opts: FirebaseSinkOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const { bus } = this.#opts;
    bus.subscribe('alert.opened', (e) => this.#alert(e.tenant_id, e.alert), this);
    bus.subscribe('alert.updated', (e) => this.#alert(e.tenant_id, e.alert), this);
    for (const step of ['alert.acknowledged', 'alert.assigned', 'alert.resolved'] as const) {
      bus.subscribe(step, (e) => this.#alert(e.tenant_id, e.alert), this);
    }
    bus.subscribe('command.updated', (e) => this.#remediation(e.tenant_id, e.command), this);
    bus.subscribe('usage.decided', (e) => this.#usage(e.tenant_id, e.records), this);
  }

  /** Unsubscribes, writes what is pending (once, no retry), then closes the writer. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#opts.bus.removeAllFor(this);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#writing) await this.#writing;
    if (this.#pending.size > 0) await this.#flush();
    await this.#opts.writer.close();
  }

  /** Paths waiting for the next flush (for tests and diagnostics). */
  get pendingPaths(): number {
    return this.#pending.size;
  }

  #alert(tenantId: string, alert: Alert): void {
    this.#set(`tenants/${key(tenantId)}/alerts/${key(alert.id)}`, pick(alert, ALERT_FIELDS));
  }

  #remediation(tenantId: string, command: CommandRecord): void {
    this.#set(`tenants/${key(tenantId)}/remediations/${key(command.id)}`, pick(command, REMEDIATION_FIELDS));
  }

  #usage(tenantId: string, records: readonly UsageRecord[]): void {
    if (records.length === 0) return;
    let denied = 0;
    for (const r of records) if (r.effect === 'deny') denied++;
    const base = `tenants/${key(tenantId)}/counters`;
    this.#set(`${base}/events`, INCREMENT(records.length));
    if (denied > 0) this.#set(`${base}/denied`, INCREMENT(denied));
    this.#set(`${base}/updated_at`, this.#now());
  }

  #set(path: string, value: unknown): void {
    this.#pending.set(path, this.#pending.has(path) ? merge(this.#pending.get(path), value) : value);
    this.#schedule();
  }

  /** Arms the flush timer unless one is armed or a write is in flight (it re-arms when done). */
  #schedule(): void {
    if (!this.#started || this.#timer || this.#writing || this.#pending.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#writing = this.#flush().finally(() => {
        this.#writing = null;
        this.#schedule();
      });
    }, this.#opts.flushMs);
    // A pending mirror write must not keep the process alive; stop() flushes explicitly.
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      await this.#opts.writer.update(Object.fromEntries(batch));
      this.#opts.counters.inc('firebase_writes_total');
    } catch (err) {
      this.#opts.counters.inc('firebase_write_errors_total');
      // Values recorded while the write was in flight are newer: they stay on top.
      for (const [path, older] of batch) {
        this.#pending.set(path, this.#pending.has(path) ? merge(older, this.#pending.get(path)) : older);
      }
      this.#opts.onError?.(err);
    }
  }
}
