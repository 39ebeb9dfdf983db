/**
 * Uplinks through the queue (distributed mode): a broker node packs the uplink messages it
 * accepted within a few milliseconds into one job on the 'uplinks' queue, and a worker unpacks
 * them into the same UplinkMessage the embedded pipeline takes. One job per message would cap
 * ingest near BullMQ's few tens of thousands of jobs/s on one Redis; micro-batches do not.
 * Payloads travel base64-encoded: a tower may send any bytes, and the worker must see exactly
 * them (to validate and, if bad, drop and count them).
 */
import { z } from 'zod';
import { parseTopic } from './topics.js';
import { isUplinkTopic, type UplinkMessage } from './transport.js';

export const UPLINK_QUEUE = 'uplinks';

export const UplinkJobSchema = z.object({
  messages: z
    .array(
      z.object({
        topic: z.string().max(512),
        tower_id: z.string().max(64),
        payload_b64: z.string(),
        received_at: z.number().int().nonnegative(),
      }),
    )
    .min(1)
    .max(5000),
});
export type UplinkJob = z.infer<typeof UplinkJobSchema>;

export function packUplink(m: UplinkMessage): UplinkJob['messages'][number] {
  return { topic: m.topic, tower_id: m.tower_id, payload_b64: m.payload.toString('base64'), received_at: m.received_at };
}

/**
 * Back to an UplinkMessage; null when the topic is not an uplink of the tower that published it
 * (the broker only packs those, so this means the job was forged or corrupted).
 */
export function unpackUplink(m: UplinkJob['messages'][number]): UplinkMessage | null {
  const parsed = parseTopic(m.topic);
  if (!isUplinkTopic(parsed) || parsed.towerId !== m.tower_id) return null;
  return { topic: m.topic, parsed, payload: Buffer.from(m.payload_b64, 'base64'), tower_id: m.tower_id, received_at: m.received_at };
}
