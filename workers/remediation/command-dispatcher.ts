/**
 * Delivers remediation commands to towers and drives their lifecycle (DESIGN §4):
 * pending → delivered (the tower's MQTT client PUBACKed it, reported by the broker)
 * → applied | failed (the agent's ack), or expired when not acked by `expires_at`.
 * A pending command is resent with exponential backoff while the tower has not taken it (e.g.
 * offline), and at once when the tower comes back online. Resends carry the same command id; the
 * agent applies a command id once. Every step is stored and announced on the bus.
 */
import type { CommandRecord } from '../../shared/domain.js';
import { encodePayload, type Command } from '../../shared/mqtt/payloads.js';
import { topics } from '../../shared/mqtt/topics.js';
import type { WorkerContext } from '../context.js';

export interface CommandDispatcherOptions {
  retryMinMs: number;
  retryMaxMs: number;
}

const FINAL = new Set(['applied', 'failed', 'expired']);

export class CommandDispatcher {
  readonly #ctx: WorkerContext;
  readonly #opts: CommandDispatcherOptions;
  /** Commands not final yet, by id. */
  readonly #open = new Map<string, CommandRecord>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #inflight = new Set<Promise<unknown>>();
  #stopped = false;

  constructor(ctx: WorkerContext, opts: CommandDispatcherOptions) {
    this.#ctx = ctx;
    this.#opts = opts;
  }

  async start(): Promise<void> {
    const bus = this.#ctx.bus;
    bus.subscribe('command.updated', (e) => this.#onUpdated(e.command), this);
    bus.subscribe('command.delivered', (e) => this.#track(this.#delivered(e.tenant_id, e.command_id, e.at)), this);
    bus.subscribe('tower.status', (e) => e.tower.state === 'online' && this.#towerOnline(e.tower.id), this);
    // Commands left open by a previous run: resume them (resend, or expire the stale ones).
    for (const c of await this.#ctx.store.commands.listOpen()) {
      this.#open.set(c.id, c);
      if (c.status === 'pending') this.#track(this.#send(c));
      else this.#scheduleExpiry(c);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ctx.bus.removeAllFor(this);
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await Promise.allSettled([...this.#inflight]);
  }

  /** Commands not yet final, for tests and metrics. */
  get openCount(): number {
    return this.#open.size;
  }

  #onUpdated(c: CommandRecord): void {
    if (FINAL.has(c.status)) {
      this.#open.delete(c.id);
      this.#clearTimer(c.id);
      return;
    }
    const known = this.#open.get(c.id);
    this.#open.set(c.id, c);
    // A new command (created by the remediation engine or the API) goes out at once.
    if (!known && c.status === 'pending' && c.attempts === 0) this.#track(this.#send(c));
  }

  async #send(c: CommandRecord): Promise<void> {
    if (this.#stopped) return;
    const now = this.#ctx.now();
    if (now >= c.expires_at) return this.#expire(c);
    const payload: Command = {
      v: 1,
      id: c.id,
      type: c.type as Command['type'],
      device_id: c.device_id,
      ...(c.app ? { app: c.app } : {}),
      ...(c.duration_s ? { duration_s: c.duration_s } : {}),
      issued_at: c.created_at,
      expires_at: c.expires_at,
      ...(c.reason ? { reason: c.reason } : {}),
    };
    await this.#ctx.downlink.publish(topics.commands(c.tenant_id, c.tower_id), encodePayload(payload));
    const updated = (await this.#ctx.store.commands.markPublished(c.tenant_id, c.id, now)) ?? c;
    this.#ctx.counters.inc('commands_published_total');
    const current = this.#open.get(c.id);
    // Delivered or final meanwhile (the PUBACK can beat markPublished): nothing to retry.
    if (!current || current.status !== 'pending') return;
    this.#open.set(c.id, { ...updated, status: current.status });
    const delay = Math.min(this.#opts.retryMaxMs, this.#opts.retryMinMs * 2 ** Math.max(0, updated.attempts - 1));
    this.#setTimer(c.id, Math.min(delay, Math.max(0, c.expires_at - now)), () => {
      const latest = this.#open.get(c.id);
      if (latest?.status === 'pending') this.#track(this.#send(latest));
    });
  }

  async #delivered(tenantId: string, commandId: string, at: number): Promise<void> {
    const r = await this.#ctx.store.commands.transition(tenantId, commandId, 'delivered', at);
    if (!r) return;
    if (r.changed) this.#ctx.bus.publish('command.updated', { tenant_id: tenantId, command: r.command });
    if (r.command.status === 'delivered') {
      this.#open.set(commandId, r.command);
      this.#scheduleExpiry(r.command);
    }
  }

  #towerOnline(towerId: string): void {
    for (const c of this.#open.values()) {
      if (c.tower_id === towerId && c.status === 'pending') {
        this.#clearTimer(c.id);
        this.#track(this.#send(c));
      }
    }
  }

  #scheduleExpiry(c: CommandRecord): void {
    this.#setTimer(c.id, Math.max(0, c.expires_at - this.#ctx.now()), () => {
      const latest = this.#open.get(c.id);
      if (latest) this.#track(this.#expire(latest));
    });
  }

  async #expire(c: CommandRecord): Promise<void> {
    const r = await this.#ctx.store.commands.transition(c.tenant_id, c.id, 'expired', this.#ctx.now(), 'not acknowledged before expires_at');
    if (r?.changed) {
      this.#ctx.counters.inc('commands_expired_total');
      this.#ctx.bus.publish('command.updated', { tenant_id: c.tenant_id, command: r.command });
    }
    this.#open.delete(c.id);
    this.#clearTimer(c.id);
  }

  #setTimer(id: string, ms: number, fn: () => void): void {
    this.#clearTimer(id);
    if (this.#stopped) return;
    this.#timers.set(
      id,
      setTimeout(() => {
        this.#timers.delete(id);
        fn();
      }, ms),
    );
  }

  #clearTimer(id: string): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => {
      this.#ctx.counters.inc('command_dispatch_errors_total');
      this.#ctx.logger.error({ err }, 'command dispatch failed');
    });
    this.#inflight.add(tracked);
    void tracked.finally(() => this.#inflight.delete(tracked));
  }
}
