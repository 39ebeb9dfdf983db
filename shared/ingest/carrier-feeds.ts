/**
 * Applies a carrier feed, record by record, for both transports (REST: api/routes/carrier-feeds.ts;
 * MQTT: the broker, topics carrierTowers / carrierDevices). Each record is checked on its own and
 * applied in its own transaction, so a malformed or forbidden record is refused with its reason
 * and never stops, nor half-applies, the others; applying the same feed again changes nothing.
 *
 * A feed is applied under the credential that pushed it, and only while it stands: `authority` is
 * asked before every record (shared/auth/bounded-recheck.ts), and a revocation cuts the feed there
 * (FeedCut, carrying what was applied before the cut, which callers still announce and report).
 */
import { z } from 'zod';
import {
  DeviceFeedRecordSchema,
  TowerFeedRecordSchema,
  type FeedOutcome,
  type FeedRecordResult,
  type FeedResult,
} from '../mqtt/carrier-payloads.js';
import type { Bus } from '../bus.js';
import type { Store } from '../store/port.js';

export type FeedKind = 'towers' | 'devices';

function issueText(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join('.') || '(record)'}: ${first.message}` : 'invalid record';
}

function idOf(raw: unknown, field: string): string | null {
  const v = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[field] : undefined;
  return typeof v === 'string' && v.length <= 128 ? v : null;
}

/** Whether the pushing credential still stands; BoundedRecheck is one. */
export interface FeedAuthority {
  /** Awaited before each record: false (revoked) cuts the feed at that record. */
  stillValid(): Promise<boolean>;
  /**
   * Asked synchronously right before each record is applied, with no await between it and the
   * store call: a revocation announced while `stillValid` was awaited still cuts at this record.
   */
  readonly revoked: boolean;
}

/**
 * The pushing credential was revoked while its feed was being applied: records from `at` on were
 * not applied (nor looked at); `applied` is the result of the records before.
 */
export class FeedCut extends Error {
  constructor(
    readonly applied: FeedResult,
    readonly at: number,
    readonly total: number,
  ) {
    super(`carrier credential revoked while its feed was being applied: the ${at} records before index ${at} were applied, the ${total - at} from it on were not`);
    this.name = 'FeedCut';
  }
}

export async function applyCarrierFeed(
  store: Pick<Store, 'carrierFeeds'>,
  input: { carrierId: string; kind: FeedKind; feedId: string; records: readonly unknown[]; now: number; authority?: FeedAuthority },
): Promise<FeedResult> {
  const results: FeedRecordResult[] = [];
  const counts: Record<FeedOutcome, number> = { created: 0, updated: 0, unchanged: 0, retired: 0, refused: 0 };
  const idField = input.kind === 'towers' ? 'tower_id' : 'device_id';
  const { authority } = input;
  for (const [index, raw] of input.records.entries()) {
    // The last check is synchronous and directly before the store call (see FeedAuthority.revoked).
    if (authority && (!(await authority.stillValid()) || authority.revoked)) {
      throw new FeedCut({ v: 1, feed_id: input.feedId, kind: input.kind, counts, results }, index, input.records.length);
    }
    const id = idOf(raw, idField);
    let applied: { outcome: FeedOutcome; reason?: string };
    if (input.kind === 'towers') {
      const parsed = TowerFeedRecordSchema.safeParse(raw);
      applied = parsed.success
        ? await store.carrierFeeds.applyTower(input.carrierId, parsed.data, input.now)
        : { outcome: 'refused', reason: issueText(parsed.error) };
    } else {
      const parsed = DeviceFeedRecordSchema.safeParse(raw);
      applied = parsed.success
        ? await store.carrierFeeds.applyDevice(input.carrierId, parsed.data, input.now)
        : { outcome: 'refused', reason: issueText(parsed.error) };
    }
    counts[applied.outcome]++;
    results.push({ index, id, outcome: applied.outcome, ...(applied.reason !== undefined && { reason: applied.reason }) });
  }
  return { v: 1, feed_id: input.feedId, kind: input.kind, counts, results };
}

/**
 * Tells every broker which towers a feed retired, so their live sessions close at once as a
 * revoked credential's do: the store refuses the next CONNECT, but an open session is never asked
 * again. A replayed feed answers 'unchanged' and announces nothing (nothing is open to close).
 */
export function announceRetired(bus: Pick<Bus, 'publish'>, result: FeedResult): void {
  for (const r of result.results) if (r.outcome === 'retired' && r.id !== null) bus.publish('tower.retired', { tower_id: r.id });
}
