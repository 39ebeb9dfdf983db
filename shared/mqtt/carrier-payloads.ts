/**
 * What carriers push about their infrastructure and their subscribers' devices, over MQTT
 * (topics.ts: carrierTowers, carrierDevices) and over REST (POST /carrier-feeds/…), and the
 * result they get back. A feed is a list of records checked ONE BY ONE: the envelope only bounds
 * the list, so one malformed record is refused with its reason while the others are applied.
 */
import { z } from 'zod';
import { EpochMs, SCHEMA_VERSION, TopicId, Ulid } from './payloads.js';
import { humanName } from '../schemas/names.js';

export const MAX_FEED_RECORDS = 5000;

const Lat = z.number().min(-90).max(90);
const Lon = z.number().min(-180).max(180);
/** A closed ring is not required: the first point is implied to follow the last. */
const Polygon = z.array(z.tuple([Lon, Lat])).min(3).max(500).describe('coverage area as [lon, lat] points (GeoJSON order)');

export const TowerCoverageSchema = z.union([
  z.strictObject({ radius_m: z.number().positive().max(100_000) }),
  z.strictObject({ polygon: Polygon }),
]);
export type TowerCoverage = z.infer<typeof TowerCoverageSchema>;

export const TowerFeedRecordSchema = z.discriminatedUnion('op', [
  z
    .strictObject({
      /** Creates the tower, or updates it when this carrier already manages it. */
      op: z.literal('upsert'),
      tower_id: TopicId,
      name: humanName(200),
      lat: Lat.optional(),
      lon: Lon.optional(),
      coverage: TowerCoverageSchema.nullable().optional(),
      /** Every carrier that serves the tower (ids); the links are set to exactly this list. */
      carriers: z.array(z.string().min(1).max(128)).max(32).optional(),
    })
    .refine((r) => (r.lat === undefined) === (r.lon === undefined), { message: 'give both lat and lon, or neither', path: ['lat'] }),
  z.strictObject({ op: z.literal('retire'), tower_id: TopicId }),
]);
export type TowerFeedRecord = z.infer<typeof TowerFeedRecordSchema>;

export const DEVICE_TYPES = ['phone', 'tablet', 'laptop', 'router', 'iot', 'wearable', 'other'] as const;

export const DeviceFeedRecordSchema = z
  .strictObject({
    device_id: TopicId,
    os: z.string().trim().min(1).max(100).nullable().optional(),
    os_version: z.string().trim().min(1).max(50).nullable().optional(),
    model: z.string().trim().min(1).max(100).nullable().optional(),
    device_type: z.enum(DEVICE_TYPES).nullable().optional(),
  })
  .refine((r) => r.os !== undefined || r.os_version !== undefined || r.model !== undefined || r.device_type !== undefined, {
    message: 'give at least one of os, os_version, model, device_type',
  });
export type DeviceFeedRecord = z.infer<typeof DeviceFeedRecordSchema>;

/** The envelope: records stay unknown here and are checked one by one (see the header). */
const feedEnvelope = {
  v: z.literal(SCHEMA_VERSION),
  id: Ulid,
  sent_at: EpochMs.optional(),
  records: z.array(z.unknown()).min(1).max(MAX_FEED_RECORDS),
};
export const CarrierTowerFeedSchema = z.object(feedEnvelope);
export const CarrierDeviceFeedSchema = z.object(feedEnvelope);
export type CarrierFeed = z.infer<typeof CarrierTowerFeedSchema>;

export const FeedOutcomeSchema = z.enum(['created', 'updated', 'unchanged', 'retired', 'refused']);
export type FeedOutcome = z.infer<typeof FeedOutcomeSchema>;

export const FeedRecordResultSchema = z.object({
  /** Position of the record in the feed (0-based). */
  index: z.number().int().nonnegative(),
  /** tower_id or device_id of the record, when it had a readable one. */
  id: z.string().nullable(),
  outcome: FeedOutcomeSchema,
  /** Why a record was refused (field and message). */
  reason: z.string().optional(),
});
export type FeedRecordResult = z.infer<typeof FeedRecordResultSchema>;

export const FeedResultSchema = z.object({
  v: z.literal(SCHEMA_VERSION),
  /** The feed this answers: one result per feed message. */
  feed_id: Ulid,
  kind: z.enum(['towers', 'devices']),
  counts: z.record(FeedOutcomeSchema, z.number().int().nonnegative()),
  results: z.array(FeedRecordResultSchema),
});
export type FeedResult = z.infer<typeof FeedResultSchema>;
