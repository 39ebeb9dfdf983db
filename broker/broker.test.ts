/**
 * Broker integration tests over real sockets: authentication refusals, ingest hand-off, the
 * availability LWT, downlink, revocation and lifecycle. Limits and malformed input live in
 * limits-integration.test.ts, the ACL matrix in acl-matrix.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';

const ulid = createIdFactory();
import { KeyRing, TokenService } from '../shared/auth/tokens.js';
import { formatTowerPassword } from '../shared/auth/secrets.js';
import { InProcessBus } from '../shared/bus.js';
import { silentLogger } from '../shared/logger.js';
import { Counters } from '../shared/metrics.js';
import { filters, mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { Broker } from './broker.js';
import { closed, inbox, RecordingSink, startHarness, subscribeResult, TEST_SERVICE_SECRET, testBrokerConfig, type Harness, type TowerLogin } from './test-support.js';

const statusPayload = (state: 'online' | 'offline') => Buffer.from(JSON.stringify({ v: 1, id: ulid(), state, ts: Date.now() }));
const usagePayload = () => Buffer.from(JSON.stringify({ v: 1, id: ulid(), sent_at: Date.now(), events: [] }));

describe('broker', () => {
  let h: Harness;
  let t1: TowerLogin;
  let t2: TowerLogin;

  beforeEach(async () => {
    h = await startHarness();
    t1 = await h.createTower('T1');
    t2 = await h.createTower('T2');
  });
  afterEach(async () => {
    await h.close();
  });

  describe('authentication', () => {
    it('accepts a tower with its own credential and client id', async () => {
      const c = await h.connectTower(t1);
      expect(c.connected).toBe(true);
      // touch runs off the hot path; it has landed by the time a round trip completes.
      await c.publishAsync(topics.status('T1'), statusPayload('online'), { qos: 1 });
      expect((await h.store.towerCredentials.get(t1.credentialId))?.last_used_at).toBe(h.clock.now);
    });

    it('refuses a wrong secret with 4 (bad user name or password)', async () => {
      const [credentialId] = t1.password.split('.');
      const password = formatTowerPassword(credentialId!, 'not-the-secret');
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password })).toBe(4);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'bad_secret' })).toBe(1);
    });

    it('refuses an unknown credential and a malformed password with 4', async () => {
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: 'nope.secret' })).toBe(4);
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: 'no-dot' })).toBe(4);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'unknown_credential' })).toBe(1);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'malformed_password' })).toBe(1);
    });

    it('refuses a revoked credential with 5 (not authorized)', async () => {
      await h.store.towerCredentials.revoke(t1.credentialId, Date.now());
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: t1.password })).toBe(5);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'revoked' })).toBe(1);
    });

    it("refuses another tower's credential with 4", async () => {
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: t2.password })).toBe(4);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'credential_of_other_tower' })).toBe(1);
    });

    it('refuses a tower using any client id but its own with 2 (identifier rejected)', async () => {
      expect(await h.refusedWith({ clientId: 'tower-T2', username: 'T1', password: t1.password })).toBe(2);
      expect(await h.refusedWith({ clientId: 'edge-T1', username: 'T1', password: t1.password })).toBe(2);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'bad_client_id' })).toBe(2);
    });

    it('keeps the reserved tower- client ids away from console users', async () => {
      const password = await h.consoleToken('tenantA');
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'console', password })).toBe(2);
    });

    it('refuses an expired access JWT with 4', async () => {
      const past = new TokenService(h.ring, 60, () => Date.now() - 3_600_000);
      const password = await past.sign({ sub: 'u1', tenant_id: 'tenantA', role: 'viewer' });
      expect(await h.refusedWith({ username: 'console', password })).toBe(4);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'token_expired' })).toBe(1);
    });

    it('refuses a JWT signed by a foreign key with 4', async () => {
      const foreign = new TokenService(await KeyRing.open(null), 60);
      const password = await foreign.sign({ sub: 'u1', tenant_id: 'tenantA', role: 'viewer' });
      expect(await h.refusedWith({ username: 'console', password })).toBe(4);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'bad_token' })).toBe(1);
    });

    it('refuses platform operators on MQTT with 5', async () => {
      const password = await h.consoleToken(null);
      expect(await h.refusedWith({ username: 'console', password })).toBe(5);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'operator_refused' })).toBe(1);
    });

    it('authenticates services by the shared secret only', async () => {
      const ok = await h.connectService('worker');
      expect(ok.connected).toBe(true);
      expect(await h.refusedWith({ username: mqttIdentity.serviceUsername('worker'), password: 'wrong-secret' })).toBe(4);
      expect(await h.refusedWith({ username: 'admin@example.com', password: TEST_SERVICE_SECRET })).toBe(4);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'bad_service_secret' })).toBe(1);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'unknown_username' })).toBe(1);
    });

    it('refuses anonymous clients unless allowed', async () => {
      expect(await h.refusedWith({})).toBe(5);
      expect(h.counters.get('mqtt_auth_failures_total', { reason: 'anonymous_refused' })).toBe(1);
    });
  });

  describe('ingest hand-off', () => {
    it('hands a tower uplink to the sink before the PUBACK', async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      h.sink.impl = () => gate;
      const c = await h.connectTower(t1);
      let acked = false;
      const published = c.publishAsync(topics.usage('tenantA', 'T1'), usagePayload(), { qos: 1 }).then(() => (acked = true));
      const msg = await h.sink.waitFor((m) => m.topic === topics.usage('tenantA', 'T1'));
      expect(msg).toMatchObject({ tower_id: 'T1', parsed: { kind: 'usage', tenantId: 'tenantA', towerId: 'T1' }, received_at: h.clock.now });
      // The sink has the message but has not finished: aedes must not have acknowledged it yet.
      expect(acked).toBe(false);
      release();
      await published;
      expect(acked).toBe(true);
    });

    it('drops the connection without a PUBACK when the sink fails', async () => {
      h.sink.impl = () => Promise.reject(new Error('database is down'));
      const c = await h.connectTower(t1);
      const gone = closed(c);
      c.publish(topics.acks('tenantA', 'T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
      await gone;
      expect(h.counters.get('ingest_errors_total', { stage: 'broker', reason: 'sink_failed' })).toBe(1);
    });

    it('refuses uplinks while no sink is set, and accepts them once one is', async () => {
      h.broker.setSink(null);
      const c = await h.connectTower(t1);
      const gone = closed(c);
      c.publish(topics.discovery('T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
      await gone;
      expect(h.counters.get('ingest_errors_total', { stage: 'broker', reason: 'no_sink' })).toBe(1);

      h.broker.setSink(h.sink);
      const again = await h.connectTower(t1);
      await again.publishAsync(topics.discovery('T1'), Buffer.from('{}'), { qos: 1 });
      expect(h.sink.topics()).toEqual([topics.discovery('T1')]);
    });
  });

  describe('availability', () => {
    it('hands the status LWT of a tower that drops to the sink, and retains it', async () => {
      const offline = statusPayload('offline');
      const c = await h.connectTower(t1, { will: { topic: topics.status('T1'), payload: offline, qos: 1, retain: true } });
      c.stream.destroy(); // no DISCONNECT: the network connection is simply lost
      const will = await h.sink.waitFor((m) => m.topic === topics.status('T1'));
      expect(will).toMatchObject({ tower_id: 'T1', parsed: { kind: 'status', towerId: 'T1' } });
      expect(will.payload.equals(offline)).toBe(true);

      const svc = await h.connectService();
      const box = inbox(svc);
      expect(await subscribeResult(svc, filters.allStatus)).toBe(1);
      const retained = await box.next((t) => t === topics.status('T1'));
      expect(retained.retain).toBe(true);
      expect(retained.payload.equals(offline)).toBe(true);
    });

    it('discards the LWT on a clean DISCONNECT [MQTT-3.1.2-10], and marks the tower offline itself', async () => {
      const statusEvent = new Promise<string>((resolve) => h.bus.subscribe('tower.status', (e) => resolve(e.tower.state)));
      const c = await h.connectTower(t1, { will: { topic: topics.status('T1'), payload: statusPayload('offline'), qos: 1, retain: true } });
      await c.endAsync();
      await expect.poll(() => h.broker.connectionCount).toBe(0);
      expect(h.sink.messages).toEqual([]);
      // The will that would have said so is gone: without this the tower stayed online for good.
      expect(await statusEvent).toBe('offline');
      expect((await h.store.towers.get('T1'))?.state).toBe('offline');
    });

    it('refuses a will on another tower’s status topic', async () => {
      const c = await h.connectTower(t1, { will: { topic: topics.status('T2'), payload: statusPayload('offline'), qos: 1, retain: true } });
      c.stream.destroy();
      await expect.poll(() => h.counters.get('mqtt_acl_denied_total', { action: 'publish', reason: 'not_granted' })).toBe(1);
      expect(h.sink.messages).toEqual([]);
    });

    it('marks a tower without a status LWT offline when its connection ends', async () => {
      const statusEvent = new Promise<string>((resolve) => h.bus.subscribe('tower.status', (e) => resolve(e.tower.state)));
      const c = await h.connectTower(t1);
      c.stream.destroy();
      expect(await statusEvent).toBe('offline');
      expect((await h.store.towers.get('T1'))?.state).toBe('offline');
    });
  });

  describe('downlink', () => {
    it('delivers a published decision to the subscribed tower', async () => {
      const c = await h.connectTower(t1);
      const box = inbox(c);
      expect(await subscribeResult(c, filters.towerDecisions('T1'))).toBe(1);
      const payload = Buffer.from('{"v":1}');
      await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), payload);
      const got = await box.next((t) => t === topics.decisions('tenantA', 'T1'));
      expect(got.payload.equals(payload)).toBe(true);
      expect(got.retain).toBe(false);
    });

    it('delivers a retained policy bundle to a tower that subscribes later', async () => {
      const bundle = Buffer.from('{"v":1,"version":7}');
      await h.broker.downlink.publish(topics.policy('tenantA', 'T1'), bundle, { retain: true });
      const c = await h.connectTower(t1);
      const box = inbox(c);
      // QoS 0: nothing is queued for an offline tower; the retained bundle comes on SUBSCRIBE.
      expect(await subscribeResult(c, filters.towerPolicies('T1'))).toBe(0);
      const got = await box.next((t) => t === topics.policy('tenantA', 'T1'));
      expect(got.retain).toBe(true);
      expect(got.payload.equals(bundle)).toBe(true);
    });

    it('reaches console dashboards over WebSocket', async () => {
      const dash = await h.connectConsole('tenantA', { ws: true });
      const box = inbox(dash);
      expect(await subscribeResult(dash, 'tenants/tenantA/#')).toBe(0); // live view: QoS 0
      await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), Buffer.from('{}'));
      expect((await box.next((t) => t === topics.commands('tenantA', 'T1'))).topic).toBe(topics.commands('tenantA', 'T1'));
    });

    it('queues commands for an offline tower with a persistent session and delivers them on reconnect', async () => {
      const first = await h.connectTower(t1, { clean: false });
      expect(await subscribeResult(first, filters.towerCommands('T1'))).toBe(1);
      await first.endAsync();
      await h.broker.downlink.publish(topics.commands('tenantA', 'T1'), Buffer.from('{"id":"cmd"}'));

      const again = h.connectNow({ clientId: mqttIdentity.towerClientId('T1'), username: 'T1', password: t1.password, clean: false });
      const box = inbox(again); // attached before CONNACK: the queue is flushed right after it
      const got = await box.next((t) => t === topics.commands('tenantA', 'T1'));
      expect(got.payload.toString()).toBe('{"id":"cmd"}');
    });

    it('lets a tower take over its own session [MQTT-3.1.4-2]', async () => {
      const first = await h.connectTower(t1);
      const gone = closed(first);
      const second = await h.connectTower(t1);
      await gone;
      await second.publishAsync(topics.status('T1'), statusPayload('online'), { qos: 1 });
      expect(second.connected).toBe(true);
    });

    it('only publishes downlink topics', async () => {
      await expect(h.broker.downlink.publish(topics.usage('tenantA', 'T1'), Buffer.from('{}'))).rejects.toThrow(/not a downlink topic/);
      await expect(h.broker.downlink.publish('$SYS/x', Buffer.from('{}'))).rejects.toThrow(/not a downlink topic/);
    });
  });

  describe('revocation', () => {
    it('closes the live sessions of a revoked credential and only those', async () => {
      const c1 = await h.connectTower(t1);
      const c2 = await h.connectTower(t2);
      const gone = closed(c1);
      await h.store.towerCredentials.revoke(t1.credentialId, Date.now());
      h.bus.publish('credential.revoked', { tower_id: 'T1', credential_id: t1.credentialId });
      await gone;
      await c2.publishAsync(topics.status('T2'), statusPayload('online'), { qos: 1 });
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: t1.password })).toBe(5);
    });

    it('refuses a credential revoked on the bus even before the store says so', async () => {
      h.bus.publish('credential.revoked', { tower_id: 'T1', credential_id: t1.credentialId });
      expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: t1.password })).toBe(5);
    });
  });
});

describe('broker lifecycle', () => {
  it('refuses to start without a service secret', async () => {
    const ring = await KeyRing.open(null);
    const broker = new Broker({
      config: testBrokerConfig({ service_secret: undefined }),
      logger: silentLogger(),
      counters: new Counters(),
      bus: new InProcessBus(),
      towerCredentials: { get: async () => null, touch: async () => undefined },
      towers: { get: async () => null, setStatus: async () => false },
      tokens: new TokenService(ring, 60),
    });
    await expect(broker.start()).rejects.toThrow(/service_secret/);
    await broker.stop();
  });

  it('stop() closes live clients, releases the ports and is idempotent', async () => {
    const sink = new RecordingSink();
    const h = await startHarness({ sink });
    const login = await h.createTower('T1');
    const c = await h.connectTower(login, { will: { topic: topics.status('T1'), payload: statusPayload('offline'), qos: 1, retain: true } });
    const gone = closed(c);
    await Promise.all([h.broker.stop(), h.broker.stop()]);
    await gone;
    // Shutting down is not the tower going offline: its LWT is not handed to the sink.
    expect(sink.messages).toEqual([]);
    await expect(h.broker.start()).rejects.toThrow(/stopped/);
    await h.close();
  });
});
