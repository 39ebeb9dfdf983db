/**
 * Where each message the tower receives goes: bundle and directory documents to the edge policy
 * (releasing events held for them), DecisionBatches (each applied once, by id) to the usage path,
 * commands to the command flow; anything else, or anything invalid, is counted and reported.
 * Listener or enforcer faults never unwind into the MQTT client's parser.
 */
import { CommandSchema, decodePayload, type Command, type CommandAck, type DecisionBatch } from '../shared/mqtt/payloads.js';
import { parseTopic, type ParsedTopic } from '../shared/mqtt/topics.js';
import type { Batcher } from './batcher.js';
import type { BundleGate } from './bundle-gate.js';
import type { CommandFlow } from './command-flow.js';
import { decodeDecisionBatch } from './decision-batch-decoder.js';
import type { EdgePolicy } from './edge-policy.js';
import { LruMap } from './lru.js';
import type { UsagePath } from './usage-path.js';

/** Decision and command topics whose parse is remembered at most (see #parse). */
const HOT_TOPICS_MAX = 256;

export interface DownlinkCounters {
  decisions_received: number;
  invalid_messages: number;
  redeliveries_ignored: number;
}

export interface DownlinkDispatchOptions {
  towerId: string;
  policy: EdgePolicy;
  gate: BundleGate;
  batcher: Batcher;
  path: UsagePath;
  commands: CommandFlow;
  counters: DownlinkCounters;
  /** Recent DecisionBatch ids remembered (a redelivered batch is applied once). */
  seenBatches: number;
  onDecisionBatch: (tenantId: string, batch: DecisionBatch) => void;
  onCommand: (tenantId: string, command: Command, ack: CommandAck, duplicate: boolean) => void;
  onInvalid: (info: { topic: string; error: string }) => void;
  onError: (err: Error) => void;
  /** A message on one of this tower's bundle or directory topics (bundle-mirror.ts keeps a copy). */
  onBundleMessage?: (topic: string, payload: Buffer) => void;
}

export class DownlinkDispatch {
  readonly #o: DownlinkDispatchOptions;
  readonly #seen: LruMap<string, true>;
  readonly #hotTopics = new Map<string, ParsedTopic>();

  constructor(opts: DownlinkDispatchOptions) {
    this.#o = opts;
    this.#seen = new LruMap(opts.seenBatches);
  }

  message(topic: string, payload: Buffer): void {
    try {
      const parsed = this.#parse(topic);
      const mine = parsed !== null && 'towerId' in parsed && parsed.towerId === this.#o.towerId;
      if (parsed?.kind === 'directory' || parsed?.kind === 'directoryPart' || ((parsed?.kind === 'policy' || parsed?.kind === 'policyPart') && mine)) {
        this.#o.policy.receive(topic, parsed, payload);
        this.#o.onBundleMessage?.(topic, payload);
        // Held events the directory now maps go; the rest wait for the quiet period.
        this.#o.gate.bundleArrived((e) => this.#o.policy.resolve(e.usage.device_id) !== null);
        return;
      }
      if (parsed?.kind === 'decisions' && mine) return this.#decisions(topic, parsed.tenantId, payload);
      if (parsed?.kind === 'commands' && mine) return void this.#command(topic, parsed.tenantId, payload).catch((err: unknown) => this.#o.onError(toError(err)));
      this.invalid(topic, 'unexpected topic');
    } catch (err) {
      this.#o.onError(toError(err));
    }
  }

  /**
   * parseTopic, remembered for the topics every answer and command arrives on (one per tenant the
   * tower serves): splitting and checking the same topic again for every DecisionBatch was a
   * per-message cost. Other kinds are parsed each time (their results are handed on).
   */
  #parse(topic: string): ParsedTopic | null {
    const known = this.#hotTopics.get(topic);
    if (known) return known;
    const parsed = parseTopic(topic);
    if (parsed?.kind === 'decisions' || parsed?.kind === 'commands') {
      // Bounded: topics of tenants this tower no longer serves, or never did, cannot pile up.
      if (this.#hotTopics.size >= HOT_TOPICS_MAX) this.#hotTopics.clear();
      this.#hotTopics.set(topic, parsed);
    }
    return parsed;
  }

  invalid(topic: string, error: string): void {
    this.#o.counters.invalid_messages++;
    this.#o.onInvalid({ topic, error });
  }

  #decisions(topic: string, tenantId: string, payload: Buffer): void {
    const r = decodeDecisionBatch(payload);
    if (!r.ok) return this.invalid(topic, r.error);
    const batch = r.value;
    // The next batch of this tenant may go now (adaptive batching).
    this.#o.batcher.answered(tenantId, batch.batch_id);
    if (this.#seen.get(batch.id)) {
      this.#o.counters.redeliveries_ignored++;
      return;
    }
    this.#seen.set(batch.id, true);
    this.#o.counters.decisions_received += batch.decisions.length;
    this.#o.path.decisionBatch(tenantId, batch);
    this.#o.onDecisionBatch(tenantId, batch);
  }

  async #command(topic: string, tenantId: string, payload: Buffer): Promise<void> {
    const r = decodePayload(CommandSchema, payload);
    if (!r.ok) return this.invalid(topic, r.error);
    // The ack is published paced, ahead of buffered usage (see uplink.ts).
    const { ack, duplicate } = await this.#o.commands.handle(tenantId, r.value);
    this.#o.onCommand(tenantId, r.value, ack, duplicate);
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
