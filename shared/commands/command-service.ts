/**
 * The one owner of the remediation command lifecycle (DESIGN §4): it issues commands (for the
 * remediation engine and the API alike), sends and resends them, records their delivery, takes the
 * tower's acks and expires them. Every status change goes through `store.commands.transition`
 * (forward moves only, see lifecycle.ts) and is announced once, as `command.updated`, by the
 * process that made it. The announcement feeds live views; webhooks do not depend on it: the store
 * writes a change's webhook deliveries in the change's own transaction, so a process killed
 * before announcing loses none (shared/store/rules/webhook-outbox.ts).
 *
 * Time-driven work is scheduled on the 'commands' job queue (in-process timers in embedded mode,
 * BullMQ delayed jobs in distributed mode), with deterministic job ids so that whichever process
 * schedules it, each step runs once:
 * - `send.<id>.<n>`: publish attempt n+1 if the command is still pending with n attempts, then
 *   schedule `send.<id>.<n+1>` after the backoff. The attempt count is compared-and-set in the
 *   store, so two racing senders record one publish. A send whose every run failed (the store
 *   down for longer than the job's backoff) is scheduled again `retryMaxMs` later as
 *   `send.<id>.<n>.r<k>`, so an outage delays a command rather than stopping its sends.
 * - `expire.<id>`: at expires_at, expire it unless it was acked.
 * - `delivered.<id>`: the broker saw the tower's PUBACK (reported from whichever broker node).
 * A tower coming back online promotes its pending commands' next send to now.
 *
 * Only processes with a downlink (workers; the embedded process) consume the queue; the API and
 * broker roles only schedule.
 */
import { z } from 'zod';
import type { Bus } from '../bus.js';
import type { CommandRecord } from '../domain.js';
import type { IdFactory } from '../ids.js';
import type { Counters } from '../metrics.js';
import { encodePayload, type Command } from '../mqtt/payloads.js';
import { topics } from '../mqtt/topics.js';
import type { Downlink } from '../mqtt/transport.js';
import type { CommandInput, Store } from '../store/port.js';
import type { JobInfo, JobQueue, JobQueues } from '../workflow/job-queue.js';
import { isFinal } from './lifecycle.js';

/** Runs of one command job before it is given up (backoff 0.5 s doubling: about a minute). */
const JOB_ATTEMPTS = 8;

export const CommandJobSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('send'),
    tenant_id: z.string(),
    command_id: z.string(),
    attempts: z.number().int().nonnegative(),
    /** How many times this send was scheduled again after all its runs failed (absent: never). */
    round: z.number().int().positive().optional(),
  }),
  z.object({ kind: z.literal('expire'), tenant_id: z.string(), command_id: z.string() }),
  z.object({ kind: z.literal('delivered'), tenant_id: z.string(), tower_id: z.string(), command_id: z.string(), at: z.number().int() }),
]);
export type CommandJob = z.infer<typeof CommandJobSchema>;

/** What to issue; a deterministic id (derivedCommandId) makes issuing idempotent, omitted: a fresh id. */
export type IssueCommandInput = Omit<CommandInput, 'expires_at'> & { id?: string };

export interface CommandServiceDeps {
  store: Store;
  bus: Bus;
  queues: JobQueues;
  counters: Counters;
  now: () => number;
  newId: IdFactory;
  /** Store or broker failures inside scheduled work (they are retried); the root logs them. */
  onError?: (err: unknown, what: string) => void;
}

export interface CommandServiceOptions {
  /** A command not acknowledged within this is expired. */
  ttlS: number;
  retryMinMs: number;
  retryMaxMs: number;
}

export type AckOutcome = 'applied' | 'failed' | 'ignored' | 'unknown_command';

export class CommandService {
  readonly #d: CommandServiceDeps;
  readonly #opts: CommandServiceOptions;
  readonly #queue: JobQueue<CommandJob>;
  #downlink: Downlink | null = null;

  constructor(deps: CommandServiceDeps, opts: CommandServiceOptions) {
    this.#d = deps;
    this.#opts = opts;
    this.#queue = deps.queues.open({
      name: 'commands',
      schema: CommandJobSchema,
      attempts: JOB_ATTEMPTS,
      backoffMs: 500,
      onFailed: (err, job) => {
        deps.counters.inc('command_jobs_failed_total');
        deps.onError?.(err, `command job ${job.id}`);
      },
    });
  }

  get ttlMs(): number {
    return this.#opts.ttlS * 1000;
  }

  /** Consume scheduled command work in this process, publishing through `downlink`. */
  startProcessing(downlink: Downlink, concurrency = 16): void {
    this.#downlink = downlink;
    this.#queue.process((job, info) => this.#run(job, info), { concurrency });
  }

  async stop(): Promise<void> {
    await this.#queue.close();
  }

  /**
   * Creates a pending command and schedules its first send and its expiry. With an id that
   * exists already, nothing happens again and `created` is false.
   */
  async issue(input: IssueCommandInput): Promise<{ command: CommandRecord; created: boolean }> {
    const now = this.#d.now();
    const { id, ...fields } = input;
    const record: CommandInput = { ...fields, expires_at: now + this.ttlMs };
    const { command, created } =
      id !== undefined
        ? await this.#d.store.commands.createIfAbsent({ ...record, id })
        : { command: await this.#d.store.commands.create(record), created: true };
    if (created) {
      this.#d.counters.inc('remediations_issued_total', { source: command.source, type: command.type });
      this.#d.bus.publish('command.updated', { tenant_id: command.tenant_id, command });
    }
    // Scheduling is idempotent too: a retried issue after a crash schedules what is missing.
    await this.#schedule(command);
    return { command, created };
  }

  /** The broker saw the tower's MQTT client acknowledge (PUBACK) the command [MQTT-4.3.2]. */
  async reportDelivered(tenantId: string, towerId: string, commandId: string, at: number): Promise<void> {
    await this.#queue.add({ kind: 'delivered', tenant_id: tenantId, tower_id: towerId, command_id: commandId, at }, { id: `delivered.${commandId}` });
  }

  /** The agent's ack. A tower may only acknowledge commands sent to it. */
  async acknowledge(
    tenantId: string,
    towerId: string,
    ack: { command_id: string; status: 'applied' | 'failed'; reason?: string | undefined },
  ): Promise<AckOutcome> {
    const existing = await this.#d.store.commands.get(tenantId, ack.command_id);
    if (!existing || existing.tower_id !== towerId) return 'unknown_command';
    const r = await this.#d.store.commands.transition(tenantId, ack.command_id, ack.status, this.#d.now(), ack.reason ?? null);
    if (!r?.changed) return 'ignored';
    this.#d.bus.publish('command.updated', { tenant_id: tenantId, command: r.command });
    return ack.status;
  }

  /** The tower is back: its pending commands are sent now rather than at their next backoff. */
  async towerOnline(towerId: string): Promise<void> {
    for (const c of await this.#d.store.commands.listOpen({ tower_id: towerId, status: 'pending' })) {
      const id = sendJobId(c.id, c.attempts);
      if (!(await this.#queue.promote(id))) await this.#queue.add(sendJob(c), { id });
    }
  }

  /**
   * Schedules what every open command still needs (its next send, its expiry). Safe to run in
   * every process at start: job ids make the second scheduling of a step a no-op.
   */
  async resume(): Promise<number> {
    const open = await this.#d.store.commands.listOpen();
    for (const c of open) await this.#schedule(c);
    return open.length;
  }

  async #schedule(c: CommandRecord): Promise<void> {
    if (isFinal(c.status)) return;
    const now = this.#d.now();
    if (c.status === 'pending') await this.#queue.add(sendJob(c), { id: sendJobId(c.id, c.attempts) });
    await this.#queue.add(
      { kind: 'expire', tenant_id: c.tenant_id, command_id: c.id },
      { id: `expire.${c.id}`, delayMs: Math.max(0, c.expires_at - now) },
    );
  }

  async #run(job: CommandJob, info: JobInfo): Promise<void> {
    switch (job.kind) {
      case 'send':
        try {
          return await this.#send(job.tenant_id, job.command_id, job.attempts);
        } catch (err) {
          // Every run failed (a store down for longer than the backoff): the next send is
          // scheduled only by a send, so given up, the command would never go out again before
          // its tower reconnects or a process restarts. It is tried again later under a new id.
          if (info.attempt >= JOB_ATTEMPTS) await this.#sendAgainLater(job).catch(() => undefined);
          throw err;
        }
      case 'expire':
        return this.#expire(job.tenant_id, job.command_id);
      case 'delivered':
        return this.#delivered(job.tenant_id, job.tower_id, job.command_id, job.at);
    }
  }

  async #sendAgainLater(job: Extract<CommandJob, { kind: 'send' }>): Promise<void> {
    const round = (job.round ?? 0) + 1;
    await this.#queue.add({ ...job, round }, { id: `${sendJobId(job.command_id, job.attempts)}.r${round}`, delayMs: this.#opts.retryMaxMs });
  }

  async #send(tenantId: string, commandId: string, attempts: number): Promise<void> {
    const downlink = this.#downlink;
    if (!downlink) throw new Error('command service: no downlink in this process');
    const { store, counters } = this.#d;
    const c = await store.commands.get(tenantId, commandId);
    // Delivered, acked, expired, or already sent by someone else: nothing to do.
    if (!c || c.status !== 'pending' || c.attempts !== attempts) return;
    const now = this.#d.now();
    if (now >= c.expires_at) return this.#expire(tenantId, commandId);
    const updated = await store.commands.markPublished(tenantId, commandId, now, { ifAttempts: attempts });
    if (!updated) return;
    // The next attempt is scheduled before publishing: if this process dies right after the
    // publish, the resend still happens.
    const delay = Math.min(this.#opts.retryMaxMs, this.#opts.retryMinMs * 2 ** Math.max(0, updated.attempts - 1));
    await this.#queue.add(sendJob(updated), { id: sendJobId(updated.id, updated.attempts), delayMs: Math.min(delay, Math.max(0, c.expires_at - now)) });
    await downlink.publish(topics.commands(c.tenant_id, c.tower_id), encodePayload(commandPayload(c)));
    counters.inc('commands_published_total');
  }

  async #delivered(tenantId: string, towerId: string, commandId: string, at: number): Promise<void> {
    const c = await this.#d.store.commands.get(tenantId, commandId);
    // Only the tower the command was sent to can have taken it.
    if (!c || c.tower_id !== towerId) return;
    const r = await this.#d.store.commands.transition(tenantId, commandId, 'delivered', at);
    if (r?.changed) this.#d.bus.publish('command.updated', { tenant_id: tenantId, command: r.command });
  }

  async #expire(tenantId: string, commandId: string): Promise<void> {
    const r = await this.#d.store.commands.transition(tenantId, commandId, 'expired', this.#d.now(), 'not acknowledged before expires_at');
    if (!r?.changed) return;
    this.#d.counters.inc('commands_expired_total');
    this.#d.bus.publish('command.updated', { tenant_id: tenantId, command: r.command });
  }
}

function sendJobId(commandId: string, attempts: number): string {
  return `send.${commandId}.${attempts}`;
}

function sendJob(c: CommandRecord): CommandJob {
  return { kind: 'send', tenant_id: c.tenant_id, command_id: c.id, attempts: c.attempts };
}

/** What the tower receives (CommandSchema). */
export function commandPayload(c: CommandRecord): Command {
  return {
    v: 1,
    id: c.id,
    type: c.type,
    device_id: c.device_id,
    ...(c.app ? { app: c.app } : {}),
    ...(c.duration_s ? { duration_s: c.duration_s } : {}),
    issued_at: c.created_at,
    expires_at: c.expires_at,
    ...(c.reason ? { reason: c.reason } : {}),
  };
}
