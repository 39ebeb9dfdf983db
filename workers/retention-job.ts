/**
 * Enforces each tenant's plan retention: usage records older than `retention_days` are purged,
 * on an interval. One tenant's failure is counted and does not stop the others.
 */
import type { WorkerContext } from './context.js';

export class RetentionJob {
  readonly #ctx: WorkerContext;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;

  constructor(ctx: WorkerContext, opts: { intervalS: number }) {
    this.#ctx = ctx;
    this.#intervalMs = opts.intervalS * 1000;
  }

  start(): void {
    const tick = () => {
      this.#running = this.runOnce().finally(() => (this.#running = null));
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

  /** One pass over every tenant; returns the number of usage rows purged. */
  async runOnce(): Promise<number> {
    const { store, counters, logger } = this.#ctx;
    const now = this.#ctx.now();
    let purged = 0;
    let cursor: string | null = null;
    do {
      const page = await store.tenants.list({ limit: 200, cursor });
      for (const t of page.items) {
        try {
          const plan = await store.plans.get(t.plan_id);
          if (!plan) continue;
          purged += await store.purgeUsage(t.id, now - plan.retention_days * 86_400_000);
        } catch (err) {
          counters.inc('retention_errors_total');
          logger.error({ err, tenant_id: t.id }, 'usage retention failed');
        }
      }
      cursor = page.next_cursor;
    } while (cursor);
    if (purged) counters.inc('usage_rows_purged_total', undefined, purged);
    return purged;
  }
}
