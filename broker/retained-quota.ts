/**
 * How much the retained store holds, per topic, per owner and in total, so a retained PUBLISH
 * that would exceed a cap is not stored (it is still delivered and processed, without its
 * retain flag) and is counted. Towers may retain only their status topic (authorize.ts), so the
 * per-owner cap bounds one tower's status; services are bounded by the totals only.
 *
 * This broker process's view: it is read from the store at start (so a restart keeps the
 * count) and updated by every retained PUBLISH this process admits. In distributed mode each
 * node counts what it admits on top of what was stored when it started.
 */
export interface RetainedLimits {
  perOwnerBytes: number;
  totalMessages: number;
  totalBytes: number;
}

export type RetainedVerdict = 'ok' | 'owner_bytes' | 'total_messages' | 'total_bytes';

interface Entry {
  bytes: number;
  owner: string | null;
}

export class RetainedQuota {
  readonly #limits: RetainedLimits;
  readonly #byTopic = new Map<string, Entry>();
  readonly #byOwner = new Map<string, number>();
  #bytes = 0;

  constructor(limits: RetainedLimits) {
    this.#limits = limits;
  }

  get messages(): number {
    return this.#byTopic.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Decides a retained PUBLISH of `bytes` on `topic` by `owner` (null: not capped per owner) and
   * records it when admitted. An empty payload deletes the retained message [MQTT-3.3.1-10] and
   * is always admitted.
   */
  admit(topic: string, bytes: number, owner: string | null): RetainedVerdict {
    const prev = this.#byTopic.get(topic);
    if (bytes > 0) {
      if (owner !== null) {
        const held = (this.#byOwner.get(owner) ?? 0) - (prev?.owner === owner ? prev.bytes : 0);
        if (held + bytes > this.#limits.perOwnerBytes) return 'owner_bytes';
      }
      if (!prev && this.#byTopic.size + 1 > this.#limits.totalMessages) return 'total_messages';
      if (this.#bytes - (prev?.bytes ?? 0) + bytes > this.#limits.totalBytes) return 'total_bytes';
    }
    this.#record(topic, bytes, owner);
    return 'ok';
  }

  /** What the store already held at start. */
  seed(topic: string, bytes: number, owner: string | null): void {
    this.#record(topic, bytes, owner);
  }

  #record(topic: string, bytes: number, owner: string | null): void {
    const prev = this.#byTopic.get(topic);
    if (prev) {
      this.#bytes -= prev.bytes;
      if (prev.owner !== null) {
        const left = (this.#byOwner.get(prev.owner) ?? 0) - prev.bytes;
        if (left > 0) this.#byOwner.set(prev.owner, left);
        else this.#byOwner.delete(prev.owner);
      }
      this.#byTopic.delete(topic);
    }
    if (bytes === 0) return;
    this.#byTopic.set(topic, { bytes, owner });
    this.#bytes += bytes;
    if (owner !== null) this.#byOwner.set(owner, (this.#byOwner.get(owner) ?? 0) + bytes);
  }
}
