/**
 * The distributed topology on one host, as real processes: a redis-server of its own, `edgeplane
 * api`, N `edgeplane broker` nodes and M `edgeplane worker` processes sharing Redis, one data dir
 * (signing keys, service secret) and one store (an SQLite file in WAL mode, or MONGODB_URL).
 * Every process listens on ephemeral loopback ports, read back from its start-up log line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLine, startCli, type Running } from './cli.js';
import { startRedisServer, type RedisServerHandle } from '../../cli/bench/redis-process.js';

export const TOPOLOGY_ADMIN_EMAIL = 'admin@edgeplane.test';
export const TOPOLOGY_ADMIN_PASSWORD = 'topology-operator-password';

export interface RoleProcess {
  name: string;
  run: Running;
  /** Health/metrics (broker, worker) or API (api) base URL. */
  httpUrl: string;
  /** Broker nodes only. */
  mqttUrl?: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Topology {
  redis: RedisServerHandle;
  dataDir: string;
  storeUrl: string;
  api: RoleProcess;
  brokers: RoleProcess[];
  workers: RoleProcess[];
  /** `env`: extra settings for this node only (e.g. EDGEPLANE_MQTT_PORT to restart one on its port). */
  startBroker(name: string, env?: Record<string, string>): Promise<RoleProcess>;
  startWorker(name: string): Promise<RoleProcess>;
  stop(): Promise<void>;
}

export interface TopologyOptions {
  brokers: number;
  workers: number;
  /** Extra EDGEPLANE_* settings for every role. */
  env?: Record<string, string>;
}

async function startRole(args: string[], env: NodeJS.ProcessEnv, name: string, startedMsg: string): Promise<RoleProcess> {
  const run = startCli(args, env);
  const line = await run.waitForLine((l) => jsonLine(l)?.msg === startedMsg);
  const log = jsonLine(line)!;
  const httpPort = Number(log.http_port ?? log.health_port);
  const mqttPort = log.mqtt_port === undefined ? undefined : Number(log.mqtt_port);
  return {
    name,
    run,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    ...(mqttPort !== undefined ? { mqttUrl: `mqtt://127.0.0.1:${mqttPort}` } : {}),
    async kill(signal = 'SIGKILL') {
      if (run.child.exitCode !== null || run.child.signalCode !== null) return;
      run.child.kill(signal);
      await run.exit;
    },
  };
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const redis = await startRedisServer({ appendonly: true });
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-topology-'));
  const storeUrl = process.env.MONGODB_URL
    ? `${process.env.MONGODB_URL.replace(/\/$/, '')}/edgeplane_topology_${process.pid}_${Date.now()}`
    : `sqlite:${join(dataDir, 'edgeplane.db')}`;
  const env: NodeJS.ProcessEnv = {
    EDGEPLANE_REDIS_URL: redis.url,
    EDGEPLANE_STORE_URL: storeUrl,
    EDGEPLANE_DATA_DIR: dataDir,
    EDGEPLANE_ADMIN_EMAIL: TOPOLOGY_ADMIN_EMAIL,
    EDGEPLANE_ADMIN_PASSWORD: TOPOLOGY_ADMIN_PASSWORD,
    EDGEPLANE_HTTP_HOST: '127.0.0.1',
    EDGEPLANE_HTTP_PORT: '0',
    EDGEPLANE_MQTT_HOST: '127.0.0.1',
    EDGEPLANE_MQTT_PORT: '0',
    EDGEPLANE_MQTT_WS_PORT: '0',
    EDGEPLANE_LOG_LEVEL: 'info',
    // Bulk provisioning through one API.
    EDGEPLANE_RATE_LIMIT_PER_MIN: '100000',
    ...opts.env,
  };
  const all: RoleProcess[] = [];
  const brokers: RoleProcess[] = [];
  const workers: RoleProcess[] = [];
  const track = (p: RoleProcess) => (all.push(p), p);
  const startBroker = async (name: string, extra: Record<string, string> = {}) =>
    track(await startRole(['broker'], { ...env, ...extra }, name, 'EdgePlane broker node started'));
  const startWorker = async (name: string) =>
    track(await startRole(['worker'], { ...env, EDGEPLANE_MQTT_URL: brokers.map((b) => b.mqttUrl).join(',') }, name, 'EdgePlane worker started'));
  try {
    // The API first: it creates the operator (and the store schema) before anyone else.
    const api = track(await startRole(['api'], env, 'api', 'EdgePlane API started'));
    for (let i = 0; i < opts.brokers; i++) brokers.push(await startBroker(`broker-${i}`));
    for (let i = 0; i < opts.workers; i++) workers.push(await startWorker(`worker-${i}`));
    return {
      redis,
      dataDir,
      storeUrl,
      api,
      brokers,
      workers,
      startBroker,
      startWorker,
      async stop() {
        await Promise.all(all.map((p) => p.kill('SIGTERM')));
        await redis.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(all.map((p) => p.kill('SIGKILL')));
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}
