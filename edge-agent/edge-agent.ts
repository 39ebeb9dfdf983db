/**
 * The software on tower equipment (DESIGN §3). It reports usage in batches, maps devices to
 * tenants from retained PolicyBundles, hands decisions and remediation commands to an Enforcer,
 * and survives broker outages: a persistent session (clean: false) keeps its subscriptions and
 * queued downlink, a bounded buffer holds uplink batches, reconnects back off with jitter, and
 * uplinks (a replayed backlog included) are paced within the broker's per-client publish limit.
 * While the enforcer reports a block in force (auto-remediation), the agent denies the device's
 * usage at once and still reports it, so the cloud keeps the record.
 *
 * Every observed event gets exactly one answer: a 'decision' (from the cloud, a block in force,
 * or the unknown-device default) or a 'rejected' event with its reason. An event whose device no
 * bundle maps waits until the retained bundles have arrived (bundle-gate.ts) rather than being
 * taken for an unknown device. A command applied just before stop() is acked before the agent
 * disconnects, or journalled and acked at the next start (command-flow.ts).
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
  type TowerStatus,
} from '../shared/mqtt/payloads.js';
import { filters, parseTopic, topics } from '../shared/mqtt/topics.js';
import type { AgentStats, DroppedInfo, EdgeAgentEvents, EdgeAgentOptions, ObservedUsage, ObserveResult, RejectionReason } from './agent-types.js';
import { ackJournalFile } from './ack-journal.js';
import { resolveAgentOptions, towerStatusPayload, type ResolvedAgentOptions } from './agent-options.js';
import { Batcher } from './batcher.js';
import { BundleGate } from './bundle-gate.js';
import { CommandFlow } from './command-flow.js';
import { CommandHandler } from './command-handler.js';
import { LoggingEnforcer, type Enforcer } from './enforcer.js';
import { EventRouter } from './event-router.js';
import { LocalAnswers } from './local-answers.js';
import { LruMap } from './lru.js';
import { batchWeight, type OutboundBatch } from './offline-buffer.js';
import { checkObservation } from './observation.js';
import type { HeldEvent } from './held-events.js';
import { enforcerStateFile, PersistentEnforcer } from './persistent-enforcer.js';
import { TenantDirectory } from './tenant-directory.js';
import { settlesWithin, TowerSession } from './tower-session.js';
import { Uplink } from './uplink.js';

export type {
  AgentStats,
  DecisionOrigin,
  DroppedInfo,
  EdgeAgentEvents,
  EdgeAgentOptions,
  ObservedUsage,
  ObserveResult,
  Rejection,
  RejectionReason,
} from './agent-types.js';

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
  readonly #uplink: Uplink;
  readonly #batcher: Batcher;
  readonly #router: EventRouter;
  readonly #commandHandler: CommandHandler;
  readonly #commands: CommandFlow;
  readonly #session: TowerSession;
  readonly #gate: BundleGate;
  readonly #counters = {
    events_observed: 0,
    batches_sent: 0,
    decisions_received: 0,
    events_dropped: 0,
    events_rejected: 0,
    invalid_messages: 0,
    redeliveries_ignored: 0,
  };
  /** Recent DecisionBatch ids: a batch redelivered after a lost PUBACK is applied once. */
  readonly #seenDecisionBatches: LruMap<string, true>;
  #state: State = 'idle';
  /** Came online at least once (an agent that never connected stops quietly). */
  #wasOnline = false;
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
    this.#batcher = new Batcher({
      maxEvents: this.#opts.batchMaxEvents,
      maxDelayMs: this.#opts.batchMaxDelayMs,
      discoveryMaxDelayMs: this.#opts.discoveryMaxDelayMs,
      newId: this.#newId,
      now: this.#opts.now,
      onBatch: (item) => this.#uplink.push(item),
    });
    this.#router = new EventRouter({
      batcher: this.#batcher,
      enforcer: this.#enforcer,
      local: this.#local,
      unknownDeviceEffect: this.#opts.unknownDeviceEffect,
      onDecision: (tenantId, decision, origin) => this.emit('decision', tenantId, decision, origin),
      onError: (err) => this.#fail(err),
    });
    // A DecisionBatch comes again only for a batch resent after a lost PUBACK, and those are
    // resent first on the next connection: the first copy is at most a few windows of
    // in-flight batches back.
    this.#seenDecisionBatches = new LruMap(Math.max(4096, 4 * this.#opts.maxInflight));
    this.#commandHandler = new CommandHandler({ enforcer: this.#enforcer, now: this.#opts.now, newId: this.#newId, cacheSize: this.#opts.commandCacheSize });
    this.#commands = new CommandFlow({
      handler: this.#commandHandler,
      journalFile: opts.stateDir !== undefined ? ackJournalFile(opts.stateDir, opts.towerId) : null,
      publish: (tenantId, ack) => this.#session.publish(topics.acks(tenantId, this.towerId), encodePayload(ack), false),
      onError: (err) => this.#fail(err),
    });
    const waitMs = this.#opts.bundleWaitMs;
    this.#gate = new BundleGate({
      settleMs: this.#opts.bundleSettleMs,
      waitMs,
      maxHeld: Math.max(1, this.#opts.bufferMaxEvents),
      onRelease: (h) => this.#routeHeld(h),
      onExpired: (events) => {
        const message = this.#session.up
          ? `no policy bundle maps this device within ${waitMs} ms of connecting`
          : `no policy bundle within ${waitMs} ms: the broker has not been reachable`;
        for (const h of events) this.#reject(h.id, h.usage.device_id, null, 'no_policy_bundle', message);
      },
      onOverflow: (h) => this.#reject(h.id, h.usage.device_id, null, 'buffer_overflow', 'too many events waiting for the policy bundles'),
      onReady: () => {
        this.#log.info({ event: 'bundles_ready', tenants: this.#directory.knownTenants().length }, 'policy bundles received');
        this.emit('ready');
      },
    });
    this.#session = new TowerSession({
      ...(opts.ca ? { ca: opts.ca } : {}),
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
    this.#uplink = new Uplink({
      session: this.#session,
      towerId: this.towerId,
      bufferMaxEvents: this.#opts.bufferMaxEvents,
      publishRatePerS: this.#opts.publishRatePerS,
      publishBurst: this.#opts.publishBurst,
      maxInflight: this.#opts.maxInflight,
      onSent: (item) => {
        this.#counters.batches_sent++;
        this.emit('sent', item);
      },
      onOverflow: (dropped) => this.#recordDropped(dropped, 'overflow'),
    });
  }

  /** True while connected and subscribed: batches go straight to the wire. */
  get online(): boolean {
    return this.#session.up;
  }

  /** The retained policy bundles have arrived since the first connection (see bundleSettleMs). */
  get ready(): boolean {
    return this.#gate.ready;
  }

  /**
   * Resolves once the retained policy bundles have arrived (or the agent stops). Not needed for
   * correctness (events observed earlier wait for the bundles), but a process that reads its
   * input only after it keeps its first answers as fast as the later ones.
   */
  whenReady(): Promise<void> {
    return this.#gate.whenReady();
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
    session.on('settled', () => this.#uplink.settled());
    session.on('error', (err) => this.#fail(err));
    if (this.#ownEnforcer) {
      const loaded = await this.#ownEnforcer.load();
      if (loaded.state === 'corrupt') this.#log.warn({ event: 'state_corrupt', ...loaded }, 'enforcer state file unreadable: moved aside, starting empty');
    }
    const journal = await this.#commands.load();
    if (journal.error) this.#log.warn({ event: 'ack_journal_unreadable', error: journal.error }, 'ack journal unreadable: starting without it');
    try {
      await session.open();
    } catch (err) {
      this.#state = 'stopped';
      for (const h of this.#gate.close()) this.#reject(h.id, h.usage.device_id, null, 'shutdown', 'the agent could not connect');
      throw err;
    }
  }

  /**
   * Records one usage observation; returns its event id (the unit of decision). Exactly one
   * 'decision' or 'rejected' event follows for that id.
   */
  observe(e: ObservedUsage): ObserveResult {
    if (this.#state === 'stopping' || this.#state === 'stopped') throw new Error('EdgeAgent is stopped');
    checkObservation(e);

    const id = this.#newId();
    const ts = e.ts ?? this.#opts.now();
    const tenantId = e.tenant_id ?? this.#directory.tenantOf(e.device_id) ?? null;
    this.#counters.events_observed++;
    if (tenantId !== null) {
      const answered = this.#router.usage(tenantId, id, ts, e);
      return { event_id: id, tenant_id: tenantId, answered_locally: answered, held: false };
    }
    if (!this.#gate.ready) {
      this.#gate.hold({ id, ts, usage: e, heldAt: Date.now() });
      return { event_id: id, tenant_id: null, answered_locally: false, held: true };
    }
    this.#router.unknown(id, ts, e);
    return { event_id: id, tenant_id: null, answered_locally: true, held: false };
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
      buffered_events: this.#uplink.bufferedEvents,
      commands_applied: this.#commandHandler.applied,
      events_answered_locally: this.#local.count,
      invalid_messages: this.#counters.invalid_messages,
      redeliveries_ignored: this.#counters.redeliveries_ignored,
      events_held: this.#gate.held,
      events_rejected: this.#counters.events_rejected,
      events_unknown_device: this.#local.unknownCount,
      acks_pending: this.#commands.pendingAcks,
    };
  }

  /**
   * Finishes every pending batch and waits until nothing is buffered or awaiting a PUBACK.
   * Resolves true when drained, false when `timeoutMs` passed first. The connection stays up
   * (decisions for the flushed batches can still arrive).
   */
  async flush(timeoutMs = this.#opts.stopTimeoutMs): Promise<boolean> {
    this.#batcher.flushAll();
    return this.#uplink.untilIdle(timeoutMs);
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

  // --- routing ---------------------------------------------------------------------------------

  #routeHeld(h: HeldEvent): void {
    const tenantId = this.#directory.tenantOf(h.usage.device_id);
    if (tenantId !== undefined) this.#router.usage(tenantId, h.id, h.ts, h.usage);
    else this.#router.unknown(h.id, h.ts, h.usage);
  }

  #reject(eventId: string, deviceId: string | null, tenantId: string | null, reason: RejectionReason, message: string): void {
    this.#counters.events_rejected++;
    this.emit('rejected', { event_id: eventId, device_id: deviceId, tenant_id: tenantId, reason, message });
  }

  // --- uplink ----------------------------------------------------------------------------------

  #onUp(): void {
    // Replay in order before anything new (new batches queue behind the backlog), paced.
    this.#uplink.drain();
    void this.#session.publish(topics.status(this.towerId), this.#status('online'), true);
    // Acks an earlier run could not send. Later ones wait in mqtt.js's session store while
    // offline and are resent by it, so these go out once.
    this.#commands.replay();
    this.#gate.connected();
    this.#wasOnline = true;
    this.#log.info({ event: 'online' }, 'edge agent online');
    this.emit('connect');
    this.#uplink.settled();
  }

  #recordDropped(dropped: OutboundBatch[], reason: DroppedInfo['reason']): void {
    const events = dropped.reduce((n, b) => n + batchWeight(b), 0);
    this.#counters.events_dropped += events;
    this.#log.warn({ event: 'dropped', events, batches: dropped.length, reason }, 'offline buffer dropped batches');
    this.emit('dropped', { events, batches: dropped.length, reason });
    // Their usage events will never be decided: answer each (discovery sightings were already).
    const why = reason === 'overflow' ? 'buffer_overflow' : 'shutdown';
    const message = reason === 'overflow' ? 'dropped from the full offline buffer (oldest first)' : 'the agent stopped before the event could be sent';
    for (const item of dropped) {
      if (item.kind !== 'usage') continue;
      for (const ev of item.batch.events) if (!this.#local.has(ev.id)) this.#reject(ev.id, ev.device_id, item.tenantId, why, message);
    }
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
    if (!this.#directory.apply(r.value)) return;
    this.emit('bundle', tenantId, r.value);
    // Held events whose device this bundle maps go now; the rest wait for the quiet period.
    this.#gate.bundleArrived((e) => this.#directory.tenantOf(e.usage.device_id) !== undefined);
  }

  #onDecisions(topic: string, tenantId: string, payload: Buffer): void {
    const r = decodePayload(DecisionBatchSchema, payload);
    if (!r.ok) return this.#invalid(topic, r.error);
    const batch = r.value;
    // The next batch of this tenant may go now (adaptive batching).
    this.#batcher.answered(tenantId, batch.batch_id);
    if (this.#seenDecisionBatches.get(batch.id)) {
      this.#counters.redeliveries_ignored++;
      return;
    }
    this.#seenDecisionBatches.set(batch.id, true);
    this.#counters.decisions_received += batch.decisions.length;
    for (const d of batch.decisions) {
      if (this.#local.has(d.event_id)) continue;
      this.#router.apply(tenantId, d);
      this.emit('decision', tenantId, d, { source: 'cloud', batch });
    }
    for (const rej of batch.rejected) {
      if (this.#local.has(rej.event_id)) continue;
      const message = rej.reason === 'plan_rate_limited' ? "over the tenant plan's event rate" : 'the device belongs to another tenant than the topic';
      this.#reject(rej.event_id, null, tenantId, rej.reason, message);
    }
    this.emit('decisionBatch', tenantId, batch);
  }

  async #onCommand(topic: string, tenantId: string, payload: Buffer): Promise<void> {
    const r = decodePayload(CommandSchema, payload);
    if (!r.ok) return this.#invalid(topic, r.error);
    // Acks are small and rare: unlike usage they may wait in mqtt.js's store while offline.
    const { ack, duplicate } = await this.#commands.handle(tenantId, r.value);
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
      this.#gate.release();
      this.emit('stopping', { commands_in_flight: this.#commands.inFlight, events_held: this.#gate.held, buffered_events: this.#uplink.bufferedEvents });
      this.#batcher.flushAll();
      // A command being applied now is acked before the disconnect (its ack then joins the
      // PUBACKs waited for below), or, past the deadline, journalled for the next start.
      await this.#commands.untilIdle(this.#opts.stopTimeoutMs);
      await this.#uplink.untilIdle(Math.max(0, deadline - Date.now()));
      if (this.#session.up) {
        // The DISCONNECT below suppresses the will [MQTT-3.14.4-3], so say "offline" ourselves.
        const offline = this.#session.publish(topics.status(this.towerId), this.#status('offline'), true);
        await settlesWithin(offline, Math.max(250, deadline - Date.now()));
      }
    }
    this.#state = 'stopped';
    for (const h of this.#gate.close()) this.#reject(h.id, h.usage.device_id, null, 'shutdown', 'the agent stopped before the policy bundles arrived');
    this.#batcher.flushAll();
    const left = this.#uplink.stop();
    await this.#session.close();
    await this.#commands.settled();
    await this.#ownEnforcer?.close();
    if (left.length > 0) this.#recordDropped(left, 'shutdown');
    if (this.#commands.pendingAcks > 0) {
      const journal = this.#commands.journalFile;
      this.#log.warn(
        { event: 'acks_pending', acks: this.#commands.pendingAcks, journal },
        journal ? 'command acks not yet taken by the broker: journalled, sent at the next start' : 'command acks not yet taken by the broker are lost (no --state-dir)',
      );
    }
    this.#log[this.#wasOnline ? 'info' : 'debug']({ event: 'stopped', ...this.stats() }, 'edge agent stopped');
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
