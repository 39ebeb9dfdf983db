/** The public shapes of EdgeAgent: options, stats and the typed events it emits. */
import type { Logger } from '../shared/logger.js';
import type { Command, CommandAck, Decision, DecisionBatch, PolicyBundle, TowerCounters } from '../shared/mqtt/payloads.js';
import type { ActiveBlock, LiftCause } from './block-table.js';
import type { BlockStatus, Enforcer } from './enforcer.js';
import type { OutboundBatch } from './offline-buffer.js';

export interface EdgeAgentOptions {
  /** mqtt://127.0.0.1:1883 or ws://127.0.0.1:8883/mqtt */
  url: string;
  towerId: string;
  password: string;
  agentVersion?: string;
  batchMaxEvents?: number;
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
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Time allowed for a CONNACK before the attempt counts as failed. */
  connectTimeoutMs?: number;
  /** Upper bound for stop()/flush() waiting on PUBACKs. */
  stopTimeoutMs?: number;
  /** Recent command ids remembered for deduplication. */
  commandCacheSize?: number;
  enforcer?: Enforcer;
  /**
   * Without `enforcer`: keep remediation state in `<stateDir>/enforcer-<towerId>.json` with a
   * PersistentEnforcer (loaded by start(), closed by stop()), so blocks survive a restart.
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
  /** The unit of decision. */
  event_id: string;
  /** null: unknown device, reported for discovery and never decided. */
  tenant_id: string | null;
  /** A block was in force: the 'decision' (deny, reason 'blocked') follows in a microtask. */
  answered_locally: boolean;
}

/**
 * Where a 'decision' came from. 'cloud': a DecisionBatch from the policy workers. 'local': the
 * agent denied the event at once because the enforcer reported a block; the event still went to
 * the cloud for the record, and its cloud decision is not emitted again.
 */
export type DecisionOrigin = { source: 'cloud'; batch: DecisionBatch } | { source: 'local'; block: BlockStatus };

export interface AgentStats extends TowerCounters {
  /** Events denied at the edge from an active block (their cloud decision is not re-emitted). */
  events_answered_locally: number;
  /** Downlink messages dropped because they failed validation. */
  invalid_messages: number;
  /** DecisionBatches ignored because their id was already processed (QoS 1 redelivery). */
  redeliveries_ignored: number;
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
  reconnecting: [info: { attempt: number; delayMs: number }];
  bundle: [tenantId: string, bundle: PolicyBundle];
  bundleRemoved: [tenantId: string];
  decision: [tenantId: string, decision: Decision, origin: DecisionOrigin];
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
