/** EdgeAgent option defaults and the retained status payload it publishes. */
import type { IdFactory } from '../shared/ids.js';
import { encodePayload, SCHEMA_VERSION, type TowerStatus } from '../shared/mqtt/payloads.js';
import type { AgentStats, EdgeAgentOptions } from './agent-types.js';
import { DEFAULT_MAX_INFLIGHT, DEFAULT_PUBLISH_BURST, DEFAULT_PUBLISH_RATE_PER_S } from './publish-pacer.js';
import { DEFAULT_MAX_PACKET_BYTES } from './tower-session.js';

export type ResolvedAgentOptions = Required<Omit<EdgeAgentOptions, 'agentVersion' | 'logger' | 'enforcer' | 'stateDir' | 'ca'>> & {
  agentVersion: string | undefined;
};

export function resolveAgentOptions(opts: EdgeAgentOptions): ResolvedAgentOptions {
  const bufferMaxEvents = opts.bufferMaxEvents ?? 50_000;
  // Every batch, live or replayed, passes through the buffer: with no room at all nothing is ever sent.
  if (!Number.isInteger(bufferMaxEvents) || bufferMaxEvents < 1) throw new Error(`bufferMaxEvents must be a positive integer, got ${bufferMaxEvents}`);
  return {
    url: opts.url,
    towerId: opts.towerId,
    password: opts.password,
    agentVersion: opts.agentVersion,
    // A batch larger than the buffer would be dropped whole on arrival, even online (and with a
    // journal spilled and replayed, overflowing again): batches never exceed the buffer.
    batchMaxEvents: Math.min(opts.batchMaxEvents ?? 100, bufferMaxEvents),
    batchMaxDelayMs: opts.batchMaxDelayMs ?? 50,
    discoveryMaxDelayMs: opts.discoveryMaxDelayMs ?? 1000,
    bufferMaxEvents,
    publishRatePerS: opts.publishRatePerS ?? DEFAULT_PUBLISH_RATE_PER_S,
    publishBurst: opts.publishBurst ?? DEFAULT_PUBLISH_BURST,
    maxInflight: opts.maxInflight ?? DEFAULT_MAX_INFLIGHT,
    maxPacketBytes: opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES,
    reconnectMinMs: opts.reconnectMinMs ?? 250,
    reconnectMaxMs: opts.reconnectMaxMs ?? 10_000,
    connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    stopTimeoutMs: opts.stopTimeoutMs ?? 5_000,
    bundleSettleMs: opts.bundleSettleMs ?? 300,
    bundleWaitMs: opts.bundleWaitMs ?? 10_000,
    unknownDeviceEffect: opts.unknownDeviceEffect ?? 'allow',
    localDecisionDeadlineMs: opts.localDecisionDeadlineMs ?? 1000,
    journalMaxBytes: opts.journalMaxBytes ?? 1024 ** 3,
    journalFsyncMs: opts.journalFsyncMs ?? 1000,
    commandCacheSize: opts.commandCacheSize ?? 1024,
    now: opts.now ?? Date.now,
    random: opts.random ?? Math.random,
  };
}

/** The retained `towers/{id}/status` payload, with the agent's counters. */
export function towerStatusPayload(state: TowerStatus['state'], s: AgentStats, newId: IdFactory, ts: number, agentVersion: string | undefined): Buffer {
  const status: TowerStatus = {
    v: SCHEMA_VERSION,
    id: newId(),
    state,
    ts,
    counters: {
      events_observed: s.events_observed,
      batches_sent: s.batches_sent,
      decisions_received: s.decisions_received,
      events_dropped: s.events_dropped,
      buffered_events: s.buffered_events,
      commands_applied: s.commands_applied,
      events_decided_locally: s.events_decided_locally,
      events_evicted: s.events_evicted,
      journal_pending_events: s.journal_pending_events,
    },
  };
  if (agentVersion !== undefined) status.agent_version = agentVersion;
  return encodePayload(status);
}
