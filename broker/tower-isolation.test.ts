/**
 * Towers are shared infrastructure: a tower may affect only its own data. Over real sockets:
 * - its uplinks (whatever the retain flag, whatever tenant the topic names) reach ingest and
 *   nothing else: no console or service receives them, none is kept as a retained message, none
 *   is queued for a persistent session (so a usage event the cloud rejects is never relayed);
 * - the retained store is capped per tower and in total, with memory bounded under a flood;
 * - deleting a tower ends its live sessions, like revoking its credential.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { filters, topics } from '../shared/mqtt/topics.js';
import { closed, inbox, memoryGrowth, startHarness, subscribeResult, type Harness } from './test-support.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('tower uplinks reach ingest and nobody else', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('are never relayed, retained or queued, whatever the retain flag or the tenant in the topic', async () => {
    h = await startHarness();
    const t1 = await h.createTower('T1');
    // Subscribed before: a console of tenant A (live), and a service with a persistent session
    // that then goes offline (anything delivered to it while away would be queued).
    const consoleA = await h.connectConsole('tenantA');
    const live = inbox(consoleA);
    expect(await subscribeResult(consoleA, 'tenants/tenantA/#')).toBe(0);
    const away = await h.connect({ clientId: 'service-archive', username: 'service:archive', password: 'test-service-secret-0123456789abcdef', clean: false });
    expect(await subscribeResult(away, 'tenants/#')).toBe(1);
    await away.endAsync();

    const tower = await h.connectTower(t1);
    const uplinks = [
      topics.usage('tenantA', 'T1'), // e.g. a device of another tenant: the cloud rejects it
      topics.usage('no-such-tenant', 'T1'),
      topics.acks('tenantA', 'T1'),
      topics.discovery('T1'),
    ];
    for (const topic of uplinks) await tower.publishAsync(topic, json({ forged: topic }), { qos: 1, retain: true });
    await tower.publishAsync(topics.status('T1'), json({ state: 'online' }), { qos: 1, retain: true });
    expect(h.sink.topics()).toEqual([...uplinks, topics.status('T1')]); // all processed

    // A downlink marker: each connection delivers in order, so anything relayed came before it.
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), json({ marker: 1 }));
    await live.next((t) => t === topics.decisions('tenantA', 'T1'));
    expect(live.messages.map((m) => m.topic)).toEqual([topics.decisions('tenantA', 'T1')]);

    const back = h.connectNow({ clientId: 'service-archive', username: 'service:archive', password: 'test-service-secret-0123456789abcdef', clean: false });
    const queued = inbox(back);
    await queued.next((t) => t === topics.decisions('tenantA', 'T1'));
    expect(queued.messages.map((m) => m.topic)).toEqual([topics.decisions('tenantA', 'T1')]);

    // Only the tower's status is kept as a retained message.
    const later = await h.connectService();
    const retained = inbox(later);
    await later.subscribeAsync(['tenants/#', 'towers/#'], { qos: 1 });
    await retained.next((t) => t === topics.status('T1'));
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T2'), json({ marker: 2 }));
    await retained.next((t) => t === topics.decisions('tenantA', 'T2'));
    expect(retained.messages.filter((m) => m.retain).map((m) => m.topic)).toEqual([topics.status('T1')]);
    expect(h.broker.retainedUsage.messages).toBe(1);
  });
});

describe('the retained store is capped per tower and in total', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it("keeps a tower's status only within its per-client bytes; beyond, it is processed but not kept", async () => {
    h = await startHarness({ config: { mqtt_max_retained_bytes_per_client: 1024 } });
    const tower = await h.connectTower(await h.createTower('T1'));
    await tower.publishAsync(topics.status('T1'), json({ state: 'online', pad: 'x'.repeat(2000) }), { qos: 1, retain: true });
    expect(h.sink.topics()).toEqual([topics.status('T1')]);
    expect(h.counters.get('mqtt_rejected_total', { reason: 'retained_quota' })).toBe(1);
    expect(h.broker.retainedUsage).toEqual({ messages: 0, bytes: 0 });
    await tower.publishAsync(topics.status('T1'), json({ state: 'online' }), { qos: 1, retain: true });
    expect(h.broker.retainedUsage.messages).toBe(1);
  });

  it('holds memory and the totals while towers and a service flood retained messages', async () => {
    const PAYLOAD = 250 * 1024;
    h = await startHarness({
      config: {
        mqtt_max_payload_bytes: 256 * 1024,
        mqtt_max_retained_messages: 20,
        mqtt_max_retained_bytes: 2 * 1024 * 1024,
      },
    });
    const tower = await h.connectTower(await h.createTower('T1'));
    const service = await h.connectService();
    const body = Buffer.alloc(PAYLOAD, 0x61);
    const { peakMb, heldMb } = await memoryGrowth(async () => {
      // The reported attack: retained 250 kB messages on usage topics of tenants that do not exist...
      for (let i = 0; i < 200; i++) {
        await tower.publishAsync(topics.usage(`ghost-${i}`, 'T1'), body, { qos: 1, retain: true });
        h.sink.messages.length = 0; // the test's recording sink would hold them otherwise
      }
      // ...and a credential that may publish anywhere, past the totals.
      for (let i = 0; i < 200; i++) await service.publishAsync(topics.policy(`tenant-${i}`, 'T1'), body, { qos: 1, retain: true });
    });
    // 100 MB were offered for retention: the tower's none, the service's up to the 2 MB total.
    expect(h.broker.retainedUsage.bytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(h.broker.retainedUsage.messages).toBe(Math.floor((2 * 1024 * 1024) / PAYLOAD));
    expect(h.counters.get('mqtt_rejected_total', { reason: 'retained_quota' })).toBe(200 - h.broker.retainedUsage.messages);
    // Unbounded, the store alone would hold ~100 MB.
    expect(heldMb).toBeLessThan(10);
    expect(peakMb).toBeLessThan(80);
  });
});

describe('deleting a tower', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('ends its live sessions and refuses it from then on; other towers are untouched', async () => {
    h = await startHarness();
    const t1 = await h.createTower('T1');
    const t2 = await h.createTower('T2');
    const c1 = await h.connectTower(t1);
    const c2 = await h.connectTower(t2);
    const gone = closed(c1);
    // As the API's DELETE /towers/:id does; the store may not have caught up on this node.
    h.bus.publish('tower.deleted', { tower_id: 'T1' });
    await gone;
    expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: t1.password })).toBe(5);
    expect(c2.connected).toBe(true);
    await c2.publishAsync(topics.status('T2'), json({ state: 'online' }), { qos: 1 });
    expect(await subscribeResult(c2, filters.towerCommands('T2'))).toBe(1);
  });
});
