/**
 * Crash audit: SIGTERM to the embedded control plane (`edgeplane start`, a real child process)
 * while towers publish at a steady rate, checked per PUBACK. test/e2e/restart.test.ts covers the
 * same fault with edge agents and checks the end state after the restart; this one checks the
 * contract at the moment of exit: raw MQTT towers (mqtt.js, persistent sessions, QoS 1) record
 * which batches got a PUBACK, and the SQLite file is read while the process is down.
 *
 * Expected: exit 0 (a shutdown past --shutdown-timeout-ms exits 1); every event PUBACKed before
 * the exit is in the store, once, before any restart; the batches without a PUBACK are resent by
 * mqtt.js once the control plane is back and stored once; nothing is stored twice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../cli/bench/redis-process.js';
import { createIdFactory } from '../../shared/ids.js';
import type { UsageBatch } from '../../shared/mqtt/payloads.js';
import { topics } from '../../shared/mqtt/topics.js';
import { ApiClient } from '../../simulator/api-client.js';
import { provisionWorld } from '../../simulator/provision.js';
import type { ProvisionedWorld } from '../../simulator/world.js';
import { jsonLine, startCli, type Running } from '../support/cli.js';
import { ADMIN_EMAIL, ADMIN_PASSWORD } from '../support/control-plane.js';
import { crashScenario, until } from '../support/crash-audit.js';

const SHUTDOWN_TIMEOUT_MS = 10_000;
const newId = createIdFactory();

let dataDir: string;
let ports: { http: number; mqtt: number; ws: number };
let cp: Running;
let world: ProvisionedWorld;
let towers: MqttClient[] = [];

function startControlPlane(): Running {
  return startCli(
    [
      'start',
      '--data-dir', dataDir,
      '--http-host', '127.0.0.1', '--http-port', String(ports.http),
      '--mqtt-host', '127.0.0.1', '--mqtt-port', String(ports.mqtt), '--mqtt-ws-port', String(ports.ws),
      '--admin-email', ADMIN_EMAIL,
      '--shutdown-timeout-ms', String(SHUTDOWN_TIMEOUT_MS),
      '--log-level', 'info',
    ],
    { EDGEPLANE_ADMIN_PASSWORD: ADMIN_PASSWORD },
  );
}

async function started(p: Running): Promise<void> {
  await p.waitForLine((l) => jsonLine(l)?.msg === 'EdgePlane control plane started');
}

/** Usage rows of the tenant in the SQLite file: count per event id. */
function storedUsage(): Map<string, number> {
  const db = new Database(join(dataDir, 'edgeplane.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT id, COUNT(*) AS n FROM usage WHERE tenant_id = ? GROUP BY id').all(world.tenants[0]!.id) as Array<{ id: string; n: number }>;
    return new Map(rows.map((r) => [r.id, r.n]));
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-sigterm-'));
  ports = { http: await freePort(), mqtt: await freePort(), ws: await freePort() };
  cp = startControlPlane();
  await started(cp);
  const apiUrl = `http://127.0.0.1:${ports.http}`;
  ({ world } = await provisionWorld(crashScenario('esig'), { apiUrl, adminEmail: ADMIN_EMAIL, adminPassword: ADMIN_PASSWORD }));
  // The plan's event-rate budget is not what is measured here.
  const operator = await ApiClient.login(apiUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
  await operator.patch('/api/v1/plans/premium', { max_events_per_s: null });
  towers = await Promise.all(
    world.towers.map((t) =>
      // A persistent session: mqtt.js keeps every unacknowledged QoS 1 PUBLISH and sends it again
      // on the next connection, as a tower does.
      mqtt.connectAsync(`mqtt://127.0.0.1:${ports.mqtt}`, { protocolVersion: 4, clientId: `tower-${t.id}`, username: t.id, password: t.password, clean: false, reconnectPeriod: 100 }),
    ),
  );
  for (const c of towers) c.on('error', () => undefined);
}, 60_000);

afterAll(async () => {
  await Promise.all(towers.map((c) => c.endAsync(true)));
  if (cp && cp.child.exitCode === null && cp.child.signalCode === null) {
    cp.child.kill('SIGTERM');
    await cp.exit;
  }
  await rm(dataDir, { recursive: true, force: true });
}, 60_000);

describe('crash audit: SIGTERM to edgeplane start while towers publish', () => {
  it('exits 0; every PUBACKed event is stored once at exit; the rest are resent after the restart and stored once', async () => {
    const tenant = world.tenants[0]!;
    const published = new Set<string>();
    const acked = new Set<string>();
    const pending = new Set<Promise<void>>();
    let n = 0;
    // 2 towers × one 2-event batch every 20 ms: ~200 events/s.
    const timer = setInterval(() => {
      world.towers.forEach((t, i) => {
        const now = Date.now();
        const events = [0, 1].map(() => ({ id: newId(), ts: now, device_id: tenant.device_ids[n++ % tenant.device_ids.length]!, app: 'slack', action: 'send_message' }));
        const batch: UsageBatch = { v: 1, id: newId(), sent_at: now, events };
        for (const e of events) published.add(e.id);
        const p = towers[i]!.publishAsync(topics.usage(tenant.id, t.id), JSON.stringify(batch), { qos: 1 }).then(
          () => {
            for (const e of events) acked.add(e.id);
          },
          () => undefined,
        );
        pending.add(p);
        void p.finally(() => pending.delete(p));
      });
    }, 20);
    let exitCode: number | null = null;
    let ackedAtExit = new Set<string>();
    let publishedAtExit = 0;
    let storedAtExit = new Map<string, number>();
    try {
      await until(() => acked.size >= 1000, 30_000, '1,000 events acknowledged');
      cp.child.kill('SIGTERM');
      exitCode = await cp.exit;
      // No PUBACK can come from a process that has exited.
      ackedAtExit = new Set(acked);
      publishedAtExit = published.size;
      storedAtExit = storedUsage();
      // The towers keep publishing while it is down; then the restart.
      cp = startControlPlane();
      await started(cp);
      const target = acked.size + 1000;
      await until(() => acked.size >= target, 30_000, '1,000 more events acknowledged after the restart');
    } finally {
      clearInterval(timer);
    }
    await until(() => pending.size === 0, 30_000, 'every PUBLISH acknowledged');
    const stored = storedUsage();
    const lostAtExit = [...ackedAtExit].filter((id) => !storedAtExit.has(id));
    console.info(
      `audit-crash embedded SIGTERM: exit ${exitCode}; at exit ${publishedAtExit} events published, ${ackedAtExit.size} PUBACKed, ` +
        `${storedAtExit.size} stored (PUBACKed but not stored: ${lostAtExit.length}; stored without a PUBACK yet: ${[...storedAtExit.keys()].filter((id) => !ackedAtExit.has(id)).length}); ` +
        `in the end ${published.size} published, ${acked.size} PUBACKed, ${stored.size} stored`,
    );
    expect(exitCode).toBe(0);
    expect(lostAtExit).toEqual([]);
    expect([...stored].filter(([, c]) => c !== 1)).toEqual([]);
    expect(acked.size).toBe(published.size);
    expect([...published].filter((id) => !stored.has(id))).toEqual([]);
    expect(stored.size).toBe(published.size);
  }, 120_000);
});
