/**
 * Migration 13: a RADIUS client may report over RADIUS/TLS (RadSec, RFC 6614) instead of UDP.
 *
 * radius_clients.radsec_identity names the TLS peer (its client certificate's DNS subjectAltName,
 * else its subject CN) allowed to carry the NAS's accounting; NULL (every existing client) keeps
 * it on RADIUS/UDP with its shared secret. Not unique: one RadSec proxy may carry many NAS.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_13: Migration = {
  version: 13,
  name: 'RADIUS clients over RADIUS/TLS',
  sql: `
ALTER TABLE radius_clients ADD COLUMN radsec_identity TEXT;
`,
};
