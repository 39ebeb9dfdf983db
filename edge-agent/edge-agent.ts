/**
 * The software on tower equipment (DESIGN §3, §8). It reports usage in batches, maps devices to
 * tenants through the device directory and decides from the policy bundles of the tenants it
 * serves (edge-policy.ts), hands decisions and remediation commands to an Enforcer, and works
 * alone when it must: with the uplink down, or the cloud's answer later than a deadline, it
 * decides events itself with the workers' evaluation code and reconciles with the cloud later
 * (usage-path.ts). With a state dir, every event is journalled on disk until the broker has it
 * (journal/), so a restart or kill -9 loses nothing, and a long backlog replays from disk
 * (journal-feed.ts). A persistent session (clean: false) keeps its subscriptions and queued
 * downlink, reconnects back off with jitter, and uplinks (a replayed backlog included) are paced
 * within the broker's per-client publish limit. While the enforcer reports a block in force
 * (auto-remediation), the agent denies the device's usage at once and still reports it.
 *
 * Every observed event gets exactly one answer: a 'decision' (from the cloud, from the bundle, a
 * block in force, or the unknown-device default) or a 'rejected' event with its reason. An event
 * whose device the directory does not list waits until the retained bundles have arrived
 * (bundle-gate.ts) rather than being taken for an unknown device. A command applied just before
 * stop() is acked before the agent disconnects, or journalled and acked at the next start
 * (command-flow.ts).
 */
import { EventEmitter } from 'node:events';
import { createIdFactory, TOPIC_ID_RE, type IdFactory } from '../shared/ids.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { encodePayload, type Decision, type TowerStatus } from '../shared/mqtt/payloads.js';
import { filters, parseTopic, topics } from '../shared/mqtt/topics.js';
import type { AgentStats, DroppedInfo, EdgeAgentEvents, EdgeAgentOptions, ObservedUsage, ObserveResult, RejectionReason } from './agent-types.js';
import { ackJournalFile } from './ack-journal.js';
import { resolveAgentOptions, towerStatusPayload, type ResolvedAgentOptions } from './agent-options.js';
import { Batcher } from './batcher.js';
import { BundleGate } from './bundle-gate.js';
import { BundleMirror, bundleMirrorDir } from './bundle-mirror.js';
import { CommandFlow } from './command-flow.js';
import { CommandHandler } from './command-handler.js';
import { DownlinkDispatch } from './downlink-dispatch.js';
import { EdgePolicy } from './edge-policy.js';
import { LoggingEnforcer, type Enforcer } from './enforcer.js';
import { EventRouter } from './event-router.js';
import { DEFAULT_PART_BUDGET_BYTES } from './parted-docs.js';
import { AgentJournal } from './journal-wiring.js';
import type { JournalFeed } from './journal-feed.js';
import type { Journal } from './journal/journal.js';
import { LocalAnswers } from './local-answers.js';
import { batchWeight, type OutboundBatch } from './offline-buffer.js';
import { checkObservation } from './observation.js';
import type { HeldEvent } from './held-events.js';
import { enforcerStateFile, PersistentEnforcer } from './persistent-enforcer.js';
import { settlesWithin, TowerSession } from './tower-session.js';
import { Uplink } from './uplink.js';
import { UsagePath } from './usage-path.js';

export type {
  AgentStats,
  DecisionOrigin,
  DroppedInfo,
  EdgeAgentEvents,
  EdgeAgentOptions,
  ObservedUsage,
  ObserveResult,
  Reconciliation,
  Rejection,
  RejectionReason,
} from './agent-types.js';
export type { BundleInfo } from './edge-policy.js';

export { journalDir } from './journal-dir.js';

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
  readonly #policy: EdgePolicy;
  readonly #store: AgentJournal | null = null;
  /** With `stateDir`: the copy of this tower's bundle documents an agent restarted offline starts from. */
  readonly #mirror: BundleMirror | null = null;
  readonly #journal: Journal | null = null;
  readonly #feed: JournalFeed | null = null;
  readonly #path: UsagePath;
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
  readonly #downlink: DownlinkDispatch;
  #state: State = 'idle';
  /** Came online at least once (an agent that never connected stops quietly). */
  #wasOnline = false;
  #restoredTenants = 0;
  #restoring = false;
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
        onFull: (info) => this.#log.warn({ event: 'blocks_full', ...info }, 'block refused: too many blocks in force'),
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
    this.#policy = new EdgePolicy({
      onBundle: (tenantId, info) => {
        this.#log.debug({ event: 'bundle_applied', tenant_id: tenantId, ...info }, 'bundle applied');
        this.emit('bundle', tenantId, info);
      },
      onInvalid: (topic, error) => this.#downlink.invalid(topic, error),
      // Each drop is counted (invalid_messages); a flood logs its first and then every 10,000th.
      onPartDropped: (topic, reason, total) => {
        if (total === 1 || total % 10_000 === 0) this.#log.warn({ event: 'bundle_parts_dropped', topic, reason, total }, 'bundle document parts dropped: more than the agent holds for documents (parted-docs.ts)');
      },
    });
    if (opts.stateDir !== undefined) {
      this.#mirror = new BundleMirror(bundleMirrorDir(opts.stateDir, opts.towerId), {
        maxBytes: DEFAULT_PART_BUDGET_BYTES,
        onError: (err) => this.#log.warn({ event: 'bundle_copy_failed', error: err.message }, 'bundle documents: a copy under --state-dir could not be written; it is written again with the next message'),
      });
      this.#store = new AgentJournal({
        stateDir: opts.stateDir,
        towerId: opts.towerId,
        maxBytes: this.#opts.journalMaxBytes,
        fsyncMs: this.#opts.journalFsyncMs,
        batchMaxEvents: this.#opts.batchMaxEvents,
        bufferMaxEvents: this.#opts.bufferMaxEvents,
        newId: this.#newId,
        now: this.#opts.now,
        log: this.#log,
        online: () => this.#session.up,
        buffered: () => this.#uplink.bufferedEvents,
        push: (item) => this.#uplink.push(item),
        onReplay: (tenantId, events) => this.#path.replayed(tenantId, events),
        onEvicted: (info) => {
          this.#counters.events_dropped += info.events;
          this.emit('evicted', info);
        },
        onError: (err) => this.#fail(err),
      });
      this.#journal = this.#store.journal;
      this.#feed = this.#store.feed;
    }
    this.#path = new UsagePath({
      policy: this.#policy,
      batcher: this.#batcher,
      router: this.#router,
      local: this.#local,
      journal: this.#journal,
      feed: () => this.#feed,
      push: (item) => this.#uplink.push(item),
      newId: this.#newId,
      now: this.#opts.now,
      online: () => this.#session.up,
      deadlineMs: this.#opts.localDecisionDeadlineMs,
      batchMaxEvents: this.#opts.batchMaxEvents,
      reconcileMax: Math.max(100_000, this.#opts.bufferMaxEvents),
      awaitingMax: Math.max(4096, this.#opts.bufferMaxEvents),
      onCloud: (tenantId, d, batch) => {
        this.#router.apply(tenantId, d);
        this.emit('decision', tenantId, d, { source: 'cloud', batch });
      },
      onReject: (eventId, deviceId, tenantId, reason, message) => this.#reject(eventId, deviceId, tenantId, reason, message),
      onReconciled: (r) => this.emit('reconciled', r),
      onJournalError: (err) => {
        this.#log.warn({ event: 'journal_write_failed', error: err.message }, 'journal: an event could not be written (disk full?); events go on from memory until it can');
        this.#fail(err);
      },
    });
    this.#commandHandler = new CommandHandler({ enforcer: this.#enforcer, now: this.#opts.now, newId: this.#newId, cacheSize: this.#opts.commandCacheSize });
    this.#commands = new CommandFlow({
      handler: this.#commandHandler,
      journalFile: opts.stateDir !== undefined ? ackJournalFile(opts.stateDir, opts.towerId) : null,
      // Paced with usage, so a flood of commands keeps the agent within the broker's rate.
      publish: (tenantId, ack) => this.#uplink.publishAck(topics.acks(tenantId, this.towerId), encodePayload(ack)),
      onError: (err) => this.#fail(err),
    });
    const waitMs = this.#opts.bundleWaitMs;
    this.#gate = new BundleGate({
      settleMs: this.#opts.bundleSettleMs,
      waitMs,
      maxHeld: Math.max(1, this.#opts.bufferMaxEvents),
      onRelease: (h) => this.#routeHeld(h),
      onExpired: (events) => {
        // Held after the bundles had arrived, while a document still missed parts: the parts did
        // not map the device in time, so it is taken for an unknown one, as without the wait.
        if (this.#gate.ready) {
          for (const h of events) this.#routeHeld(h);
          return;
        }
        const message = this.#session.up
          ? `no policy bundle maps this device within ${waitMs} ms of connecting`
          : `no policy bundle within ${waitMs} ms: the broker has not been reachable`;
        for (const h of events) this.#reject(h.id, h.usage.device_id, null, 'no_policy_bundle', message);
      },
      onOverflow: (h) => this.#reject(h.id, h.usage.device_id, null, 'buffer_overflow', 'too many events waiting for the policy bundles'),
      assembling: () => this.#policy.assembling,
      onReady: () => {
        this.#log.info({ event: 'bundles_ready', tenants: this.#policy.knownTenants().length, directory_devices: this.#policy.directorySize }, 'policy bundles and device directory received');
        this.emit('ready');
      },
    });
    this.#downlink = new DownlinkDispatch({
      towerId: this.towerId,
      policy: this.#policy,
      gate: this.#gate,
      batcher: this.#batcher,
      path: this.#path,
      commands: this.#commands,
      counters: this.#counters,
      // A DecisionBatch comes again only for a batch resent after a lost PUBACK, and those are
      // resent first on the next connection: the first copy is a few windows of batches back.
      seenBatches: Math.max(4096, 4 * this.#opts.maxInflight),
      onDecisionBatch: (tenantId, batch) => this.emit('decisionBatch', tenantId, batch),
      onCommand: (tenantId, command, ack, duplicate) => this.emit('command', tenantId, command, ack, duplicate),
      onInvalid: (info) => this.emit('invalid', info),
      onError: (err) => this.#fail(err),
      // Not while start() feeds the copies back: they are on disk already, previous ones included.
      ...(this.#mirror
        ? {
            onBundleMessage: (topic: string, payload: Buffer): void => {
              if (!this.#restoring) this.#mirror!.record(topic, payload);
            },
          }
        : {}),
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
      maxPacketBytes: this.#opts.maxPacketBytes,
      subscriptions: [filters.towerDecisions(this.towerId), filters.towerCommands(this.towerId), filters.towerPolicies(this.towerId), filters.directory],
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
        this.#path.sent(item);
        this.emit('sent', item);
      },
      onOverflow: (dropped) => this.#overflow(dropped),
      onAcked: (item, withLocal) => {
        this.#path.acked(item, withLocal);
        this.#feed?.pump();
      },
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
      if (this.#state !== 'running') return;
      // Whatever still waits for the cloud is decided here now.
      this.#path.down();
      if (wasUp) this.emit('offline');
    });
    session.on('reconnecting', (info) => this.emit('reconnecting', info));
    session.on('message', (topic, payload) => this.#downlink.message(topic, payload));
    session.on('settled', () => this.#uplink.settled());
    session.on('error', (err) => this.#fail(err));
    if (this.#ownEnforcer) {
      const loaded = await this.#ownEnforcer.load();
      if (loaded.state === 'corrupt') this.#log.warn({ event: 'state_corrupt', ...loaded }, 'enforcer state file unreadable: moved aside, starting empty');
    }
    const journal = await this.#commands.load();
    if (journal.error) this.#log.warn({ event: 'ack_journal_unreadable', error: journal.error }, 'ack journal unreadable: starting without it');
    if (this.#store) {
      await this.#store.open();
      this.#path.journalOpened();
    }
    if (this.#mirror) await this.#restoreBundles(this.#mirror);
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
    const resolved = this.#policy.resolve(e.device_id);
    this.#counters.events_observed++;
    if (e.tenant_id !== undefined && resolved && resolved.tenantId !== e.tenant_id) {
      // The directory maps the device to another tenant than the caller says: the cloud would
      // refuse the event (device_tenant_mismatch), so it is refused here, and no topic of the
      // caller's tenant carries another tenant's device.
      const tenant = e.tenant_id;
      queueMicrotask(() => this.#reject(id, e.device_id, tenant, 'device_tenant_mismatch', "the device directory lists this device under another tenant than the event's tenant_id"));
      return { event_id: id, tenant_id: tenant, answered_locally: true, held: false };
    }
    const tenantId = e.tenant_id ?? resolved?.tenantId ?? null;
    if (tenantId !== null) {
      // A caller-given tenant other than the directory's has no profile to decide from here.
      const route = this.#path.usage(tenantId, resolved?.tenantId === tenantId ? resolved.profile : null, id, ts, e);
      return { event_id: id, tenant_id: tenantId, answered_locally: route !== 'awaiting', held: false };
    }
    if (this.#gate.holding) {
      this.#gate.hold({ id, ts, usage: e, heldAt: Date.now() });
      return { event_id: id, tenant_id: null, answered_locally: false, held: true };
    }
    this.#router.unknown(id, ts, e);
    return { event_id: id, tenant_id: null, answered_locally: true, held: false };
  }

  /** Tenants whose policy bundle start() restored from `stateDir` (before any connection). */
  get restoredTenants(): number {
    return this.#restoredTenants;
  }

  /** Tenants whose policy bundle this tower holds (those it serves). */
  knownTenants(): string[] {
    return this.#policy.knownTenants();
  }

  /** The device's tenant, from the device directory. */
  tenantOf(deviceId: string): string | undefined {
    return this.#policy.resolve(deviceId)?.tenantId;
  }

  /**
   * What this tower would decide for the usage from its bundles now (no event is recorded):
   * null when the directory does not list the device or the tower holds no bundle to decide it.
   */
  localDecision(e: Pick<ObservedUsage, 'device_id' | 'app' | 'action'>): { decision: Decision; tenant_id: string; bundle_version: number } | null {
    const r = this.#policy.resolve(e.device_id);
    if (!r) return null;
    const v = this.#policy.decide(r, { id: '00000000000000000000000000', device_id: e.device_id, app: e.app, action: e.action });
    return v.ok ? { decision: v.decision, tenant_id: r.tenantId, bundle_version: v.version } : null;
  }

  /** The policy version of the tenant's bundle at this tower, if it holds one. */
  bundleVersion(tenantId: string): number | undefined {
    return this.#policy.bundleVersion(tenantId);
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
      events_decided_locally: this.#path.stats.decided_locally,
      local_decisions_reconciled: this.#path.stats.reconciled,
      local_disagreements: this.#path.stats.disagreements,
      events_awaiting_cloud: this.#path.awaiting,
      journal_pending_events: this.#journal?.pendingEvents ?? 0,
      journal_bytes: this.#journal?.bytes ?? 0,
      events_replayed: this.#feed?.replayed ?? 0,
      events_evicted: this.#journal?.evictedEvents ?? 0,
      events_corrupt: this.#journal?.corruptEvents ?? 0,
      oversized_packets: this.#session.oversizedPackets,
      blocks_refused: this.#ownEnforcer?.refusedFull ?? 0,
    };
  }

  /**
   * Finishes every pending batch and waits until nothing is buffered or awaiting a PUBACK.
   * Resolves true when drained, false when `timeoutMs` passed first. The connection stays up
   * (decisions for the flushed batches can still arrive).
   */
  async flush(timeoutMs = this.#opts.stopTimeoutMs): Promise<boolean> {
    this.#batcher.flushAll();
    const deadline = Date.now() + timeoutMs;
    // A journal backlog being replayed counts as not flushed yet.
    while (this.#feed?.catchingUp && this.#session.up && Date.now() < deadline) {
      this.#feed.pump();
      await this.#uplink.untilIdle(Math.min(50, Math.max(0, deadline - Date.now())));
    }
    return (await this.#uplink.untilIdle(Math.max(0, deadline - Date.now()))) && !this.#feed?.catchingUp;
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
    const r = this.#policy.resolve(h.usage.device_id);
    if (r) this.#path.usage(r.tenantId, r.profile, h.id, h.ts, h.usage);
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
    this.#feed?.pump();
    void this.#session.publish(topics.status(this.towerId), this.#status('online'), true);
    // Acks an earlier run could not send (this run's wait in the uplink while offline), once.
    this.#commands.replay();
    this.#gate.connected();
    this.#wasOnline = true;
    this.#log.info({ event: 'online' }, 'edge agent online');
    this.emit('connect');
    this.#uplink.settled();
  }

  /**
   * The uplink buffer overflowed. With a journal nothing is lost: its usage batches are dropped
   * from memory and replayed from disk (catching up). Without one the oldest are gone.
   */
  #overflow(dropped: OutboundBatch[]): void {
    if (!this.#store) return this.#recordDropped(dropped, 'overflow');
    this.#store.spill([...dropped, ...this.#uplink.takeUsage()]);
  }

  #recordDropped(dropped: OutboundBatch[], reason: DroppedInfo['reason']): void {
    const events = dropped.reduce((n, b) => n + batchWeight(b), 0);
    this.#counters.events_dropped += events;
    this.#log.warn({ event: 'dropped', events, batches: dropped.length, reason }, 'offline buffer dropped batches');
    this.emit('dropped', { events, batches: dropped.length, reason });
    // Events still waiting for their decision will never get one now (the others were answered).
    const why = reason === 'overflow' ? 'buffer_overflow' : 'shutdown';
    const message = reason === 'overflow' ? 'dropped from the full offline buffer (oldest first)' : 'the agent stopped before the event could be sent';
    for (const item of dropped) {
      if (item.kind !== 'usage') continue;
      for (const ev of item.batch.events) if (this.#path.drop(ev.id)) this.#reject(ev.id, ev.device_id, item.tenantId, why, message);
    }
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
      // Offline with a journal there is nothing to wait for: what is unsent is on disk.
      if (this.#session.up || !this.#journal) await this.#uplink.untilIdle(Math.max(0, deadline - Date.now()));
      // Events still waiting for the cloud get the bundle's decision (or a rejection) now.
      this.#path.stop();
      if (this.#session.up) {
        // The DISCONNECT below suppresses the will [MQTT-3.14.4-3], so say "offline" ourselves.
        const offline = this.#session.publish(topics.status(this.towerId), this.#status('offline'), true);
        await settlesWithin(offline, Math.max(250, deadline - Date.now()));
      }
    }
    this.#state = 'stopped';
    for (const h of this.#gate.close()) this.#reject(h.id, h.usage.device_id, null, 'shutdown', 'the agent stopped before the policy bundles arrived');
    this.#path.stop();
    this.#batcher.flushAll();
    const left = this.#uplink.stop();
    await this.#session.close();
    await this.#commands.settled();
    await this.#ownEnforcer?.close();
    await this.#mirror?.settled();
    // Journalled events stay for the next start; without a journal they are gone.
    if (left.length > 0 && !this.#store) this.#recordDropped(left, 'shutdown');
    await this.#store?.close();
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

  /**
   * Feeds the bundle documents copied by an earlier run through the broker messages' own path
   * (bundle-mirror.ts): the previous heads, then every part, then the last heads, so that an
   * older document completes before a newer head that may miss parts becomes the pending one.
   * What the broker delivers after connecting replaces them as usual.
   */
  async #restoreBundles(mirror: BundleMirror): Promise<void> {
    let loaded: Awaited<ReturnType<BundleMirror['load']>>;
    try {
      loaded = await mirror.load();
    } catch (err) {
      this.#log.warn({ event: 'bundle_copy_unreadable', error: (err as Error).message }, 'bundle documents under --state-dir unreadable: starting without them');
      return;
    }
    const isHead = (topic: string): boolean => {
      const kind = parseTopic(topic)?.kind;
      return kind === 'policy' || kind === 'directory';
    };
    const previousHeads = loaded.messages.filter((m) => m.previous && isHead(m.topic));
    const parts = loaded.messages.filter((m) => !isHead(m.topic));
    const lastHeads = loaded.messages.filter((m) => !m.previous && isHead(m.topic));
    const invalidBefore = this.#counters.invalid_messages;
    this.#restoring = true;
    try {
      for (const m of [...previousHeads, ...parts, ...lastHeads]) this.#downlink.message(m.topic, m.payload);
    } finally {
      this.#restoring = false;
    }
    this.#restoredTenants = this.#policy.knownTenants().length;
    if (loaded.messages.length > 0 || loaded.unreadable > 0) {
      this.#log.info(
        {
          event: 'bundles_restored',
          messages: loaded.messages.length,
          bytes: mirror.bytes,
          unreadable: loaded.unreadable,
          invalid: this.#counters.invalid_messages - invalidBefore,
          tenants: this.#policy.knownTenants().length,
          directory_devices: this.#policy.directorySize,
        },
        'policy bundles and device directory restored from --state-dir (replaced by what the broker sends once connected)',
      );
    }
  }

  #status(state: TowerStatus['state']): Buffer {
    return towerStatusPayload(state, this.stats(), this.#newId, this.#opts.now(), this.#opts.agentVersion);
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#log.warn({ err }, 'edge agent error');
  }
}
