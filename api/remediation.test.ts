/**
 * Manual remediation through the API: issuing a command to the tower where a device is, the bus
 * announcement the dispatcher relies on, and reading commands with their lifecycle.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusEvents } from '../shared/bus.js';
import type { CommandEvent, CommandRecord } from '../shared/domain.js';
import { seedUsage } from './seed-usage.js';
import {
  COMMAND_TTL_S,
  OPERATOR_EMAIL,
  PASSWORD,
  createTenant,
  json,
  login,
  post,
  startHarness,
  type Harness,
  type Session,
} from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let admin: Session;
let viewer: Session;
let ownerB: Session;
let tenantId: string;
let adminId: string;
const published: Array<BusEvents['command.updated']> = [];

beforeAll(async () => {
  h = await startHarness();
  h.bus.subscribe('command.updated', (e) => published.push(e));
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Acme'));
  ({ owner: ownerB } = await createTenant(h.app, operator, 'Bravo'));
  for (const role of ['admin', 'viewer'] as const) {
    await post(h.app, owner, '/api/v1/console-users', { email: `${role}@acme.test`, password: PASSWORD, console_role: role });
  }
  admin = await login(h.app, 'admin@acme.test');
  viewer = await login(h.app, 'viewer@acme.test');
  adminId = json<{ user: { id: string } }>(await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: admin.headers })).user.id;

  for (const id of ['twr-1', 'twr-2', 'twr-b', 'twr-idle']) await post(h.app, operator, '/api/v1/towers', { id, name: id });
  await post(h.app, owner, '/api/v1/devices', { id: 'dev-1', name: 'roaming phone' });
  await post(h.app, owner, '/api/v1/devices', { id: 'dev-2', name: 'phone in a drawer' });
  await post(h.app, ownerB, '/api/v1/devices', { id: 'dev-b', name: 'bravo phone' });
  // dev-1 was seen at twr-1, then (last) at twr-2; dev-2 never; tenant B's device at twr-b.
  const t = h.clock.now;
  await seedUsage(h.store, tenantId, 'twr-1', [{ device_id: 'dev-1', app: 'mail', action: 'send', effect: 'allow' }], t - 60_000);
  await seedUsage(h.store, tenantId, 'twr-2', [{ device_id: 'dev-1', app: 'mail', action: 'send', effect: 'allow' }], t);
  const bravo = json<{ tenant: { id: string } }>(await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: ownerB.headers }));
  await seedUsage(h.store, bravo.tenant.id, 'twr-b', [{ device_id: 'dev-b', app: 'mail', action: 'send', effect: 'allow' }], t);
});
afterAll(async () => {
  await h.close();
});

const as = (s: Session) => (method: 'GET' | 'POST', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: s.headers, ...(payload && { payload }) });

interface ErrorReply {
  error: { code: string; message: string; issues?: Array<{ field: string }> };
}
function expectError(res: LightMyRequestResponse, status: number, code: string, field?: string) {
  expect(res.statusCode, res.body).toBe(status);
  const { error } = json<ErrorReply>(res);
  expect(error.code).toBe(code);
  if (field) {
    expect(error.issues?.map((i) => i.field)).toContain(field);
    expect(error.message).toContain(field);
  }
  return error;
}

async function issue(session: Session, payload: object): Promise<CommandRecord> {
  return (await post<{ command: CommandRecord }>(h.app, session, '/api/v1/remedial-actions', payload)).command;
}

describe('POST /remedial-actions', () => {
  it('creates a pending manual command at the tower where the device was last seen and announces it', async () => {
    published.length = 0;
    const command = await issue(admin, { device_id: 'dev-1', type: 'block_app', app: 'dropbox', duration_s: 3600, reason: 'exfiltration' });
    expect(command).toMatchObject({
      tenant_id: tenantId,
      tower_id: 'twr-2',
      device_id: 'dev-1',
      type: 'block_app',
      app: 'dropbox',
      duration_s: 3600,
      reason: 'exfiltration',
      source: 'manual',
      rule_id: null,
      issued_by: adminId,
      status: 'pending',
      expires_at: h.clock.now + COMMAND_TTL_S * 1000,
    });
    expect(published).toEqual([{ tenant_id: tenantId, command }]);
    expect(await h.store.commands.get(tenantId, command.id)).toEqual(command);
  });

  it('the default tower is the latest by receive time: a tower minting future event ids cannot claim the device', async () => {
    const t = h.clock.now;
    // twr-1 reports dev-1 with an event id and time far in the future, received before twr-2's.
    const forged = {
      id: '7ZZZZZZZZZZZZZZZZZZZZZZZZZ',
      tenant_id: tenantId,
      tower_id: 'twr-1',
      batch_id: '7ZZZZZZZZZZZZZZZZZZZZZZZZY',
      device_id: 'dev-1',
      user_id: null,
      app: 'mail',
      action: 'send',
      bytes: null,
      ts: t + 10 ** 11,
      received_at: t - 30_000,
      effect: 'allow' as const,
      reason: 'unknown_device' as const,
      rule_id: null,
      policy_id: null,
      policy_version: 1,
      severity: null,
    };
    await h.store.usage.recordBatch({ tenant_id: tenantId, tower_id: 'twr-1', batch_id: forged.batch_id, now: t, alert_window_s: 300, records: [forged] });
    const command = await issue(admin, { device_id: 'dev-1', type: 'notify' });
    expect(command.tower_id).toBe('twr-2');
  });

  it('an explicit tower_id overrides the default', async () => {
    const command = await issue(owner, { device_id: 'dev-1', type: 'block_device', duration_s: 60, tower_id: 'twr-1' });
    expect(command).toMatchObject({ tower_id: 'twr-1', type: 'block_device', app: null, reason: null });
  });

  it('a device never seen at a tower needs a tower_id (422), then goes through', async () => {
    published.length = 0;
    const error = expectError(
      await as(admin)('POST', '/api/v1/remedial-actions', { device_id: 'dev-2', type: 'notify' }),
      422,
      'UNPROCESSABLE',
    );
    expect(error.message).toBe('device dev-2 has not been seen at any tower; give tower_id');
    const command = await issue(admin, { device_id: 'dev-2', type: 'notify', tower_id: 'twr-1' });
    expect(command).toMatchObject({ tower_id: 'twr-1', duration_s: null, status: 'pending' });
    expect(published.map((e) => e.command.id)).toEqual([command.id]);
  });

  it('an explicit tower must exist and be one the tenant knows (404 naming tower_id)', async () => {
    for (const tower_id of ['twr-nope', 'twr-idle', 'twr-b']) {
      expectError(
        await as(admin)('POST', '/api/v1/remedial-actions', { device_id: 'dev-1', type: 'notify', tower_id }),
        404,
        'NOT_FOUND',
        'body.tower_id',
      );
    }
  });

  it('the device must be registered in the caller’s tenant (404 naming device_id)', async () => {
    for (const device_id of ['dev-nope', 'dev-b']) {
      expectError(
        await as(admin)('POST', '/api/v1/remedial-actions', { device_id, type: 'notify', tower_id: 'twr-1' }),
        404,
        'NOT_FOUND',
        'body.device_id',
      );
    }
  });

  it('validates the body, naming the field, and publishes nothing on failure', async () => {
    published.length = 0;
    const cases: Array<[object, string]> = [
      [{ device_id: 'dev-1', type: 'block_app', duration_s: 60 }, 'body.app'],
      [{ device_id: 'dev-1', type: 'unblock_app' }, 'body.app'],
      [{ device_id: 'dev-1', type: 'block_device' }, 'body.duration_s'],
      [{ device_id: 'dev-1', type: 'block_app', app: 'dropbox' }, 'body.duration_s'],
      [{ device_id: 'dev-1', type: 'quarantine' }, 'body.duration_s'],
      [{ device_id: 'dev-1', type: 'throttle' }, 'body.duration_s'],
      [{ device_id: 'dev-1', type: 'self_destruct' }, 'body.type'],
      [{ device_id: 'dev-1', type: 'throttle', duration_s: 0 }, 'body.duration_s'],
      [{ device_id: 'dev-1', type: 'block_app', app: 'Not A Key', duration_s: 60 }, 'body.app'],
      [{ device_id: 'bad/id', type: 'notify' }, 'body.device_id'],
      [{ type: 'notify' }, 'body.device_id'],
      [{ device_id: 'dev-1', type: 'notify', tenant_id: tenantId }, 'body.tenant_id'],
    ];
    for (const [payload, field] of cases) {
      expectError(await as(admin)('POST', '/api/v1/remedial-actions', payload), 400, 'VALIDATION_FAILED', field);
    }
    expect(published).toEqual([]);
  });

  it('lifting actions need no duration', async () => {
    expect((await issue(admin, { device_id: 'dev-1', type: 'unblock_device' })).duration_s).toBeNull();
    expect((await issue(admin, { device_id: 'dev-1', type: 'unblock_app', app: 'dropbox' })).app).toBe('dropbox');
  });

  it('only owners and admins issue commands; operators hold no tenant', async () => {
    const body = { device_id: 'dev-1', type: 'notify' };
    expectError(await as(viewer)('POST', '/api/v1/remedial-actions', body), 403, 'FORBIDDEN');
    expectError(await as(operator)('POST', '/api/v1/remedial-actions', body), 403, 'FORBIDDEN');
    expectError(await as(operator)('GET', '/api/v1/remedial-actions'), 403, 'FORBIDDEN');
  });
});

describe('reading commands', () => {
  let tracked: CommandRecord;

  beforeAll(async () => {
    tracked = await issue(owner, { device_id: 'dev-1', type: 'quarantine', duration_s: 600, tower_id: 'twr-1' });
    h.clock.advance(1000);
    await h.store.commands.markPublished(tenantId, tracked.id, h.clock.now);
    await h.store.commands.transition(tenantId, tracked.id, 'delivered', h.clock.now);
    await h.store.commands.transition(tenantId, tracked.id, 'applied', h.clock.now, 'quarantined');
  });

  it('lists the tenant’s commands, filtered by status, device and tower', async () => {
    const list = async (query = '') => {
      const res = await as(viewer)('GET', `/api/v1/remedial-actions${query}`);
      expect(res.statusCode, res.body).toBe(200);
      return json<{ remedial_actions: CommandRecord[]; next_cursor: string | null }>(res);
    };
    const all = await list();
    expect(all.remedial_actions.length).toBeGreaterThanOrEqual(6);
    expect(all.remedial_actions.every((c) => c.tenant_id === tenantId)).toBe(true);
    expect((await list('?status=applied')).remedial_actions.map((c) => c.id)).toEqual([tracked.id]);
    expect((await list('?status=pending')).remedial_actions.map((c) => c.id)).not.toContain(tracked.id);
    const atTwr1 = (await list('?tower_id=twr-1')).remedial_actions;
    expect(atTwr1.length).toBeGreaterThan(1);
    expect(atTwr1.every((c) => c.tower_id === 'twr-1')).toBe(true);
    const dev2 = (await list('?device_id=dev-2')).remedial_actions;
    expect(dev2.map((c) => c.type)).toEqual(['notify']);
    expect((await list('?device_id=dev-2&status=applied')).remedial_actions).toEqual([]);

    const page = await list('?limit=2');
    expect(page.remedial_actions).toHaveLength(2);
    expect(page.next_cursor).not.toBeNull();
    expectError(await as(viewer)('GET', '/api/v1/remedial-actions?status=done'), 400, 'VALIDATION_FAILED', 'query.status');
  });

  it('GET /commands/{id} returns the command and its lifecycle', async () => {
    const res = await as(viewer)('GET', `/api/v1/commands/${tracked.id}`);
    expect(res.statusCode, res.body).toBe(200);
    const body = json<{ command: CommandRecord; events: CommandEvent[] }>(res);
    expect(body.command).toMatchObject({ id: tracked.id, status: 'applied', attempts: 1, ack_reason: 'quarantined' });
    expect(body.events.map((e) => e.kind)).toEqual(['pending', 'published', 'delivered', 'applied']);
    expect(body.events.every((e) => e.command_id === tracked.id && e.tenant_id === tenantId)).toBe(true);
    expectError(await as(viewer)('GET', '/api/v1/commands/01ARZ3NDEKTSV4RRFFQ69G5FAV'), 404, 'NOT_FOUND');
  });

  it('another tenant sees none of them', async () => {
    expectError(await as(ownerB)('GET', `/api/v1/commands/${tracked.id}`), 404, 'NOT_FOUND');
    const theirs = json<{ remedial_actions: CommandRecord[] }>(await as(ownerB)('GET', '/api/v1/remedial-actions?tower_id=twr-1'));
    expect(theirs.remedial_actions).toEqual([]);
  });
});
