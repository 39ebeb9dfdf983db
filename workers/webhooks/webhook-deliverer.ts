/**
 * Sends due webhook deliveries: one signed POST per attempt, exponential backoff on failure, and
 * every attempt recorded on the delivery (visible through GET /webhooks/{id}/deliveries).
 *
 * Delivery is at least once: a crash between the receiver's 2xx and recordAttempt resends it, so
 * receivers deduplicate by the body's `id` (or the x-edgeplane-delivery header). Redirects are not
 * followed (a 3xx is a failed attempt): the signed request goes to the registered URL only.
 *
 * Passes run one at a time: the poll timer, poke() and tick() all queue onto the same chain, and a
 * pass queued while another waits to start is shared, so a burst of pokes costs one extra pass.
 */
import type { Counters } from '../../shared/metrics.js';
import type { Store } from '../../shared/store/port.js';
import type { Webhook, WebhookDelivery } from '../../shared/domain.js';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signWebhook } from '../../shared/webhook-signature.js';

export interface WebhookDelivererOptions {
  store: Store;
  counters: Counters;
  /** config webhook_max_attempts: after this many failed attempts the delivery is failed. */
  maxAttempts: number;
  /** config webhook_timeout_ms: one attempt's limit, response headers included. */
  timeoutMs: number;
  /** How often due deliveries are looked for without a poke. Default 1000 ms. */
  pollMs?: number;
  /** Deliveries fetched (and attempted concurrently) per pass. Default 50. */
  batchSize?: number;
  now?: () => number;
  fetch?: typeof fetch;
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

export class WebhookDeliverer {
  readonly #opts: WebhookDelivererOptions;
  readonly #now: () => number;
  readonly #fetch: typeof fetch;
  readonly #batchSize: number;
  #timer: NodeJS.Timeout | null = null;
  #tail: Promise<void> = Promise.resolve();
  #queued: Promise<void> | null = null;
  #stopped = false;

  constructor(opts: WebhookDelivererOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#fetch = opts.fetch ?? fetch;
    this.#batchSize = opts.batchSize ?? 50;
  }

  start(): void {
    if (this.#timer) return;
    this.#stopped = false;
    this.#timer = setInterval(() => this.poke(), this.#opts.pollMs ?? 1000);
    this.#timer.unref();
    this.poke();
  }

  /** Stops polling and waits for the pass in progress (bounded by timeoutMs per attempt). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    // A pass may have queued a follow-up before the stop: wait until the chain is quiet.
    let tail: Promise<void>;
    do {
      tail = this.#tail;
      await tail;
    } while (tail !== this.#tail);
  }

  /** Asks for a pass soon (new deliveries were created). Ignored once stopped. */
  poke(): void {
    if (!this.#stopped) void this.tick();
  }

  /**
   * Runs one pass over the due deliveries (after the pass in progress, if any) and resolves when
   * it is done. Tests drive the deliverer with this and an injected clock.
   */
  tick(): Promise<void> {
    if (this.#queued) return this.#queued;
    const pass = this.#tail.then(async () => {
      this.#queued = null;
      try {
        const full = await this.#pass();
        // A full batch suggests more are due: keep going without waiting for the poll timer.
        if (full) this.poke();
      } catch (err) {
        this.#opts.onError?.(err);
      }
    });
    this.#queued = pass;
    this.#tail = pass;
    return pass;
  }

  /** One batch; true when it was full and went through (more may be due). */
  async #pass(): Promise<boolean> {
    const { store } = this.#opts;
    const due = await store.webhookDeliveries.due(this.#now(), this.#batchSize);
    // One subscriber lookup per (tenant, event) per pass; it also carries the signing secret.
    const subscribers = new Map<string, Promise<Subscriber[]>>();
    const lookup = (d: WebhookDelivery) => {
      const k = `${d.tenant_id}\u0000${d.event}`;
      let p = subscribers.get(k);
      if (!p) {
        p = store.webhooks.subscribers(d.tenant_id, d.event);
        subscribers.set(k, p);
      }
      return p;
    };
    const results = await Promise.allSettled(
      due.map(async (d) => this.#deliver(d, (await lookup(d)).find((w) => w.id === d.webhook_id))),
    );
    let failed = false;
    for (const r of results) {
      if (r.status === 'rejected') {
        failed = true;
        this.#opts.onError?.(r.reason);
      }
    }
    // After store errors, wait for the poll timer rather than spinning on the same rows.
    return due.length >= this.#batchSize && !failed;
  }

  async #deliver(d: WebhookDelivery, hook: Subscriber | undefined): Promise<void> {
    const { store, counters, maxAttempts } = this.#opts;
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
    const result = await this.#post(d, hook);
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

  async #post(d: WebhookDelivery, hook: Subscriber): Promise<AttemptResult> {
    const { timeoutMs } = this.#opts;
    try {
      const res = await this.#fetch(hook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [EVENT_HEADER]: d.event,
          [DELIVERY_HEADER]: d.id,
          [SIGNATURE_HEADER]: signWebhook(hook.secret, d.body, this.#now()),
        },
        body: d.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      // The response body is not used; release the connection.
      await res.body?.cancel().catch(() => {});
      const ok = res.status >= 200 && res.status < 300;
      return { ok, status_code: res.status, error: ok ? null : `HTTP ${res.status}` };
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      return { ok: false, status_code: null, error: timedOut ? `timeout after ${timeoutMs} ms` : errorText(err) };
    }
  }
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici reports "fetch failed" and puts the reason (ECONNREFUSED…) in `cause`.
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`.slice(0, 500);
}
