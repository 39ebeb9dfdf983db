/**
 * Sends webhook deliveries: one signed POST per attempt, exponential backoff on failure, and
 * every attempt recorded on the delivery (visible through GET /webhooks/{id}/deliveries).
 *
 * Deliveries live in the store (written by the notifier before any attempt, so a restart loses
 * none). A sweep hands the due ones to the 'webhooks' job queue as `webhook.<delivery>.<attempts>`
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
 */
import { z } from 'zod';
import type { Counters } from '../../shared/metrics.js';
import type { Store } from '../../shared/store/port.js';
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
  /** Attempts made at once by this process. Default 16. */
  concurrency?: number;
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
      (job, info) =>
        this.#attempt(job).finally(() => {
          this.#waiters.get(info.id)?.resolve();
          this.#waiters.delete(info.id);
        }),
      { concurrency: this.#opts.concurrency ?? 16 },
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
   * One sweep, then waits until this process made the attempts it queued. For tests on the
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
      const due = await store.webhookDeliveries.due(now, this.#batchSize);
      const done: Array<Promise<void>> = [];
      for (const d of due) {
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

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 500);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`.slice(0, 500);
}
