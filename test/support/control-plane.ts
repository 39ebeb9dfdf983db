/**
 * Test harness for end-to-end tests: the real embedded control plane (`startEmbedded`, the same
 * composition root `edgeplane start` uses) on loopback with ephemeral ports and a temp data dir.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { startEmbedded, type EmbeddedHandle } from '../../cli/embedded.js';
import { loadConfig } from '../../shared/config.js';
import { silentLogger } from '../../shared/logger.js';
import { ApiClient } from '../../simulator/api-client.js';

export const ADMIN_EMAIL = 'admin@edgeplane.test';
export const ADMIN_PASSWORD = 'e2e-operator-password-1234';

export interface TestControlPlane {
  cp: EmbeddedHandle;
  dataDir: string;
  operator: ApiClient;
  /** Stops the control plane, keeping the data dir (for restart tests). */
  stop(): Promise<void>;
  /** Stops it and deletes the data dir. */
  destroy(): Promise<void>;
}

export async function startTestControlPlane(opts: { dataDir?: string; config?: Record<string, unknown> } = {}): Promise<TestControlPlane> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'edgeplane-e2e-')));
  const config = loadConfig(
    {
      data_dir: dataDir,
      http_host: '127.0.0.1',
      http_port: 0,
      mqtt_host: '127.0.0.1',
      mqtt_port: 0,
      mqtt_ws_port: 0,
      admin_email: ADMIN_EMAIL,
      admin_password: ADMIN_PASSWORD,
      log_level: 'silent',
      ...opts.config,
    },
    {},
  );
  const cp = await startEmbedded(config, { logger: silentLogger() });
  const operator = await ApiClient.login(cp.httpUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
  return {
    cp,
    dataDir,
    operator,
    stop: () => cp.stop(),
    destroy: async () => {
      await cp.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A raw MQTT connection as a tower (bypassing the agent), for malformed/redelivery tests. */
export async function connectTower(url: string, towerId: string, password: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    protocolVersion: 4,
    clientId: `tower-${towerId}`,
    username: towerId,
    password,
    clean: true,
    reconnectPeriod: 0,
  });
}

/** Resolves with the next message on `topic` (parsed as JSON). */
export function nextMessage<T>(client: MqttClient, topic: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off('message', onMessage);
      resolve(JSON.parse(payload.toString()) as T);
    };
    client.on('message', onMessage);
  });
}
