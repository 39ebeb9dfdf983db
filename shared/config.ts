/**
 * Configuration schema for every process. Precedence: command-line flags > EDGEPLANE_* env vars >
 * defaults. One schema, so `--help` text, env names and validation cannot drift apart.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** How a boolean may be spelled, in flags, env vars and query strings alike. */
export const BOOLEAN_WORDS = ['true', 'false', '1', '0', 'yes', 'no'] as const;

const bool = z.union([z.boolean(), z.enum(BOOLEAN_WORDS)]).transform((v) =>
  typeof v === 'boolean' ? v : v === 'true' || v === '1' || v === 'yes',
);
const port = z.coerce.number().int().min(0).max(65535);

/** What Fastify's `trustProxy` takes: off, everyone, a hop count, or proxy addresses/CIDRs. */
export type TrustProxy = boolean | number | string[];

const PROXY_NAME_RE = /^(loopback|linklocal|uniquelocal)$/;

function isProxyAddress(entry: string): boolean {
  if (PROXY_NAME_RE.test(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128);
}

function parseTrustProxy(value: boolean | number | string, ctx: z.RefinementCtx): TrustProxy {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0) return value;
    ctx.addIssue({ code: 'custom', message: 'a hop count must be a whole number' });
    return z.NEVER;
  }
  const text = value.trim().toLowerCase();
  if (['', 'false', 'no', 'off'].includes(text)) return false;
  if (['true', 'yes', 'on'].includes(text)) return true;
  if (/^\d+$/.test(text)) return Number(text);
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const bad = entries.filter((e) => !isProxyAddress(e));
  if (entries.length === 0 || bad.length > 0) {
    ctx.addIssue({ code: 'custom', message: `must be false, true, a hop count or addresses/CIDRs (not ${bad.join(', ') || 'empty'})` });
    return z.NEVER;
  }
  return entries;
}
const positiveInt = z.coerce.number().int().positive();

/**
 * The longest delay a Node timer takes (2^31 - 1 ms, ~24.8 days). A longer one is not an error to
 * Node: it warns and fires after 1 ms, so a monthly `--retention-interval-s` would purge in a busy
 * loop and a long `--shutdown-timeout-ms` would cut every shutdown short. Every duration that
 * becomes a timer is bounded by it and refused beyond.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;
const timerMs = positiveInt.max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS} ms (~24.8 days), the longest timer Node keeps`);
const timerS = positiveInt.max(Math.floor(MAX_TIMER_MS / 1000), `must be at most ${Math.floor(MAX_TIMER_MS / 1000)} s (~24.8 days), the longest timer Node keeps`);

export interface OptionSpec {
  /** Flag name without the leading dashes; env var is EDGEPLANE_ + upper snake case of key. */
  flag: string;
  describe: string;
}

export const CONFIG_OPTIONS = {
  data_dir: { flag: 'data-dir', describe: 'Directory for the SQLite database, signing keys and secrets' },
  http_host: { flag: 'http-host', describe: 'Interface the HTTP API listens on' },
  http_port: { flag: 'http-port', describe: 'HTTP API port (0 = any free port)' },
  http_request_timeout_ms: {
    flag: 'http-request-timeout-ms',
    describe: 'Longest a client may take to send one HTTP request, headers and body; a slower one (Slowloris) gets 408 and its connection is closed',
  },
  http_idle_timeout_ms: {
    flag: 'http-idle-timeout-ms',
    describe: 'Close an HTTP connection on which nothing was received or sent for this long, mid-request or mid-answer (a client that stopped reading); live feeds are exempt (they have their heartbeat)',
  },
  http_max_connections: {
    flag: 'http-max-connections',
    describe: 'Open HTTP connections (live feeds included) per API process; more are closed on accept and counted in http_connections_refused_total',
  },
  mqtt_host: { flag: 'mqtt-host', describe: 'Interface the MQTT listeners bind to' },
  mqtt_port: { flag: 'mqtt-port', describe: 'MQTT over TCP port (0 = any free port)' },
  mqtt_ws_port: { flag: 'mqtt-ws-port', describe: 'MQTT over WebSocket port (0 = any free port)' },
  log_level: { flag: 'log-level', describe: 'trace | debug | info | warn | error | fatal | silent' },
  log_format: { flag: 'log-format', describe: 'auto (human-readable on a terminal, JSON lines otherwise) | json | pretty' },
  admin_email: { flag: 'admin-email', describe: 'Platform operator created on first start' },
  admin_password: { flag: 'admin-password', describe: 'Password of that operator (if unset, one is generated and written to <data-dir>/initial-admin-password, mode 0600, not printed)' },
  service_secret: { flag: 'service-secret', describe: 'Shared secret of internal services on MQTT (generated into the data dir if unset)' },
  allow_anonymous: { flag: 'allow-anonymous', describe: 'DEVELOPMENT ONLY: accept anonymous MQTT clients (read-only, nothing granted); true/false, 1/0 or yes/no' },
  mqtt_max_payload_bytes: { flag: 'mqtt-max-payload-bytes', describe: 'Largest PUBLISH payload accepted; larger ones disconnect the client' },
  mqtt_max_topic_levels: { flag: 'mqtt-max-topic-levels', describe: 'Deepest topic accepted' },
  mqtt_publish_rate: { flag: 'mqtt-publish-rate', describe: 'Sustained PUBLISH packets per second per publisher (a tower, console user or carrier; its connections share it)' },
  mqtt_publish_burst: { flag: 'mqtt-publish-burst', describe: 'Burst allowance above the sustained publish rate' },
  mqtt_drain_timeout_ms: { flag: 'mqtt-drain-timeout-ms', describe: 'Drop a subscriber whose socket stays blocked this long' },
  mqtt_ack_timeout_s: { flag: 'mqtt-ack-timeout-s', describe: 'Close a client that owes an answer (PUBACK, PUBREC, PUBCOMP) to a message written to it and sends nothing for this long (a dead peer TCP keepalive cannot find)' },
  mqtt_max_connect_bytes: { flag: 'mqtt-max-connect-bytes', describe: 'Largest CONNECT packet accepted; checked on its header, before authentication' },
  mqtt_max_pending_connections: { flag: 'mqtt-max-pending-connections', describe: 'Connections not yet authenticated at once (per broker process); more are closed on accept' },
  mqtt_max_filters_per_subscribe: { flag: 'mqtt-max-filters-per-subscribe', describe: 'Topic filters in one SUBSCRIBE or UNSUBSCRIBE; more close the connection' },
  mqtt_max_subscriptions_per_client: { flag: 'mqtt-max-subscriptions-per-client', describe: 'Subscriptions one connection may hold; filters beyond it are refused (SUBACK 0x80)' },
  mqtt_max_persistent_sessions_per_user: { flag: 'mqtt-max-persistent-sessions-per-user', describe: 'Persistent (clean=false) MQTT sessions one console user may hold (per broker process)' },
  mqtt_max_queued_per_session: { flag: 'mqtt-max-queued-per-session', describe: 'QoS 1 messages queued for one session; newer ones are dropped and counted' },
  mqtt_max_retained_bytes_per_client: { flag: 'mqtt-max-retained-bytes-per-client', describe: 'Retained payload bytes one tower may hold (its status)' },
  mqtt_max_retained_messages: { flag: 'mqtt-max-retained-messages', describe: 'Retained messages the broker stores in total' },
  mqtt_max_retained_bytes: { flag: 'mqtt-max-retained-bytes', describe: 'Retained payload bytes the broker stores in total' },
  ingest_concurrency: { flag: 'ingest-concurrency', describe: 'Uplink messages processed at once; beyond it PUBACKs wait (backpressure)' },
  access_token_ttl_s: { flag: 'access-token-ttl-s', describe: 'Lifetime of access JWTs' },
  refresh_token_ttl_s: { flag: 'refresh-token-ttl-s', describe: 'Lifetime of refresh tokens' },
  rate_limit_per_min: { flag: 'rate-limit-per-min', describe: 'API requests per minute per user or API key (per IP when unauthenticated); shared by every API process over Redis' },
  trust_proxy: {
    flag: 'trust-proxy',
    describe: 'Reverse proxies whose X-Forwarded-For names the client: false, a hop count (1 = one proxy), or comma-separated addresses/CIDRs (loopback, linklocal, uniquelocal allowed); true trusts any sender (only behind a proxy that overwrites the header)',
  },
  shutdown_timeout_ms: { flag: 'shutdown-timeout-ms', describe: 'Longest a graceful shutdown may take before forcing exit' },
  command_ttl_s: { flag: 'command-ttl-s', describe: 'A remediation command not acked within this is marked expired' },
  command_retry_min_ms: { flag: 'command-retry-min-ms', describe: 'First resend delay of an unacknowledged command (doubles up to the max)' },
  command_retry_max_ms: { flag: 'command-retry-max-ms', describe: 'Longest resend delay of an unacknowledged command' },
  retention_interval_s: { flag: 'retention-interval-s', describe: 'How often usage older than each tenant plan\'s retention is purged' },
  platform_audit_retention_days: {
    flag: 'platform-audit-retention-days',
    describe: 'Platform audit records (operators, carriers; tenant null) older than this many days are purged (30..3650)',
  },
  malloc_trim_interval_s: {
    flag: 'malloc-trim-interval-s',
    describe: 'After a major GC, give memory glibc keeps after it was freed back to the OS, at most once per this many seconds (0: never; Linux with glibc)',
  },
  webhook_max_attempts: { flag: 'webhook-max-attempts', describe: 'Delivery attempts per webhook event before it is marked failed' },
  webhook_timeout_ms: { flag: 'webhook-timeout-ms', describe: 'Timeout of one webhook delivery attempt' },
  webhook_allow_private: {
    flag: 'webhook-allow-private',
    describe: 'Allow webhook URLs on loopback, private, link-local and other internal addresses (on-premises receivers)',
  },
  firebase_database_url: { flag: 'firebase-database-url', describe: 'Mirror live alerts/remediations/counters to this Firebase Realtime Database (off when unset)' },
  firebase_credentials_file: { flag: 'firebase-credentials-file', describe: 'Service account JSON for Firebase (not needed with FIREBASE_DATABASE_EMULATOR_HOST)' },
  firebase_flush_ms: { flag: 'firebase-flush-ms', describe: 'Firebase writes are batched: at most one multi-path update per interval' },
  durability: {
    flag: 'durability',
    describe:
      'What an acknowledged write (PUBACK, 2xx) survives, for the SQLite store and the embedded broker\'s sessions: process (default: a crash or kill -9; written before the ack, not fsync\'ed) | power (also a power cut or OS crash: fsync\'ed before the ack, slower)',
  },
  store_url: { flag: 'store-url', describe: 'Store: sqlite:<file> or mongodb://… (replica set); default sqlite:<data-dir>/edgeplane.db' },
  redis_url: { flag: 'redis-url', describe: 'Redis of the distributed mode (queues, workflow state, bus, broker sessions); required by broker/worker/api' },
  redis_prefix: { flag: 'redis-prefix', describe: 'Prefix of every Redis key and channel of this deployment' },
  mqtt_url: { flag: 'mqtt-url', describe: 'Worker role: broker node(s) to publish decisions and commands through, comma-separated (failover in order)' },
  queue_lock_ms: { flag: 'queue-lock-ms', describe: 'Distributed mode: a job whose worker died is taken over after this long' },
  bundle_publisher_lease_ms: { flag: 'bundle-publisher-lease-ms', describe: 'Distributed mode: the worker publishing the edge bundles renews its lease every third of this; one that died is replaced after this long' },
  uplink_batch_max: { flag: 'uplink-batch-max', describe: 'Broker role: uplink messages per queue job (micro-batch)' },
  uplink_batch_ms: { flag: 'uplink-batch-ms', describe: 'Broker role: longest an uplink waits for its micro-batch to fill' },
  uplink_queue_high_water: { flag: 'uplink-queue-high-water', describe: 'Broker role: above this many queued uplink jobs, PUBACKs wait (backpressure on towers)' },
  uplink_confirm_timeout_ms: { flag: 'uplink-confirm-timeout-ms', describe: 'Broker role: an uplink Redis has not confirmed in this long is refused (no PUBACK; the tower resends it later)' },
  uplink_max_held_bytes: { flag: 'uplink-max-held-bytes', describe: 'Broker role: beyond this many payload bytes waiting for Redis, new uplinks are refused at once (no PUBACK)' },
  tls_cert_file: { flag: 'tls-cert-file', describe: 'PEM certificate (chain) for TLS: with --tls-key-file, the API serves HTTPS, MQTT over WebSocket WSS, and MQTT over TLS listens on --mqtt-tls-port' },
  tls_key_file: { flag: 'tls-key-file', describe: 'PEM private key of --tls-cert-file' },
  tls_ca_file: { flag: 'tls-ca-file', describe: 'Optional PEM CA bundle sent after the certificate (intermediate CAs)' },
  mqtt_tls_port: { flag: 'mqtt-tls-port', describe: 'MQTT over TLS port, used when --tls-cert-file is set (0 = any free port)' },
  metrics_token: { flag: 'metrics-token', describe: 'Static bearer token that may scrape /metrics (API, broker and worker health ports); unset: operators only on the API, open on health ports' },
  radius_acct_host: { flag: 'radius-acct-host', describe: 'Interface the RADIUS accounting listener binds to' },
  radius_acct_port: { flag: 'radius-acct-port', describe: 'RADIUS accounting (RFC 2866) UDP port, usually 1813; 0 = off. Embedded, or the broker role' },
  radsec_host: { flag: 'radsec-host', describe: 'Interface the RADIUS/TLS (RadSec) accounting listener binds to' },
  radsec_port: {
    flag: 'radsec-port',
    describe: 'RADIUS accounting over TLS (RadSec, RFC 6614) TCP port, usually 2083; 0 = off. Needs --tls-cert-file/--tls-key-file and --radsec-ca-file. Embedded, or the broker role',
  },
  radsec_ca_file: { flag: 'radsec-ca-file', describe: 'PEM CA bundle that issues the client certificates of RadSec peers (NAS or proxies); required with --radsec-port' },
  line_ingest_port: { flag: 'line-ingest-port', describe: 'Example line-protocol ingest plugin (TCP, tower credentials); 0 = off. Embedded, or the broker role' },
} as const satisfies Record<string, OptionSpec>;

/** What an acknowledged write survives (`--durability`): a crash of the process, or a power cut too. */
export const DURABILITY = ['process', 'power'] as const;
export type Durability = (typeof DURABILITY)[number];

export const ConfigSchema = z.object({
  data_dir: z.string().min(1).default('./.edgeplane'),
  http_host: z.string().default('0.0.0.0'),
  http_port: port.default(8080),
  // Node's own defaults: 300 s for a request, 60 s for its headers; one bound for both is enough.
  http_request_timeout_ms: timerMs.min(100).default(60_000),
  http_idle_timeout_ms: timerMs.min(100).default(120_000),
  http_max_connections: positiveInt.default(10_000),
  mqtt_host: z.string().default('0.0.0.0'),
  mqtt_port: port.default(1883),
  mqtt_ws_port: port.default(8083),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  log_format: z.enum(['auto', 'json', 'pretty']).default('auto'),
  durability: z.enum(DURABILITY).default('process'),
  admin_email: z.email().default('admin@edgeplane.local'),
  admin_password: z.string().min(12, 'must be at least 12 characters').optional(),
  service_secret: z.string().min(24, 'must be at least 24 characters').optional(),
  allow_anonymous: bool.default(false),
  mqtt_max_payload_bytes: positiveInt.default(256 * 1024),
  mqtt_max_topic_levels: positiveInt.max(100).default(8),
  mqtt_publish_rate: positiveInt.default(1000),
  mqtt_publish_burst: positiveInt.default(2000),
  mqtt_drain_timeout_ms: timerMs.default(5000),
  mqtt_ack_timeout_s: timerS.default(60),
  // A console CONNECT carries a ~1 KB JWT, a tower's a will of a few hundred bytes.
  mqtt_max_connect_bytes: positiveInt.min(512).max(65_536 * 5).default(16 * 1024),
  mqtt_max_pending_connections: positiveInt.default(1000),
  mqtt_max_filters_per_subscribe: positiveInt.max(1000).default(16),
  mqtt_max_subscriptions_per_client: positiveInt.max(10_000).default(32),
  mqtt_max_persistent_sessions_per_user: z.coerce.number().int().min(0).default(2),
  // As many as one CONNECT replays from a Redis session (backends-redis.ts maxSessionDelivery).
  mqtt_max_queued_per_session: positiveInt.default(10_000),
  mqtt_max_retained_bytes_per_client: positiveInt.default(16 * 1024),
  mqtt_max_retained_messages: positiveInt.default(100_000),
  mqtt_max_retained_bytes: positiveInt.default(256 * 1024 * 1024),
  ingest_concurrency: positiveInt.default(64),
  access_token_ttl_s: positiveInt.default(900),
  refresh_token_ttl_s: positiveInt.default(30 * 24 * 3600),
  rate_limit_per_min: positiveInt.default(100),
  trust_proxy: z.union([z.boolean(), z.number(), z.string()]).default(false).transform(parseTrustProxy),
  shutdown_timeout_ms: timerMs.default(15000),
  command_ttl_s: timerS.default(3600),
  command_retry_min_ms: timerMs.default(1000),
  command_retry_max_ms: timerMs.default(60_000),
  retention_interval_s: timerS.default(3600),
  platform_audit_retention_days: z.coerce.number().int().min(30).max(3650).default(365),
  malloc_trim_interval_s: z.coerce.number().int().min(0).max(3600).default(5),
  webhook_max_attempts: positiveInt.max(20).default(8),
  webhook_timeout_ms: timerMs.default(5000),
  webhook_allow_private: bool.default(false),
  firebase_database_url: z.url().optional(),
  firebase_credentials_file: z.string().min(1).optional(),
  firebase_flush_ms: timerMs.default(1000),
  store_url: z
    .string()
    .regex(/^(sqlite:.+|mongodb(\+srv)?:\/\/.+)$/, 'must be sqlite:<file> or mongodb://…')
    .optional(),
  redis_url: z.string().regex(/^rediss?:\/\/.+/, 'must be redis://… or rediss://…').optional(),
  redis_prefix: z.string().regex(/^[A-Za-z0-9_.-]{1,32}:$/, 'must be 1-32 chars of [A-Za-z0-9_.-] ending with ":"').default('edgeplane:'),
  mqtt_url: z.string().regex(/^(mqtts?|wss?|tcp):\/\/[^,]+(,(mqtts?|wss?|tcp):\/\/[^,]+)*$/, 'must be mqtt://host:port[,mqtt://…]').optional(),
  queue_lock_ms: timerMs.min(1000).default(30_000),
  bundle_publisher_lease_ms: positiveInt.min(1500).max(600_000).default(15_000),
  uplink_batch_max: positiveInt.max(5000).default(256),
  uplink_batch_ms: z.coerce.number().int().min(0).max(1000).default(2),
  uplink_queue_high_water: positiveInt.default(5000),
  uplink_confirm_timeout_ms: timerMs.default(15_000),
  uplink_max_held_bytes: positiveInt.default(64 * 1024 * 1024),
  tls_cert_file: z.string().min(1).optional(),
  tls_key_file: z.string().min(1).optional(),
  tls_ca_file: z.string().min(1).optional(),
  mqtt_tls_port: port.default(8883),
  metrics_token: z.string().min(16, 'must be at least 16 characters').optional(),
  radius_acct_host: z.string().default('0.0.0.0'),
  radius_acct_port: port.default(0),
  radsec_host: z.string().default('0.0.0.0'),
  radsec_port: port.default(0),
  radsec_ca_file: z.string().min(1).optional(),
  line_ingest_port: port.default(0),
}).superRefine((c, ctx) => {
  // A certificate without its key (or the reverse) is a half-made TLS setup: refuse it by name.
  if ((c.tls_cert_file === undefined) !== (c.tls_key_file === undefined)) {
    const missing = c.tls_cert_file === undefined ? 'tls_cert_file' : 'tls_key_file';
    ctx.addIssue({ code: 'custom', path: [missing], message: 'required when --tls-cert-file or --tls-key-file is set (both or neither)' });
  }
  if (c.tls_ca_file !== undefined && c.tls_cert_file === undefined) {
    ctx.addIssue({ code: 'custom', path: ['tls_ca_file'], message: 'needs --tls-cert-file and --tls-key-file' });
  }
  // RadSec is mutual TLS: the server's certificate, and the CA its peers' certificates come from.
  if (c.radsec_port !== 0 && c.tls_cert_file === undefined) {
    ctx.addIssue({ code: 'custom', path: ['radsec_port'], message: 'needs --tls-cert-file and --tls-key-file (the certificate RadSec peers verify)' });
  }
  if (c.radsec_port !== 0 && c.radsec_ca_file === undefined) {
    ctx.addIssue({ code: 'custom', path: ['radsec_ca_file'], message: 'required with --radsec-port: the CA that issues the RadSec peers’ client certificates' });
  }
  if (c.radsec_ca_file !== undefined && c.radsec_port === 0) {
    ctx.addIssue({ code: 'custom', path: ['radsec_ca_file'], message: 'needs --radsec-port' });
  }
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigKey = keyof typeof CONFIG_OPTIONS;

export function envName(key: ConfigKey): string {
  return `EDGEPLANE_${key.toUpperCase()}`;
}

/**
 * Merges flags over env over defaults and validates. Throws an Error whose message names each bad
 * option by its flag and env var, so a typo in either is obvious.
 */
export function loadConfig(flags: Partial<Record<ConfigKey, unknown>>, env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(CONFIG_OPTIONS) as ConfigKey[]) {
    const fromEnv = env[envName(key)];
    if (fromEnv !== undefined && fromEnv !== '') raw[key] = fromEnv;
    if (flags[key] !== undefined) raw[key] = flags[key];
  }
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const key = String(i.path[0]) as ConfigKey;
      const spec = CONFIG_OPTIONS[key];
      return spec ? `--${spec.flag} / ${envName(key)}: ${i.message}` : `${i.path.join('.')}: ${i.message}`;
    });
    // One line, as every startup error (the CLI prints it without a stack trace).
    throw new Error(`invalid configuration: ${lines.join('; ')}`);
  }
  return r.data;
}

/** The `--help` block for config options, generated from the one schema. */
export function configHelp(): string {
  const defaults = ConfigSchema.parse({});
  return (Object.keys(CONFIG_OPTIONS) as ConfigKey[])
    .map((key) => {
      const spec = CONFIG_OPTIONS[key];
      const d = (defaults as Record<string, unknown>)[key];
      const dflt = d === undefined ? '' : ` (default: ${String(d)})`;
      return `  --${spec.flag.padEnd(26)} ${spec.describe}${dflt}\n  ${''.padEnd(28)} env ${envName(key)}`;
    })
    .join('\n');
}
