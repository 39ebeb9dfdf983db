import { afterEach, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness } from './test-support.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('system endpoints', () => {
  it('/healthz is always ok; /readyz follows the readiness probe', async () => {
    let ready = false;
    h = await startHarness({ readiness: async () => ({ ok: ready, checks: { store: ready } }) });
    expect(json(await h.app.inject({ method: 'GET', url: '/healthz' }))).toEqual({ status: 'ok' });

    const notReady = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(json(notReady)).toEqual({ status: 'unavailable', checks: { store: false } });
    ready = true;
    const isReady = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(isReady.statusCode).toBe(200);
    expect(json(isReady)).toEqual({ status: 'ready', checks: { store: true } });
  });

  it('/readyz answers 503 when the probe itself throws', async () => {
    h = await startHarness({
      readiness: async () => {
        throw new Error('redis down');
      },
    });
    expect((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
  });

  it('publishes the signing keys as a JWKS without private parts', async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(res.statusCode).toBe(200);
    const { keys } = json<{ keys: Array<Record<string, unknown>> }>(res);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys[0]).toMatchObject({ kty: 'EC', alg: 'ES256', use: 'sig' });
    expect(keys[0]).not.toHaveProperty('d');
  });

  it('/metrics is Prometheus text for operators only', async () => {
    h = await startHarness();
    h.counters.inc('edgeplane_usage_events_total', { tenant: 't1' }, 3);
    const operator = await login(h.app, OPERATOR_EMAIL);
    const res = await h.app.inject({ method: 'GET', url: '/metrics', headers: operator.headers });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toContain('edgeplane_usage_events_total{tenant="t1"} 3');

    expect((await h.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const { owner } = await createTenant(h.app, operator, 'Acme');
    expect((await h.app.inject({ method: 'GET', url: '/metrics', headers: owner.headers })).statusCode).toBe(403);
  });
});

describe('OpenAPI', () => {
  it('/docs/json is an OpenAPI 3 document with the routes and bearer security', async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = json<{
      openapi: string;
      info: { title: string };
      paths: Record<string, Record<string, { security?: unknown; requestBody?: unknown; tags?: string[]; responses?: object }>>;
      components: { securitySchemes: Record<string, unknown> };
    }>(res);
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBe('EdgePlane');
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const path of [
      '/api/v1/auth/login',
      '/api/v1/devices',
      '/api/v1/devices/{id}',
      '/api/v1/devices/discovered',
      '/api/v1/policies',
      '/api/v1/policy-rules',
      '/api/v1/users/roles/assign',
      '/api/v1/roles/policies/assign',
      '/api/v1/towers/{id}/credentials',
      '/api/v1/carriers',
      '/api/v1/app-usage',
      '/api/v1/dashboard/alerts',
      '/api/v1/dashboard/metrics',
      '/api/v1/plans',
      '/api/v1/plans/{id}',
      '/api/v1/tenant/plan',
      '/api/v1/remedial-actions',
      '/api/v1/commands/{id}',
      '/healthz',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.paths['/api/v1/devices']!.post!.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/api/v1/devices']!.post!.requestBody).toBeDefined();
    expect(doc.paths['/api/v1/devices']!.post!.tags).toEqual(['devices']);
    // The plan's device limit is a documented refusal of POST /devices.
    expect(doc.paths['/api/v1/devices']!.post!.responses).toHaveProperty(['403']);
    expect(doc.paths['/api/v1/remedial-actions']!.post!.tags).toEqual(['remediation']);
    expect(doc.paths['/api/v1/commands/{id}']!.get!.tags).toEqual(['remediation']);
    expect(doc.paths['/api/v1/auth/login']!.post!.security).toBeUndefined();
    expect(Object.keys(doc.paths).some((p) => p.startsWith('/docs'))).toBe(false);
  });

  it('serves Swagger UI at /docs', async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
  });

  it('serves the API explorer so that it cannot be framed or sniffed, and keeps its scripts on plain HTTP', async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('upgrade-insecure-requests');
  });
});

describe('client mistakes are 4xx with the error body', () => {
  it('unknown route → 404 NOT_FOUND', async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/nope' });
    expect(res.statusCode).toBe(404);
    expect(json(res)).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });

  it('malformed JSON → 400, wrong media type → 415, oversized body → 413', async () => {
    h = await startHarness();
    const badJson = await h.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"email": ',
    });
    expect(badJson.statusCode).toBe(400);
    expect(json(badJson)).toMatchObject({ error: { code: 'BAD_REQUEST' } });

    const media = await h.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/xml' },
      payload: '<login/>',
    });
    expect(media.statusCode).toBe(415);
    expect(json(media)).toMatchObject({ error: { code: 'BAD_REQUEST' } });

    const big = await h.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ email: 'a@b.c', password: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(big.statusCode).toBe(413);
    expect(json(big)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('a bodiless DELETE sent with a JSON content type is not a client error', async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    const res = await h.app.inject({
      method: 'DELETE',
      url: '/api/v1/towers/nope',
      headers: { ...operator.headers, 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(404);
  });

  it('a JSON body that is not an object → 400 naming body', async () => {
    h = await startHarness();
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '"just a string"',
    });
    expect(res.statusCode).toBe(400);
    expect(json(res)).toMatchObject({ error: { code: 'VALIDATION_FAILED', issues: [{ field: 'body' }] } });
  });
});

describe('server faults', () => {
  it('an unexpected error is a generic 500 INTERNAL that reveals nothing', async () => {
    h = await startHarness({
      beforeReady: (app) =>
        app.get('/api/v1/boom', { config: { public: true } }, async () => {
          throw new Error('database password is hunter2');
        }),
    });
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/boom' });
    expect(res.statusCode).toBe(500);
    expect(json(res)).toEqual({ error: { code: 'INTERNAL', message: 'internal server error' } });
  });

  it('an API route that declares neither a permission nor public is refused at startup', async () => {
    await expect(
      startHarness({ beforeReady: (app) => app.get('/api/v1/forgotten', async () => ({})) }),
    ).rejects.toThrow(/declares neither a permission nor public/);
  });
});

describe('ETags', () => {
  it('reads carry an ETag and If-None-Match (weak comparison) answers 304 until the data changes', async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { owner } = await createTenant(h.app, operator, 'Acme');
    const first = await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: owner.headers });
    const etag = first.headers.etag;
    expect(etag).toMatch(/^".+"$/);
    const weakly = await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: { ...owner.headers, 'if-none-match': `W/${String(etag)}` } });
    expect(weakly.statusCode).toBe(304);

    const cached = await h.app.inject({
      method: 'GET',
      url: '/api/v1/devices',
      headers: { ...owner.headers, 'if-none-match': String(etag) },
    });
    expect(cached.statusCode).toBe(304);
    expect(cached.body).toBe('');

    await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { name: 'phone' } });
    const changed = await h.app.inject({
      method: 'GET',
      url: '/api/v1/devices',
      headers: { ...owner.headers, 'if-none-match': String(etag) },
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
  });

  it('If-Match on a write: the ETag just read succeeds, a stale one is 412 and changes nothing', async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { owner } = await createTenant(h.app, operator, 'Acme');
    const created = await h.app.inject({ method: 'POST', url: '/api/v1/roles', headers: owner.headers, payload: { name: 'field' } });
    const url = `/api/v1/roles/${json<{ role: { id: string } }>(created).role.id}`;
    const read = async () => h!.app.inject({ method: 'GET', url, headers: owner.headers });
    const patch = (ifMatch: string, name: string) =>
      h!.app.inject({ method: 'PATCH', url, headers: { ...owner.headers, 'if-match': ifMatch }, payload: { name } });

    const etag = String((await read()).headers.etag);
    const fresh = await patch(etag, 'field-2');
    expect(fresh.statusCode, fresh.body).toBe(200);

    const stale = await patch(etag, 'field-3');
    expect(stale.statusCode, stale.body).toBe(412);
    expect(json<{ error: { code: string } }>(stale).error.code).toBe('PRECONDITION_FAILED');
    expect(json<{ role: { name: string } }>(await read()).role.name).toBe('field-2');
    // A weak tag never passes If-Match (strong comparison); `*` only asks that the record exists.
    expect((await patch(`W/${String((await read()).headers.etag)}`, 'x')).statusCode).toBe(412);
    expect((await patch('*', 'field-4')).statusCode).toBe(200);
    const gone = await h.app.inject({ method: 'DELETE', url, headers: { ...owner.headers, 'if-match': String((await read()).headers.etag) } });
    expect(gone.statusCode, gone.body).toBe(204);
    expect((await patch('*', 'field-5')).statusCode).toBe(412);
  });

  it('If-Match: of writers racing with the same ETag exactly one wins, the others get 412', async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { owner } = await createTenant(h.app, operator, 'Acme');
    const etag = String((await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: owner.headers })).headers.etag);
    const writers = await Promise.all(
      [31, 32, 33, 34].map((days) =>
        h!.app.inject({ method: 'PATCH', url: '/api/v1/tenant', headers: { ...owner.headers, 'if-match': etag }, payload: { audit_retention_days: days } }),
      ),
    );
    expect(writers.map((w) => w.statusCode).sort()).toEqual([200, 412, 412, 412]);
    const winner = writers.findIndex((w) => w.statusCode === 200);
    const tenant = json<{ tenant: { audit_retention_days: number } }>(await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: owner.headers }));
    expect(tenant.tenant.audit_retention_days).toBe(31 + winner);
  });
});
