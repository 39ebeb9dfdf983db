/**
 * The composition root of the embedded control plane (`edgeplane start`): one process holding
 * the store (SQLite by default), the Aedes broker with its sessions on disk, the policy pipeline,
 * the command service, the sinks and the HTTP API. Components are declared once, in start order;
 * they stop in reverse (cli/roots/components.ts), which drains the API and the pipeline before
 * the command service, the sinks and the broker they publish through.
 *
 * Before anything is written, a preflight checks the data dir, the listen addresses and the TLS
 * files (cli/preflight.ts), and the data dir is locked to this process (cli/data-dir-lock.ts).
 * The operator is created only once the broker holds its ports, so a start that fails leaves no
 * operator and no password file behind.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import { levelBackends } from '../broker/backends-level.js';
import type { Broker } from '../broker/broker.js';
import { buildBroker } from './roots/broker-root.js';
import { replaceFile } from '../shared/atomic-file.js';
import { hashPassword } from '../shared/auth/passwords.js';
import { randomSecret } from '../shared/auth/secrets.js';
import type { KeyRing, TokenService } from '../shared/auth/tokens.js';
import type { Bus } from '../shared/bus.js';
import { CommandService } from '../shared/commands/command-service.js';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import type { Counters } from '../shared/metrics.js';
import type { Store } from '../shared/store/port.js';
import type { WorkerContext } from '../workers/context.js';
import { Pipeline } from '../workers/pipeline.js';
import { deriveDirectoryKey } from '../shared/policy/edge-bundle.js';
import { RetentionJob } from '../workers/retention-job.js';
import type { DataDirPaths } from './data-dir.js';
import { lockDataDir } from './data-dir-lock.js';
import { preflight } from './preflight.js';
import { component, startComponents } from './roots/components.js';
import { EventLog } from './roots/event-log.js';
import { buildFoundation, urlHost, type Foundation } from './roots/foundation.js';
import { DecisionMetrics, timedSink } from './roots/pipeline-metrics.js';
import { buildIngestPlugins, type BuiltIngestPlugins } from './roots/ingest-plugins.js';
import { buildSinks } from './roots/sinks.js';
import { explainStartupError } from './startup-error.js';

export interface EmbeddedHandle {
  config: Config;
  paths: DataDirPaths;
  /** https:// when TLS is configured. */
  httpUrl: string;
  mqttUrl: string;
  /** wss:// when TLS is configured. */
  mqttWsUrl: string;
  /** mqtts://, when TLS is configured. */
  mqttTlsUrl: string | null;
  store: Store;
  bus: Bus;
  counters: Counters;
  tokens: TokenService;
  keyRing: KeyRing;
  pipeline: Pipeline;
  commands: CommandService;
  broker: Broker;
  /** Ingest plugins next to MQTT (RADIUS accounting, the line-protocol example); null when off. */
  ingest: Omit<BuiltIngestPlugins, 'plugins'>;
  app: FastifyInstance;
  serviceSecret: string;
  /** Set only on the start that created the operator with a generated password. */
  generatedAdminPassword: string | null;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  logger: Logger;
  now?: () => number;
  /** Aborting it gives the start up (StartInterrupted): what had started is stopped, the lock released. */
  signal?: AbortSignal;
}

export function buildCommandService(f: Foundation): CommandService {
  return new CommandService(
    {
      store: f.store,
      bus: f.bus,
      queues: f.workflow.queues,
      counters: f.counters,
      now: f.now,
      newId: f.newId,
      // A full store is logged once per episode (StoreFaults); the job retries either way.
      onError: (err, what) => {
        if (!f.storeFaults.refused(err, 'commands')) f.logger.error({ module: 'commands', err }, `${what} failed`);
      },
    },
    { ttlS: f.config.command_ttl_s, retryMinMs: f.config.command_retry_min_ms, retryMaxMs: f.config.command_retry_max_ms },
  );
}

/** What the workers of this process share (the pipeline, retention, the uplink consumer). */
export function buildWorkerContext(f: Foundation, downlink: WorkerContext['downlink'], commands: CommandService): WorkerContext {
  return {
    store: f.store,
    bus: f.bus,
    downlink,
    counters: f.counters,
    logger: f.logger.child({ module: 'workers' }),
    now: f.now,
    newId: f.newId,
    commands,
    budgets: f.workflow.budgets,
    remediationState: f.workflow.remediation,
    leases: f.workflow.leases,
    processId: f.processId,
    storeFaults: f.storeFaults,
  };
}

export async function startEmbedded(config: Config, opts: EmbeddedOptions): Promise<EmbeddedHandle> {
  const { tls } = await preflight(config, ['http', 'mqtt', 'mqttWs', 'mqttTls', 'radsec']);
  const lock = await lockDataDir(config.data_dir);
  try {
    return await startLocked(config, opts, tls, lock.release);
  } catch (err) {
    await lock.release();
    throw explainStartupError(err, config);
  }
}

async function startLocked(
  config: Config,
  opts: EmbeddedOptions,
  tls: Awaited<ReturnType<typeof preflight>>['tls'],
  releaseLock: () => Promise<void>,
): Promise<EmbeddedHandle> {
  const { logger } = opts;
  const f = await buildFoundation(config, { role: 'embedded', logger, ...(opts.now ? { now: opts.now } : {}) });
  const { store, bus, counters, now, tokens, keyRing } = f;
  const commands = buildCommandService(f);
  const broker = buildBroker(f, commands, {
    // Sessions (subscriptions, queued QoS 1 messages, retained bundles) survive a restart.
    backends: levelBackends({ location: join(f.paths.root, 'broker-sessions'), durability: f.config.durability }),
    tls,
  });
  const workerCtx = buildWorkerContext(f, broker.downlink, commands);
  // Every process of a deployment derives the same device directory key (edge-bundle.ts).
  const pipeline = new Pipeline(workerCtx, { concurrency: config.ingest_concurrency, directoryKey: deriveDirectoryKey(f.serviceSecret) });
  const sink = timedSink(pipeline, counters);
  // The broker's uplinks go straight into the pipeline and, at QoS 1, are PUBACKed after it (the
  // UplinkMessage.acked_after_answer contract); ingest plugins get the plain sink.
  // The flag first: `acked_after_answer` is only ever true or absent, and V8 (Node 20) builds a
  // spread followed by a key its source lacks through a slow path (~1 µs per message; api/routes/devices.ts).
  broker.setSink({ accept: (msg) => sink.accept((msg.publish_qos ?? 0) >= 1 ? { acked_after_answer: true, ...msg } : msg) });
  counters.gauge('ingest_in_flight', () => pipeline.inflight);
  counters.gauge('mqtt_connections', () => broker.connectionCount);
  counters.gauge('mqtt_connected_towers', () => broker.connectedTowers);
  const ingest = buildIngestPlugins(f, sink, tls);
  const retention = new RetentionJob(workerCtx, { intervalS: config.retention_interval_s, platformAuditRetentionDays: config.platform_audit_retention_days });
  const sinks = await buildSinks(f, { deliverWebhooks: true });
  const eventLog = new EventLog({ bus, logger: logger.child({ module: 'events' }) });
  const decisionMetrics = new DecisionMetrics({ bus, counters, now });
  let accepting = false;
  let app: FastifyInstance | null = null;
  let ports: { mqttPort: number; wsPort: number; tlsPort: number | null } = { mqttPort: 0, wsPort: 0, tlsPort: null };
  let generatedAdminPassword: string | null = null;

  const running = await startComponents(
    [
      // Stops last: the data dir is ours until everything else has let go of it.
      component('data-dir-lock', () => undefined, releaseLock),
      ...f.components,
      component('event-log', () => eventLog.start(), () => eventLog.stop()),
      component('decision-metrics', () => decisionMetrics.start(), () => decisionMetrics.stop()),
      component('broker', async () => (ports = await broker.start()), () => broker.stop()),
      // After the broker holds its ports, before the API serves logins.
      component('operator', async () => (generatedAdminPassword = await ensureOperator(store, config, f.paths, logger)), () => undefined),
      ...sinks.components,
      component(
        'commands',
        async () => {
          commands.startProcessing(broker.downlink);
          // Open commands of the previous run: their next send and their expiry.
          await commands.resume();
        },
        () => commands.stop(),
      ),
      component('pipeline', () => pipeline.start(), () => pipeline.stop()),
      // After the pipeline they feed, so they stop (and drain) before it.
      component('ingest-plugins', () => ingest.plugins.start(), () => ingest.plugins.stop()),
      component('retention', () => retention.start(), () => retention.stop()),
      component(
        'api',
        async () => {
          app = await buildApp(
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
              storeFaults: f.storeFaults,
              now,
              // The store is asked (it may fail its reads) and the broker's listeners are looked at;
              // the pipeline is this process's own.
              readiness: async () => {
                const storeOk = accepting && (await f.storeReady());
                const brokerOk = accepting && broker.accepting;
                return { ok: storeOk && brokerOk, checks: { store: storeOk, broker: brokerOk, pipeline: accepting } };
              },
            },
            { ...(tls ? { https: tls } : {}), ...(config.metrics_token ? { metricsToken: config.metrics_token } : {}) },
          );
          await app.listen({ host: config.http_host, port: config.http_port });
          accepting = true;
        },
        async () => {
          accepting = false;
          await app?.close();
        },
      ),
    ],
    logger,
    opts.signal,
  );

  const built = app as FastifyInstance | null;
  if (!built) throw new Error('api did not start');
  const addr = built.server.address();
  const httpPort = typeof addr === 'object' && addr ? addr.port : config.http_port;
  const handle: EmbeddedHandle = {
    config,
    paths: f.paths,
    httpUrl: `${tls ? 'https' : 'http'}://${urlHost(config.http_host)}:${httpPort}`,
    mqttUrl: `mqtt://${urlHost(config.mqtt_host)}:${ports.mqttPort}`,
    mqttWsUrl: `${tls ? 'wss' : 'ws'}://${urlHost(config.mqtt_host)}:${ports.wsPort}`,
    mqttTlsUrl: ports.tlsPort !== null ? `mqtts://${urlHost(config.mqtt_host)}:${ports.tlsPort}` : null,
    store,
    bus,
    counters,
    tokens,
    keyRing,
    pipeline,
    commands,
    broker,
    ingest: { radius: ingest.radius, radsec: ingest.radsec, line: ingest.line },
    app: built,
    serviceSecret: f.serviceSecret,
    generatedAdminPassword,
    stop: () => running.stop(),
  };
  logger.info(
    { module: 'embedded', http: handle.httpUrl, mqtt: handle.mqttUrl, mqtt_ws: handle.mqttWsUrl, mqtt_tls: handle.mqttTlsUrl, data_dir: f.paths.root, durability: f.config.durability },
    'EdgePlane control plane started',
  );
  return handle;
}

/** Creates the platform operator on first start; returns the password only if generated now. */
export async function ensureOperator(store: Store, config: Config, paths: DataDirPaths, logger: Logger): Promise<string | null> {
  if (await store.consoleUsers.findByEmail(config.admin_email)) {
    if (config.admin_password !== undefined) {
      logger.warn(
        { module: 'embedded', event: 'admin_password_ignored', email: config.admin_email },
        '--admin-password / EDGEPLANE_ADMIN_PASSWORD ignored: the operator already exists in this data dir (change its password through the API)',
      );
    }
    return null;
  }
  const generated = config.admin_password ? null : randomSecret(18);
  const password = config.admin_password ?? generated!;
  // On disk (synced) before the operator exists: a crash or power cut in between leaves a file
  // that the next start overwrites (no operator yet), never an operator whose password is lost.
  if (generated) await replaceFile(paths.initialAdminPassword, generated + '\n', { sync: true });
  await store.consoleUsers.create({
    tenant_id: null,
    email: config.admin_email,
    console_role: 'operator',
    password_hash: await hashPassword(password),
  });
  if (generated) {
    logger.warn(
      { module: 'embedded', email: config.admin_email, password_file: paths.initialAdminPassword },
      'created platform operator with a generated password (see password_file; change it after first login)',
    );
  } else {
    logger.info({ module: 'embedded', email: config.admin_email }, 'created platform operator');
  }
  return generated;
}
