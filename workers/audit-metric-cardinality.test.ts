/**
 * Audit: no metric's label set may grow without bound from what a tower or an outsider sends.
 * Every label value comes from a fixed vocabulary or from entities the operator registers
 * (towers, carriers, RADIUS clients). The running control plane (`startEmbedded`) is driven
 * through its real entry points — a tower's MQTT connection (mqtt package), failed MQTT logins,
 * HTTP requests to random paths, the line protocol over TCP, RADIUS over UDP — with many distinct
 * values, and /metrics is scraped.
 *
 * What this found: a `sessions` batch names its own `source` (any string the schema's
 * `[a-z0-9][a-z0-9_-]{0,31}` allows), and the accounting counters used it as their `source`
 * label, so a tower publishing its own sessions added one series per name it made up
 * (session-processor.ts).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTR, encodeAccountingRequest, intValue, STATUS_TYPE } from '../broker/radius/codec.js';
import { ApiClient } from '../simulator/api-client.js';
import { createIdFactory } from '../shared/ids.js';
import { METRIC_DEFINITIONS } from '../shared/metric-definitions.js';
import { encodePayload } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import { connectTower, startTestControlPlane, type TestControlPlane } from '../test/support/control-plane.js';
import { freeUdpPort } from '../test/support/radclient.js';
import type { MqttClient } from 'mqtt';

const TOWER = 'twr-card';
const DEVICE = 'dev-card';
const METRICS_TOKEN = 'cardinality-audit-metrics-token';
const ACCOUNTING = ['accounting_records_stored_total', 'accounting_records_duplicate_total', 'accounting_records_unmapped_total', 'device_sessions_reset_total'];
const NAS = 'nas-card';
const NAS_SECRET = 'cardinality-nas-secret-0123';
const newId = createIdFactory();

async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

/** A line-protocol connection: send a line, await the next reply line (null once closed). */
async function lineConnection(port: number) {
  const socket: Socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setEncoding('utf8');
  let buffered = '';
  const lines: string[] = [];
  const waiting: Array<(line: string | null) => void> = [];
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  socket.on('close', () => {
    for (const w of waiting.splice(0)) w(null);
  });
  return {
    ask(line: string): Promise<string | null> {
      socket.write(`${line}\n`);
      const ready = lines.shift();
      return ready !== undefined ? Promise.resolve(ready) : new Promise((r) => waiting.push(r));
    },
    close: async () => {
      if (socket.destroyed) return;
      socket.end();
      await once(socket, 'close');
    },
  };
}

/** Distinct label sets per declared family, from the /metrics text (histogram series by family). */
async function seriesByFamily(t: TestControlPlane): Promise<Map<string, Set<string>>> {
  const res = await fetch(`${t.cp.httpUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  const out = new Map<string, Set<string>>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0];
    const family = name.replace(/_(bucket|sum|count)$/, '');
    if (!(name in METRIC_DEFINITIONS) && !(family in METRIC_DEFINITIONS)) continue;
    // The label set without a bucket's `le`: one series of a histogram, whatever its buckets.
    const labels = /\{(.*)\}/.exec(line.slice(0, line.lastIndexOf(' ')))?.[1] ?? '';
    const key = (labels.match(/[a-zA-Z_]+="(?:[^"\\]|\\.)*"/g) ?? []).filter((l) => !l.startsWith('le=')).sort().join(',');
    const fam = name in METRIC_DEFINITIONS ? name : family;
    let set = out.get(fam);
    if (!set) out.set(fam, (set = new Set()));
    set.add(key);
  }
  return out;
}

const sizes = (m: Map<string, Set<string>>) => Object.fromEntries([...m].map(([k, v]) => [k, v.size]));

describe('metric label sets stay bounded whatever towers and outsiders send', () => {
  let t: TestControlPlane;
  let tenantId: string;
  let password: string;
  let tower: MqttClient;
  let ts = 1_767_225_600_000;
  let udp: UdpSocket;
  const radiusReplies: Array<() => void> = [];

  /** A sessions batch as a tower may publish it: its own source name, a held and an unmapped device. */
  function sessions(source: string, i: number): Buffer {
    ts += 1000;
    return encodePayload({
      v: 1,
      id: newId(),
      sent_at: ts,
      source,
      // Ends the session the previous batch started (device_sessions_reset_total).
      tower_reset: { at: ts - 1, reason: 'accounting-on' },
      records: [
        { key: `held-${source}-${i}`, session_id: `s-${source}-${i}`, status: 'start', device_id: DEVICE, ts, input_octets: 1, output_octets: 1 },
        { key: `stranger-${source}-${i}`, session_id: `u-${source}-${i}`, status: 'start', device_id: `stranger-${i}`, ts, input_octets: 1, output_octets: 1 },
      ],
    });
  }

  beforeAll(async () => {
    t = await startTestControlPlane({
      config: {
        metrics_token: METRICS_TOKEN,
        mqtt_publish_rate: 100_000,
        mqtt_publish_burst: 100_000,
        radius_acct_port: await freeUdpPort(),
        radius_acct_host: '127.0.0.1',
        line_ingest_port: await freeTcpPort(),
      },
    });
    const op = t.operator;
    const created = await op.post<{ tenant: { id: string } }>('/api/v1/tenants', { name: 'cardco', owner: { email: 'owner@cardco.test', password: 'a-long-password-123' } });
    tenantId = created.tenant.id;
    const owner = await ApiClient.login(t.cp.httpUrl, 'owner@cardco.test', 'a-long-password-123');
    await op.post('/api/v1/towers', { id: TOWER, name: 'Cardinality tower' });
    password = (await op.post<{ mqtt: { password: string } }>(`/api/v1/towers/${TOWER}/credentials`, {})).mqtt.password;
    await owner.post('/api/v1/devices', { id: DEVICE, name: 'held phone' });
    await op.post('/api/v1/radius/clients', { nas_identifier: NAS, tower_id: TOWER, secret: NAS_SECRET });
    tower = await connectTower(t.cp.mqttUrl, TOWER, password);
    udp = createSocket('udp4');
    udp.on('message', () => radiusReplies.shift()?.());
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    udp?.close();
    await tower?.endAsync();
    await t?.destroy();
  });

  it("a tower's own sessions source names do not become label values", async () => {
    const n = 100;
    for (let i = 0; i < n; i++) {
      const payload = sessions(`src-${i}`, i);
      await tower.publishAsync(topics.sessions(TOWER), payload, { qos: 1 });
      await tower.publishAsync(topics.sessions(TOWER), payload, { qos: 1 }); // a resend: duplicates
    }
    const snapshot = t.cp.counters.snapshot();
    for (const name of ACCOUNTING) {
      const labelSets = snapshot.filter((s) => s.name === name).map((s) => JSON.stringify(s.labels));
      expect(labelSets, name).toEqual([JSON.stringify({ source: 'other' })]);
    }
    // Still counted, under `other`.
    expect(t.cp.counters.get('accounting_records_stored_total', { source: 'other' })).toBe(n);
    expect(t.cp.counters.get('accounting_records_duplicate_total', { source: 'other' })).toBe(n);
    expect(t.cp.counters.get('accounting_records_unmapped_total', { source: 'other' })).toBe(2 * n);
    expect(t.cp.counters.get('device_sessions_reset_total', { source: 'other' })).toBeGreaterThanOrEqual(n - 1);
    const scraped = await seriesByFamily(t);
    for (const name of ACCOUNTING) expect(scraped.get(name)?.size ?? 0, name).toBeLessThanOrEqual(1);
  });

  /**
   * One round of distinct outsider- and tower-chosen values on every entry point this process
   * has: MQTT logins (client ids, usernames), a tower's subscriptions, usage under tenant ids,
   * apps and actions it makes up, acks of commands that do not exist, malformed payloads,
   * sessions sources, and HTTP paths, methods and headers.
   */
  async function round(tag: string, n: number): Promise<void> {
    const radiusBefore = t.cp.counters.total('radius_requests_total');
    const line = await lineConnection(t.cp.ingest.line!.port);
    expect(await line.ask(`AUTH ${TOWER} ${password}`)).toBe('OK');
    for (let i = 0; i < n; i++) {
      const v = `${tag}-${i}`;
      await expect(
        mqtt.connectAsync(t.cp.mqttUrl, { protocolVersion: 4, clientId: `cid-${v}`, username: i % 2 ? `user.${v}` : `twr-${v}`, password: `pw-${v}`, reconnectPeriod: 0 }),
      ).rejects.toThrow();
      // Refused in the SUBACK (0x80): mqtt.js rejects, the connection stays.
      await expect(tower.subscribeAsync(`nobody/${v}/#`, { qos: 1 })).rejects.toThrow(/Subscribe error/);
      const usage = { v: 1, id: newId(), sent_at: ts, events: [{ id: newId(), ts, device_id: `d-${v}`, app: `app-${v}`, action: `act-${v}` }] };
      await tower.publishAsync(topics.usage(tenantId, TOWER), encodePayload(usage), { qos: 1 });
      await tower.publishAsync(topics.usage(`tenant-${v}`, TOWER), encodePayload(usage), { qos: 1 });
      await tower.publishAsync(topics.acks(tenantId, TOWER), encodePayload({ v: 1, id: newId(), command_id: newId(), status: 'failed', reason: v, ts }), { qos: 1 });
      await tower.publishAsync(topics.discovery(TOWER), `not json ${v}`, { qos: 1 });
      await tower.publishAsync(topics.sessions(TOWER), sessions(`${tag}${i}`, i), { qos: 1 });
      const statuses = [
        (await fetch(`${t.cp.httpUrl}/api/v1/${v}/x?${v}=1`, { headers: { 'x-random': v, 'user-agent': v } })).status,
        (await fetch(`${t.cp.httpUrl}/${v}`, { method: i % 2 ? 'DELETE' : 'PATCH', headers: { authorization: `Bearer ${v}` } })).status,
      ];
      for (const status of statuses) expect(status).toBeGreaterThanOrEqual(400);

      // Line protocol: unknown verbs, made-up ids in lines, AUTH for towers that do not exist.
      expect(await line.ask(`VERB${v} ${v}`)).toMatch(/^ERR /);
      expect(await line.ask(`USAGE tenant-${v} d-${v} app-${v} act-${v}`)).toMatch(/^ACK /);
      const stranger = await lineConnection(t.cp.ingest.line!.port);
      expect(await stranger.ask(i % 2 ? `AUTH twr-${v} ${v}` : `${v} ${v}`)).toBe('ERR authentication failed');
      await stranger.close();

      // RADIUS: NAS names nobody registered, a forged authenticator, junk; a recorded request
      // with made-up session, user and station names.
      const attrs = (nas: string) => [
        { type: ATTR.NAS_IDENTIFIER, value: Buffer.from(nas) },
        { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.START) },
        { type: ATTR.ACCT_SESSION_ID, value: Buffer.from(`sess-${v}`) },
        { type: ATTR.USER_NAME, value: Buffer.from(`user-${v}`) },
        { type: ATTR.CALLING_STATION_ID, value: Buffer.from(`station-${v}`) },
      ];
      const port = t.cp.ingest.radius!.port;
      udp.send(encodeAccountingRequest(i % 256, attrs(`nas-${v}`), Buffer.from(NAS_SECRET)), port, '127.0.0.1');
      udp.send(encodeAccountingRequest(i % 256, attrs(NAS), Buffer.from(`wrong-${v}`)), port, '127.0.0.1');
      udp.send(Buffer.from(`junk ${v}`), port, '127.0.0.1');
      const replied = new Promise<void>((r) => radiusReplies.push(r));
      udp.send(encodeAccountingRequest(i % 256, attrs(NAS), Buffer.from(NAS_SECRET)), port, '127.0.0.1');
      await replied;
    }
    await line.close();
    // Dropped datagrams get no answer: wait until each of the 4 per value was counted.
    while (t.cp.counters.total('radius_requests_total') < radiusBefore + 4 * n) await new Promise<void>((r) => setImmediate(r));
  }

  it('a second round of new values adds no series to any family', async () => {
    await round('a', 40);
    const first = await seriesByFamily(t);
    await round('b', 40);
    const second = await seriesByFamily(t);
    expect(sizes(second)).toEqual(sizes(first));
    // The rounds did reach what they aimed at.
    const c = t.cp.counters;
    expect(c.total('mqtt_auth_failures_total')).toBe(80);
    expect(c.get('mqtt_acl_denied_total', { action: 'subscribe', reason: 'not_granted' })).toBe(80);
    expect(c.get('uplink_dropped_total', { tower: TOWER, kind: 'usage', reason: 'unknown_tenant' })).toBe(160); // MQTT and line
    expect(c.get('uplink_dropped_total', { tower: TOWER, kind: 'discovery', reason: 'invalid_payload' })).toBe(80);
    expect(c.get('command_acks_total', { tower: TOWER, status: 'unknown_command' })).toBe(80);
    expect(c.get('accounting_records_unmapped_total', { source: 'other' })).toBe(2 * 100 + 80);
    expect(c.get('accounting_records_unmapped_total', { source: 'radius' })).toBe(80);
    for (const outcome of ['unknown_nas', 'bad_authenticator', 'malformed', 'recorded']) {
      expect(c.get('radius_requests_total', { outcome, plugin: 'radius' }), outcome).toBe(80);
    }
    expect(c.total('line_auth_failures_total')).toBe(80);
    expect(c.get('ingest_plugin_messages_total', { outcome: 'invalid_line', plugin: 'line' })).toBe(80);
  });
});
