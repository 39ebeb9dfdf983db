/**
 * The composition roots of the distributed mode: `edgeplane broker`, `edgeplane worker` and
 * `edgeplane api`, each one process of a horizontally scalable deployment sharing Redis (queues,
 * workflow state, bus, broker sessions) and one store (MongoDB; or one SQLite file on one host).
 * Like the embedded root, each declares its components once, in start order.
 */
import { redisBackends, sessionKeyPrefix } from '../../broker/backends-redis.js';
import { retainedEdgeTopics, retainedTopicsUnder } from '../../broker/retained-redis.js';
import { buildBroker } from './broker-root.js';
import { QueueUplinkSink } from '../../broker/queue-uplink-sink.js';
import { buildApp } from '../../api/app.js';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import { MqttDownlink } from '../../shared/mqtt/mqtt-downlink.js';
import { UPLINK_QUEUE, UplinkJobSchema } from '../../shared/mqtt/uplink-jobs.js';
import { Pipeline } from '../../workers/pipeline.js';
import { deriveDirectoryKey } from '../../shared/policy/edge-bundle.js';
import { RetentionJob } from '../../workers/retention-job.js';
import { UplinkConsumer } from '../../workers/uplink-consumer.js';
import { buildCommandService, buildWorkerContext, ensureOperator } from '../embedded.js';
import { preflight, type ListenerName, type TlsMaterial } from '../preflight.js';
import { explainStartupError, StartupError } from '../startup-error.js';
import { withDeadline } from '../../shared/deadline.js';
import { component, startComponents, type Component, type RunningComponents } from './components.js';
import { EventLog } from './event-log.js';
import { buildFoundation, urlHost, type Foundation } from './foundation.js';
import { HealthServer } from './health-server.js';
import { DecisionMetrics, timedSink } from './pipeline-metrics.js';
import { buildIngestPlugins } from './ingest-plugins.js';
import { buildSinks } from './sinks.js';

export interface RoleHandle {
  foundation: Foundation;
  /** Where the role's HTTP listener (API, or health/metrics) answers. */
  httpUrl: string;
  /** Broker role only. */
  mqttUrl?: string;
  stop(): Promise<void>;
}

interface RoleOptions {
  logger: Logger;
  /** Aborting it gives the start up (StartInterrupted): what had started is stopped. */
  signal?: AbortSignal;
}

function healthServer(f: Foundation, extra: () => Record<string, boolean>): HealthServer {
  return new HealthServer({
    host: f.config.http_host,
    port: f.config.http_port,
    role: f.role,
    counters: f.counters,
    ...(f.config.metrics_token ? { metricsToken: f.config.metrics_token } : {}),
    readiness: async () => ({ ...f.connectionsReady(), store: await f.storeReady(), ...extra() }),
  });
}

/**
 * Runs the preflight checks, then `start`; any failure comes out naming the option to change
 * (cli/startup-error.ts).
 */
async function startRole(config: Config, listeners: readonly ListenerName[], start: (tls: TlsMaterial | null) => Promise<RoleHandle>): Promise<RoleHandle> {
  const { tls } = await preflight(config, listeners);
  try {
    return await start(tls);
  } catch (err) {
    throw explainStartupError(err, config);
  }
}

/** The worker's first connection to the brokers: bounded, and named after --mqtt-url when it fails. */
export async function startDownlink(downlink: MqttDownlink, mqttUrl: string): Promise<void> {
  await withDeadline(downlink.start(), DOWNLINK_CONNECT_TIMEOUT_MS, () => {
    // Its client would otherwise go on reconnecting, holding the process open.
    void downlink.stop();
    throw new StartupError(`--mqtt-url ${mqttUrl}: no broker node answered within ${DOWNLINK_CONNECT_TIMEOUT_MS / 1000} s; check the URLs and that the broker roles run (--mqtt-url / EDGEPLANE_MQTT_URL)`);
  });
}

const DOWNLINK_CONNECT_TIMEOUT_MS = 15_000;

/** What every role runs beside its own work: operational event lines, and the uplink queue depth. */
function observability(f: Foundation): Component[] {
  const eventLog = new EventLog({ bus: f.bus, logger: f.logger.child({ module: 'events' }) });
  const uplinks = f.workflow.queues.open({ name: UPLINK_QUEUE, schema: UplinkJobSchema });
  f.counters.gauge('uplink_queue_depth', () =>
    withDeadline(uplinks.depth(), GAUGE_READ_TIMEOUT_MS, () => {
      throw new Error(`no answer within ${GAUGE_READ_TIMEOUT_MS} ms`);
    }),
  );
  return [component('event-log', () => eventLog.start(), () => eventLog.stop())];
}

/**
 * A gauge read from Redis is bounded: while Redis is away the read waits in the connection's
 * offline queue, and a gauge that never answers held the whole /metrics scrape (every other
 * family with it) just when an operator looks. Unanswered, it fails and reads NaN (metrics.ts).
 */
const GAUGE_READ_TIMEOUT_MS = 2000;

function handle(f: Foundation, running: RunningComponents, httpPort: number, mqttPort?: number, https = false): RoleHandle {
  const host = urlHost(f.config.http_host);
  return {
    foundation: f,
    httpUrl: `${https ? 'https' : 'http'}://${host}:${httpPort}`,
    ...(mqttPort !== undefined ? { mqttUrl: `mqtt://${urlHost(f.config.mqtt_host)}:${mqttPort}` } : {}),
    stop: () => running.stop(),
  };
}

/** A broker node: Aedes with sessions in Redis, uplinks into the queue. */
export function startBrokerRole(config: Config, opts: RoleOptions): Promise<RoleHandle> {
  return startRole(config, ['http', 'mqtt', 'mqttWs', 'mqttTls', 'radsec'], (tls) => brokerRole(config, opts, tls));
}

async function brokerRole(config: Config, opts: RoleOptions, tls: TlsMaterial | null): Promise<RoleHandle> {
  const f = await buildFoundation(config, { role: 'broker', logger: opts.logger });
  const { counters, logger } = f;
  // Only schedules (the 'delivered' step of commands); workers run the jobs.
  const commands = buildCommandService(f);
  const sink = new QueueUplinkSink({
    queues: f.workflow.queues,
    counters,
    batchMax: config.uplink_batch_max,
    batchMs: config.uplink_batch_ms,
    highWater: config.uplink_queue_high_water,
    confirmTimeoutMs: config.uplink_confirm_timeout_ms,
    maxHeldBytes: config.uplink_max_held_bytes,
  });
  const broker = buildBroker(f, commands, {
    backends: redisBackends({
      url: config.redis_url!,
      prefix: brokerRedisPrefix(config),
      onError: (err) => logger.warn({ module: 'broker', err: err.message }, 'broker session store connection error'),
    }),
    sink: timedSink(sink, counters),
    tls,
  });
  counters.gauge('mqtt_connections', () => broker.connectionCount);
  counters.gauge('mqtt_connected_towers', () => broker.connectedTowers);
  counters.gauge('uplink_held_bytes', () => sink.heldBytes);
  // Ingest, like MQTT: plugins hand their messages to the same uplink queue.
  const ingest = buildIngestPlugins(f, sink, tls);
  let mqttPort = 0;
  let tlsPort: number | null = null;
  // The broker's own state: its MQTT listeners bound and taking connections.
  const health = healthServer(f, () => ({ broker: broker.accepting }));
  const running = await startComponents(
    [
      ...f.components,
      ...observability(f),
      component('health', () => health.start(), () => health.stop()),
      // Stops after the broker: PUBLISHes it accepted are still queued.
      component('uplink-sink', () => undefined, () => sink.close()),
      component(
        'broker',
        async () => {
          const ports = await broker.start();
          mqttPort = ports.mqttPort;
          tlsPort = ports.tlsPort;
        },
        () => broker.stop(),
      ),
      component('ingest-plugins', () => ingest.plugins.start(), () => ingest.plugins.stop()),
    ],
    logger,
    opts.signal,
  );
  logger.info({ module: 'broker-role', mqtt_port: mqttPort, mqtt_tls_port: tlsPort, health_port: health.port }, 'EdgePlane broker node started');
  return handle(f, running, health.port, mqttPort);
}

/** A worker: consumes uplinks, commands and webhooks; publishes through the broker cluster. */
export function startWorkerRole(config: Config, opts: RoleOptions): Promise<RoleHandle> {
  if (!config.mqtt_url) return Promise.reject(new Error('edgeplane worker needs --mqtt-url / EDGEPLANE_MQTT_URL: the broker node(s) to publish decisions through'));
  return startRole(config, ['http'], () => workerRole(config, opts, config.mqtt_url!));
}

async function workerRole(config: Config, opts: RoleOptions, mqttUrl: string): Promise<RoleHandle> {
  const f = await buildFoundation(config, { role: 'worker', logger: opts.logger });
  const { bus, counters, logger, now, redis } = f;
  const retainedKeys = sessionKeyPrefix(brokerRedisPrefix(config));
  const downlink = new MqttDownlink({
    urls: mqttUrl.split(','),
    // Unique per process: two workers must not take over each other's MQTT session.
    name: f.processId.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64),
    serviceSecret: f.serviceSecret,
    // The bundle publisher finds parts an earlier publisher left retained in the broker nodes'
    // index, and the documents of tenants that are gone.
    ...(redis
      ? {
          retainedUnder: (head: string) => retainedTopicsUnder(redis, retainedKeys, head),
          retainedEdgeDocuments: () => retainedEdgeTopics(redis, retainedKeys),
        }
      : {}),
  });
  const commands = buildCommandService(f);
  const ctx = buildWorkerContext(f, downlink, commands);
  // Every process of a deployment derives the same device directory key (edge-bundle.ts).
  const pipeline = new Pipeline(ctx, { concurrency: config.ingest_concurrency, directoryKey: deriveDirectoryKey(f.serviceSecret), publisherLeaseMs: config.bundle_publisher_lease_ms });
  counters.gauge('ingest_in_flight', () => pipeline.inflight);
  const decisionMetrics = new DecisionMetrics({ bus, counters, now });
  const consumer = new UplinkConsumer({
    queues: f.workflow.queues,
    sink: timedSink(pipeline, counters),
    counters,
    concurrency: Math.max(1, Math.ceil(config.ingest_concurrency / 8)),
    now,
    onError: (err) => logger.error({ module: 'workers', err }, 'uplink job failed for good'),
  });
  const retention = new RetentionJob(ctx, { intervalS: config.retention_interval_s, platformAuditRetentionDays: config.platform_audit_retention_days });
  const sinks = await buildSinks(f, { deliverWebhooks: true });
  const health = healthServer(f, () => ({ mqtt: downlink.connected }));
  const running = await startComponents(
    [
      ...f.components,
      ...observability(f),
      component('decision-metrics', () => decisionMetrics.start(), () => decisionMetrics.stop()),
      component('health', () => health.start(), () => health.stop()),
      component('downlink', () => startDownlink(downlink, mqttUrl), () => downlink.stop()),
      ...sinks.components,
      component(
        'commands',
        async () => {
          commands.startProcessing(downlink);
          // Every worker may resume: job ids make a second scheduling of a step a no-op.
          await commands.resume();
        },
        () => commands.stop(),
      ),
      component('pipeline', () => pipeline.start(), () => pipeline.stop()),
      component('uplinks', () => consumer.start(), () => consumer.stop()),
      component('retention', () => retention.start(), () => retention.stop()),
    ],
    logger,
    opts.signal,
  );
  logger.info({ module: 'worker-role', health_port: health.port }, 'EdgePlane worker started');
  return handle(f, running, health.port);
}

/** An API process: the REST API, feeds and docs; schedules commands, never sends them. */
export function startApiRole(config: Config, opts: RoleOptions): Promise<RoleHandle> {
  return startRole(config, ['http'], (tls) => apiRole(config, opts, tls));
}

async function apiRole(config: Config, opts: RoleOptions, tls: TlsMaterial | null): Promise<RoleHandle> {
  const f = await buildFoundation(config, { role: 'api', logger: opts.logger });
  const { store, bus, counters, logger, now, tokens, keyRing } = f;
  const commands = buildCommandService(f);
  const sinks = await buildSinks(f, { deliverWebhooks: false });
  let accepting = false;
  let port = 0;
  const eventLog = new EventLog({ bus, logger: logger.child({ module: 'events' }) });
  const app = await buildApp(
    {
      store,
      tokens,
      keyRing,
      bus,
      counters,
      commands,
      logger: logger.child({ module: 'api' }),
      config,
      budgets: f.workflow.budgets,
      redis: f.redis,
      storeFaults: f.storeFaults,
      now,
      readiness: async () => {
        const checks = { ...f.connectionsReady(), store: accepting && (await f.storeReady()), api: accepting };
        return { ok: Object.values(checks).every(Boolean), checks };
      },
    },
    { ...(tls ? { https: tls } : {}), ...(config.metrics_token ? { metricsToken: config.metrics_token } : {}) },
  );
  const running = await startComponents(
    [
      ...f.components,
      component('event-log', () => eventLog.start(), () => eventLog.stop()),
      component('operator', () => ensureOperator(store, config, f.paths, logger), () => undefined),
      ...sinks.components,
      component('commands', () => undefined, () => commands.stop()),
      component(
        'api',
        async () => {
          await app.listen({ host: config.http_host, port: config.http_port });
          const addr = app.server.address();
          port = typeof addr === 'object' && addr ? addr.port : config.http_port;
          accepting = true;
        },
        async () => {
          accepting = false;
          await app.close();
        },
      ),
    ],
    logger,
    opts.signal,
  );
  logger.info({ module: 'api-role', http_port: port, https: tls !== null }, 'EdgePlane API started');
  return handle(f, running, port, undefined, tls !== null);
}

/** The broker nodes' session store namespace in Redis (the worker reads its retained index). */
function brokerRedisPrefix(config: Config): string {
  return `${config.redis_prefix}mqtt:`;
}
