/**
 * A what-if replays recorded usage: a caller without usage:read (an API key not given it) gets the
 * counts and consequences, not the replayed events or the breakdowns that would rebuild them, in
 * the JSON answer and in the NDJSON stream; `redacted` names what was left out (auth/reveal.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let tenantId: string;
let eventIds: string[];

interface Reply {
  evaluated: number;
  flips: { total: number; allow_to_deny: number; by_user: unknown[]; by_app: unknown[]; by_action: unknown[]; by_tower: unknown[] };
  sample: Array<{ event_id: string }>;
  tests: { total: number; passing_now: number; passing_with_draft: number; broken: unknown[]; fixed: unknown[] };
  redacted: string[];
}

beforeEach(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  await post(h.app, operator, '/api/v1/towers', { id: 'twr-1', name: 'twr-1' });
  await post(h.app, owner, '/api/v1/devices', { id: 'dev-1', name: 'phone' });
  await post(h.app, owner, '/api/v1/policy-tests', { name: 'phone may send mail', device_id: 'dev-1', app: 'mail', action: 'send', expected_effect: 'allow' });
  await seedUsage(h.store, tenantId, 'twr-1', [
    { device_id: 'dev-1', app: 'mail', action: 'send', effect: 'allow' },
    { device_id: 'dev-1', app: 'dropbox', action: 'upload', effect: 'allow' },
  ], h.clock.now);
  eventIds = (await h.store.usageHistory.scan(tenantId, { since: h.clock.now - 1, until: h.clock.now + 1 }, null, 10)).map((e) => e.id);
  expect(eventIds).toHaveLength(2);
});
afterEach(async () => {
  await h.close();
});

/** Every event is decided by the tenant default: a deny default flips them all, and breaks the test. */
const whatIf = (key: string, query = '') =>
  h.app.inject({
    method: 'POST',
    url: `/api/v1/policies/what-if${query}`,
    headers: { authorization: `Bearer ${key}` },
    payload: { draft: { default_effect: 'deny' }, since: h.clock.now - 1, until: h.clock.now + 1 },
  });

async function keyWith(scopes: string[]): Promise<string> {
  return (await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'what-if', scopes })).key;
}

describe('what-if for a caller without usage:read', () => {
  it('a key holding usage:read and policies:read gets the replayed events and the test results', async () => {
    const res = await whatIf(await keyWith(['policies:simulate', 'usage:read', 'policies:read']));
    expect(res.statusCode, res.body).toBe(200);
    const r = json<Reply>(res);
    expect(r.redacted).toEqual([]);
    expect(r.flips).toMatchObject({ total: 2, allow_to_deny: 2 });
    expect(r.sample.map((f) => f.event_id).sort()).toEqual([...eventIds].sort());
    expect(r.flips.by_app).toHaveLength(2);
    expect(r.flips.by_tower).toEqual([{ key: 'twr-1', allow_to_deny: 2, deny_to_allow: 0 }]);
    expect(r.tests).toMatchObject({ total: 1, passing_now: 1, passing_with_draft: 0 });
    expect(r.tests.broken).toHaveLength(1);
  });

  it('a key with policies:simulate alone gets counts, no event, no breakdown, no test result', async () => {
    const res = await whatIf(await keyWith(['policies:simulate']));
    expect(res.statusCode, res.body).toBe(200);
    const r = json<Reply>(res);
    expect(r.redacted).toEqual(['usage:read', 'policies:read']);
    expect(r.evaluated).toBe(2);
    expect(r.flips).toEqual({ total: 2, allow_to_deny: 2, deny_to_allow: 0, rule_changes: 0, by_user: [], by_app: [], by_action: [], by_tower: [] });
    expect(r.sample).toEqual([]);
    expect(r.tests).toEqual({ total: 1, passing_now: 1, passing_with_draft: 0, broken: [], fixed: [] });
    for (const id of eventIds) expect(res.body).not.toContain(id);
    expect(res.body).not.toContain('dropbox');
    expect(res.body).not.toContain('phone may send mail');
  });

  it('the NDJSON stream carries no flip line for it, only the redacted summary', async () => {
    const withUsage = await whatIf(await keyWith(['policies:simulate', 'usage:read']), '?stream=ndjson');
    const lines = (body: string) => body.trim().split('\n').map((l) => JSON.parse(l) as { type: string; event_id?: string; redacted?: string[]; sample?: unknown[] });
    expect(withUsage.statusCode).toBe(200);
    const full = lines(withUsage.body);
    expect(full.filter((l) => l.type === 'flip').map((l) => l.event_id).sort()).toEqual([...eventIds].sort());
    expect(full.at(-1)).toMatchObject({ type: 'summary', redacted: ['policies:read'] });

    const res = await whatIf(await keyWith(['policies:simulate']), '?stream=ndjson');
    expect(res.statusCode).toBe(200);
    const redacted = lines(res.body);
    expect(redacted).toHaveLength(1);
    expect(redacted[0]).toMatchObject({ type: 'summary', evaluated: 2, sample: [], redacted: ['usage:read', 'policies:read'] });
    for (const id of eventIds) expect(res.body).not.toContain(id);
  });

  it('a console user (every role that may run a what-if holds usage:read and policies:read): nothing is left out', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/policies/what-if',
      headers: owner.headers,
      payload: { draft: { default_effect: 'deny' }, since: h.clock.now - 1, until: h.clock.now + 1 },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(json<Reply>(res)).toMatchObject({ redacted: [], sample: [{}, {}] });
  });
});

describe('a what-if streaming recorded usage stops at the revocation of its key', () => {
  it('revoked between two pages: the rest is not sent, the stream ends with an error line', async () => {
    // 5,000 more events: with the two of every test, a first page of 5,000 and a second of 2.
    const more = Array.from({ length: 5_000 }, (_, i) => ({ device_id: `dev-${i}`, app: 'slack', action: 'open', effect: 'allow' as const }));
    for (let i = 0; i < more.length; i += 1_000) await seedUsage(h.store, tenantId, 'twr-1', more.slice(i, i + 1_000), h.clock.now);
    const issued = await post<{ api_key: { id: string }; key: string }>(h.app, owner, '/api/v1/api-keys', {
      name: 'what-if',
      scopes: ['policies:simulate', 'usage:read'],
    });
    // The second page is held until released: the revocation comes between the pages.
    const scan = h.store.usageHistory.scan.bind(h.store.usageHistory);
    let pages = 0;
    let reached!: () => void;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    h.store.usageHistory.scan = async (...args) => {
      if (++pages === 2) {
        reached();
        await released;
      }
      return scan(...args);
    };

    const streamed = whatIf(issued.key, '?stream=ndjson');
    await held;
    const revoked = await h.app.inject({ method: 'DELETE', url: `/api/v1/api-keys/${issued.api_key.id}`, headers: owner.headers });
    expect(revoked.statusCode).toBe(204);
    // The next flip is past the re-read interval.
    h.clock.advance(1_001);
    release();
    const res = await streamed;
    expect(res.statusCode).toBe(200);
    const lines = res.body.trim().split('\n').map((l) => JSON.parse(l) as { type: string; error?: { code: string } });
    expect(lines.filter((l) => l.type === 'flip')).toHaveLength(5_000);
    expect(lines.at(-1)).toMatchObject({ type: 'error', error: { code: 'UNAUTHENTICATED' } });
  });
});
