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
 *
 * Outages are bounded: while writes fail, updates of paths already pending still merge in place,
 * but at most `maxPendingPaths` paths wait; a new path beyond that is dropped and counted
 * (firebase_dropped_total). stop() waits at most `stopTimeoutMs` for the last writes (the SDK does
 * not settle a write while the database is unreachable); what it gives up on is counted too.
 */
import type { Bus } from '../bus.js';
import { withDeadline } from '../deadline.js';
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
  /** Most paths waiting for a write (default DEFAULT_MAX_PENDING_PATHS). */
  maxPendingPaths?: number;
  /** Longest wait of stop() for the last writes (default DEFAULT_STOP_TIMEOUT_MS). */
  stopTimeoutMs?: number;
}

export const DEFAULT_MAX_PENDING_PATHS = 10_000;
export const DEFAULT_STOP_TIMEOUT_MS = 5_000;

/**
 * One path segment as a Realtime Database key. Keys may not contain . $ # [ ] / nor ASCII control
 * characters, and may not be empty: the SDK drops empty segments, so `tenants//alerts/x` would
 * write `tenants/alerts/x`, another node, and an invalid key makes the SDK refuse the whole batch
 * at every retry. Those characters (and %, to keep the encoding reversible) become %XX; the empty
 * string becomes a lone %, which no other segment encodes to.
 */
function key(segment: string): string {
  if (segment === '') return '%';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must go
  return segment.replace(/[.$#[\]/%\u0000-\u001f\u007f]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
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

  /**
   * Unsubscribes, writes what is pending (once, no retry), then closes the writer. Waits at most
   * stopTimeoutMs for those writes: an unreachable database must not hold up shutdown.
   */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#opts.bus.removeAllFor(this);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const drain = async (): Promise<void> => {
      if (this.#writing) await this.#writing;
      if (this.#pending.size > 0) await this.#flush();
    };
    const timeoutMs = this.#opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    const gaveUp = await withDeadline(
      drain().then(() => false),
      timeoutMs,
      () => true,
    );
    if (gaveUp) {
      // The batch in flight is the writer's to deliver or lose once closed; what never left is lost.
      this.#opts.counters.inc('firebase_dropped_total', undefined, this.#pending.size);
      this.#pending = new Map();
      this.#opts.onError?.(new Error(`firebase writes still unanswered after ${timeoutMs} ms at stop; giving up on them`));
    }
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
    if (this.#pending.has(path)) this.#pending.set(path, merge(this.#pending.get(path), value));
    else this.#admit(path, value);
    this.#schedule();
  }

  /** Adds a path not pending yet, unless maxPendingPaths are already waiting: then it is dropped. */
  #admit(path: string, value: unknown): void {
    if (this.#pending.size < (this.#opts.maxPendingPaths ?? DEFAULT_MAX_PENDING_PATHS)) this.#pending.set(path, value);
    else this.#opts.counters.inc('firebase_dropped_total');
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
        if (this.#pending.has(path)) this.#pending.set(path, merge(older, this.#pending.get(path)));
        else this.#admit(path, older);
      }
      this.#opts.onError?.(err);
    }
  }
}
