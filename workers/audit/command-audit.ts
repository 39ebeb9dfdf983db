/**
 * Puts every step of a remediation command's lifecycle in its tenant's audit trail, next to the
 * API calls that caused them: pending (created by a rule, an escalation or an admin) → delivered
 * → applied | failed | expired, each recorded as `commands.<status>` by the 'system' actor.
 *
 * It listens to bus 'command.updated', which is published once per status change. The previous
 * status is remembered per open command so each entry shows the transition; after a restart the
 * first step seen of an older command has before = null (unknown), not a guess.
 */
import type { Bus } from '../../shared/bus.js';
import type { CommandRecord, CommandStatus } from '../../shared/domain.js';
import type { Store } from '../../shared/store/port.js';

export interface CommandAuditOptions {
  store: Pick<Store, 'audit'>;
  bus: Bus;
  /** A write that failed (the step itself already happened; it is only missing from the trail). */
  onError: (err: unknown) => void;
}

const FINAL: ReadonlySet<CommandStatus> = new Set(['applied', 'failed', 'expired']);
/** Open commands remembered at once; beyond it the oldest are forgotten (their before = null). */
const MAX_TRACKED = 100_000;

export class CommandAudit {
  readonly #o: CommandAuditOptions;
  readonly #lastStatus = new Map<string, CommandStatus>();
  readonly #inflight = new Set<Promise<void>>();
  /** Entries are written in the order the steps were published, one at a time. */
  #tail: Promise<void> = Promise.resolve();

  constructor(options: CommandAuditOptions) {
    this.#o = options;
  }

  start(): void {
    this.#o.bus.subscribe('command.updated', (e) => this.#onUpdated(e.command), this);
  }

  /** Stops listening, then waits for the entries already started. */
  async stop(): Promise<void> {
    this.#o.bus.removeAllFor(this);
    await this.flush();
  }

  async flush(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  #onUpdated(command: CommandRecord): void {
    const previous = this.#lastStatus.get(command.id) ?? null;
    // The bus publishes status changes only; a repeat (e.g. a replayed event) adds nothing.
    if (previous === command.status) return;
    this.#remember(command);
    const write = this.#tail.then(() => this.#record(command, previous)).catch((err: unknown) => this.#o.onError(err));
    this.#tail = write;
    this.#inflight.add(write);
    void write.finally(() => this.#inflight.delete(write));
  }

  #remember(command: CommandRecord): void {
    this.#lastStatus.delete(command.id);
    if (FINAL.has(command.status)) return;
    this.#lastStatus.set(command.id, command.status);
    if (this.#lastStatus.size > MAX_TRACKED) {
      const oldest = this.#lastStatus.keys().next().value;
      if (oldest !== undefined) this.#lastStatus.delete(oldest);
    }
  }

  async #record(c: CommandRecord, previous: CommandStatus | null): Promise<void> {
    await this.#o.store.audit.record({
      tenant_id: c.tenant_id,
      actor_kind: 'system',
      actor_id: null,
      actor_label: 'system',
      action: `commands.${c.status}`,
      resource_type: 'command',
      resource_id: c.id,
      method: null,
      path: null,
      status_code: null,
      ip: null,
      user_agent: null,
      before: previous === null ? null : { status: previous },
      after: {
        status: c.status,
        attempts: c.attempts,
        ack_reason: c.ack_reason,
        type: c.type,
        device_id: c.device_id,
        tower_id: c.tower_id,
        source: c.source,
        ...(c.app !== null && { app: c.app }),
        ...(c.issued_by !== null && { issued_by: c.issued_by }),
      },
      // When the step happened, not when this listener got to it.
      at: c.updated_at,
    });
  }
}
