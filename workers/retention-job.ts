/**
 * Enforces each tenant's retention on an interval: usage records (and accounting sessions and
 * finished webhook deliveries) older than the plan's `retention_days`, and audit records older than the tenant's `audit_retention_days`, are purged;
 * so are platform audit records (operators' and carriers' actions) older than `platformAuditRetentionDays`.
 * One tenant's failure is counted and does not stop the others (nor its other purge). Once per
 * interval in the whole cluster, not once per worker.
 */
import type { WorkerContext } from './context.js';

const DAY_MS = 86_400_000;

export class RetentionJob {
  readonly #ctx: WorkerContext;
  readonly #intervalMs: number;
  readonly #platformAuditMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;

  constructor(ctx: WorkerContext, opts: { intervalS: number; platformAuditRetentionDays?: number }) {
    this.#ctx = ctx;
    this.#intervalMs = opts.intervalS * 1000;
    this.#platformAuditMs = (opts.platformAuditRetentionDays ?? 365) * DAY_MS;
  }

  start(): void {
    const tick = () => {
      // A pass longer than the interval is not joined by a second one (the lease is this
      // process' own, so it would be granted): passes would pile up, and stop() would wait for
      // the last one only.
      this.#running ??= this.#runIfLeader().finally(() => (this.#running = null));
      this.#timer = setTimeout(tick, this.#intervalMs);
      this.#timer.unref();
    };
    this.#timer = setTimeout(tick, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => 0);
  }

  /**
   * Every worker ticks; the one that takes the lease for this interval purges (leases are
   * in-process in embedded mode, in Redis in distributed mode).
   */
  async #runIfLeader(): Promise<unknown> {
    const { leases, processId, now } = this.#ctx;
    // A little shorter than the interval, so the next tick of the same holder can take it again.
    if (!(await leases.acquire('retention', processId, now(), Math.max(1, this.#intervalMs - 1000)))) return null;
    return this.run();
  }

  /** One pass over every tenant; returns the number of usage rows purged. */
  async runOnce(): Promise<number> {
    return (await this.run()).usage;
  }

  /** One pass over every tenant; returns the rows purged of each kind. */
  async run(): Promise<{ usage: number; audit: number }> {
    const { store, counters, logger } = this.#ctx;
    const now = this.#ctx.now();
    let purged = 0;
    let auditPurged = 0;
    let sessionsPurged = 0;
    let deliveriesPurged = 0;
    let cursor: string | null = null;
    do {
      const page = await store.tenants.list({ limit: 200, cursor });
      for (const t of page.items) {
        try {
          const plan = await store.plans.get(t.plan_id);
          if (plan) {
            purged += await store.purgeUsage(t.id, now - plan.retention_days * DAY_MS);
            // Accounting sessions and finished webhook deliveries follow the same retention as app usage.
            sessionsPurged += await store.deviceSessions.purge(t.id, now - plan.retention_days * DAY_MS);
            deliveriesPurged += await store.webhookDeliveries.purge(t.id, now - plan.retention_days * DAY_MS);
          }
        } catch (err) {
          counters.inc('retention_errors_total');
          logger.error({ err, tenant_id: t.id }, 'usage retention failed');
        }
        try {
          auditPurged += await store.audit.purge(t.id, now - t.audit_retention_days * DAY_MS);
        } catch (err) {
          counters.inc('retention_errors_total');
          logger.error({ err, tenant_id: t.id }, 'audit retention failed');
        }
      }
      cursor = page.next_cursor;
    } while (cursor);
    try {
      auditPurged += await store.audit.purge(null, now - this.#platformAuditMs);
    } catch (err) {
      counters.inc('retention_errors_total');
      logger.error({ err }, 'platform audit retention failed');
    }
    if (purged) counters.inc('usage_rows_purged_total', undefined, purged);
    if (auditPurged) counters.inc('audit_rows_purged_total', undefined, auditPurged);
    if (sessionsPurged) counters.inc('device_sessions_purged_total', undefined, sessionsPurged);
    if (deliveriesPurged) counters.inc('webhook_deliveries_purged_total', undefined, deliveriesPurged);
    return { usage: purged, audit: auditPurged };
  }
}
