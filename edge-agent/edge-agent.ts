/**
 * The software on tower equipment (DESIGN §3). It reports usage in batches, maps devices to
 * tenants from retained PolicyBundles, hands decisions and remediation commands to an Enforcer,
 * and survives broker outages: a persistent session (clean: false) keeps its subscriptions and
 * queued downlink, a bounded buffer holds uplink batches, reconnects back off with jitter, and
 * uplinks (a replayed backlog included) are paced within the broker's per-client publish limit.
 * While the enforcer reports a block in force (auto-remediation), the agent denies the device's
 * usage at once and still reports it, so the cloud keeps the record.
 */
import { EventEmitter } from 'node:events';
import { createIdFactory, TOPIC_ID_RE, type IdFactory } from '../shared/ids.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import {
  CommandSchema,
  DecisionBatchSchema,
  decodePayload,
  encodePayload,
  PolicyBundleSchema,
  type Decision,
  type TowerStatus,
} from '../shared/mqtt/payloads.js';
import { filters, parseTopic, topics } from '../shared/mqtt/topics.js';
import type { AgentStats, DroppedInfo, EdgeAgentEvents, EdgeAgentOptions, ObservedUsage, ObserveResult } from './agent-types.js';
import { resolveAgentOptions, towerStatusPayload, type ResolvedAgentOptions } from './agent-options.js';
import { Batcher } from './batcher.js';
import { CommandHandler } from './command-handler.js';
import { LoggingEnforcer, type BlockStatus, type Enforcer } from './enforcer.js';
import { LocalAnswers } from './local-answers.js';
import { LruMap } from './lru.js';
import { batchWeight, OfflineBuffer, type OutboundBatch } from './offline-buffer.js';
import { checkObservation } from './observation.js';
import { PublishPacer } from './publish-pacer.js';
import { enforcerStateFile, PersistentEnforcer } from './persistent-enforcer.js';
import { TenantDirectory } from './tenant-directory.js';
import { settlesWithin, TowerSession } from './tower-session.js';

export type { AgentStats, DecisionOrigin, DroppedInfo, EdgeAgentEvents, EdgeAgentOptions, ObservedUsage, ObserveResult } from './agent-types.js';

type State = 'idle' | 'running' | 'stopping' | 'stopped';

export class EdgeAgent extends EventEmitter<EdgeAgentEvents> {
  readonly towerId: string;
  readonly #opts: ResolvedAgentOptions;
  readonly #enforcer: Enforcer;
  /** The PersistentEnforcer this agent built from `stateDir` (it loads and closes it). */
  readonly #ownEnforcer: PersistentEnforcer | null = null;
  readonly #local: LocalAnswers;
  readonly #log: Logger;
  readonly #newId: IdFactory = createIdFactory();
  readonly #directory = new TenantDirectory();
  /** Batches waiting for the connection: while offline, and while the pacer holds them back. */
  readonly #buffer: OfflineBuffer;
  readonly #pacer: PublishPacer;
  #paceTimer: NodeJS.Timeout | null = null;
  readonly #batcher: Batcher;
  readonly #commands: CommandHandler;
  readonly #session: TowerSession;
  readonly #counters = { events_observed: 0, batches_sent: 0, decisions_received: 0, events_dropped: 0, invalid_messages: 0, redeliveries_ignored: 0 };
  /** Recent DecisionBatch ids: a batch redelivered after a lost PUBACK is applied once. */
  readonly #seenDecisionBatches: LruMap<string, true>;
  readonly #idleWaiters = new Set<() => void>();
  #state: State = 'idle';
  #stopping: Promise<void> | null = null;

  constructor(opts: EdgeAgentOptions) {
    super();
    if (!TOPIC_ID_RE.test(opts.towerId)) throw new Error(`towerId must match ${TOPIC_ID_RE}, got ${JSON.stringify(opts.towerId)}`);
    this.towerId = opts.towerId;
    this.#opts = resolveAgentOptions(opts);
    if (!opts.enforcer && opts.stateDir !== undefined) {
      this.#ownEnforcer = new PersistentEnforcer({
        stateFile: enforcerStateFile(opts.stateDir, opts.towerId),
        now: opts.now,
        onLifted: (block, cause) => this.emit('blockLifted', block, cause),
        onError: (err) => this.#fail(err),
      });
    }
    this.#enforcer = opts.enforcer ?? this.#ownEnforcer ?? new LoggingEnforcer();
    // Every event that can still await its cloud decision: the offline buffer and then some.
    this.#local = new LocalAnswers(Math.max(4096, this.#opts.bufferMaxEvents));
    this.#log = (opts.logger ?? silentLogger()).child({ module: 'edge-agent', tower_id: opts.towerId });
    this.#buffer = new OfflineBuffer(this.#opts.bufferMaxEvents);
    // The wall clock, like the timers that wait for its tokens (opts.now is for timestamps).
    this.#pacer = new PublishPacer({
      ratePerS: this.#opts.publishRatePerS,
      burst: this.#opts.publishBurst,
      maxInflight: this.#opts.maxInflight,
      now: Date.now,
    });
    this.#batcher = new Batcher({
      maxEvents: this.#opts.batchMaxEvents,
      maxDelayMs: this.#opts.batchMaxDelayMs,
      discoveryMaxDelayMs: this.#opts.discoveryMaxDelayMs,
      newId: this.#newId,
      now: this.#opts.now,
      onBatch: (item) => this.#onBatch(item),
    });
    // A DecisionBatch comes again only for a batch resent after a lost PUBACK, and those are
    // resent first on the next connection: the first copy is at most a few windows of
    // in-flight batches back.
    this.#seenDecisionBatches = new LruMap(Math.max(4096, 4 * this.#opts.maxInflight));
    this.#commands = new CommandHandler({ enforcer: this.#enforcer, now: this.#opts.now, newId: this.#newId, cacheSize: this.#opts.commandCacheSize });
    this.#session = new TowerSession({
      url: this.#opts.url,
      towerId: this.towerId,
      password: this.#opts.password,
      reconnectMinMs: this.#opts.reconnectMinMs,
      reconnectMaxMs: this.#opts.reconnectMaxMs,
      connectTimeoutMs: this.#opts.connectTimeoutMs,
      random: this.#opts.random,
      subscriptions: [filters.towerDecisions(this.towerId), filters.towerCommands(this.towerId), filters.allPolicies],
      will: () => ({ topic: topics.status(this.towerId), payload: this.#status('offline'), qos: 1, retain: true }),
    });
  }

  /** True while connected and subscribed: batches go straight to the wire. */
  get online(): boolean {
    return this.#session.up;
  }

  /**
   * Connects and resolves once online. While the broker is unreachable it keeps retrying
   * (and observe() keeps buffering); a CONNACK refusal on the first attempt (bad credentials)
   * rejects and leaves the agent stopped.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`EdgeAgent cannot start: it is ${this.#state}`);
    this.#state = 'running';
    const session = this.#session;
    session.on('up', () => this.#onUp());
    session.on('down', ({ wasUp }) => {
      if (wasUp && this.#state === 'running') this.emit('offline');
    });
    session.on('reconnecting', (info) => this.emit('reconnecting', info));
    session.on('message', (topic, payload) => this.#onMessage(topic, payload));
    session.on('settled', () => this.#checkIdle());
    session.on('error', (err) => this.#fail(err));
    if (this.#ownEnforcer) {
      const loaded = await this.#ownEnforcer.load();
      if (loaded.state === 'corrupt') this.#log.warn({ event: 'state_corrupt', ...loaded }, 'enforcer state file unreadable: moved aside, starting empty');
    }
    try {
      await session.open();
    } catch (err) {
      this.#state = 'stopped';
      throw err;
    }
  }

  /** Records one usage observation; returns its event id (the unit of decision). */
  observe(e: ObservedUsage): ObserveResult {
    if (this.#state === 'stopping' || this.#state === 'stopped') throw new Error('EdgeAgent is stopped');
    checkObservation(e);

    const id = this.#newId();
    const ts = e.ts ?? this.#opts.now();
    const tenantId = e.tenant_id ?? this.#directory.tenantOf(e.device_id) ?? null;
    this.#counters.events_observed++;
    if (tenantId === null) {
      this.#batcher.addDiscovery(e.device_id, ts);
    } else {
      this.#batcher.addUsage(tenantId, {
        id,
        ts,
        device_id: e.device_id,
        app: e.app,
        action: e.action,
        ...(e.bytes !== undefined ? { bytes: e.bytes } : {}),
      });
    }
    const block = tenantId === null ? null : this.#blockOf(tenantId, e.device_id, e.app);
    if (tenantId !== null && block) this.#answerLocally(tenantId, id, e.device_id, block);
    return { event_id: id, tenant_id: tenantId, answered_locally: block !== null };
  }

  knownTenants(): string[] {
    return this.#directory.knownTenants();
  }

  tenantOf(deviceId: string): string | undefined {
    return this.#directory.tenantOf(deviceId);
  }

  stats(): AgentStats {
    return {
      events_observed: this.#counters.events_observed,
      batches_sent: this.#counters.batches_sent,
      decisions_received: this.#counters.decisions_received,
      events_dropped: this.#counters.events_dropped,
      buffered_events: this.#buffer.events,
      commands_applied: this.#commands.applied,
      events_answered_locally: this.#local.count,
      invalid_messages: this.#counters.invalid_messages,
      redeliveries_ignored: this.#counters.redeliveries_ignored,
    };
  }

  /**
   * Finishes every pending batch and waits until nothing is buffered or awaiting a PUBACK.
   * Resolves true when drained, false when `timeoutMs` passed first. The connection stays up
   * (decisions for the flushed batches can still arrive).
   */
  async flush(timeoutMs = this.#opts.stopTimeoutMs): Promise<boolean> {
    this.#batcher.flushAll();
    return this.#waitIdle(timeoutMs);
  }

  /**
   * Flushes, waits for PUBACKs (bounded by stopTimeoutMs), publishes the retained offline
   * status and ends the session with a DISCONNECT (so the will does not fire). Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  /**
   * Test/simulator hook: destroys the socket without DISCONNECT, as a power or network loss
   * would, so the broker publishes the will. With `holdMs` the agent stays offline that long and
   * then reconnects at once; without it the normal backoff schedule reconnects it.
   */
  simulateOutage(opts: { holdMs?: number } = {}): void {
    if (this.#state === 'running') this.#session.simulateOutage(opts.holdMs);
  }

  /** Test/simulator hook: ends a held outage now and reconnects immediately. */
  endOutage(): void {
    this.#session.endOutage();
  }

  // --- local answers (active blocks) ----------------------------------------------------------

  #blockOf(tenantId: string, deviceId: string, app: string): BlockStatus | null {
    try {
      return this.#enforcer.isBlocked?.(tenantId, deviceId, app) ?? null;
    } catch (err) {
      this.#fail(toError(err));
      return null;
    }
  }

  /**
   * Denies at once, without the cloud round trip. Emitted in a microtask so the caller holds the
   * event id (observe's return value) before its decision arrives.
   */
  #answerLocally(tenantId: string, eventId: string, deviceId: string, block: BlockStatus): void {
    const decision = this.#local.answer(eventId, deviceId);
    queueMicrotask(() => {
      this.#applyDecision(tenantId, decision);
      this.emit('decision', tenantId, decision, { source: 'local', block });
    });
  }

  // --- uplink ----------------------------------------------------------------------------------

  #onUp(): void {
    // Replay in order before anything new (new batches queue behind the backlog), paced.
    this.#drain();
    void this.#session.publish(topics.status(this.towerId), this.#status('online'), true);
    this.#log.info({ event: 'online' }, 'edge agent online');
    this.emit('connect');
    this.#checkIdle();
  }

  #onBatch(item: OutboundBatch): void {
    // Publishing while offline would hand the batch to mqtt.js's unbounded queue; the bounded
    // buffer holds it instead, and also whatever the pacer holds back while online.
    const dropped = this.#buffer.push(item);
    if (dropped.length > 0) this.#recordDropped(dropped, 'overflow');
    this.#drain();
  }

  /** Publishes buffered batches, oldest first, as fast as the pacer allows. */
  #drain(): void {
    if (this.#paceTimer) return; // a token is on its way; the timer drains
    while (this.#session.up && this.#buffer.length > 0) {
      const verdict = this.#pacer.acquire(this.#session.inflight);
      if (!verdict.go) {
        // null: too many awaiting a PUBACK; the next PUBACK drains (see #publishBatch).
        if (verdict.retryInMs !== null) {
          this.#paceTimer = setTimeout(() => {
            this.#paceTimer = null;
            this.#drain();
          }, verdict.retryInMs);
        }
        return;
      }
      this.#publishBatch(this.#buffer.shift()!);
    }
  }

  #publishBatch(item: OutboundBatch): void {
    const topic = item.kind === 'usage' ? topics.usage(item.tenantId, this.towerId) : topics.discovery(this.towerId);
    void this.#session.publish(topic, encodePayload(item.batch), false).then(() => this.#drain());
    this.#counters.batches_sent++;
    this.emit('sent', item);
  }

  #recordDropped(dropped: OutboundBatch[], reason: DroppedInfo['reason']): void {
    const events = dropped.reduce((n, b) => n + batchWeight(b), 0);
    this.#counters.events_dropped += events;
    this.#log.warn({ event: 'dropped', events, batches: dropped.length, reason }, 'offline buffer dropped batches');
    this.emit('dropped', { events, batches: dropped.length, reason });
  }

  #idle(): boolean {
    return this.#session.inflight === 0 && this.#buffer.length === 0;
  }

  #checkIdle(): void {
    if (!this.#idle()) return;
    for (const w of [...this.#idleWaiters]) w();
  }

  #waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#idle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean): void => {
        clearTimeout(timer);
        this.#idleWaiters.delete(onIdle);
        resolve(idle);
      };
      const onIdle = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idleWaiters.add(onIdle);
    });
  }

  // --- downlink --------------------------------------------------------------------------------

  #onMessage(topic: string, payload: Buffer): void {
    // Listener or enforcer faults must never unwind into the MQTT client's parser.
    try {
      const parsed = parseTopic(topic);
      if (parsed?.kind === 'policy') return this.#onBundle(topic, parsed.tenantId, payload);
      if (parsed?.kind === 'decisions' && parsed.towerId === this.towerId) return this.#onDecisions(topic, parsed.tenantId, payload);
      if (parsed?.kind === 'commands' && parsed.towerId === this.towerId) return void this.#onCommand(topic, parsed.tenantId, payload);
      this.#invalid(topic, 'unexpected topic');
    } catch (err) {
      this.#fail(toError(err));
    }
  }

  #onBundle(topic: string, tenantId: string, payload: Buffer): void {
    if (payload.length === 0) {
      if (this.#directory.remove(tenantId)) this.emit('bundleRemoved', tenantId);
      return;
    }
    const r = decodePayload(PolicyBundleSchema, payload);
    if (!r.ok) return this.#invalid(topic, r.error);
    if (r.value.tenant_id !== tenantId) return this.#invalid(topic, 'tenant_id: does not match the topic');
    if (this.#directory.apply(r.value)) this.emit('bundle', tenantId, r.value);
  }

  #onDecisions(topic: string, tenantId: string, payload: Buffer): void {
    const r = decodePayload(DecisionBatchSchema, payload);
    if (!r.ok) return this.#invalid(topic, r.error);
    const batch = r.value;
    if (this.#seenDecisionBatches.get(batch.id)) {
      this.#counters.redeliveries_ignored++;
      return;
    }
    this.#seenDecisionBatches.set(batch.id, true);
    this.#counters.decisions_received += batch.decisions.length;
    for (const d of batch.decisions) {
      if (this.#local.has(d.event_id)) continue;
      this.#applyDecision(tenantId, d);
      this.emit('decision', tenantId, d, { source: 'cloud', batch });
    }
    this.emit('decisionBatch', tenantId, batch);
  }

  #applyDecision(tenantId: string, d: Decision): void {
    try {
      const applied = this.#enforcer.applyDecision(tenantId, d);
      if (applied) applied.catch((err: unknown) => this.#fail(toError(err)));
    } catch (err) {
      this.#fail(toError(err));
    }
  }

  async #onCommand(topic: string, tenantId: string, payload: Buffer): Promise<void> {
    const r = decodePayload(CommandSchema, payload);
    if (!r.ok) return this.#invalid(topic, r.error);
    const { ack, duplicate } = await this.#commands.handle(tenantId, r.value);
    if (this.#state === 'stopped') return;
    // Acks are small and rare: unlike usage they may wait in mqtt.js's store while offline.
    void this.#session.publish(topics.acks(tenantId, this.towerId), encodePayload(ack), false);
    this.emit('command', tenantId, r.value, ack, duplicate);
  }

  #invalid(topic: string, error: string): void {
    this.#counters.invalid_messages++;
    this.emit('invalid', { topic, error });
  }

  // --- shutdown --------------------------------------------------------------------------------

  async #doStop(): Promise<void> {
    if (this.#state === 'running') {
      this.#state = 'stopping';
      const deadline = Date.now() + this.#opts.stopTimeoutMs;
      this.#batcher.flushAll();
      await this.#waitIdle(this.#opts.stopTimeoutMs);
      if (this.#session.up) {
        // The DISCONNECT below suppresses the will [MQTT-3.14.4-3], so say "offline" ourselves.
        const offline = this.#session.publish(topics.status(this.towerId), this.#status('offline'), true);
        await settlesWithin(offline, Math.max(250, deadline - Date.now()));
      }
    }
    this.#state = 'stopped';
    this.#batcher.flushAll();
    if (this.#paceTimer) clearTimeout(this.#paceTimer);
    this.#paceTimer = null;
    await this.#session.close();
    await this.#ownEnforcer?.close();
    const left = this.#buffer.drain();
    if (left.length > 0) this.#recordDropped(left, 'shutdown');
    this.#log.info({ event: 'stopped', ...this.stats() }, 'edge agent stopped');
  }

  // --- helpers ---------------------------------------------------------------------------------

  #status(state: TowerStatus['state']): Buffer {
    return towerStatusPayload(state, this.stats(), this.#newId, this.#opts.now(), this.#opts.agentVersion);
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#log.warn({ err }, 'edge agent error');
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
