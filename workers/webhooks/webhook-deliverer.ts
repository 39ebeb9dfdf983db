/**
 * Sends webhook deliveries: one signed POST per attempt, exponential backoff on failure, and
 * every attempt recorded on the delivery (visible through GET /webhooks/{id}/deliveries).
 *
 * Deliveries live in the store (written with the record they announce, the outbox of
 * shared/store/rules/webhook-outbox.ts, before any attempt, so a restart loses none). A sweep hands the due ones to the 'webhooks' job queue as `webhook.<delivery>.<attempts>`
 * jobs: in distributed mode several workers sweep and consume, and the job id lets exactly one
 * of them make each attempt. Before posting, the handler re-reads the delivery and skips it unless
 * it is still pending with the same attempt count, so a sweep that raced a finished attempt
 * cannot cause a second POST.
 *
 * Delivery is at least once: a crash between the receiver's 2xx and recordAttempt resends it, so
 * receivers deduplicate by the body's `id` (or the x-edgeplane-delivery header). Redirects are not
 * followed (a 3xx is a failed attempt): the signed request goes to the registered URL only. Every
 * attempt goes through the webhook transport, which connects to public addresses only, checked at
 * that attempt's own DNS resolution (webhook-transport.ts), unless private targets are allowed.
 *
 * Tenant fairness (isolation: one tenant's slow or unreachable receiver must not delay another
 * tenant's deliveries). Two layers, both keyed by the delivery's tenant:
 * - the sweep reads due deliveries per tenant (the store's dueFair: at most K + 1 of each due
 *   tenant, its most overdue first, so however large one tenant's backlog, it takes no other
 *   tenant's place) and hands at most `tenantConcurrency` (K) of one tenant's to the queue per
 *   pass, interleaving tenants round-robin (first of each tenant, then second of each…). A tenant's
 *   oldest due deliveries are the ones already queued or in flight (they stay due until their
 *   attempt is recorded), so re-adding them is a no-op and a stuck tenant has about K jobs queued in
 *   the whole cluster while the rest of its backlog waits in the store;
 * - this process makes at most K attempts of one tenant at once out of its `concurrency` (N)
 *   slots. A job beyond that (queued by an earlier pass, another sweeper, a race) is deferred: it
 *   ends without an attempt and without touching the delivery, which stays pending and due in the
 *   store, so a later sweep queues it again under the same job id. Nothing is lost and nothing is
 *   recorded twice: the store row is the durable state, the job only a claim on one attempt.
 * A finished attempt asks for a sweep when work was left behind, so the next delivery of a capped
 * tenant is queued without waiting for the poll. An attempt is bounded by timeoutMs, so a hanging
 * receiver holds at most K slots for that long. A pass queues at most `batchSize` deliveries, every
 * due tenant's first before anyone's second: only with more tenants due at once than that do the
 * tenants whose most overdue delivery is the newest wait for a later pass.
 */
import { z } from 'zod';
import type { Counters } from '../../shared/metrics.js';
import type { Store } from '../../shared/store/port.js';
import { roundRobin } from '../../shared/store/rules/platform.js';
import type { Webhook } from '../../shared/domain.js';
import type { JobQueue, JobQueues } from '../../shared/workflow/job-queue.js';
import type { Leases } from '../../shared/workflow/leases.js';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signWebhook } from '../../shared/webhook-signature.js';
import { createWebhookTransport, type WebhookTransport } from './webhook-transport.js';

export interface WebhookDelivererOptions {
  store: Store;
  counters: Counters;
  queues: JobQueues;
  leases: Leases;
  /** Lease owner: this process. */
  processId: string;
  /** config webhook_max_attempts: after this many failed attempts the delivery is failed. */
  maxAttempts: number;
  /** config webhook_timeout_ms: one attempt's limit, response headers included. */
  timeoutMs: number;
  /** How often due deliveries are looked for without a poke. Default 1000 ms. */
  pollMs?: number;
  /** Due deliveries handed to the queue per sweep. Default 200. */
  batchSize?: number;
  /** Attempts made at once by this process (N). Default 16. */
  concurrency?: number;
  /**
   * Attempts of one tenant made at once by this process (K of the N slots), and that tenant's
   * deliveries handed to the queue per sweep. Default max(1, floor(N / 4)).
   */
  tenantConcurrency?: number;
  /** Due deliveries read per sweep (at most K + 1 of each tenant) to pick from fairly. Default 1000. */
  scanSize?: number;
  now?: () => number;
  /** config webhook_allow_private: deliver to loopback/private/link-local targets (on-premises). */
  allowPrivateTargets?: boolean;
  /** How an attempt is sent; default the address-checked HTTP transport. */
  transport?: WebhookTransport;
  /** Unexpected failures (store errors); delivery failures are recorded, not reported here. */
  onError?: (err: unknown) => void;
}

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_MAX_MS = 10 * 60 * 1000;

/** Delay before the next attempt once `attempts` attempts have failed: 2 s, 4 s, 8 s… capped at 10 min. */
export function backoffMs(attempts: number): number {
  return Math.min(2 ** attempts * BACKOFF_BASE_MS, BACKOFF_MAX_MS);
}

type Subscriber = Webhook & { secret: string };

interface AttemptResult {
  ok: boolean;
  status_code: number | null;
  error: string | null;
}

const DeliveryJobSchema = z.object({ tenant_id: z.string(), delivery_id: z.string(), attempts: z.number().int().nonnegative() });
type DeliveryJob = z.infer<typeof DeliveryJobSchema>;

export class WebhookDeliverer {
  readonly #opts: WebhookDelivererOptions;
  readonly #now: () => number;
  readonly #transport: WebhookTransport;
  readonly #batchSize: number;
  readonly #concurrency: number;
  readonly #tenantConcurrency: number;
  readonly #scanSize: number;
  /** Attempts in flight in this process, by tenant (at most #tenantConcurrency each). */
  readonly #inflight = new Map<string, number>();
  /** Tenants with a job deferred at their cap since their last finished attempt. */
  readonly #deferred = new Set<string>();
  /** Tenants whose due deliveries the last sweep left behind (their quota); all when the batch or the scan was full. */
  #backlog: { tenants: Set<string>; all: boolean } = { tenants: new Set(), all: false };
  readonly #queue: JobQueue<DeliveryJob>;
  /** Sweeps run one at a time; a sweep asked for while one runs is shared. */
  #tail: Promise<void> = Promise.resolve();
  #queued: Promise<Array<Promise<void>>> | null = null;
  /** tick() waiting for attempts by job id (tests with the in-process queue). */
  readonly #waiters = new Map<string, { done: Promise<void>; resolve: () => void }>();
  #timer: NodeJS.Timeout | null = null;
  #stopped = true;

  constructor(opts: WebhookDelivererOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#transport = opts.transport ?? createWebhookTransport({ allowPrivate: opts.allowPrivateTargets ?? false });
    this.#batchSize = opts.batchSize ?? 200;
    this.#concurrency = Math.max(1, opts.concurrency ?? 16);
    this.#tenantConcurrency = Math.max(1, Math.min(this.#concurrency, opts.tenantConcurrency ?? Math.floor(this.#concurrency / 4)));
    this.#scanSize = Math.max(this.#batchSize, opts.scanSize ?? 1000);
    this.#queue = opts.queues.open({
      name: 'webhooks',
      schema: DeliveryJobSchema,
      // Attempts against the receiver are our own (recorded, backed off); job retries only cover
      // store failures around them.
      attempts: 5,
      backoffMs: 1000,
      onFailed: (err) => opts.onError?.(err),
    });
  }

  /** Starts sweeping on a timer and making attempts in this process. */
  start(): void {
    if (!this.#stopped) return;
    this.startProcessing();
    this.#timer = setInterval(() => this.poke(), this.#opts.pollMs ?? 1000);
    this.#timer.unref();
    this.poke();
  }

  /** Makes attempts in this process (the queue's consumer), without the sweep timer. */
  startProcessing(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#queue.process(
      (job, info) => {
        const settled = () => {
          this.#waiters.get(info.id)?.resolve();
          this.#waiters.delete(info.id);
        };
        // Checked and counted before any await: the slots are this process's, taken in order.
        const tenant = job.tenant_id;
        const running = this.#inflight.get(tenant) ?? 0;
        if (running >= this.#tenantConcurrency) {
          // Deferred for fairness: the delivery is untouched (pending, due), a later sweep re-queues it.
          this.#deferred.add(tenant);
          settled();
          return Promise.resolve();
        }
        this.#inflight.set(tenant, running + 1);
        return this.#attempt(job).finally(() => {
          const left = (this.#inflight.get(tenant) ?? 1) - 1;
          if (left > 0) this.#inflight.set(tenant, left);
          else this.#inflight.delete(tenant);
          const deferred = this.#deferred.delete(tenant);
          settled();
          // A slot of this tenant is free: queue its next delivery now rather than at the next poll.
          if (deferred || this.#backlog.all || this.#backlog.tenants.has(tenant)) this.poke();
        });
      },
      { concurrency: this.#concurrency },
    );
  }

  /** Stops sweeping and waits for the attempts in progress (bounded by timeoutMs each). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    let tail: Promise<void>;
    do {
      tail = this.#tail;
      await tail;
    } while (tail !== this.#tail);
    await this.#queue.close();
  }

  /** Asks for a sweep soon (new deliveries were created). Ignored once stopped. */
  poke(): void {
    if (!this.#stopped) void this.#sweepOnce(false);
  }

  /**
   * One sweep, then waits until this process made the attempts it queued (at most
   * tenantConcurrency per tenant; a job deferred at the cap counts as done). For tests on the
   * in-process queue with an injected clock (in distributed mode another worker may take them).
   */
  async tick(): Promise<void> {
    await Promise.all(await this.#sweepOnce(true));
  }

  /** Sweeps run one at a time; one asked for while another waits to start is shared. */
  #sweepOnce(wait: boolean): Promise<Array<Promise<void>>> {
    if (this.#queued && !wait) return this.#queued;
    const pass = this.#tail.then(async () => {
      if (this.#queued === pass) this.#queued = null;
      try {
        return await this.#sweep(wait);
      } catch (err) {
        this.#opts.onError?.(err);
        return [];
      }
    });
    if (!wait) this.#queued = pass;
    this.#tail = pass.then(() => undefined);
    return pass;
  }

  /** Hands the due deliveries to the queue; with `wait`, returns their completions. */
  async #sweep(wait: boolean): Promise<Array<Promise<void>>> {
    const { store, leases, processId } = this.#opts;
    const now = this.#now();
    // One sweeper at a time in the cluster; job ids would make a second one harmless anyway.
    if (!(await leases.acquire('webhook-sweep', processId, now, this.#opts.pollMs ?? 1000))) return [];
    try {
      // One more than K of each tenant: a tenant with more due than its share is seen as a backlog.
      const due = await store.webhookDeliveries.dueFair(now, this.#tenantConcurrency + 1, this.#scanSize);
      const picked = pickFairly(due, this.#tenantConcurrency, this.#batchSize);
      const taken = new Set(picked.map((d) => d.id));
      this.#backlog = {
        tenants: new Set(due.filter((d) => !taken.has(d.id)).map((d) => d.tenant_id)),
        all: (picked.length >= this.#batchSize && picked.length < due.length) || due.length >= this.#scanSize,
      };
      const done: Array<Promise<void>> = [];
      for (const d of picked) {
        const id = `webhook.${d.id}.${d.attempts}`;
        if (wait) {
          // Registered before the add: the attempt may finish before add() returns.
          let w = this.#waiters.get(id);
          if (!w) {
            let resolve!: () => void;
            const p = new Promise<void>((r) => (resolve = r));
            w = { done: p, resolve };
            this.#waiters.set(id, w);
          }
          done.push(w.done);
        }
        await this.#queue.add({ tenant_id: d.tenant_id, delivery_id: d.id, attempts: d.attempts }, { id });
      }
      return done;
    } finally {
      await leases.release('webhook-sweep', processId);
    }
  }

  async #attempt(job: DeliveryJob): Promise<void> {
    const { store, counters, maxAttempts } = this.#opts;
    const d = await store.webhookDeliveries.get(job.tenant_id, job.delivery_id);
    // Already attempted (a sweep raced the attempt), delivered, or given up.
    if (!d || d.status !== 'pending' || d.attempts !== job.attempts) return;
    const hook = (await store.webhooks.subscribers(d.tenant_id, d.event)).find((w) => w.id === d.webhook_id);
    if (!hook) {
      // Deleted, disabled, or no longer subscribed to this event: nobody to deliver to.
      await store.webhookDeliveries.recordAttempt(d.id, {
        status: 'failed',
        at: this.#now(),
        status_code: null,
        error: 'webhook removed',
        next_attempt_at: null,
      });
      counters.inc('webhook_deliveries_total', { status: 'failed' });
      return;
    }
    const result = await this.#post(d.id, d.event, d.body, hook);
    const at = this.#now();
    const attempts = d.attempts + 1;
    const status = result.ok ? 'delivered' : attempts >= maxAttempts ? 'failed' : 'pending';
    await store.webhookDeliveries.recordAttempt(d.id, {
      status,
      at,
      status_code: result.status_code,
      error: result.error,
      next_attempt_at: status === 'pending' ? at + backoffMs(attempts) : null,
    });
    counters.inc('webhook_deliveries_total', { status });
  }

  async #post(deliveryId: string, event: string, body: string, hook: Subscriber): Promise<AttemptResult> {
    const { timeoutMs } = this.#opts;
    try {
      const res = await this.#transport({
        url: hook.url,
        headers: {
          'content-type': 'application/json',
          [EVENT_HEADER]: event,
          [DELIVERY_HEADER]: deliveryId,
          [SIGNATURE_HEADER]: signWebhook(hook.secret, body, this.#now()),
        },
        body,
        timeoutMs,
      });
      const ok = res.status >= 200 && res.status < 300;
      return { ok, status_code: res.status, error: ok ? null : `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, status_code: null, error: errorText(err) };
    }
  }
}

/**
 * Round-robin over tenants in the order of their oldest due delivery: each tenant's first, then
 * each one's second…, at most `perTenant` per tenant and `limit` in all; oldest first per tenant.
 */
export function pickFairly<T extends { tenant_id: string }>(due: readonly T[], perTenant: number, limit: number): T[] {
  const byTenant = new Map<string, T[]>();
  for (const d of due) {
    const rows = byTenant.get(d.tenant_id);
    if (!rows) byTenant.set(d.tenant_id, [d]);
    else if (rows.length < perTenant) rows.push(d);
  }
  return roundRobin([...byTenant.values()], limit);
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 500);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`.slice(0, 500);
}
