/**
 * RADIUS accounting against a client nobody on the project wrote: FreeRADIUS' `radclient` sends
 * Accounting-Start / Interim-Update / Stop to the running control plane (`startEmbedded` with
 * `--radius-acct-port`), and what it sent must show up in the API: the session, its bytes per
 * device and per tower, the dashboard's totals. A retransmission (radclient -c 2; the same event
 * with a new Acct-Delay-Time, hence a new Identifier and authenticator) is stored once; a wrong
 * secret and an unknown NAS get no answer and are counted.
 *
 * Without radclient the suite skips with one line, except under CI=true where it fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../simulator/api-client.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { RADCLIENT, RADCLIENT_REQUIRED, freeUdpPort, radclient } from '../support/radclient.js';


const SECRET = 'radius-shared-secret-0123';
const NAS = 'bng-e2e-1';
const TOWER = 'twr-radius-1';
const DEVICE = '00-11-22-33-44-55';
const T0 = 1_767_225_600; // Event-Timestamp, seconds
const GIGA = 2 ** 32;

const base = [`NAS-Identifier = "${NAS}"`, 'Acct-Session-Id = "sess-0001"', 'Calling-Station-Id = "00:11:22:33:44:55"', 'User-Name = "alice"'];
const start = [...base, 'Acct-Status-Type = Start', `Event-Timestamp = ${T0}`];
const interim = [...base, 'Acct-Status-Type = Interim-Update', `Event-Timestamp = ${T0 + 60}`, 'Acct-Input-Octets = 1000', 'Acct-Input-Gigawords = 1', 'Acct-Output-Octets = 5000', 'Acct-Session-Time = 60'];
const stop = [...base, 'Acct-Status-Type = Stop', `Event-Timestamp = ${T0 + 120}`, 'Acct-Input-Octets = 3000', 'Acct-Input-Gigawords = 1', 'Acct-Output-Octets = 9000', 'Acct-Session-Time = 120', 'Acct-Terminate-Cause = User-Request'];

interface SessionBody {
  sessions: Array<{ session_id: string; status: string; tower_id: string; device_id: string; input_octets: number; output_octets: number; records: number; started_at: number | null; stopped_at: number | null; terminate_cause: string | null }>;
}

describe.skipIf(!RADCLIENT && !RADCLIENT_REQUIRED)('RADIUS accounting with radclient', () => {
  let t: TestControlPlane;
  let port: number;
  let owner: ApiClient;
  const outcome = (o: string) => t.cp.counters.get('radius_requests_total', { outcome: o, plugin: 'radius' });

  beforeAll(async () => {
    expect(RADCLIENT, 'radclient is required under CI=true (apt-get install -y freeradius-utils)').not.toBeNull();
    port = await freeUdpPort();
    t = await startTestControlPlane({ config: { radius_acct_port: port, radius_acct_host: '127.0.0.1' } });
    expect(t.cp.ingest.radius?.port).toBe(port);
    const op = t.operator;
    await op.post('/api/v1/tenants', { name: 'isp', owner: { email: 'owner@isp.test', password: 'a-long-password-123' } });
    owner = await ApiClient.login(t.cp.httpUrl, 'owner@isp.test', 'a-long-password-123');
    await op.post('/api/v1/towers', { id: TOWER, name: 'BNG tower' });
    await op.post('/api/v1/radius/clients', { nas_identifier: NAS, tower_id: TOWER, secret: SECRET });
    await owner.post('/api/v1/devices', { id: DEVICE, name: 'alice phone' });
  });
  afterAll(async () => {
    await t?.destroy();
  });

  it('records Start, Interim-Update and Stop as one session with its bytes, answering each', async () => {
    const res = await radclient(port, SECRET, [start, interim, stop]);
    expect(res.out.match(/Received Accounting-Response/g), res.out).toHaveLength(3);
    const { sessions } = await owner.get<SessionBody>('/api/v1/sessions');
    expect(sessions).toEqual([
      expect.objectContaining({
        session_id: 'sess-0001', status: 'stopped', tower_id: TOWER, device_id: DEVICE, records: 3,
        input_octets: GIGA + 3000, output_octets: 9000, started_at: T0 * 1000, stopped_at: (T0 + 120) * 1000, terminate_cause: 'User-Request',
      }),
    ]);
    expect(outcome('recorded')).toBe(3);
  });

  it('stores a retransmission once, whether resent as is or with a new Acct-Delay-Time', async () => {
    const again = await radclient(port, SECRET, [interim], { count: 2 });
    expect(again.out.match(/Received Accounting-Response/g), again.out).toHaveLength(2);
    const delayed = await radclient(port, SECRET, [[...stop, 'Acct-Delay-Time = 7']]);
    expect(delayed.out).toContain('Received Accounting-Response');
    const { sessions } = await owner.get<SessionBody>('/api/v1/sessions');
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ records: 3, input_octets: GIGA + 3000, output_octets: 9000 });
    expect(t.cp.counters.get('accounting_records_duplicate_total', { source: 'radius' })).toBe(3);
    expect(t.cp.counters.get('accounting_records_stored_total', { source: 'radius' })).toBe(3);
  });

  it('shows sessions and bytes per device and per tower, and on the dashboard next to app usage', async () => {
    const byDevice = await owner.get<{ totals: unknown[] }>('/api/v1/sessions/totals?by=device');
    expect(byDevice.totals).toEqual([{ key: DEVICE, sessions: 1, active: 0, input_octets: GIGA + 3000, output_octets: 9000, last_update_at: (T0 + 120) * 1000 }]);
    const byTower = await owner.get<{ totals: Array<{ key: string }> }>('/api/v1/sessions/totals?by=tower');
    expect(byTower.totals.map((r) => r.key)).toEqual([TOWER]);
    const dash = await owner.get<{ metrics: { usage_total: number }; sessions: unknown }>('/api/v1/dashboard/metrics');
    expect(dash.sessions).toEqual({ sessions: 1, active: 0, input_octets: GIGA + 3000, output_octets: 9000 });
    expect(dash.metrics.usage_total).toBe(0);
  });

  it('drops a wrong secret and an unknown NAS silently, and counts them', async () => {
    const wrong = await radclient(port, 'not-the-shared-secret', [[...base, 'Acct-Status-Type = Start', `Event-Timestamp = ${T0 + 500}`, 'Acct-Session-Id = "sess-forged"']], { expectReply: false });
    expect(wrong.out).toContain('Sent Accounting-Request');
    expect(wrong.out).not.toContain('Received Accounting-Response');
    expect(outcome('bad_authenticator')).toBe(1);
    const unknown = await radclient(port, SECRET, [[...start.filter((l) => !l.startsWith('NAS-Identifier')), 'NAS-Identifier = "nobody"']], { expectReply: false });
    expect(unknown.out).not.toContain('Received Accounting-Response');
    expect(outcome('unknown_nas')).toBe(1);
    const { sessions } = await owner.get<SessionBody>('/api/v1/sessions');
    expect(sessions.map((s) => s.session_id)).toEqual(['sess-0001']);
  });

  it('Accounting-On (the NAS restarted) stops the sessions it had open, once', async () => {
    const open = [`NAS-Identifier = "${NAS}"`, 'Acct-Session-Id = "sess-0002"', 'Calling-Station-Id = "00:11:22:33:44:55"', 'Acct-Status-Type = Start', `Event-Timestamp = ${T0 + 1000}`];
    expect((await radclient(port, SECRET, [open])).out).toContain('Received Accounting-Response');
    expect((await owner.get<SessionBody>('/api/v1/sessions?status=active')).sessions.map((s) => s.session_id)).toEqual(['sess-0002']);
    const reboot = [`NAS-Identifier = "${NAS}"`, 'Acct-Status-Type = Accounting-On', `Event-Timestamp = ${T0 + 2000}`];
    expect((await radclient(port, SECRET, [reboot, reboot])).out.match(/Received Accounting-Response/g)).toHaveLength(2);
    const { sessions } = await owner.get<SessionBody>('/api/v1/sessions?status=stopped');
    expect(sessions.find((s) => s.session_id === 'sess-0002')).toMatchObject({ stopped_at: (T0 + 2000) * 1000, terminate_cause: 'NAS-Reboot' });
    expect((await owner.get<SessionBody>('/api/v1/sessions?status=active')).sessions).toEqual([]);
    expect(t.cp.counters.get('device_sessions_reset_total', { source: 'radius' })).toBe(1);
  });

  it('finds a NAS registered by its address from NAS-IP-Address or NAS-IPv6-Address, and reads twelve bare digits as a phone number', async () => {
    const tower2 = 'twr-radius-2';
    const secret2 = 'second-nas-secret-456789';
    await t.operator.post('/api/v1/towers', { id: tower2, name: 'Address-named NAS' });
    await t.operator.post('/api/v1/radius/clients', { nas_identifier: '10.20.30.40', tower_id: tower2, secret: secret2 });
    await t.operator.post('/api/v1/radius/clients', { nas_identifier: '2001:db8::7', tower_id: tower2, secret: secret2 });
    await owner.post('/api/v1/devices', { id: '447700900123', name: 'bob phone (UK MSISDN)' });
    const byV4 = ['NAS-IP-Address = 10.20.30.40', 'Acct-Session-Id = "sess-v4"', 'Calling-Station-Id = "447700900123"', 'Acct-Status-Type = Start', `Event-Timestamp = ${T0 + 3000}`];
    expect((await radclient(port, secret2, [byV4])).out).toContain('Received Accounting-Response');
    // A NAS-Identifier nobody registered does not hide the registered address.
    const both = ['NAS-Identifier = "unregistered-name"', 'NAS-IPv6-Address = 2001:db8:0:0:0:0:0:7', 'Acct-Session-Id = "sess-v6"', 'Calling-Station-Id = "447700900123"', 'Acct-Status-Type = Start', `Event-Timestamp = ${T0 + 3001}`];
    expect((await radclient(port, secret2, [both])).out).toContain('Received Accounting-Response');
    const { sessions } = await owner.get<SessionBody>('/api/v1/sessions?device_id=447700900123');
    expect(sessions.map((s) => [s.session_id, s.tower_id]).sort()).toEqual([
      ['sess-v4', tower2],
      ['sess-v6', tower2],
    ]);
    // The address names the client, the client's secret still has to verify: the first NAS's
    // secret under the second NAS's address is dropped.
    const before = outcome('bad_authenticator');
    const forged = await radclient(port, SECRET, [['NAS-IP-Address = 10.20.30.40', 'Acct-Session-Id = "sess-forged-v4"', 'Calling-Station-Id = "447700900123"', 'Acct-Status-Type = Start']], { expectReply: false });
    expect(forged.out).not.toContain('Received Accounting-Response');
    expect(outcome('bad_authenticator')).toBe(before + 1);
  });

  it("records a device no tenant holds as the platform's discovered device, not as anyone's session", async () => {
    const stranger = ['NAS-Identifier = "' + NAS + '"', 'Acct-Session-Id = "sess-x"', 'Calling-Station-Id = "+33612345678"', 'Acct-Status-Type = Start', `Event-Timestamp = ${T0}`];
    expect((await radclient(port, SECRET, [stranger])).out).toContain('Received Accounting-Response');
    const discovered = await t.operator.get<{ devices: Array<{ device_id: string; tower_id: string }> }>('/api/v1/devices/discovered');
    expect(discovered.devices).toContainEqual(expect.objectContaining({ device_id: '33612345678', tower_id: TOWER }));
    expect((await owner.get<SessionBody>('/api/v1/sessions')).sessions.map((s) => s.session_id)).not.toContain('sess-x');
  });
});
