/**
 * What every process role builds first, from the one config: logger, counters, clock and ids,
 * the data dir's secrets, the store, and — embedded or distributed — the bus and the workflow
 * ports. Components are returned in start order for the role's root to extend.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { consoleSessionStands } from '../../shared/auth/console-session.js';
import { KeyRing, TokenService } from '../../shared/auth/tokens.js';
import { InProcessBus, type Bus } from '../../shared/bus.js';
import type { Config } from '../../shared/config.js';
import { createIdFactory, type IdFactory } from '../../shared/ids.js';
import type { Logger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import { redactUrl } from '../../shared/redact-url.js';
import { openStore } from '../../shared/store/open-store.js';
import type { Store } from '../../shared/store/port.js';
import { StoreFaults } from '../../shared/store/store-faults.js';
import { inProcessWorkflow, type WorkflowPorts } from '../../shared/workflow/index.js';
import { loadOrCreateSecret, prepareDataDir, type DataDirPaths } from '../data-dir.js';
import { StartupError } from '../startup-error.js';
import { component, type Component } from './components.js';
import { storeProbe } from './store-probe.js';
import { mallocTrimComponent } from './malloc-trim.js';

export type Role = 'embedded' | 'broker' | 'worker' | 'api';

export interface Foundation {
  role: Role;
  config: Config;
  logger: Logger;
  counters: Counters;
  now: () => number;
  newId: IdFactory;
  /** Unique per process: lease owner, CLIENT LIST name. */
  processId: string;
  paths: DataDirPaths;
  serviceSecret: string;
  store: Store;
  /** Store-full refusals of this process: counted, logged once per episode. */
  storeFaults: StoreFaults;
  bus: Bus;
  workflow: WorkflowPorts;
  keyRing: KeyRing;
  tokens: TokenService;
  /** The process' shared Redis command connection (distributed mode). */
  redis: Redis | null;
  /** Reports whether the process' connections are up (for /readyz). */
  connectionsReady(): Record<string, boolean>;
  /** Whether the store answers a read now (for /readyz; cli/roots/store-probe.ts). */
  storeReady(): Promise<boolean>;
  /** In start order; the role appends its own. */
  components: Component[];
}

export interface FoundationOptions {
  role: Role;
  logger: Logger;
  now?: () => number;
}

export async function buildFoundation(config: Config, opts: FoundationOptions): Promise<Foundation> {
  const { role, logger } = opts;
  const now = opts.now ?? Date.now;
  const newId = createIdFactory();
  const processId = `${role}-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const counters = new Counters();
  counters.collectProcessMetrics();
  const paths = await prepareDataDir(config.data_dir);
  const serviceSecret = config.service_secret ?? (await loadOrCreateSecret(paths.serviceSecret));
  const keyRing = await KeyRing.open(paths.jwtKeys);
  const tokens = new TokenService(keyRing, config.access_token_ttl_s, now);
  const onBusError = (err: unknown, event: string) => logger.error({ err, event, module: 'bus' }, 'bus listener failed');

  const distributed = role !== 'embedded';
  if (distributed && !config.redis_url) {
    throw new Error(`edgeplane ${role} needs Redis: set --redis-url / EDGEPLANE_REDIS_URL (e.g. redis://127.0.0.1:6379)`);
  }
  // First to start, last to stop: it only watches the process's own GC.
  const components: Component[] = [mallocTrimComponent(config.malloc_trim_interval_s, logger, counters)];
  let redis: Redis | null = null;
  let bus: Bus;
  let workflow: WorkflowPorts;
  let subscriber: Redis | null = null;
  if (distributed && config.redis_url) {
    const url = config.redis_url;
    // Loaded only here: the embedded mode never needs ioredis or BullMQ (~140 ms of start-up).
    const [{ connectRedis, createRedis }, { RedisBus }, { redisWorkflow }] = await Promise.all([
      import('../../shared/redis/connection.js'),
      import('../../shared/redis/redis-bus.js'),
      import('../../shared/workflow/redis/index.js'),
    ]);
    redis = createRedis(url, { name: `edgeplane-${role}` });
    subscriber = createRedis(url, { name: `edgeplane-${role}-bus` });
    // ioredis emits 'error' on every failed reconnect attempt, and prints "Unhandled error event"
    // to stderr for each when nobody listens: one warning when a connection is lost, one line
    // when it is back.
    for (const [conn, which] of [[redis, 'commands'], [subscriber, 'bus']] as const) {
      let lost = false;
      conn.on('error', (err: Error) => {
        if (lost) return;
        lost = true;
        logger.warn({ module: 'redis', connection: which, err: err.message }, 'redis connection lost; reconnecting');
      });
      conn.on('ready', () => {
        if (!lost) return;
        lost = false;
        logger.info({ module: 'redis', connection: which }, 'redis connection back');
      });
    }
    const redisBus = new RedisBus({ publisher: redis, subscriber, prefix: config.redis_prefix, counters, onError: onBusError });
    bus = redisBus;
    workflow = redisWorkflow({ url, redis, prefix: config.redis_prefix, lockDurationMs: config.queue_lock_ms, name: `edgeplane-${role}` });
    const [r, sub] = [redis, subscriber];
    components.push(
      component(
        'redis',
        async () => {
          await connectRedis(r, url);
          await connectRedis(sub, url);
        },
        async () => {
          await sub.quit().catch(() => sub.disconnect());
          await r.quit().catch(() => r.disconnect());
        },
      ),
      component('bus', () => redisBus.start(), () => redisBus.stop()),
    );
  } else {
    bus = new InProcessBus(onBusError);
    workflow = inProcessWorkflow({
      remediation: {
        onLiveDropped: (what, n) => {
          counters.inc('remediation_state_dropped_total', { what }, n);
          logger.warn({ module: 'remediation', event: 'remediation_state_full', what, dropped: n }, 'remediation state full: entries still in force forgotten');
        },
      },
    });
  }

  const storeUrl = config.store_url ?? `sqlite:${join(paths.root, 'edgeplane.db')}`;
  const store = openStore(storeUrl, {
    now,
    newId,
    durability: config.durability,
    hooks: { onPolicyChanged: (tenantId, version, scope) => bus.publish('policy.changed', { tenant_id: tenantId, version, scope }) },
  });
  components.push(
    component(
      'store',
      async () => {
        try {
          await store.init();
        } catch (err) {
          const hint = config.store_url ? '--store-url / EDGEPLANE_STORE_URL' : '--data-dir / EDGEPLANE_DATA_DIR (the SQLite file lives there)';
          throw new StartupError(`cannot open the store ${redactUrl(storeUrl)}: ${(err as Error).message} (${hint})`);
        }
      },
      () => store.close(),
    ),
    // Queues close after every component that schedules or consumes work has stopped.
    component('workflow', () => undefined, () => workflow.close()),
  );

  return {
    role,
    config,
    logger,
    counters,
    now,
    newId,
    processId,
    paths,
    serviceSecret,
    store,
    storeFaults: new StoreFaults({ logger: logger.child({ module: 'store' }), counters, now }),
    bus,
    workflow,
    keyRing,
    tokens,
    redis,
    connectionsReady: (): Record<string, boolean> =>
      redis && subscriber ? { redis: redis.status === 'ready', bus: subscriber.status === 'ready' } : {},
    storeReady: storeProbe(store),
    components,
  };
}

export function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * A console user may keep an MQTT session: it exists in this tenant, is not disabled, its
 * token's session version is still the account's (no role or password change since), and the
 * token's sign-in (`sessionId`, its `sid`) was not signed out, as the API's guard checks a request.
 */
export async function consoleUserActive(store: Store, userId: string, tenantId: string, sessionVersion: number, sessionId?: string): Promise<boolean> {
  return (await consoleSessionStands(store, { userId, tenantId, sessionVersion, sessionId })) !== null;
}
