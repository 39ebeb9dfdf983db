/**
 * Accounting sessions at a tower: what an ingest plugin (RADIUS accounting, RFC 2866) or a tower
 * itself reports about device sessions and the bytes they moved. Same rules as every payload
 * (payloads.ts): JSON, `v`, an id; each record carries its own deduplication key, because the
 * protocols that produce them retransmit (RADIUS resends an unanswered Accounting-Request, with a
 * new Identifier when Acct-Delay-Time changes [RFC 2866 §5.2]) and a resend must be stored once.
 */
import { z } from 'zod';
import { EpochMs, SCHEMA_VERSION, TopicId, Ulid } from './payloads.js';

export const MAX_RECORDS_PER_SESSION_BATCH = 1000;

/** Octet counters with their Gigawords folded in stay below 2^53 for any realistic session. */
const Octets = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const AccountingStatusSchema = z.enum(['start', 'interim', 'stop']);
export type AccountingStatus = z.infer<typeof AccountingStatusSchema>;

export const AccountingRecordSchema = z.object({
  /** The same accounting event always carries the same key (its retransmissions included). */
  key: z.string().min(1).max(512),
  /** The session as the source names it (RADIUS Acct-Session-Id): unique per tower and `nas`. */
  session_id: z.string().min(1).max(253),
  /**
   * The equipment that names the session (the RADIUS client's id): two NASes of one tower may
   * number their sessions alike, so a session is one per (tower, nas, session_id).
   */
  nas: z.string().min(1).max(64).optional(),
  status: AccountingStatusSchema,
  device_id: TopicId,
  /** When the event happened at the source (epoch ms). */
  ts: EpochMs,
  /** Cumulative for the session so far (counters only grow within a session). */
  input_octets: Octets,
  output_octets: Octets,
  session_time_s: z.number().int().nonnegative().optional(),
  terminate_cause: z.string().max(64).optional(),
});
export type AccountingRecord = z.infer<typeof AccountingRecordSchema>;

export const SessionBatchSchema = z
  .object({
    v: z.literal(SCHEMA_VERSION),
    id: Ulid,
    sent_at: EpochMs,
    /** The ingest plugin (or agent) that produced it, e.g. 'radius'. */
    source: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/),
    records: z.array(AccountingRecordSchema).max(MAX_RECORDS_PER_SESSION_BATCH),
    /**
     * The equipment restarted or stops accounting (RADIUS Accounting-On/Off [RFC 2866 §5.1]):
     * every session still active at the tower and not updated after `at` has ended; with `nas`,
     * only the sessions that equipment named (another NAS of the tower did not restart).
     */
    tower_reset: z.object({ at: EpochMs, reason: z.enum(['accounting-on', 'accounting-off']), nas: z.string().min(1).max(64).optional() }).optional(),
  })
  .refine((b) => b.records.length > 0 || b.tower_reset !== undefined, { message: 'records or tower_reset', path: ['records'] });
export type SessionBatch = z.infer<typeof SessionBatchSchema>;
