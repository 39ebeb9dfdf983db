/**
 * The bulk REST side of carrier feeds (the MQTT side is the broker's): a carrier, authenticated
 * with its own credential (`Authorization: Bearer epc_…`), pushes tower or device metadata. Each
 * record is applied or refused on its own (shared/ingest/carrier-feeds.ts); the answer lists every
 * record's outcome, so a carrier can fix and resend only what was refused. Resending a whole feed
 * changes nothing ('unchanged').
 *
 * A push is applied only while its credential stands. A revocation cuts a push in progress at its
 * next record (401, naming how many records were applied before the cut; those are audited and
 * their retirements announced; the rest are counted in `carrier_feed_records_total{outcome="cut"}`):
 * - revoked through this process: the bus announcement reaches the push before the revocation is
 *   answered, and is checked right before each record is applied, so no record is applied after
 *   the revocation's 204 (on SQLite, where a record's write is synchronous, strictly; on MongoDB a
 *   record whose write had already begun may still land);
 * - revoked through another API process: the same announcement over the Redis bus, and, since
 *   pub/sub is at most once, the credential is read again from the store at least every
 *   second (by the API clock) or every 250 records, whichever comes first (shared/auth/bounded-recheck.ts).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { carrierCredentialActive } from '../../shared/auth/carrier-keys.js';
import { BoundedRecheck, DEFAULT_RECHECK } from '../../shared/auth/bounded-recheck.js';
import { FeedCut, announceRetired, applyCarrierFeed, type FeedKind } from '../../shared/ingest/carrier-feeds.js';
import { FeedResultSchema, MAX_FEED_RECORDS } from '../../shared/mqtt/carrier-payloads.js';
import { Ulid } from '../../shared/mqtt/payloads.js';
import { audit } from '../audit.js';
import { principalOf } from '../auth/guard.js';
import { createError } from '../../shared/errors.js';
import { errorResponses } from '../schemas/common.js';

const FeedBody = z
  .strictObject({
    // The MQTT envelope is accepted as is, so one file can go either way.
    v: z.literal(1).optional(),
    sent_at: z.number().int().nonnegative().optional(),
    id: Ulid.optional().describe('the feed id echoed in the result (generated when absent)'),
    records: z.array(z.unknown()).min(1).max(MAX_FEED_RECORDS).describe('checked one by one: a bad record is refused alone'),
  })
  .meta({ id: 'CarrierFeed' });

/** 5,000 records with polygons need more than Fastify's 1 MiB default. */
const FEED_BODY_LIMIT = 16 * 1024 * 1024;

const EXAMPLES: Record<FeedKind, { records: object[] }> = {
  towers: {
    records: [
      { op: 'upsert', tower_id: 'twr-1', name: 'Main St', lat: 48.85, lon: 2.35, coverage: { radius_m: 1500 }, carriers: ['<carrier id>'] },
      { op: 'retire', tower_id: 'twr-0' },
    ],
  },
  devices: { records: [{ device_id: 'imei-356938035643809', os: 'android', os_version: '14', model: 'Pixel 8', device_type: 'phone' }] },
};

export const carrierFeedRoutes: FastifyPluginAsyncZod = async (app) => {
  /** Pushes being applied, by credential id: what a revocation announced on the bus cuts. */
  const inFlight = new Map<string, Set<BoundedRecheck>>();
  const owner = {};
  app.bus.subscribe(
    'carrier-credential.revoked',
    (e) => {
      for (const push of inFlight.get(e.credential_id) ?? []) push.revoke();
    },
    owner,
    'cluster',
  );
  app.addHook('onClose', async () => app.bus.removeAllFor(owner));

  for (const kind of ['towers', 'devices'] as const) {
    app.post(
      `/carrier-feeds/${kind}`,
      {
        bodyLimit: FEED_BODY_LIMIT,
        config: { permission: 'carrier-feeds:write', audit: { action: `carrier-feeds.${kind}`, resource_type: 'carrier_feed' } },
        schema: {
          summary: kind === 'towers' ? 'Push tower metadata (carrier credential)' : 'Push device metadata (carrier credential)',
          description:
            `Records are applied one by one, each whole or not at all; the result lists every record's outcome ` +
            `(created, updated, unchanged, retired, refused with a reason). A carrier writes only towers its feeds ` +
            `created. Example: \`${JSON.stringify(EXAMPLES[kind])}\``,
          // The example as request data too, for the API explorer and generated clients.
          body: FeedBody.meta({ example: EXAMPLES[kind] }),
          response: { 200: FeedResultSchema, ...errorResponses },
        },
      },
      async (request) => {
        const principal = principalOf(request);
        if (principal.kind !== 'carrier') throw createError('FORBIDDEN', 'only a carrier credential pushes feeds');
        const { credentialId } = principal;
        const authority = new BoundedRecheck({
          read: () => carrierCredentialActive(credentialId, (id) => app.store.carrierCredentials.get(id)),
          now: app.clock,
          ...DEFAULT_RECHECK,
          readAt: app.clock(),
        });
        let pushes = inFlight.get(credentialId);
        if (!pushes) inFlight.set(credentialId, (pushes = new Set()));
        pushes.add(authority);
        audit(request, { resource_id: principal.carrierId });
        try {
          const records = request.body.records;
          const result = await applyCarrierFeed(app.store, {
            carrierId: principal.carrierId,
            kind,
            feedId: request.body.id ?? app.newId(),
            records,
            now: app.clock(),
            authority,
          });
          announceRetired(app.bus, result);
          audit(request, { after: { feed_id: result.feed_id, counts: result.counts } });
          return result;
        } catch (err) {
          if (!(err instanceof FeedCut)) throw err;
          // What was applied before the cut stays applied: announced and audited like any push.
          announceRetired(app.bus, err.applied);
          audit(request, { after: { feed_id: err.applied.feed_id, counts: err.applied.counts, cut_at: err.at } });
          app.counters.inc('carrier_feed_records_total', { kind, outcome: 'cut' }, err.total - err.at);
          throw createError('UNAUTHENTICATED', err.message);
        } finally {
          pushes.delete(authority);
          if (pushes.size === 0) inFlight.delete(credentialId);
        }
      },
    );
  }
};
