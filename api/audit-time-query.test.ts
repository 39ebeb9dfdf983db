/**
 * Adversarial audit (input handling): `since`/`until` take epoch milliseconds or ISO 8601, and
 * "anything else is a 400, never a guess" (api/schemas/common.ts). A day that does not exist
 * passed the format check and went to Date.parse, which rolls it over: `2026-02-30` was read as
 * March 2, `2026-04-31` as May 1, `2026-02-29` as March 1. A window with such a typo answered
 * 200 over other days than the ones asked for (an audit export, a usage export), silently. Now
 * each is a 400 naming the parameter; real days (leap days included) are read as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 1_000_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  owner = (await createTenant(h.app, operator, 'Alpha')).owner;
});
afterAll(async () => {
  await h.close();
});

const get = (url: string) => h.app.inject({ method: 'GET', url, headers: owner.headers });

describe('ISO 8601 days that do not exist', () => {
  it('are a 400 naming the parameter on every route that takes a time window, exports included', async () => {
    const cases: Array<[string, string]> = [
      ['/api/v1/audit?since=2026-02-30', 'query.since'],
      ['/api/v1/audit?until=2026-04-31T12:00:00Z&format=csv', 'query.until'],
      ['/api/v1/app-usage?since=2026-02-29', 'query.since'],
      ['/api/v1/app-usage?until=2026-06-31T00:00%2B02:00&format=xml', 'query.until'],
      ['/api/v1/dashboard/alerts?since=2026-11-31', 'query.since'],
      ['/api/v1/dashboard/metrics?since=2025-09-31T08:30Z', 'query.since'],
    ];
    for (const [url, field] of cases) {
      const res = await get(url);
      expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
      const body = json<{ error: { code: string; issues: Array<{ field: string }> } }>(res);
      expect(body.error.code).toBe('VALIDATION_FAILED');
      expect(body.error.issues.map((i) => i.field)).toEqual([field]);
    }
  });

  it('real days, leap days and offsets are read as before', async () => {
    const res = await get('/api/v1/dashboard/metrics?since=2028-02-29&until=2028-03-01T01:30%2B02:00');
    expect(res.statusCode, res.body).toBe(200);
    expect(json<{ window: { since: number; until: number } }>(res).window).toMatchObject({
      since: Date.UTC(2028, 1, 29),
      until: Date.UTC(2028, 1, 29, 23, 30),
    });
    for (const url of ['/api/v1/audit?since=2026-01-31&until=2026-12-31T23:59:59.999Z', '/api/v1/app-usage?since=1769860800000']) {
      const ok = await get(url);
      expect(ok.statusCode, `${url}: ${ok.body}`).toBe(200);
    }
  });
});
