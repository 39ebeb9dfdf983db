/**
 * The composition root of the embedded control plane (`edgeplane start`): one process holding
 * the SQLite store, the Aedes broker, the policy pipeline and the HTTP API. Builds every
 * component with its dependencies, starts them in dependency order and stops them in reverse.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import { Broker } from '../broker/broker.js';
import { levelBackends } from '../broker/backends-level.js';
import { hashPassword } from '../shared/auth/passwords.js';
import { randomSecret } from '../shared/auth/secrets.js';
import { KeyRing, TokenService } from '../shared/auth/tokens.js';
import { InProcessBus } from '../shared/bus.js';
import type { Config } from '../shared/config.js';
import { createIdFactory } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import type { Store } from '../shared/store/port.js';
import { Pipeline } from '../workers/pipeline.js';
import { RetentionJob } from '../workers/retention-job.js';
import { CommandAudit } from '../workers/audit/command-audit.js';
import { WebhookDeliverer } from '../workers/webhooks/webhook-deliverer.js';
import { WebhookNotifier } from '../workers/webhooks/webhook-notifier.js';
import { createFirebaseWriter } from '../shared/realtime/firebase-writer.js';
import { FirebaseSink } from '../shared/realtime/firebase-sink.js';
import { loadOrCreateSecret, prepareDataDir, type DataDirPaths } from './data-dir.js';

export interface EmbeddedHandle {
  config: Config;
  paths: DataDirPaths;
  httpUrl: string;
  mqttUrl: string;
  mqttWsUrl: string;
  store: Store;
  bus: InProcessBus;
  counters: Counters;
  tokens: TokenService;
  keyRing: KeyRing;
  pipeline: Pipeline;
  broker: Broker;
  app: FastifyInstance;
  serviceSecret: string;
  /** Set only on the start that created the operator with a generated password. */
  generatedAdminPassword: string | null;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  logger: Logger;
  now?: () => number;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startEmbedded(config: Config, opts: EmbeddedOptions): Promise<EmbeddedHandle> {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  const newId = createIdFactory();
  const paths = await prepareDataDir(config.data_dir);
  const serviceSecret = config.service_secret ?? (await loadOrCreateSecret(paths.serviceSecret));
  const counters = new Counters();
  const bus = new InProcessBus((err, event) => logger.error({ err, event, module: 'bus' }, 'bus listener failed'));

  const store = new SqliteStore({
    file: paths.database,
    now,
    newId,
    hooks: { onPolicyChanged: (tenantId, version) => bus.publish('policy.changed', { tenant_id: tenantId, version }) },
  });
  const keyRing = await KeyRing.open(paths.jwtKeys);
  const tokens = new TokenService(keyRing, config.access_token_ttl_s, now);

  // Start in dependency order; on a failure, stop what already started.
  const started: Array<() => Promise<void>> = [];
  let generatedAdminPassword: string | null = null;
  let accepting = false;
  try {
    await store.init();
    started.push(() => store.close());
    // The store's repositories exist once it is open; everything else is built on them.
    const broker = new Broker({
      config: { ...config, service_secret: serviceSecret },
      logger: logger.child({ module: 'broker' }),
      counters,
      bus,
      towerCredentials: store.towerCredentials,
      towers: store.towers,
      tokens,
      now,
      // Towers' persistent sessions and queued downlinks survive a restart (kill -9 included).
      backends: levelBackends({ location: join(paths.root, 'broker-sessions') }),
    });
    const workerCtx = { store, bus, downlink: broker.downlink, counters, logger: logger.child({ module: 'workers' }), now, newId };
    const pipeline = new Pipeline(
      workerCtx,
      {
        concurrency: config.ingest_concurrency,
        commandTtlS: config.command_ttl_s,
        commandRetryMinMs: config.command_retry_min_ms,
        commandRetryMaxMs: config.command_retry_max_ms,
      },
    );
    broker.setSink(pipeline);
    const retention = new RetentionJob(workerCtx, { intervalS: config.retention_interval_s });
    const onWorkerError = (what: string) => (err: unknown) => logger.error({ module: 'workers', err }, `${what} failed`);
    const deliverer = new WebhookDeliverer({
      store,
      counters,
      maxAttempts: config.webhook_max_attempts,
      timeoutMs: config.webhook_timeout_ms,
      now,
      onError: onWorkerError('webhook delivery'),
    });
    const commandAudit = new CommandAudit({ store, bus, onError: onWorkerError('command audit') });
    const notifier = new WebhookNotifier({ store, bus, deliverer, counters, newId, now, onError: onWorkerError('webhook notification') });
    // The Firebase mirror is opt-in: a database URL, or the emulator for development.
    const firebaseUrl = config.firebase_database_url;
    const firebase = firebaseUrl
      ? new FirebaseSink({
          bus,
          writer: createFirebaseWriter({
            databaseURL: firebaseUrl,
            ...(config.firebase_credentials_file ? { credentialsFile: config.firebase_credentials_file } : {}),
          }),
          counters,
          flushMs: config.firebase_flush_ms,
          now,
          onError: onWorkerError('firebase write'),
        })
      : null;
    const app = await buildApp({
      store,
      tokens,
      keyRing,
      bus,
      counters,
      logger: logger.child({ module: 'api' }),
      config,
      now,
      readiness: async () => ({ ok: accepting, checks: { store: accepting, broker: accepting, pipeline: accepting } }),
    });
    generatedAdminPassword = await ensureOperator(store, config, paths, logger);
    const ports = await broker.start();
    started.push(() => broker.stop());
    // Before the pipeline: the dispatcher resumes open commands at start, and those steps count too.
    commandAudit.start();
    started.push(() => commandAudit.stop());
    await pipeline.start();
    started.push(() => pipeline.stop());
    retention.start();
    started.push(() => retention.stop());
    deliverer.start();
    started.push(() => deliverer.stop());
    notifier.start();
    started.push(() => notifier.stop());
    if (firebase) {
      firebase.start();
      started.push(() => firebase.stop());
    }
    await app.listen({ host: config.http_host, port: config.http_port });
    started.push(() => app.close());
    accepting = true;

    const addr = app.server.address();
    const httpPort = typeof addr === 'object' && addr ? addr.port : config.http_port;
    const handle: EmbeddedHandle = {
      config,
      paths,
      httpUrl: `http://${urlHost(config.http_host)}:${httpPort}`,
      mqttUrl: `mqtt://${urlHost(config.mqtt_host)}:${ports.mqttPort}`,
      mqttWsUrl: `ws://${urlHost(config.mqtt_host)}:${ports.wsPort}`,
      store,
      bus,
      counters,
      tokens,
      keyRing,
      pipeline,
      broker,
      app,
      serviceSecret,
      generatedAdminPassword,
      stop: once(async () => {
        accepting = false;
        // Reverse order, with one exception: the pipeline drains before the broker closes so
        // decisions for already-accepted batches still reach their towers.
        await app.close();
        await retention.stop();
        await pipeline.stop();
        // After the pipeline drained: its last alerts and commands still reach the sinks.
        await firebase?.stop();
        await commandAudit.stop();
        await notifier.stop();
        await deliverer.stop();
        await broker.stop();
        await store.close();
      }),
    };
    logger.info(
      { module: 'embedded', http: handle.httpUrl, mqtt: handle.mqttUrl, mqtt_ws: handle.mqttWsUrl, data_dir: paths.root },
      'EdgePlane control plane started',
    );
    return handle;
  } catch (err) {
    for (const stop of started.reverse()) await stop().catch(() => {});
    throw err;
  }
}

/** Creates the platform operator on first start; returns the password only if generated now. */
async function ensureOperator(store: Store, config: Config, paths: DataDirPaths, logger: Logger): Promise<string | null> {
  if (await store.consoleUsers.findByEmail(config.admin_email)) return null;
  const generated = config.admin_password ? null : randomSecret(18);
  const password = config.admin_password ?? generated!;
  await store.consoleUsers.create({
    tenant_id: null,
    email: config.admin_email,
    console_role: 'operator',
    password_hash: await hashPassword(password),
  });
  if (generated) {
    await writeFile(paths.initialAdminPassword, generated + '\n', { mode: 0o600 });
    logger.warn(
      { module: 'embedded', email: config.admin_email, password_file: paths.initialAdminPassword },
      'created platform operator with a generated password (see password_file; change it after first login)',
    );
  } else {
    logger.info({ module: 'embedded', email: config.admin_email }, 'created platform operator');
  }
  return generated;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= fn());
}
