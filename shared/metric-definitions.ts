/**
 * Every metric family the processes expose, in one table: its type, its HELP text and the label
 * names it may carry. `Counters` (shared/metrics.ts) registers each family from here, so the
 * Prometheus exposition has HELP and TYPE on every family and a call site cannot invent labels.
 * A new `counters.inc('x_total')` belongs here first; `shared/metric-definitions.test.ts` checks
 * that every name used in the code is listed.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Histograms only: upper bounds of the buckets. */
  buckets?: readonly number[];
}

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000];

const counter = (help: string, ...labels: string[]): MetricDefinition => ({ type: 'counter', help, labels });
const gauge = (help: string, ...labels: string[]): MetricDefinition => ({ type: 'gauge', help, labels });

export const METRIC_DEFINITIONS = {
  // --- MQTT broker -----------------------------------------------------------------------------
  mqtt_connections: gauge('Authenticated MQTT connections open on this broker node'),
  mqtt_connected_towers: gauge('Towers with at least one authenticated MQTT connection on this broker node'),
  mqtt_auth_failures_total: counter('MQTT CONNECTs refused at authentication, by reason', 'reason'),
  mqtt_acl_denied_total: counter('MQTT publishes, subscriptions and forwards refused by the ACL', 'action', 'reason'),
  mqtt_rejected_total: counter('MQTT packets or connections refused by a broker limit (size, depth, rate)', 'reason'),
  mqtt_dropped_total: counter('QoS 1 messages not queued for an offline session because its queue was full', 'reason'),
  mqtt_store_errors_total: counter('Reads of the broker session store that failed (the subscriber got what was read before)', 'op'),

  // --- API sign-in --------------------------------------------------------------------------------
  login_attempts_total: counter('API sign-in attempts, by outcome (success, failure, throttled)', 'outcome'),

  // --- ingest plugins, carrier feeds, RADIUS accounting -------------------------------------------
  ingest_plugin_messages_total: counter('Messages of an ingest plugin, accepted into the pipeline or dropped (by reason)', 'outcome', 'plugin'),
  line_auth_failures_total: counter('Line-protocol ingest connections refused at authentication', 'reason', 'plugin'),
  radius_requests_total: counter('RADIUS accounting requests, by outcome (stored, duplicate, bad_authenticator, unknown_nas…)', 'outcome', 'plugin'),
  radsec_connections_total: counter('RADIUS/TLS (RadSec) connections accepted, or closed before carrying a request (by reason)', 'outcome', 'plugin'),
  carrier_feed_records_total: counter('Carrier feed records applied or refused', 'kind', 'outcome'),
  carrier_feeds_dropped_total: counter('Carrier feed messages dropped before any record was read', 'carrier', 'kind', 'reason'),
  accounting_records_stored_total: counter('Accounting records (sessions) stored for the first time', 'source'),
  accounting_records_duplicate_total: counter('Accounting records already stored (retransmissions)', 'source'),
  accounting_records_unmapped_total: counter('Accounting records of devices no tenant holds (reported for discovery)', 'source'),
  device_sessions_reset_total: counter('Open device sessions closed by an Accounting-On/Off of their NAS', 'source'),
  device_sessions_purged_total: counter('Stopped device sessions purged by retention'),
  webhook_deliveries_purged_total: counter('Finished webhook deliveries purged by retention (the plan retention_days)'),

  // --- ingest ------------------------------------------------------------------------------------
  ingest_in_flight: gauge('Uplink messages accepted by this process\'s pipeline and not finished yet'),
  ingest_duration_seconds: {
    type: 'histogram',
    help: 'Time to accept one uplink message: decided and stored (embedded, worker) or durably queued (broker role); the tower\'s PUBACK waits for it',
    labels: ['kind'],
    buckets: LATENCY_BUCKETS_S,
  },
  ingest_batch_events: { type: 'histogram', help: 'Usage events per decided and stored batch', labels: [], buckets: BATCH_SIZE_BUCKETS },
  decision_latency_seconds: {
    type: 'histogram',
    help: 'Time from the broker receiving a usage batch to its decisions being stored and sent back',
    labels: [],
    buckets: LATENCY_BUCKETS_S,
  },
  ingest_backpressure_waits_total: counter('Uplink messages that waited for a free pipeline slot'),
  ingest_errors_total: counter('Uplink messages that failed on infrastructure (store, broker) and were refused for redelivery', 'stage', 'reason', 'kind'),
  uplink_dropped_total: counter('Uplink messages dropped as invalid, by tower, kind and reason', 'tower', 'kind', 'reason'),
  usage_batches_total: counter('Usage batches decided'),
  decisions_sent_total: counter('Decisions sent back to towers, by effect (a redelivered batch counted once)', 'effect'),
  usage_events_stored_total: counter('Usage events stored (first deliveries)'),
  usage_events_duplicate_total: counter('Usage events received again (QoS 1 redelivery) and not stored twice'),
  usage_events_rejected_total: counter('Usage events the cloud refused to decide, by tower and reason', 'tower', 'reason'),
  discovery_reports_total: counter('Sightings of unmapped devices reported by towers'),
  discovery_reports_duplicate_total: counter('Discovery sightings received again (redelivered batch)'),
  tower_status_total: counter('Tower status reports received, by state', 'state'),

  // --- distributed uplink queue ------------------------------------------------------------------
  uplink_queue_depth: gauge('Uplink jobs waiting, delayed or running in the shared queue'),
  uplink_jobs_queued_total: counter('Uplink micro-batch jobs queued by this broker node'),
  mqtt_sessions_revoked_total: counter('MQTT sessions closed because what opened them was withdrawn (credential_revoked, tower_withdrawn: retired or deleted, user_revoked: console account disabled, deleted, re-roled or re-passworded, signed_out: its sign-in ended), by who noticed: the bus, or the periodic re-check against the store (the announcement was lost)', 'reason', 'source'),
  mqtt_wills_suppressed_total: counter("Tower wills not published: the broker was stopping (it closed the connection, the tower did not go away), or the tower connected to another node (moved_away)", 'reason'),
  uplink_messages_queued_total: counter('Uplink messages queued by this broker node'),
  uplink_queue_errors_total: counter('Uplink micro-batches that could not be queued'),
  uplink_backpressure_waits_total: counter('Times this broker node held PUBACKs because the uplink queue was above its high-water mark'),
  uplink_held_bytes: gauge('Uplink payload bytes this broker node holds waiting for Redis to confirm them (refused beyond --uplink-max-held-bytes)'),
  uplink_refused_total: counter('Uplink messages this broker node refused without a PUBACK because Redis did not take them: no answer in time (timeout) or too many bytes already waiting for it (held_full)', 'reason'),
  uplink_jobs_started_total: counter('Uplink jobs started by this worker (retries included)'),
  uplink_jobs_retried_total: counter('Uplink jobs run again after a failure or a dead worker'),
  uplink_jobs_processed_total: counter('Uplink jobs finished by this worker'),
  uplink_jobs_failed_total: counter('Uplink jobs given up after their attempts'),

  // --- policies ----------------------------------------------------------------------------------
  policy_index_builds_total: counter('Compiled policy indexes built'),
  policy_index_rule_side_builds_total: counter('Compiled policy indexes rebuilt from the rule side alone (the held inventory reused after rule-only changes)'),
  policy_bundles_published_total: counter('Policy bundles published to towers (one per tenant and tower served)'),
  bundle_publisher: gauge('1 while this process is the cluster\'s one edge bundle publisher (the bundles.publisher lease), else 0'),
  directory_slices_published_total: counter("Device directory slices published (a tenant's keyed device hashes, for every tower)"),
  bundle_orphans_cleared_total: counter('Retained bundles, directory slices and their parts of tenants that no longer exist, cleared by a publisher after a restart or takeover'),
  bundle_stale_parts_cleared_total: counter('Retained bundle or directory parts an earlier run left beyond a document\'s current part count, cleared after a restart or takeover'),
  usage_local_decisions_reconciled_total: counter('Events a tower decided locally, decided again and stored by the cloud'),
  usage_disagreements_total: counter("Reconciled local decisions whose effect differs from the cloud's, by both effects", 'local_effect', 'cloud_effect'),
  policy_refresh_errors_total: counter('Failed policy index or bundle refreshes'),

  // --- remediation and commands -------------------------------------------------------------------
  remediations_issued_total: counter('Remediation commands issued, by source and type', 'source', 'type'),
  remediations_skipped_total: counter('Remediations not issued, by reason', 'reason'),
  remediation_state_dropped_total: counter(
    'Embedded mode: escalation windows or actions still in force forgotten because they alone filled the in-process bound',
    'what',
  ),
  commands_published_total: counter('Command sends to towers (first sends and resends)'),
  commands_expired_total: counter('Commands expired before the tower acknowledged them'),
  command_jobs_failed_total: counter('Command send/expiry jobs given up'),
  command_acks_total: counter('Command acknowledgements received, by tower and outcome', 'tower', 'status'),

  // --- API, feeds, audit ---------------------------------------------------------------------------
  http_connections_refused_total: counter('HTTP connections closed on accept because --http-max-connections were open'),
  feed_clients_dropped_total: counter('Live feed clients disconnected, by feed and reason', 'feed', 'reason'),
  exports_cut_total: counter("Exports stopped before their end because the caller's credential was revoked meanwhile", 'reason'),
  audit_records_total: counter('Audit records written'),
  audit_write_errors_total: counter('Audit records that could not be written'),
  store_full_errors_total: counter('Store operations refused because the store is full (SQLite SQLITE_FULL, MongoDB out of disk space), by who was refused: ingest, api, audit, commands, credentials', 'source'),
  store_full: gauge('1 while the store refuses writes for lack of space (from the first refusal to the next write that succeeds), else 0'),
  store_busy_errors_total: counter('Store operations refused because another process held the SQLite write lock past the busy timeout, by who was refused: ingest, api, audit, commands, credentials', 'source'),
  store_busy: gauge('1 while the store refuses writes because another process holds its write lock (from the first refusal to the next write that succeeds), else 0'),
  store_unreachable_errors_total: counter('Store operations refused because the store did not answer (MongoDB network or server-selection errors, no primary), by who was refused: ingest, api, audit, commands, credentials', 'source'),
  store_unreachable: gauge('1 while store operations fail because the store does not answer (from the first refusal to the next write that succeeds), else 0'),

  // --- retention --------------------------------------------------------------------------------
  usage_rows_purged_total: counter('Usage rows purged by retention'),
  audit_rows_purged_total: counter('Audit rows purged by retention'),
  retention_errors_total: counter('Failed retention passes'),

  // --- outbound integrations ------------------------------------------------------------------------
  webhook_events_total: counter('Webhook events announced to this process, by event (each wakes the deliverer; their deliveries are written by the store with the record they announce)', 'event'),
  webhook_deliveries_total: counter('Webhook delivery attempts, by outcome', 'status'),
  firebase_writes_total: counter('Batched writes to the Firebase Realtime Database'),
  firebase_write_errors_total: counter('Failed writes to the Firebase Realtime Database'),
  firebase_dropped_total: counter('Firebase mirror updates given up: new paths beyond the pending bound during an outage, and paths still unwritten when stop() stopped waiting'),

  // --- process memory ------------------------------------------------------------------------------
  malloc_trims_total: counter('glibc malloc_trim(0) calls after major GCs, by whether memory went back to the OS', 'released'),
  malloc_trim_duration_seconds: {
    type: 'histogram',
    help: 'Time one malloc_trim(0) took on the thread pool (the event loop does not wait for it)',
    labels: [],
    buckets: LATENCY_BUCKETS_S,
  },

  // --- event bus --------------------------------------------------------------------------------
  bus_publish_errors_total: counter('Bus events that could not be published to Redis', 'event'),
  bus_messages_dropped_total: counter('Bus messages from Redis dropped as invalid', 'reason'),
  bus_resubscribes_total: counter('Times the bus subscribed again after losing its Redis connection (events published meanwhile were missed)'),
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRIC_DEFINITIONS;
