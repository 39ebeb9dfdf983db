/**
 * The Redis bus between real processes' views (two RedisBus instances on a real redis-server):
 * scopes, schema checks on arrival, and isolation by deployment prefix.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../../test/support/redis.js';
import type { Tower } from '../domain.js';
import { Counters } from '../metrics.js';
import { createRedis } from './connection.js';
import { RedisBus } from './redis-bus.js';

const tower: Tower = {
  id: 'T1', name: 't', lat: null, lon: null, radius_m: null, state: 'online', agent_version: null, last_seen: 1, managed_by: null, retired_at: null, created_at: 1, updated_at: 1,
};

function next<T>(register: (resolve: (v: T) => void) => void): Promise<T> {
  return new Promise((resolve) => register(resolve));
}

describeWithRedis('RedisBus', (url) => {
  const open: Array<{ quit(): Promise<unknown> }> = [];
  let prefix: string;
  const make = async (p = prefix, counters?: Counters) => {
    const publisher = createRedis(url, { name: 'bus-test-pub' });
    const subscriber = createRedis(url, { name: 'bus-test-sub' });
    open.push(publisher, subscriber);
    const bus = new RedisBus({ publisher, subscriber, prefix: p, ...(counters ? { counters } : {}) });
    await bus.start();
    return { bus, publisher };
  };
  beforeEach(() => {
    prefix = uniquePrefix();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) await c.quit();
  });

  it('delivers a publish locally to both scopes and remotely to cluster listeners only', async () => {
    const a = await make();
    const b = await make();
    const local: string[] = [];
    a.bus.subscribe('tower.status', () => local.push('a-local'));
    a.bus.subscribe('tower.status', () => local.push('a-cluster'), undefined, 'cluster');
    const remoteLocal: string[] = [];
    b.bus.subscribe('tower.status', () => remoteLocal.push('b-local'));
    const arrived = next<Tower>((r) => b.bus.subscribe('tower.status', (e) => r(e.tower), undefined, 'cluster'));
    a.bus.publish('tower.status', { tower });
    expect(local).toEqual(['a-local', 'a-cluster']);
    expect(await arrived).toEqual(tower);
    // A second event shows nothing else arrived at b's local listener in between.
    const second = next<string>((r) => b.bus.subscribe('credential.revoked', (e) => r(e.credential_id), undefined, 'cluster'));
    a.bus.publish('credential.revoked', { tower_id: 'T1', credential_id: 'c1' });
    expect(await second).toBe('c1');
    expect(remoteLocal).toEqual([]);
  });

  it('drops malformed and unknown messages (counted) and keeps serving valid ones', async () => {
    const counters = new Counters();
    const b = await make(prefix, counters);
    const seen: string[] = [];
    const got = next<void>((r) =>
      b.bus.subscribe('credential.revoked', (e) => {
        seen.push(e.credential_id);
        r();
      }, undefined, 'cluster'),
    );
    const raw = createRedis(url, { name: 'bus-test-raw' });
    open.push(raw);
    await raw.publish(`${prefix}bus`, 'not json');
    await raw.publish(`${prefix}bus`, JSON.stringify({ o: 'x', e: 'no.such.event', p: {} }));
    await raw.publish(`${prefix}bus`, JSON.stringify({ o: 'x', e: 'credential.revoked', p: { tower_id: 1 } }));
    await raw.publish(`${prefix}bus`, JSON.stringify({ o: 'x', e: 'credential.revoked', p: { tower_id: 'T1', credential_id: 'ok' } }));
    await got;
    expect(seen).toEqual(['ok']);
    expect(counters.get('bus_messages_dropped_total', { reason: 'invalid_json' })).toBe(1);
    expect(counters.get('bus_messages_dropped_total', { reason: 'unknown_event' })).toBe(1);
    expect(counters.get('bus_messages_dropped_total', { reason: 'invalid_payload' })).toBe(1);
  });

  it('publish never throws to its caller: a closed publisher connection is counted and reported', async () => {
    const counters = new Counters();
    const publisher = createRedis(url, { name: 'bus-test-pub' });
    const subscriber = createRedis(url, { name: 'bus-test-sub' });
    open.push(subscriber);
    let report!: (event: string) => void;
    const reported = new Promise<string>((r) => (report = r));
    const bus = new RedisBus({ publisher, subscriber, prefix, counters, onError: (_err, event) => report(event) });
    await bus.start();
    await publisher.quit();
    const heard: string[] = [];
    bus.subscribe('credential.revoked', (e) => heard.push(e.credential_id));
    expect(() => bus.publish('credential.revoked', { tower_id: 'T1', credential_id: 'c1' })).not.toThrow();
    // This process's own listeners still hear it.
    expect(heard).toEqual(['c1']);
    expect(await reported).toBe('credential.revoked');
    expect(counters.get('bus_publish_errors_total', { event: 'credential.revoked' })).toBe(1);
  });

  it('deployments with different prefixes do not hear each other', async () => {
    const a = await make();
    const other = await make(uniquePrefix());
    const b = await make();
    const heardByOther: string[] = [];
    other.bus.subscribe('credential.revoked', (e) => heardByOther.push(e.credential_id), undefined, 'cluster');
    const got = next<string>((r) => b.bus.subscribe('credential.revoked', (e) => r(e.credential_id), undefined, 'cluster'));
    a.bus.publish('credential.revoked', { tower_id: 'T1', credential_id: 'c9' });
    expect(await got).toBe('c9');
    expect(heardByOther).toEqual([]);
  });
});
