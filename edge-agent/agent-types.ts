/** The public shapes of EdgeAgent: options, stats and the typed events it emits. */
import type { Logger } from '../shared/logger.js';
import type { Command, CommandAck, Decision, DecisionBatch, Effect, LocalDecision, TowerCounters } from '../shared/mqtt/payloads.js';
import type { ActiveBlock, LiftCause } from './block-table.js';
import type { BundleInfo } from './edge-policy.js';
import type { BlockStatus, Enforcer } from './enforcer.js';
import type { OutboundBatch } from './offline-buffer.js';

export interface EdgeAgentOptions {
  /** mqtt://host:1883, mqtts://host:8883, ws://host:8083 or wss://…; several mqtt(s):// comma-separated for failover. */
  url: string;
  /** PEM CA certificate(s) to trust for mqtts:// and wss:// (a private CA); default: the system's. */
  ca?: Buffer;
  towerId: string;
  password: string;
  agentVersion?: string;
  batchMaxEvents?: number;
  /**
   * While a batch of the tenant awaits its answer, the longest the next one accumulates before it
   * goes anyway (default 50 ms). With nothing awaiting an answer an event goes out at once.
   */
  batchMaxDelayMs?: number;
  /** Window over which unknown devices are aggregated into one DiscoveryBatch. */
  discoveryMaxDelayMs?: number;
  bufferMaxEvents?: number;
  /**
   * Uplink batches published per second at most (default 500), with up to `publishBurst`
   * (default 200) at once: keep both well under the broker's --mqtt-publish-rate/-burst
   * (default 1,000/s, 2,000), which disconnects a client that exceeds them.
   */
  publishRatePerS?: number;
  publishBurst?: number;
  /** Uplink publishes awaiting their PUBACK at most (default 100); more wait in the buffer. */
  maxInflight?: number;
  /**
   * Largest packet taken from the broker (default 16 MiB, far above the broker's payload limit):
   * a larger one closes the connection (counted in `oversized_packets`), and the agent reconnects.
   */
  maxPacketBytes?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Time allowed for a CONNACK before the attempt counts as failed. */
  connectTimeoutMs?: number;
  /** Upper bound for stop()/flush() waiting on PUBACKs (and stop() on commands being applied). */
  stopTimeoutMs?: number;
  /**
   * The retained policy bundles arrive right after the SUBACK; they are taken as complete once
   * none has arrived for this long (default 300 ms). Until then an event whose device no bundle
   * maps is held, not reported as an unknown device (whenReady() resolves after this).
   */
  bundleSettleMs?: number;
  /**
   * Longest an event waits for the bundles (default 10 s: e.g. the broker is unreachable at
   * start); then it is answered with a 'rejected' event, reason 'no_policy_bundle'.
   */
  bundleWaitMs?: number;
  /** The effect given to a device no bundle maps to a tenant (reason 'unknown_device'). Default allow. */
  unknownDeviceEffect?: Effect;
  /**
   * Longest wait for the cloud's decision (default 1,000 ms): past it, the agent decides the event
   * itself from the tenant's bundle (a 'local' decision) and the cloud's answer, when it comes,
   * reconciles it. 0: never by deadline (still locally when the uplink is down).
   */
  localDecisionDeadlineMs?: number;
  /** With `stateDir`: the journal's disk budget in bytes (default 1 GiB); oldest events evicted beyond it. */
  journalMaxBytes?: number;
  /** With `stateDir`: how often the journal is fdatasync'ed (ms, default 1,000; 0 = every write). */
  journalFsyncMs?: number;
  /** Recent command ids remembered for deduplication. */
  commandCacheSize?: number;
  enforcer?: Enforcer;
  /**
   * Without `enforcer`: keep remediation state in `<stateDir>/enforcer-<towerId>.json` with a
   * PersistentEnforcer (loaded by start(), closed by stop()), so blocks survive a restart.
   * Always: command acks the broker has not acknowledged yet are kept in
   * `<stateDir>/acks-<towerId>.json` and sent at the next start, and usage events in the journal
   * `<stateDir>/journal-<towerId>/` until the broker acknowledges them (journal/journal.ts), so an
   * agent killed while offline loses none of them; and the tower's bundle and directory documents
   * are copied to `<stateDir>/bundles-<towerId>/` (bundle-mirror.ts), so an agent restarted while
   * the broker is unreachable decides locally from the bundles it held.
   */
  stateDir?: string;
  /** Clock for timestamps only; timers always use setTimeout. */
  now?: () => number;
  /** Jitter source for reconnect backoff. */
  random?: () => number;
  logger?: Logger;
}

export interface ObservedUsage {
  device_id: string;
  app: string;
  action: string;
  ts?: number;
  bytes?: number;
  /** Skips bundle-based resolution when the caller already knows the tenant. */
  tenant_id?: string;
}

export interface ObserveResult {
  /** The unit of decision: exactly one 'decision' or 'rejected' event follows for it. */
  event_id: string;
  /**
   * The tenant whose usage this is, or null: an unknown device (answered at once with the
   * unknown-device default and reported for discovery), or one still held (see `held`).
   */
  tenant_id: string | null;
  /**
   * Decided at the edge without the cloud round trip: a block was in force (deny, reason
   * 'blocked'), the device is unknown (reason 'unknown_device'), or the uplink is down and the
   * tenant's bundle decided it. The 'decision' (or a 'rejected') follows in a microtask.
   */
  answered_locally: boolean;
  /** Held until the retained policy bundles have arrived (see EdgeAgentOptions.bundleSettleMs). */
  held: boolean;
}

/**
 * Where a 'decision' came from. 'cloud': a DecisionBatch from the policy workers. 'local': the
 * agent denied the event at once because the enforcer reported a block; the event still went to
 * the cloud for the record, and its cloud decision is not emitted again.
 */
export type DecisionOrigin =
  | { source: 'cloud'; batch: DecisionBatch }
  | { source: 'local'; block: BlockStatus }
  /**
   * Decided by the agent from the tenant's policy bundle of this version: the uplink was down, or
   * the cloud's answer was later than the deadline. The cloud decides it again (reconciled).
   */
  | { source: 'local'; bundle_version: number }
  /** No bundle maps the device to a tenant: the agent's unknown-device default (tenant null). */
  | { source: 'local'; unknown_device: true };

/**
 * Why an observed event gets no decision. Cloud refusals: device_tenant_mismatch,
 * plan_rate_limited. At the edge: no_policy_bundle (the bundles did not arrive in time, or the
 * uplink is down and the tower holds no bundle of the device's tenant yet), buffer_overflow
 * (dropped from the full offline buffer), shutdown (the agent stopped first).
 */
export type RejectionReason = 'device_tenant_mismatch' | 'plan_rate_limited' | 'no_policy_bundle' | 'buffer_overflow' | 'shutdown';

export interface Rejection {
  event_id: string;
  device_id: string | null;
  tenant_id: string | null;
  reason: RejectionReason;
  message: string;
}

export interface AgentStats extends TowerCounters {
  /** Events waiting for the policy bundles now. */
  events_held: number;
  /** Events answered with a rejection (cloud refusals and edge rejections). */
  events_rejected: number;
  /** Events of devices no bundle maps, answered with the unknown-device default. */
  events_unknown_device: number;
  /** Command acks not yet acknowledged by the broker (journalled with stateDir). */
  acks_pending: number;
  /** Events denied at the edge from an active block (their cloud decision is not re-emitted). */
  events_answered_locally: number;
  /** Downlink messages dropped because they failed validation. */
  invalid_messages: number;
  /** Events decided from the tenant's bundle (uplink down, or the cloud's answer late). */
  events_decided_locally: number;
  /** Local decisions whose cloud decision arrived, and how many of those differ in effect. */
  local_decisions_reconciled: number;
  local_disagreements: number;
  /** Events waiting for the cloud's answer now. */
  events_awaiting_cloud: number;
  /** With a journal: events not yet acknowledged by the broker, its bytes on disk, events read back and replayed. */
  journal_pending_events: number;
  journal_bytes: number;
  events_replayed: number;
  /** Events the journal's disk budget evicted before they reached the cloud (also in events_dropped). */
  events_evicted: number;
  /** Journalled events found damaged on disk (a record that does not read back, a segment cut short), never sent. */
  events_corrupt: number;
  /** DecisionBatches ignored because their id was already processed (QoS 1 redelivery). */
  redeliveries_ignored: number;
  /** Connections closed because the broker sent a packet larger than maxPacketBytes. */
  oversized_packets: number;
  /** With stateDir: blocks and throttles refused because the most allowed were in force (DEFAULT_MAX_BLOCKS). */
  blocks_refused: number;
}

/** The cloud's decision of an event the agent had answered locally (or an earlier run had journalled). */
export interface Reconciliation {
  event_id: string;
  tenant_id: string;
  device_id: string;
  /** The agent's decision; null when it made none (no bundle, or an earlier run's event sent before its answer). */
  local: LocalDecision | null;
  cloud: Decision;
  disagreement: boolean;
  /** Journalled by an earlier run of the agent (replayed at this start). */
  previous_run: boolean;
}

export interface DroppedInfo {
  events: number;
  batches: number;
  reason: 'overflow' | 'shutdown';
}

export interface EdgeAgentEvents {
  /** Online: subscribed, offline buffer replayed, retained online status published. */
  connect: [];
  /** The connection was lost while running (abruptly, or by simulateOutage); not on stop(). */
  offline: [];
  /** `error`: why the connection ended or the attempt failed, when known. */
  reconnecting: [info: { attempt: number; delayMs: number; error?: string }];
  /** The retained policy bundles have arrived (see bundleSettleMs); held events are released. */
  ready: [];
  /** A policy bundle of a tenant this tower serves (tenantId), or a directory slice (null), was applied. */
  bundle: [tenantId: string | null, info: BundleInfo];
  /** The cloud's decision of an event answered locally: compared with the local one. */
  reconciled: [r: Reconciliation];
  /** The journal's disk budget evicted its oldest events (never sent). */
  evicted: [info: { events: number; bytes: number }];
  /** tenantId null: an unknown device (origin `{ source: 'local', unknown_device: true }`). */
  decision: [tenantId: string | null, decision: Decision, origin: DecisionOrigin];
  /** An observed event that gets no decision, and why. */
  rejected: [rejection: Rejection];
  /** stop() began: what it now waits for (bounded by stopTimeoutMs). */
  stopping: [info: { commands_in_flight: number; events_held: number; buffered_events: number }];
  /** The whole cloud batch, including decisions of events already answered locally. */
  decisionBatch: [tenantId: string, batch: DecisionBatch];
  command: [tenantId: string, command: Command, ack: CommandAck, duplicate: boolean];
  /** A hold of the agent's own PersistentEnforcer (option `stateDir`) ended. */
  blockLifted: [block: ActiveBlock, cause: LiftCause];
  /** A batch was handed to the connection (live, or replayed from the buffer). */
  sent: [item: OutboundBatch];
  invalid: [info: { topic: string; error: string }];
  dropped: [info: DroppedInfo];
  error: [err: Error];
}
