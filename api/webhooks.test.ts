/** /api/v1/webhooks through app.inject: secret shown once, tenant isolation, permissions, validation. */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookRoutes } from './routes/webhooks.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

/**
 * Mounts the plugin the way api/routes/index.ts does, unless index.ts already registers it
 * (registered after the app's own routes, so the check sees them).
 */
function mountWebhooks(app: FastifyInstance): void {
  void app.register(async (scope) => {
    if (!scope.hasRoute({ method: 'GET', url: '/api/v1/webhooks' })) {
      await scope.register(webhookRoutes, { prefix: '/api/v1' });
    }
  });
}

interface WebhookBody {
  id: string;
  tenant_id: string;
  url: string;
  events: string[];
  enabled: boolean;
}

let h: Harness;
let owner: Session;
let admin: Session;
let viewer: Session;
let otherOwner: Session;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness({ beforeReady: mountWebhooks });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  otherOwner = (await createTenant(h.app, operator, 'Globex')).owner;
  for (const role of ['admin', 'viewer'] as const) {
    await post(h.app, owner, '/api/v1/console-users', { email: `${role}@acme.test`, password: PASSWORD, console_role: role });
  }
  admin = await login(h.app, 'admin@acme.test');
  viewer = await login(h.app, 'viewer@acme.test');
});
afterAll(async () => {
  await h.close();
});

async function call(session: Session, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  return h.app.inject({ method, url, headers: session.headers, ...(payload && { payload }) });
}

async function createHook(session = owner, events = ['alert.opened']) {
  return post<{ webhook: WebhookBody; secret: string }>(h.app, session, '/api/v1/webhooks', {
    url: 'https://hooks.example.com/edgeplane',
    events,
  });
}

describe('webhooks API', () => {
  it('creates a webhook and shows its secret once; reads never carry it', async () => {
    const created = await createHook(owner, ['alert.opened', 'command.updated', 'alert.opened']);
    expect(created.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.webhook).toMatchObject({
      tenant_id: tenantId,
      url: 'https://hooks.example.com/edgeplane',
      events: ['alert.opened', 'command.updated'],
      enabled: true,
    });
    expect(created.webhook).not.toHaveProperty('secret');
    // The store keeps it for signing.
    const [sub] = await h.store.webhooks.subscribers(tenantId, 'command.updated');
    expect(sub?.secret).toBe(created.secret);

    const one = await call(owner, 'GET', `/api/v1/webhooks/${created.webhook.id}`);
    const list = await call(owner, 'GET', '/api/v1/webhooks');
    expect(one.statusCode).toBe(200);
    expect(list.statusCode).toBe(200);
    for (const res of [one, list]) expect(res.body).not.toContain(created.secret);
    expect(json<{ webhook: WebhookBody }>(one).webhook).toEqual(created.webhook);
    const page = json<{ webhooks: WebhookBody[]; next_cursor: string | null }>(list);
    expect(page.webhooks.map((w) => w.id)).toContain(created.webhook.id);
    expect(page.next_cursor).toBeNull();
  });

  it('updates url, events and enabled, and deletes', async () => {
    const { webhook } = await createHook(admin);
    const patched = await call(admin, 'PATCH', `/api/v1/webhooks/${webhook.id}`, {
      url: 'http://hooks2.example.com:8080/hook',
      events: ['device.discovered'],
      enabled: false,
    });
    expect(patched.statusCode).toBe(200);
    expect(json<{ webhook: WebhookBody }>(patched).webhook).toMatchObject({
      url: 'http://hooks2.example.com:8080/hook',
      events: ['device.discovered'],
      enabled: false,
    });
    expect((await call(admin, 'DELETE', `/api/v1/webhooks/${webhook.id}`)).statusCode).toBe(204);
    expect((await call(admin, 'GET', `/api/v1/webhooks/${webhook.id}`)).statusCode).toBe(404);
    expect((await call(admin, 'DELETE', `/api/v1/webhooks/${webhook.id}`)).statusCode).toBe(404);
  });

  it('lists deliveries with their attempt history', async () => {
    const { webhook } = await createHook();
    const delivery = await h.store.webhookDeliveries.create({
      tenant_id: tenantId,
      webhook_id: webhook.id,
      event: 'alert.opened',
      body: '{"id":"e1"}',
      next_attempt_at: h.clock.now,
    });
    await h.store.webhookDeliveries.recordAttempt(delivery.id, {
      status: 'pending',
      at: h.clock.now,
      status_code: 502,
      error: 'HTTP 502',
      next_attempt_at: h.clock.now + 2000,
    });
    const res = await call(admin, 'GET', `/api/v1/webhooks/${webhook.id}/deliveries`);
    expect(res.statusCode).toBe(200);
    expect(json(res)).toEqual({
      deliveries: [
        expect.objectContaining({
          id: delivery.id,
          webhook_id: webhook.id,
          event: 'alert.opened',
          body: '{"id":"e1"}',
          status: 'pending',
          attempts: 1,
          last_status_code: 502,
          last_error: 'HTTP 502',
          next_attempt_at: h.clock.now + 2000,
        }),
      ],
      next_cursor: null,
    });
  });

  it("answers 404 for another tenant's webhook, and leaves it out of lists", async () => {
    const { webhook } = await createHook();
    const url = `/api/v1/webhooks/${webhook.id}`;
    expect((await call(otherOwner, 'GET', url)).statusCode).toBe(404);
    expect((await call(otherOwner, 'PATCH', url, { enabled: false })).statusCode).toBe(404);
    expect((await call(otherOwner, 'DELETE', url)).statusCode).toBe(404);
    expect((await call(otherOwner, 'GET', `${url}/deliveries`)).statusCode).toBe(404);
    const list = json<{ webhooks: WebhookBody[] }>(await call(otherOwner, 'GET', '/api/v1/webhooks'));
    expect(list.webhooks).toEqual([]);
    expect(json<{ webhook: WebhookBody }>(await call(owner, 'GET', url)).webhook.enabled).toBe(true);
  });

  it('is refused to viewers (403), reads included', async () => {
    const { webhook } = await createHook();
    for (const [method, url, payload] of [
      ['GET', '/api/v1/webhooks', undefined],
      ['GET', `/api/v1/webhooks/${webhook.id}`, undefined],
      ['GET', `/api/v1/webhooks/${webhook.id}/deliveries`, undefined],
      ['POST', '/api/v1/webhooks', { url: 'https://x.example', events: ['alert.opened'] }],
      ['PATCH', `/api/v1/webhooks/${webhook.id}`, { enabled: false }],
      ['DELETE', `/api/v1/webhooks/${webhook.id}`, undefined],
    ] as const) {
      const res = await call(viewer, method, url, payload);
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(json(res)).toMatchObject({ error: { code: 'FORBIDDEN' } });
    }
  });

  it('refuses a bad URL or event list with a 400 naming the field', async () => {
    for (const url of ['not a url', 'ftp://files.example.com/hook', 'javascript:alert(1)', '']) {
      const res = await call(owner, 'POST', '/api/v1/webhooks', { url, events: ['alert.opened'] });
      expect(res.statusCode, url).toBe(400);
      const body = json<{ error: { code: string; message: string; issues: Array<{ field: string }> } }>(res);
      expect(body.error.code).toBe('VALIDATION_FAILED');
      expect(body.error.message).toMatch(/^body\.url: /);
      expect(body.error.issues.map((i) => i.field)).toEqual(['body.url']);
    }
    const noEvents = await call(owner, 'POST', '/api/v1/webhooks', { url: 'https://x.example', events: [] });
    expect(noEvents.statusCode).toBe(400);
    expect(json<{ error: { message: string } }>(noEvents).error.message).toMatch(/^body\.events/);
    const badEvent = await call(owner, 'POST', '/api/v1/webhooks', { url: 'https://x.example', events: ['usage.decided'] });
    expect(badEvent.statusCode).toBe(400);
    expect(json<{ error: { message: string } }>(badEvent).error.message).toMatch(/^body\.events\.0/);
    const { webhook } = await createHook();
    const badPatch = await call(owner, 'PATCH', `/api/v1/webhooks/${webhook.id}`, { url: 'gopher://x' });
    expect(badPatch.statusCode).toBe(400);
    expect(json<{ error: { message: string } }>(badPatch).error.message).toMatch(/^body\.url: /);
  });
  it('refuses internal targets in any notation at creation and on update', async () => {
    const { webhook } = await createHook();
    for (const url of [
      'http://127.0.0.1:8080/hook',
      'http://0x7f000001/hook',
      'http://2130706433/hook',
      'http://0177.0.0.1/hook',
      'http://127.1/hook',
      'http://localhost:3000/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/',
      'http://10.0.0.5/hook',
      'http://172.16.1.1/hook',
      'http://192.168.1.1/hook',
      'http://100.64.0.1/hook',
      'http://[::1]/hook',
      'http://[fd00::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://0.0.0.0/hook',
      'http://224.0.0.1/hook',
    ]) {
      for (const res of [
        await call(owner, 'POST', '/api/v1/webhooks', { url, events: ['alert.opened'] }),
        await call(owner, 'PATCH', `/api/v1/webhooks/${webhook.id}`, { url }),
      ]) {
        expect(res.statusCode, url).toBe(400);
        expect(json(res), url).toMatchObject({ error: { code: 'VALIDATION_FAILED', issues: [{ field: 'body.url' }] } });
      }
    }
    expect(json<{ webhook: WebhookBody }>(await call(owner, 'GET', `/api/v1/webhooks/${webhook.id}`)).webhook.url).toBe(
      'https://hooks.example.com/edgeplane',
    );
  });
});

describe('webhooks API with --webhook-allow-private', () => {
  it('accepts private targets for on-premises receivers', async () => {
    const onPrem = await startHarness({ beforeReady: mountWebhooks, webhookAllowPrivate: true });
    try {
      const operator = await login(onPrem.app, OPERATOR_EMAIL);
      const { owner: local } = await createTenant(onPrem.app, operator, 'OnPrem');
      for (const url of ['http://127.0.0.1:8080/hook', 'http://10.0.0.5/hook', 'http://receiver.local/hook']) {
        await post(onPrem.app, local, '/api/v1/webhooks', { url, events: ['alert.opened'] });
      }
    } finally {
      await onPrem.close();
    }
  });
});
