/**
 * The ports between the broker and the pipeline. In embedded mode the broker hands uplink
 * messages straight to the workers' sink and the workers publish through the broker in-process;
 * in distributed mode the same interfaces are backed by a queue and an MQTT service connection.
 */
import type { ParsedTopic } from './topics.js';

/** The uplink subset of ParsedTopic: what a tower publishes and the cloud ingests. */
export type UplinkTopic =
  | { kind: 'usage' | 'acks'; tenantId: string; towerId: string }
  | { kind: 'discovery' | 'status' | 'sessions'; towerId: string };

export function isUplinkTopic(p: ParsedTopic | null): p is UplinkTopic {
  return p !== null && (p.kind === 'usage' || p.kind === 'acks' || p.kind === 'discovery' || p.kind === 'status' || p.kind === 'sessions');
}

export interface UplinkMessage {
  topic: string;
  parsed: UplinkTopic;
  payload: Buffer;
  /**
   * Tower it is about, as authenticated by whoever produced it: the broker (the tower's MQTT
   * login) or an ingest plugin (shared/ingest/plugin.ts: e.g. the NAS a RADIUS secret belongs to).
   * Always equals parsed.towerId.
   */
  tower_id: string;
  received_at: number;
}

/**
 * Accepts an uplink message. The broker awaits `accept` before it lets the PUBLISH through,
 * so a QoS 1 PUBACK means the message was processed (embedded) or durably queued (distributed).
 * `accept` must not reject for bad payloads: those are dropped and counted by the sink.
 */
export interface UplinkSink {
  accept(msg: UplinkMessage): Promise<void>;
}

/** Publishes cloud → tower messages (decisions, commands, retained policy bundles). */
export interface Downlink {
  publish(topic: string, payload: Buffer, opts?: { retain?: boolean }): Promise<void>;
}
