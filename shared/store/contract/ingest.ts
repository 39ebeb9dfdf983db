/**
 * Contract: carrier credentials and feeds (towers, links, coverage, device metadata), RADIUS
 * clients, and device accounting sessions with their totals.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { AccountingRecord } from '../../mqtt/session-payloads.js';
import type { Store } from '../port.js';
import { expectError, must, T0, type ContractState } from './harness.js';

function rec(overrides: Partial<AccountingRecord> & Pick<AccountingRecord, 'key'>): AccountingRecord {
  return { session_id: 's1', status: 'start', device_id: 'dev-1', ts: T0, input_octets: 0, output_octets: 0, ...overrides };
}

export function describeIngestContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  describe('carrier credentials', () => {
    it('are created for a known carrier, listed without their hash, revoked once', async () => {
      const c = await store.carriers.create({ name: 'Orange' });
      await expectError(store.carrierCredentials.create({ id: 'cred-x', carrier_id: 'nope', secret_hash: 'h' }), 'NOT_FOUND');
      const cred = await store.carrierCredentials.create({ id: 'cred-1', carrier_id: c.id, secret_hash: 'h1' });
      expect(cred).toMatchObject({ id: 'cred-1', carrier_id: c.id, revoked_at: null, last_used_at: null });
      expect((await store.carrierCredentials.get('cred-1'))?.secret_hash).toBe('h1');
      expect(await store.carrierCredentials.listForCarrier(c.id)).toEqual([cred]);
      await store.carrierCredentials.touch('cred-1', T0);
      expect((await store.carrierCredentials.get('cred-1'))?.last_used_at).toBe(T0);
      expect(await store.carrierCredentials.revoke('cred-1', T0 + 1)).toBe(true);
      expect(await store.carrierCredentials.revoke('cred-1', T0 + 2)).toBe(false);
      expect((await store.carrierCredentials.get('cred-1'))?.revoked_at).toBe(T0 + 1);
      await store.carriers.delete(c.id);
      expect(await store.carrierCredentials.get('cred-1')).toBeNull();
    });
  });

  describe('carrier tower feed', () => {
    it('creates a managed tower with links and a polygon, is idempotent, updates and retires it', async () => {
      const a = await store.carriers.create({ name: 'A' });
      const b = await store.carriers.create({ name: 'B' });
      const polygon: Array<[number, number]> = [[2.3, 48.8], [2.4, 48.8], [2.4, 48.9]];
      const upsert = { op: 'upsert' as const, tower_id: 'tw-feed', name: 'Feed', lat: 48.85, lon: 2.35, coverage: { polygon }, carriers: [a.id, b.id] };
      expect(await store.carrierFeeds.applyTower(a.id, upsert, T0)).toEqual({ outcome: 'created' });
      expect(await store.towers.get('tw-feed')).toMatchObject({ name: 'Feed', lat: 48.85, radius_m: null, managed_by: a.id, retired_at: null });
      expect(await store.carrierFeeds.towerPolygon('tw-feed')).toEqual(polygon);
      expect((await store.towerCarriers.carriersOfTower('tw-feed')).map((c) => c.id).sort()).toEqual([a.id, b.id].sort());
      const before = must(await store.towers.get('tw-feed'));
      expect(await store.carrierFeeds.applyTower(a.id, upsert, T0 + 1)).toEqual({ outcome: 'unchanged' });
      expect(await store.towers.get('tw-feed')).toEqual(before);

      const moved = { ...upsert, coverage: { radius_m: 900 }, carriers: [a.id] };
      expect(await store.carrierFeeds.applyTower(a.id, moved, T0 + 2)).toEqual({ outcome: 'updated' });
      expect(await store.towers.get('tw-feed')).toMatchObject({ radius_m: 900 });
      expect(await store.carrierFeeds.towerPolygon('tw-feed')).toBeNull();
      expect((await store.towerCarriers.carriersOfTower('tw-feed')).map((c) => c.id)).toEqual([a.id]);

      expect(await store.carrierFeeds.applyTower(a.id, { op: 'retire', tower_id: 'tw-feed' }, T0 + 3)).toEqual({ outcome: 'retired' });
      expect((await store.towers.get('tw-feed'))?.retired_at).toBe(T0 + 3);
      expect(await store.carrierFeeds.applyTower(a.id, { op: 'retire', tower_id: 'tw-feed' }, T0 + 4)).toEqual({ outcome: 'unchanged' });
      expect(await store.carrierFeeds.applyTower(a.id, moved, T0 + 5)).toEqual({ outcome: 'updated' });
      expect((await store.towers.get('tw-feed'))?.retired_at).toBeNull();
    });

    it("refuses another carrier's or an operator's tower, unknown carriers and unknown retirements, writing nothing", async () => {
      const a = await store.carriers.create({ name: 'A' });
      const b = await store.carriers.create({ name: 'B' });
      await store.carrierFeeds.applyTower(a.id, { op: 'upsert', tower_id: 'tw-a', name: 'A1' }, T0);
      await store.towers.create({ id: 'tw-op', name: 'Operator' });
      const before = await store.towers.get('tw-a');
      for (const tower_id of ['tw-a', 'tw-op']) {
        const r = await store.carrierFeeds.applyTower(b.id, { op: 'upsert', tower_id, name: 'hijack', carriers: [b.id] }, T0 + 1);
        expect(r.outcome).toBe('refused');
        expect(await store.carrierFeeds.applyTower(b.id, { op: 'retire', tower_id }, T0 + 1)).toMatchObject({ outcome: 'refused' });
      }
      expect(await store.towers.get('tw-a')).toEqual(before);
      expect((await store.towerCarriers.carriersOfTower('tw-a')).map((c) => c.id)).toEqual([a.id]);
      expect((await store.towers.get('tw-op'))?.name).toBe('Operator');
      const unknown = await store.carrierFeeds.applyTower(a.id, { op: 'upsert', tower_id: 'tw-new', name: 'N', carriers: [a.id, 'ghost'] }, T0);
      expect(unknown).toEqual({ outcome: 'refused', reason: expect.stringContaining('ghost') as string });
      expect(await store.towers.get('tw-new')).toBeNull();
      expect(await store.carrierFeeds.applyTower(a.id, { op: 'retire', tower_id: 'tw-none' }, T0)).toMatchObject({ outcome: 'refused' });
    });
  });

  describe('device metadata', () => {
    it('is kept per carrier, merged field by field, idempotent, and read as the newest statement', async () => {
      const a = await store.carriers.create({ name: 'A' });
      const b = await store.carriers.create({ name: 'B' });
      expect(await store.carrierFeeds.applyDevice(a.id, { device_id: 'dev-1', os: 'android', model: 'Pixel 8' }, T0)).toEqual({ outcome: 'created' });
      expect(await store.carrierFeeds.applyDevice(a.id, { device_id: 'dev-1', os: 'android' }, T0 + 1)).toEqual({ outcome: 'unchanged' });
      expect(await store.carrierFeeds.applyDevice(a.id, { device_id: 'dev-1', device_type: 'phone' }, T0 + 2)).toEqual({ outcome: 'updated' });
      expect(await store.deviceMetadata.forDevices(['dev-1', 'dev-2'])).toEqual([
        { device_id: 'dev-1', carrier_id: a.id, os: 'android', os_version: null, model: 'Pixel 8', device_type: 'phone', updated_at: T0 + 2 },
      ]);
      await store.carrierFeeds.applyDevice(b.id, { device_id: 'dev-1', os: 'ios' }, T0 + 3);
      expect((await store.deviceMetadata.forDevices(['dev-1']))[0]).toMatchObject({ carrier_id: b.id, os: 'ios' });
      await store.carriers.delete(b.id);
      expect((await store.deviceMetadata.forDevices(['dev-1']))[0]).toMatchObject({ carrier_id: a.id, os: 'android' });
    });
  });

  describe('RADIUS clients', () => {
    it('bind a unique NAS-Identifier to a tower and never list the secret', async () => {
      await store.towers.create({ id: 'tw-r', name: 'R' });
      await expectError(store.radiusClients.create({ nas_identifier: 'nas-x', tower_id: 'ghost', secret: 's' }), 'NOT_FOUND');
      const c = await store.radiusClients.create({ nas_identifier: 'nas-1', tower_id: 'tw-r', secret: 'secret-1' });
      expect(c).not.toHaveProperty('secret');
      await expectError(store.radiusClients.create({ nas_identifier: 'nas-1', tower_id: 'tw-r', secret: 's' }), 'CONFLICT');
      expect(await store.radiusClients.findByNasIdentifier('nas-1')).toMatchObject({ id: c.id, tower_id: 'tw-r', secret: 'secret-1' });
      expect((await store.radiusClients.list({ tower_id: 'tw-r' })).items).toEqual([c]);
      expect((await store.radiusClients.list()).items[0]).not.toHaveProperty('secret');
      const updated = await store.radiusClients.update(c.id, { secret: 'secret-2' });
      expect(updated).toMatchObject({ id: c.id, nas_identifier: 'nas-1' });
      expect((await store.radiusClients.findByNasIdentifier('nas-1'))?.secret).toBe('secret-2');
      expect(await store.radiusClients.update('nope', { secret: 'x' })).toBeNull();
      await store.towers.delete('tw-r');
      expect(await store.radiusClients.get(c.id)).toBeNull();
    });

    it('keep a client on RADIUS/UDP unless it names a RadSec identity, which can be set and cleared', async () => {
      await store.towers.create({ id: 'tw-s', name: 'S' });
      const udp = await store.radiusClients.create({ nas_identifier: 'nas-udp', tower_id: 'tw-s', secret: 'secret-u' });
      expect(udp.radsec_identity).toBeNull();
      const tls = await store.radiusClients.create({ nas_identifier: 'nas-tls', tower_id: 'tw-s', secret: 'secret-t', radsec_identity: 'proxy.carrier.example' });
      expect(tls.radsec_identity).toBe('proxy.carrier.example');
      // One proxy may carry several NAS: the identity is not unique.
      const second = await store.radiusClients.create({ nas_identifier: 'nas-tls-2', tower_id: 'tw-s', secret: 'secret-2', radsec_identity: 'proxy.carrier.example' });
      expect(await store.radiusClients.findByNasIdentifier('nas-tls')).toMatchObject({ radsec_identity: 'proxy.carrier.example', secret: 'secret-t' });
      expect(await store.radiusClients.get(udp.id)).toEqual(udp);
      expect(await store.radiusClients.update(udp.id, { radsec_identity: 'nas-udp.carrier.example' })).toMatchObject({ radsec_identity: 'nas-udp.carrier.example' });
      expect(await store.radiusClients.update(tls.id, { radsec_identity: null })).toMatchObject({ radsec_identity: null });
      expect((await store.radiusClients.findByNasIdentifier('nas-tls'))?.radsec_identity).toBeNull();
      // A patch that does not name it leaves it.
      expect(await store.radiusClients.update(second.id, { secret: 'secret-3' })).toMatchObject({ radsec_identity: 'proxy.carrier.example' });
      expect((await store.radiusClients.list({ tower_id: 'tw-s' })).items.map((c) => c.radsec_identity)).toEqual(['nas-udp.carrier.example', null, 'proxy.carrier.example']);
      await store.towers.delete('tw-s');
      expect(await store.radiusClients.get(tls.id)).toBeNull();
    });
  });

  describe('device sessions', () => {
    it('fold Start / Interim / Stop into one session, store a retransmission once, and keep totals per device and tower', async () => {
      const t = await store.tenants.create({ name: 'acct' });
      const other = await store.tenants.create({ name: 'other' });
      const start = rec({ key: 'k-start', status: 'start', ts: T0 });
      const interim = rec({ key: 'k-int', status: 'interim', ts: T0 + 60_000, input_octets: 1000, output_octets: 5000, session_time_s: 60 });
      const stop = rec({ key: 'k-stop', status: 'stop', ts: T0 + 120_000, input_octets: 3000, output_octets: 9000, session_time_s: 120, terminate_cause: 'User-Request' });
      const first = await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [start, interim], now: T0 });
      expect(first).toMatchObject({ inserted: 2, duplicates: 0 });
      expect(first.sessions[0]).toMatchObject({ status: 'active', input_octets: 1000, output_octets: 5000, records: 2 });
      // A retransmitted Interim-Update and the Stop, then the Interim again (late).
      const second = await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [interim, stop, interim], now: T0 });
      expect(second).toMatchObject({ inserted: 1, duplicates: 2 });
      const [session] = (await store.deviceSessions.list(t.id)).items;
      expect(session).toMatchObject({
        tenant_id: t.id, tower_id: 'tw-1', device_id: 'dev-1', session_id: 's1', status: 'stopped', started_at: T0,
        stopped_at: T0 + 120_000, input_octets: 3000, output_octets: 9000, session_time_s: 120, terminate_cause: 'User-Request', records: 3,
      });
      expect(await store.deviceSessions.get(t.id, must(session).id)).toEqual(session);
      expect(await store.deviceSessions.get(other.id, must(session).id)).toBeNull();
      expect((await store.deviceSessions.list(other.id)).items).toEqual([]);

      // The same session id at another tower is another session.
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-2', records: [rec({ key: 'k-start', ts: T0, input_octets: 10 })], now: T0 });
      expect((await store.deviceSessions.list(t.id, { tower_id: 'tw-2' })).items).toHaveLength(1);
      expect((await store.deviceSessions.list(t.id, { status: 'active' })).items.map((s) => s.tower_id)).toEqual(['tw-2']);

      const byDevice = await store.deviceSessions.totals(t.id, 'device');
      expect(byDevice.items).toEqual([{ key: 'dev-1', sessions: 2, active: 1, input_octets: 3010, output_octets: 9000, last_update_at: T0 + 120_000 }]);
      const byTower = await store.deviceSessions.totals(t.id, 'tower', { limit: 1 });
      expect(byTower.items).toEqual([{ key: 'tw-1', sessions: 1, active: 0, input_octets: 3000, output_octets: 9000, last_update_at: T0 + 120_000 }]);
      const next = await store.deviceSessions.totals(t.id, 'tower', { limit: 1, cursor: byTower.next_cursor });
      expect(next.items.map((r) => r.key)).toEqual(['tw-2']);
      expect(await store.deviceSessions.summary(t.id)).toEqual({ sessions: 2, active: 1, input_octets: 3010, output_octets: 9000 });
      expect(await store.deviceSessions.summary(other.id)).toEqual({ sessions: 0, active: 0, input_octets: 0, output_octets: 0 });
      await expectError(store.deviceSessions.record({ tenant_id: 'ghost', tower_id: 'tw-1', records: [rec({ key: 'z' })], now: T0 }), 'NOT_FOUND');

      // The NAS at tw-2 restarted: its active session stops, totals follow; again changes nothing.
      const otherDevice = await store.deviceSessions.record({ tenant_id: other.id, tower_id: 'tw-2', records: [rec({ key: 'o1', session_id: 'o1', device_id: 'dev-o', ts: T0 })], now: T0 });
      expect(otherDevice.inserted).toBe(1);
      const later = await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-2', records: [rec({ key: 'late', session_id: 'late', ts: T0 + 500_000 })], now: T0 });
      expect(later.inserted).toBe(1);
      expect(await store.deviceSessions.stopActiveAtTower('tw-2', T0 + 100_000, 'NAS-Reboot')).toBe(2);
      expect(await store.deviceSessions.stopActiveAtTower('tw-2', T0 + 100_000, 'NAS-Reboot')).toBe(0);
      expect((await store.deviceSessions.list(t.id, { tower_id: 'tw-2', status: 'stopped' })).items).toEqual([
        expect.objectContaining({ session_id: 's1', stopped_at: T0 + 100_000, terminate_cause: 'NAS-Reboot' }),
      ]);
      expect((await store.deviceSessions.list(t.id, { status: 'active' })).items.map((s) => s.session_id)).toEqual(['late']);
      expect((await store.deviceSessions.list(other.id)).items[0]).toMatchObject({ status: 'stopped' });
      expect(await store.deviceSessions.summary(other.id)).toMatchObject({ sessions: 1, active: 0 });
      expect(await store.deviceSessions.summary(t.id)).toEqual({ sessions: 3, active: 1, input_octets: 3010, output_octets: 9000 });
      expect(await store.deviceSessions.stopActiveAtTower('tw-2', T0 + 600_000, 'NAS-Reboot')).toBe(1);

      // Retention: stopped sessions go, active ones stay, totals stay; a key purged is new again.
      expect(await store.deviceSessions.purge(t.id, T0 + 200_000)).toBe(2);
      expect((await store.deviceSessions.list(t.id)).items.map((s) => s.session_id)).toEqual(['late']);
      expect(await store.deviceSessions.summary(t.id)).toEqual({ sessions: 3, active: 0, input_octets: 3010, output_octets: 9000 });
      expect(await store.deviceSessions.purge(t.id, T0 + 200_000)).toBe(0);
      const late = await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [stop], now: T0 + 300_000 });
      expect(late.inserted).toBe(1);

      await store.tenants.delete(t.id);
      expect((await store.deviceSessions.totals(t.id, 'device')).items).toEqual([]);
    });

    it('keep one session per NAS when two NASes of a tower use the same session id, a Stop ending only its own', async () => {
      const t = await store.tenants.create({ name: 'two-nas' });
      const at = (nas: string, over: Partial<AccountingRecord> & Pick<AccountingRecord, 'key'>) =>
        rec({ session_id: '00000001', nas, device_id: nas === 'nas-a' ? 'dev-a' : 'dev-b', ...over });
      const started = await store.deviceSessions.record({
        tenant_id: t.id,
        tower_id: 'tw-1',
        records: [at('nas-a', { key: 'a|start', input_octets: 10 }), at('nas-b', { key: 'b|start', input_octets: 20 })],
        now: T0,
      });
      expect(started).toMatchObject({ inserted: 2, duplicates: 0 });
      expect(new Set(started.sessions.map((s) => s.id)).size).toBe(2);
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [at('nas-b', { key: 'b|stop', status: 'stop', ts: T0 + 60_000, input_octets: 70 })], now: T0 });
      const byDevice = Object.fromEntries((await store.deviceSessions.list(t.id)).items.map((s) => [s.device_id, s]));
      expect(byDevice['dev-a']).toMatchObject({ session_id: '00000001', status: 'active', input_octets: 10, records: 1 });
      expect(byDevice['dev-b']).toMatchObject({ session_id: '00000001', status: 'stopped', input_octets: 70, records: 2 });
      // A record naming no NAS (a tower's own report) is a third session, not either NAS's.
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [rec({ key: 'own', session_id: '00000001', device_id: 'dev-c' })], now: T0 });
      expect(await store.deviceSessions.summary(t.id)).toEqual({ sessions: 3, active: 2, input_octets: 80, output_octets: 0 });
    });

    it('let the NAS that continues a session recorded without one (before sessions were per NAS) take it over', async () => {
      const t = await store.tenants.create({ name: 'upgrade' });
      // As stored before sessions were kept per NAS: the record names none.
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [rec({ key: 'old', session_id: '7', input_octets: 5 })], now: T0 });
      const other = await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [rec({ key: 'b', session_id: '7', nas: 'nas-b', device_id: 'dev-2' })], now: T0 });
      const stop = rec({ key: 'a|stop', session_id: '7', nas: 'nas-a', status: 'stop', ts: T0 + 1000, input_octets: 50 });
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [stop], now: T0 });
      const byDevice = Object.fromEntries((await store.deviceSessions.list(t.id)).items.map((s) => [s.device_id, s]));
      expect(byDevice['dev-1']).toMatchObject({ status: 'stopped', input_octets: 50, records: 2 });
      expect(byDevice['dev-2']).toMatchObject({ id: must(other.sessions[0]).id, status: 'active', records: 1 });
      expect(await store.deviceSessions.summary(t.id)).toEqual({ sessions: 2, active: 1, input_octets: 50, output_octets: 0 });
      // Taken over: the NAS's later records find it under its own name.
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records: [rec({ key: 'a|late', session_id: '7', nas: 'nas-a', status: 'interim', ts: T0 + 500 })], now: T0 });
      expect((await store.deviceSessions.list(t.id, { device_id: 'dev-1' })).items).toEqual([expect.objectContaining({ status: 'stopped', records: 3 })]);
    });

    it("stop only a restarted NAS's sessions when the reset names that NAS", async () => {
      const t = await store.tenants.create({ name: 'nas-reset' });
      const records = [rec({ key: 'a', session_id: '1', nas: 'nas-a' }), rec({ key: 'b', session_id: '1', nas: 'nas-b', device_id: 'dev-2' })];
      await store.deviceSessions.record({ tenant_id: t.id, tower_id: 'tw-1', records, now: T0 });
      expect(await store.deviceSessions.stopActiveAtTower('tw-1', T0 + 1000, 'NAS-Reboot', 'nas-a')).toBe(1);
      expect(await store.deviceSessions.stopActiveAtTower('tw-1', T0 + 1000, 'NAS-Reboot', 'nas-a')).toBe(0);
      const byDevice = Object.fromEntries((await store.deviceSessions.list(t.id)).items.map((s) => [s.device_id, s]));
      expect(byDevice['dev-1']).toMatchObject({ status: 'stopped', terminate_cause: 'NAS-Reboot' });
      expect(byDevice['dev-2']).toMatchObject({ status: 'active' });
      expect(byDevice['dev-2']).not.toHaveProperty('nas');
      expect(await store.deviceSessions.summary(t.id)).toMatchObject({ sessions: 2, active: 1 });
      // A reset naming no NAS (the tower's own) ends everything still active there.
      expect(await store.deviceSessions.stopActiveAtTower('tw-1', T0 + 1000, 'NAS-Reboot')).toBe(1);
    });
  });
}
