/**
 * Access ends when it is revoked, over real sockets: a console user's MQTT sessions close when
 * the user is revoked (disabled, deleted: 'console-user.revoked' on the bus) and when the
 * access token that opened them expires; the revoked user's still-valid tokens are refused from
 * then on, and a user the store no longer knows is refused at CONNECT. (Tower credentials and
 * deleted towers: broker.test.ts and tower-isolation.test.ts; revocations whose announcement
 * was lost, ended by the periodic re-check: audit-lost-revocation.test.ts.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { closed, inbox, startHarness, type Harness } from './test-support.js';

let h: Harness;
afterEach(async () => {
  vi.useRealTimers();
  await h.close();
});

const consoleLogin = async (userId: string, session: string) => ({
  clientId: mqttIdentity.consoleClientId(userId, session),
  username: mqttIdentity.consoleUsername,
  password: await h.consoleToken('tenantA', userId),
});

describe('console users on MQTT', () => {
  it("a revoked user's sessions close at once, and its tokens issued before are refused", async () => {
    h = await startHarness();
    const wall = await h.connect(await consoleLogin('alice', 'wall'));
    const laptop = await h.connect(await consoleLogin('alice', 'laptop'));
    const bob = await h.connect(await consoleLogin('bob', 'wall'));
    const stale = await consoleLogin('alice', 'again');
    const gone = Promise.all([closed(wall), closed(laptop)]);
    h.bus.publish('console-user.revoked', { user_id: 'alice', tenant_id: 'tenantA', reason: 'disabled' });
    await gone;
    expect(bob.connected).toBe(true);
    expect(await h.refusedWith(stale)).toBe(5);
    expect(h.counters.get('mqtt_auth_failures_total', { reason: 'user_revoked' })).toBe(1);
    // Re-enabled later: a token issued after the revocation is good.
    h.clock.now += 1000;
    expect((await h.connect(await consoleLogin('alice', 'again'))).connected).toBe(true);
  });

  it('a session closes when the access token that opened it expires', async () => {
    h = await startHarness({ tokenTtlS: 1 });
    const login = await consoleLogin('alice', 'wall');
    const session = await h.connect(login);
    await closed(session); // within a second: the token's exp
    h.clock.now += 2000;
    expect(await h.refusedWith(login)).toBe(4); // and the token no longer opens one
  });

  it('a token valid for longer than a timer can wait (24.8 days) keeps its session open until it expires', async () => {
    const ttlS = 30 * 24 * 3600;
    h = await startHarness({ tokenTtlS: ttlS });
    // The session's expiry timer is armed at CONNECT; keepalive 0: no client timers to run.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const session = await h.connect({ ...(await consoleLogin('alice', 'wall')), keepalive: 0 });
    const ended = closed(session);
    const box = inbox(session);
    await session.subscribeAsync('tenants/tenantA/#');
    vi.advanceTimersByTime(60_000);
    await h.broker.downlink.publish(topics.decisions('tenantA', 'T1'), Buffer.from('{"still":"open"}'));
    expect(await Promise.race([box.next(() => true).then(() => 'open'), ended.then(() => 'closed')])).toBe('open');
    h.clock.now += ttlS * 1000;
    vi.advanceTimersByTime(ttlS * 1000);
    await ended;
  });

  it('a user the store no longer knows (deleted, disabled, moved) is refused at CONNECT', async () => {
    const active = new Set(['bob']);
    h = await startHarness({ consoleUsers: { isActive: async (id, tenantId) => active.has(id) && tenantId === 'tenantA' } });
    expect(await h.refusedWith(await consoleLogin('alice', 'wall'))).toBe(5);
    expect((await h.connect(await consoleLogin('bob', 'wall'))).connected).toBe(true);
  });
});
