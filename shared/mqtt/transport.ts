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
  /** QoS of the tower's own PUBLISH this came from (set by the broker; absent for ingest plugins). */
  publish_qos?: number;
  /**
   * Set by the embedded composition only (cli/embedded.ts): this is the tower's own QoS 1 PUBLISH,
   * whose PUBACK the broker writes on the same connection only after the message is processed —
   * so the answer is written to that connection before the PUBACK, and a tower that does not get
   * the PUBACK sends the message again [MQTT-4.4.0-1] and is answered again (usage-processor.ts).
   * Never set where the acknowledgement means "queued" (distributed) or comes from elsewhere
   * (ingest plugins).
   */
  acked_after_answer?: true;
  /**
   * Set by the broker on a connected tower's QoS 1 PUBLISH: writes a QoS 0 message (the answer)
   * to the connection this message came on, at once, ahead of the PUBACK — in the same write when
   * the PUBACK follows within the turn — and to other subscribers through the broker. Returns
   * false when it cannot (the tower is not subscribed to `topic`, its connection is backed up or
   * gone, or this message was replied to already): publish through the Downlink instead. Lost
   * where messages cross a process boundary (a queue), where there is no connection to answer on.
   */
  reply?: (topic: string, payload: Buffer) => boolean;
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
  /**
   * QoS 1 (queued for the tower's session until it PUBACKs) unless `qos: 0`: written to the
   * tower's live connections only, for an answer the tower gets again by resending (see
   * UplinkMessage.acked_after_answer).
   */
  publish(topic: string, payload: Buffer, opts?: DownlinkOptions): Promise<void>;
  /**
   * The topics one level below the downlink topic `prefix` (`<prefix>/+`) that hold a retained
   * message now, where the broker's retained store can be read (the embedded broker's own
   * downlink; a worker's, from the broker nodes' Redis index). The bundle publisher asks it once
   * per document after it starts publishing, to clear parts an earlier publisher retained beyond
   * the current part count.
   */
  retainedUnder?(prefix: string): Promise<string[]>;
  /**
   * Every retained topic of the edge documents, whichever tenant or tower (per-tower bundles,
   * legacy bundles, directory slices, and their parts), where the broker's retained store can be
   * read as for `retainedUnder`. The bundle publisher asks it once after it starts publishing, to
   * clear the documents of tenants that no longer exist.
   */
  retainedEdgeDocuments?(): Promise<string[]>;
}

export interface DownlinkOptions {
  retain?: boolean;
  qos?: 0 | 1;
}
