/**
 * `bench --only distributed`: the same offered loads through the embedded control plane and the
 * distributed topology on this host (a redis-server of its own, `edgeplane api`, one `edgeplane
 * broker`, then one and two `edgeplane worker`s, sharing an SQLite file), so the cost of the
 * queue hop and the scaling from one worker to two are measured in one run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomSecret } from '../../shared/auth/secrets.js';
import { spawnAndWait, type Child } from './child.js';
import { BENCH_LIMITS, benchPipeline, benchSteps, type PipelineBenchResult, type StepOptions } from './pipeline-bench.js';
import { startRedisServer } from './redis-process.js';

export interface DistributedBenchResult {
  embedded: PipelineBenchResult;
  distributed_1_worker: PipelineBenchResult;
  distributed_2_workers: PipelineBenchResult;
  /** Highest load carried, 2 workers / 1 worker. */
  scaling_2_over_1: number;
  /** Highest load carried, distributed (1 worker) / embedded. */
  distributed_over_embedded: number;
}

function started(msg: string) {
  return (line: string) => {
    try {
      const l = JSON.parse(line) as { msg?: string; http_port?: number; health_port?: number; mqtt_port?: number };
      return l.msg === msg ? l : undefined;
    } catch {
      return undefined;
    }
  };
}

async function benchTopology(workers: number, opts: StepOptions): Promise<PipelineBenchResult> {
  const redis = await startRedisServer({ appendonly: true });
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-bench-dist-'));
  const adminPassword = randomSecret(16);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EDGEPLANE_REDIS_URL: redis.url,
    EDGEPLANE_DATA_DIR: dataDir,
    EDGEPLANE_STORE_URL: `sqlite:${join(dataDir, 'edgeplane.db')}`,
    EDGEPLANE_ADMIN_PASSWORD: adminPassword,
    EDGEPLANE_HTTP_HOST: '127.0.0.1',
    EDGEPLANE_HTTP_PORT: '0',
    EDGEPLANE_MQTT_HOST: '127.0.0.1',
    EDGEPLANE_MQTT_PORT: '0',
    EDGEPLANE_MQTT_WS_PORT: '0',
    EDGEPLANE_LOG_LEVEL: 'info',
  };
  const children: Child[] = [];
  try {
    const api = await spawnAndWait(['api', ...BENCH_LIMITS], started('EdgePlane API started'), { useBin: true, env });
    children.push(api.child);
    const broker = await spawnAndWait(['broker', ...BENCH_LIMITS], started('EdgePlane broker node started'), { useBin: true, env });
    children.push(broker.child);
    const mqtt = `mqtt://127.0.0.1:${broker.value.mqtt_port}`;
    for (let i = 0; i < workers; i++) {
      const w = await spawnAndWait(['worker', '--mqtt-url', mqtt], started('EdgePlane worker started'), { useBin: true, env });
      children.push(w.child);
    }
    // The deployment's CPU: every role and its Redis.
    const pids = [...children.map((c) => c.proc.pid), redis.process.pid].filter((pid): pid is number => pid !== undefined);
    return await benchSteps({ http: `http://127.0.0.1:${api.value.http_port}`, mqtt }, adminPassword, {
      ...opts,
      label: `distributed (1 broker + ${workers} worker${workers > 1 ? 's' : ''})`,
      server: { pids },
    });
  } finally {
    for (const c of children.reverse()) await c.stop();
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function benchDistributed(options: StepOptions): Promise<DistributedBenchResult> {
  const opts = { ...options, continuePastLatency: true };
  const embedded = await benchPipeline({ ...opts, label: 'embedded', relaySeconds: 0 });
  const one = await benchTopology(1, opts);
  const two = await benchTopology(2, opts);
  return {
    embedded,
    distributed_1_worker: one,
    distributed_2_workers: two,
    scaling_2_over_1: one.max_carried_eps > 0 ? two.max_carried_eps / one.max_carried_eps : 0,
    distributed_over_embedded: embedded.max_carried_eps > 0 ? one.max_carried_eps / embedded.max_carried_eps : 0,
  };
}
