/**
 * Acct-Session-Id is the NAS's own name for a session: two NASes number their sessions alike
 * ("00000001", a counter since boot, is common), and several NASes may serve one tower (one client
 * per NAS-Identifier, each bound to a tower). A retransmission is recognised by its record key,
 * stored once per (tower, key): the key must therefore name the NAS too, or the Start of one
 * NAS's session is taken for a retransmission of another NAS's Start at the same tower and
 * dropped after its Accounting-Response was sent, even when its device belongs to another
 * tenant. The session itself is kept per NAS as well: folded into one, the second NAS's device
 * was lost and one NAS's Stop ended the other's session. Over a real UDP socket (and FreeRADIUS'
 * radclient), into the session processor and a real SQLite store.
 */
import type { Socket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpNas } from '../../test/support/udp-nas.js';
import { RADCLIENT, RADCLIENT_REQUIRED, radclient } from '../../test/support/radclient.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../shared/ids.js';
import { PluginCounters } from '../../shared/ingest/plugin.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import type { UplinkMessage, UplinkSink } from '../../shared/mqtt/transport.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import type { WorkerContext } from '../../workers/context.js';
import { createSessionProcessor } from '../../workers/session-processor.js';
import type { RadiusClientRecord } from './accounting-requests.js';
import { ATTR, encodeAccountingRequest, intValue, STATUS_TYPE } from './codec.js';
import { RadiusAccountingPlugin } from './radius-plugin.js';

const NAS: Record<string, RadiusClientRecord> = {
  'nas-1': { id: 'client-1', nas_identifier: 'nas-1', tower_id: 'T1', secret: 'secret-of-nas-1-0123', radsec_identity: null, created_at: 0, updated_at: 0 },
  'nas-2': { id: 'client-2', nas_identifier: 'nas-2', tower_id: 'T1', secret: 'secret-of-nas-2-0123', radsec_identity: null, created_at: 0, updated_at: 0 },
};

let plugin: RadiusAccountingPlugin | null = null;
let client: Socket | null = null;
let store: SqliteStore | null = null;
let dir: string | null = null;
afterEach(async () => {
  await plugin?.stop();
  client?.close();
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  plugin = null;
  client = null;
  store = null;
  dir = null;
});

describe('RADIUS accounting, one Acct-Session-Id at two NASes of one tower', () => {
  it("records each NAS's session, also when their devices belong to different tenants", async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-acct-collision-'));
    const s = new SqliteStore({ file: join(dir, 'store.db') });
    store = s;
    await s.init();
    const tenantA = await s.tenants.create({ name: 'tenant-a' });
    const tenantB = await s.tenants.create({ name: 'tenant-b' });
    const owner: Record<string, string> = { 'dev-a': tenantA.id, 'dev-b': tenantB.id };

    // The pipeline's session processor on the real store: the sink resolves once it is stored.
    const counters = new Counters();
    const ctx = { store: s, counters, logger: silentLogger(), now: () => 1_000_000 } as unknown as WorkerContext;
    const processSessions = createSessionProcessor(ctx, (device) => owner[device]);
    const sink: UplinkSink = { accept: (msg: UplinkMessage) => processSessions(msg) };

    plugin = new RadiusAccountingPlugin(
      { sink, counters: new PluginCounters(new Counters(), 'radius'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
      { host: '127.0.0.1', port: 0, clients: { findByNasIdentifier: async (nas) => NAS[nas] ?? null } },
    );
    await plugin.start();
    const nas = await udpNas(plugin.port);
    client = nas.sock;
    const start = (id: number, nas: string, device: string) =>
      encodeAccountingRequest(
        id,
        [
          { type: ATTR.NAS_IDENTIFIER, value: Buffer.from(nas) },
          { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.START) },
          { type: ATTR.ACCT_SESSION_ID, value: Buffer.from('00000001') },
          { type: ATTR.CALLING_STATION_ID, value: Buffer.from(device) },
        ],
        Buffer.from(NAS[nas]!.secret),
      );

    nas.send(start(1, 'nas-1', 'dev-a'));
    await nas.replyTo(1);
    nas.send(start(2, 'nas-2', 'dev-b'));
    await nas.replyTo(2);

    // Both were answered, so both must be stored: each tenant sees its own device's session.
    expect((await s.deviceSessions.list(tenantA.id)).items.map((x) => x.device_id)).toEqual(['dev-a']);
    expect((await s.deviceSessions.list(tenantB.id)).items.map((x) => x.device_id)).toEqual(['dev-b']);
    expect(counters.get('accounting_records_duplicate_total', { source: 'radius' })).toBe(0);

    // A retransmission of either is still stored once.
    nas.send(start(3, 'nas-2', 'dev-b'));
    await nas.replyTo(3);
    expect(counters.get('accounting_records_duplicate_total', { source: 'radius' })).toBe(1);
    expect(counters.get('accounting_records_stored_total', { source: 'radius' })).toBe(2);
  });

  describe.skipIf(!RADCLIENT && !RADCLIENT_REQUIRED)('with radclient', () => {
    /** Both NASes registered at tower T1 of a real store, every device held by one tenant. */
    async function twoNases() {
      expect(RADCLIENT, 'radclient is required under CI=true (apt-get install -y freeradius-utils)').not.toBeNull();
      dir = await mkdtemp(join(tmpdir(), 'edgeplane-acct-collision-'));
      const s = new SqliteStore({ file: join(dir, 'store.db') });
      store = s;
      await s.init();
      const tenant = await s.tenants.create({ name: 'tenant-a' });
      const tower = await s.towers.create({ id: 'T1', name: 'Tower 1' });
      for (const nas of Object.values(NAS)) await s.radiusClients.create({ nas_identifier: nas.nas_identifier, tower_id: tower.id, secret: nas.secret });

      const ctx = { store: s, counters: new Counters(), logger: silentLogger(), now: () => 1_000_000 } as unknown as WorkerContext;
      const processSessions = createSessionProcessor(ctx, () => tenant.id);
      plugin = new RadiusAccountingPlugin(
        { sink: { accept: (msg) => processSessions(msg) }, counters: new PluginCounters(new Counters(), 'radius'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
        { host: '127.0.0.1', port: 0, clients: s.radiusClients },
      );
      await plugin.start();
      const port = plugin.port;
      return {
        send: async (nas: string, status: 'Start' | 'Stop' | 'Accounting-On', device: string, octets: number) => {
          const packet = [`NAS-Identifier = "${nas}"`, `Acct-Status-Type = ${status}`, 'Acct-Session-Id = "00000001"', `Calling-Station-Id = "${device}"`, `Acct-Input-Octets = ${octets}`];
          const res = await radclient(port, NAS[nas]!.secret, [packet]);
          expect(res.out, res.out).toContain('Received Accounting-Response');
        },
        /** The tenant's sessions by device. */
        sessions: async () => Object.fromEntries((await s.deviceSessions.list(tenant.id)).items.map((x) => [x.device_id, x])),
        summary: () => s.deviceSessions.summary(tenant.id),
      };
    }

    it("keeps the two NASes' sessions of one tenant apart, and a Stop closes only its own", async () => {
      const t = await twoNases();
      await t.send('nas-1', 'Start', '00:11:22:33:44:01', 100);
      await t.send('nas-2', 'Start', '00:11:22:33:44:02', 200);
      await t.send('nas-2', 'Stop', '00:11:22:33:44:02', 900);

      const sessions = await t.sessions();
      expect(Object.keys(sessions).sort()).toEqual(['00-11-22-33-44-01', '00-11-22-33-44-02']);
      expect(sessions['00-11-22-33-44-01']).toMatchObject({ session_id: '00000001', status: 'active', input_octets: 100, records: 1 });
      expect(sessions['00-11-22-33-44-02']).toMatchObject({ session_id: '00000001', status: 'stopped', input_octets: 900, records: 2 });
      expect(await t.summary()).toEqual({ sessions: 2, active: 1, input_octets: 1000, output_octets: 0 });
    });

    it("ends only the restarted NAS's sessions on its Accounting-On, not those of the tower's other NAS", async () => {
      const t = await twoNases();
      await t.send('nas-1', 'Start', '00:11:22:33:44:01', 100);
      await t.send('nas-2', 'Start', '00:11:22:33:44:02', 200);
      await t.send('nas-1', 'Accounting-On', '00:11:22:33:44:01', 0);

      const sessions = await t.sessions();
      expect(sessions['00-11-22-33-44-01']).toMatchObject({ status: 'stopped', terminate_cause: 'NAS-Reboot' });
      expect(sessions['00-11-22-33-44-02']).toMatchObject({ status: 'active', terminate_cause: null });
      expect(await t.summary()).toMatchObject({ sessions: 2, active: 1 });
    });
  });
});
