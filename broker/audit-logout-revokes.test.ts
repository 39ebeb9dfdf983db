/**
 * Signing out ends a console sign-in's MQTT sessions, and only that sign-in's, over real sockets:
 * the API's logout revokes the sign-in's refresh-token family in the store and announces
 * 'console-session.ended'; the broker closes the sessions opened with that sign-in's access
 * tokens at once and refuses a new CONNECT with them. When the announcement is lost, the periodic
 * re-check (access.ts), which reads the family with the account, closes them within a round. The
 * account's other sign-in, and other tenants, keep their sessions. The store, tokens and the
 * re-check are the real ones the composition root wires (consoleUserActive); only the re-check's
 * interval runs on fake timers.
 */
import { randomUUID } from 'node:crypto';
import type { IClientOptions, MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { consoleUserActive } from '../cli/roots/foundation.js';
import { randomSecret, sha256 } from '../shared/auth/secrets.js';
import type { ConsoleUser } from '../shared/domain.js';
import { mqttIdentity, topics } from '../shared/mqtt/topics.js';
import { closed, startHarness, type Harness } from './test-support.js';

let h: Harness;
let tenant1: string;
let tenant2: string;
/** While set, a console check read from the store waits for it before answering (a slow read). */
let holdCheck: Promise<void> | null;
let checkRead: (() => void) | null;

/** A sign-in as the API makes one (api/auth/sessions.ts): a refresh-token family, and an access token naming it. */
async function signIn(u: ConsoleUser): Promise<{ familyId: string; access: string }> {
  const familyId = randomUUID();
  await h.store.refreshTokens.create({ id: randomUUID(), user_id: u.id, family_id: familyId, token_hash: sha256(randomSecret()), expires_at: h.clock.now + 3_600_000 });
  const access = await h.tokens.sign({ sub: u.id, tenant_id: u.tenant_id, role: u.console_role, sv: u.session_version, sid: familyId });
  return { familyId, access };
}

/** A sign-out as the API's logout makes it: the family revoked in the store, then (unless lost) announced. */
async function signOut(u: ConsoleUser, familyId: string, announce: boolean): Promise<void> {
  await h.store.refreshTokens.revokeFamily(familyId, h.clock.now);
  if (announce) h.bus.publish('console-session.ended', { user_id: u.id, session_id: familyId });
}

const login = (u: ConsoleUser, session: string, access: string): IClientOptions => ({
  clientId: mqttIdentity.consoleClientId(u.id, session),
  username: mqttIdentity.consoleUsername,
  password: access,
  // No client timer: faking setInterval leaves the client alone.
  keepalive: 0,
});

const newUser = (tenantId: string, email: string, role: ConsoleUser['console_role'] = 'viewer') =>
  h.store.consoleUsers.create({ tenant_id: tenantId, email, console_role: role, password_hash: 'x' });

/** A subscribed session still receives what the broker publishes under its tenant. */
async function receives(client: MqttClient, tenantId: string): Promise<boolean> {
  await client.subscribeAsync(`tenants/${tenantId}/#`);
  const got = new Promise<boolean>((resolve) => client.once('message', () => resolve(true)));
  await h.broker.downlink.publish(topics.decisions(tenantId, 'T9'), Buffer.from('{"still":"open"}'));
  return got;
}

beforeEach(async () => {
  holdCheck = null;
  checkRead = null;
  // The broker's intervals (its live re-check among them) are fake; sockets and I/O run for real.
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  h = await startHarness({
    consoleUsers: {
      isActive: async (id, tenantId, sessionVersion, sessionId) => {
        const active = await consoleUserActive(h.store, id, tenantId, sessionVersion, sessionId);
        if (holdCheck) {
          checkRead?.();
          await holdCheck;
        }
        return active;
      },
    },
  });
  tenant1 = (await h.store.tenants.create({ name: 'acme' })).id;
  tenant2 = (await h.store.tenants.create({ name: 'globex' })).id;
});

afterEach(async () => {
  vi.useRealTimers();
  await h.close();
});

describe('signing out ends the sign-in’s console MQTT sessions', () => {
  it('announced: its sessions close at once and its token is refused; the account’s other sign-in and another tenant go on', async () => {
    const alice = await newUser(tenant1, 'alice@acme.test');
    const carol = await newUser(tenant2, 'carol@globex.test');
    const [browser, otherBrowser, carols] = [await signIn(alice), await signIn(alice), await signIn(carol)];
    const wall = await h.connect(login(alice, 'wall', browser.access));
    const tab = await h.connect(login(alice, 'tab', browser.access));
    const laptop = await h.connect(login(alice, 'laptop', otherBrowser.access));
    const carolWall = await h.connect(login(carol, 'wall', carols.access));

    await signOut(alice, browser.familyId, true);
    await Promise.all([closed(wall), closed(tab)]);
    expect(h.counters.get('mqtt_sessions_revoked_total', { reason: 'signed_out', source: 'bus' })).toBe(2);
    expect(await h.refusedWith(login(alice, 'again', browser.access))).toBe(5);

    expect(await receives(laptop, tenant1)).toBe(true);
    expect(await receives(carolWall, tenant2)).toBe(true);
    expect((await h.connect(login(alice, 'again', otherBrowser.access))).connected).toBe(true);
    // A round of the re-check reads the other sign-in apart and leaves it open.
    await vi.advanceTimersByTimeAsync(1000);
    expect(laptop.connected).toBe(true);
    expect(h.counters.get('mqtt_sessions_revoked_total', { reason: 'user_revoked', source: 'recheck' })).toBe(0);
  });

  it('announcement lost: the next re-check round closes its sessions, and only its', async () => {
    const alice = await newUser(tenant1, 'alice@acme.test');
    const [browser, otherBrowser] = [await signIn(alice), await signIn(alice)];
    const wall = await h.connect(login(alice, 'wall', browser.access));
    const laptop = await h.connect(login(alice, 'laptop', otherBrowser.access));

    await signOut(alice, browser.familyId, false);
    const gone = closed(wall);
    await vi.advanceTimersByTimeAsync(1000);
    await gone;
    expect(h.counters.get('mqtt_sessions_revoked_total', { reason: 'user_revoked', source: 'recheck' })).toBe(1);
    expect(await h.refusedWith(login(alice, 'again', browser.access))).toBe(5);
    expect(await receives(laptop, tenant1)).toBe(true);
  });

  it('a CONNECT whose store read preceded the sign-out, and that completes after its announcement, is refused', async () => {
    const alice = await newUser(tenant1, 'alice@acme.test');
    const browser = await signIn(alice);
    let release!: () => void;
    holdCheck = new Promise<void>((resolve) => (release = resolve));
    const read = new Promise<void>((resolve) => (checkRead = resolve));
    const refused = h.refusedWith(login(alice, 'wall', browser.access));
    // The check read the family as standing, and the sign-out lands before the CONNECT completes.
    await read;
    await signOut(alice, browser.familyId, true);
    holdCheck = null;
    release();
    expect(await refused).toBe(5);
  });
});
