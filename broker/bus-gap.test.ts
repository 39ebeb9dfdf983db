/**
 * Pub/sub is at most once: a broker whose bus was disconnected misses the revocations announced
 * meanwhile. When the bus says so (onMissedEvents, after it subscribed again), the broker checks
 * every live session against the store as its CONNECT was, and closes those whose credential or
 * tower is gone — and only those.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../shared/bus.js';
import { topics } from '../shared/mqtt/topics.js';
import { closed, startHarness, type Harness } from './test-support.js';

/** An in-process bus that can be told it missed events (as RedisBus says after reconnecting). */
class GappyBus extends InProcessBus {
  readonly #missed = new Set<() => void>();
  onMissedEvents(listener: () => void): () => void {
    this.#missed.add(listener);
    return () => this.#missed.delete(listener);
  }
  gap(): void {
    for (const l of this.#missed) l();
  }
}

describe('live sessions after a bus gap', () => {
  let h: Harness;
  let bus: GappyBus;
  beforeEach(async () => {
    bus = new GappyBus();
    h = await startHarness({ bus });
  });
  afterEach(async () => {
    await h.close();
  });

  it('closes the sessions of a credential revoked and of a tower deleted while the bus was away, and no other', async () => {
    const [t1, t2, t3] = [await h.createTower('T1'), await h.createTower('T2'), await h.createTower('T3')];
    const [c1, c2, c3] = [await h.connectTower(t1), await h.connectTower(t2), await h.connectTower(t3)];
    // Changed in the store with no event on this broker's bus (it was published while it was away).
    await h.store.towerCredentials.revoke(t1.credentialId, h.clock.now);
    await h.store.towers.delete('T2');
    const gone = [closed(c1), closed(c2)];
    bus.gap();
    await Promise.all(gone);
    // T3 is untouched: it still publishes.
    await c3.publishAsync(topics.status('T3'), Buffer.from('{}'), { qos: 1 });
    expect(c3.connected).toBe(true);
    // And the revoked credential stays refused.
    expect(await h.refusedWith({ clientId: 'tower-T1', username: 'T1', password: t1.password })).toBe(5);
  });
});
