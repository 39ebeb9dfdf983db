/**
 * Bulk onboarding over the real API (POST /onboarding/import): a JSON array or a CSV file of
 * device users, role assignments and devices in one request; idempotent when repeated; every bad
 * row reported at once with nothing written; a dry run; the plan's device limit; the scopes an
 * API key needs. A 10,000-row import is timed and the time printed (not asserted).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;

interface ImportReply {
  dry_run: boolean;
  users: Record<'created' | 'updated' | 'unchanged', number>;
  devices: Record<'created' | 'updated' | 'unchanged', number>;
  role_assignments: { created: number; unchanged: number };
  rows: Array<{ row: number; user: string | null; user_id: string | null; device: string | null; device_id: string | null; roles_added: number }>;
}
interface ErrorReply {
  error: { code: string; message: string; issues: Array<{ field: string; message: string }> };
}

async function tenantWithRoles(name: string, plan = 'premium'): Promise<{ owner: Session; tenantId: string }> {
  const t = await createTenant(h.app, operator, name);
  await h.app.inject({ method: 'PATCH', url: `/api/v1/tenants/${t.tenantId}`, headers: operator.headers, payload: { plan_id: plan } });
  for (const role of ['engineer', 'sales']) await post(h.app, t.owner, '/api/v1/roles', { name: role });
  return { owner: t.owner, tenantId: t.tenantId };
}

function importJson(session: Session | { authorization: string }, rows: unknown, query = '') {
  const headers = 'headers' in session ? session.headers : session;
  return h.app.inject({ method: 'POST', url: `/api/v1/onboarding/import${query}`, headers, payload: rows as object });
}

function importCsv(session: Session, csv: string, query = '') {
  return h.app.inject({ method: 'POST', url: `/api/v1/onboarding/import${query}`, headers: { ...session.headers, 'content-type': 'text/csv' }, payload: csv });
}

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
});
afterAll(async () => {
  await h.close();
});

describe('POST /onboarding/import', () => {
  it('imports a JSON array, then answers unchanged for every row when it is imported again', async () => {
    const { owner, tenantId } = await tenantWithRoles('JsonCo');
    const rows = [
      { user_email: 'ada@jsonco.test', user_name: 'Ada', roles: ['engineer', 'Sales'], device_id: 'json-1', device_name: 'Ada phone', device_os: 'android' },
      { user_email: 'ADA@jsonco.test', device_id: 'json-2' },
      { user_email: 'bob@jsonco.test', user_name: 'Bob', roles: 'sales' },
      { device_id: 'json-kiosk', device_name: 'Kiosk' },
    ];
    const first = await importJson(owner, rows);
    expect(first.statusCode, first.body).toBe(200);
    expect(json<ImportReply>(first)).toMatchObject({
      dry_run: false,
      users: { created: 2, updated: 0, unchanged: 1 },
      devices: { created: 3, updated: 0, unchanged: 0 },
      role_assignments: { created: 3, unchanged: 0 },
    });
    const ada = (await h.store.users.findByEmail(tenantId, 'ada@jsonco.test'))!;
    expect((await h.store.devices.get(tenantId, 'json-2'))!.user_id).toBe(ada.id);
    expect((await h.store.userRoles.rolesOfUser(tenantId, ada.id)).map((r) => r.name).sort()).toEqual(['engineer', 'sales']);

    const again = json<ImportReply>(await importJson(owner, rows));
    expect(again.users).toEqual({ created: 0, updated: 0, unchanged: 4 - 1 });
    expect(again.devices).toEqual({ created: 0, updated: 0, unchanged: 3 });
    expect(again.role_assignments).toEqual({ created: 0, unchanged: 3 });
    expect(again.rows.map((r) => [r.user, r.device])).toEqual([
      ['unchanged', 'unchanged'],
      ['unchanged', 'unchanged'],
      ['unchanged', null],
      [null, 'unchanged'],
    ]);
    expect((await h.store.users.list(tenantId)).items).toHaveLength(2);

    await h.app.auditTrail.flush();
    const [entry] = (await h.store.audit.list(tenantId, { action: 'onboarding.import' })).items;
    expect(entry).toMatchObject({ status_code: 200, after: { rows: 4, users: { unchanged: 3 } } });
  });

  it('imports a CSV file (quoted fields, BOM, roles separated by ";") exactly like the JSON form', async () => {
    const { owner, tenantId } = await tenantWithRoles('CsvCo');
    const csv =
      '\uFEFFuser_email,user_name,roles,device_id,device_name,device_os\r\n' +
      'carol@csvco.test,"Carol, ""CJ"" Jones",engineer;sales,csv-1,"Carol\'s phone",ios\r\n' +
      'dave@csvco.test,Dave,,csv-2,,\r\n' +
      ',,,csv-3,Kiosk,\r\n';
    const res = await importCsv(owner, csv);
    expect(res.statusCode, res.body).toBe(200);
    expect(json<ImportReply>(res)).toMatchObject({ users: { created: 2 }, devices: { created: 3 }, role_assignments: { created: 2 } });
    expect(await h.store.users.findByEmail(tenantId, 'carol@csvco.test')).toMatchObject({ name: 'Carol, "CJ" Jones' });
    expect(await h.store.devices.get(tenantId, 'csv-1')).toMatchObject({ name: "Carol's phone", os: 'ios' });
    expect(await h.store.devices.get(tenantId, 'csv-3')).toMatchObject({ name: 'Kiosk', user_id: null });
    expect(json<ImportReply>(await importCsv(owner, csv)).devices.unchanged).toBe(3);
  });

  it('reports every bad row at once, naming row, column and CSV line, and writes nothing', async () => {
    const { owner, tenantId } = await tenantWithRoles('BadCo');
    await post(h.app, owner, '/api/v1/devices', { id: 'bad-taken', name: 'x' });
    const other = await tenantWithRoles('OtherCo');
    await post(h.app, other.owner, '/api/v1/devices', { id: 'foreign-1', name: 'y' });

    const shape = await importJson(owner, [{ user_email: 'not-an-email' }, { device_id: 'has spaces' }, { colour: 'red' }]);
    expect(shape.statusCode).toBe(400);
    expect(json<ErrorReply>(shape).error.issues.map((i) => i.field)).toEqual(['body.0.user_email', 'body.1.device_id', 'body.2.colour']);

    const csv = 'user_email,roles,device_id\r\nok@badco.test,engineer,ok-1\r\nx@badco.test,pilots,foreign-1\r\n,,\r\n';
    const refs = await importCsv(owner, csv);
    expect(refs.statusCode).toBe(400);
    const body = json<ErrorReply>(refs);
    expect(body.error.issues).toEqual([
      { field: 'body.1.roles', message: "no role named 'pilots' (CSV line 3)" },
      { field: 'body.1.device_id', message: 'device already registered (CSV line 3)' },
      { field: 'body.2', message: 'a row needs user_email or device_id (CSV line 4)' },
    ]);
    expect(body.error.message).toMatch(/^body\.1\.roles: .*\(and 2 more problems\); nothing was imported$/);
    expect((await h.store.users.list(tenantId)).items).toEqual([]);
    expect(await h.store.devices.get(tenantId, 'ok-1')).toBeNull();

    const unknownColumn = await importCsv(owner, 'email,device_id\r\na@b.test,d-1\r\n');
    expect(unknownColumn.statusCode).toBe(400);
    expect(json<ErrorReply>(unknownColumn).error.message).toContain("unknown CSV column 'email'");
    const ragged = await importCsv(owner, 'user_email,device_id\r\na@badco.test\r\n');
    expect(json<ErrorReply>(ragged).error.message).toContain('CSV line 2: 1 fields, the header has 2');
    expect((await importCsv(owner, 'user_email\r\n"unterminated\r\n')).statusCode).toBe(400);
    expect((await importJson(owner, [])).statusCode).toBe(400);
  });

  it('a dry run answers the outcomes and writes nothing', async () => {
    const { owner, tenantId } = await tenantWithRoles('DryCo');
    const rows = [{ user_email: 'eve@dryco.test', roles: ['engineer'], device_id: 'dry-1' }];
    const dry = json<ImportReply>(await importJson(owner, rows, '?dry_run=true'));
    expect(dry).toMatchObject({ dry_run: true, users: { created: 1 }, devices: { created: 1 }, role_assignments: { created: 1 } });
    expect(await h.store.devices.get(tenantId, 'dry-1')).toBeNull();
    expect((await importJson(owner, rows, '?dry_run=maybe')).statusCode).toBe(400);
    expect(json<ImportReply>(await importJson(owner, rows, '?dry_run=0')).dry_run).toBe(false);
  });

  it("refuses, whole, an import that would pass the plan's device limit", async () => {
    const { owner, tenantId } = await tenantWithRoles('FreeCo', 'free');
    const rows = Array.from({ length: 101 }, (_, i) => ({ device_id: `free-${i}` }));
    const res = await importJson(owner, rows);
    expect(res.statusCode).toBe(403);
    expect(json<ErrorReply>(res).error.code).toBe('PLAN_LIMIT_EXCEEDED');
    expect((await h.store.devices.list(tenantId)).items).toEqual([]);
  });

  it("needs 'users:write' as well as 'devices:write' (API keys)", async () => {
    const { owner } = await tenantWithRoles('KeyCo');
    const devicesOnly = await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'mdm', scopes: ['devices:write'] });
    const both = await post<{ key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'hr', scopes: ['devices:write', 'users:write'] });
    const rows = [{ user_email: 'k@keyco.test', device_id: 'key-1' }];
    expect((await importJson({ authorization: `Bearer ${devicesOnly.key}` }, rows)).statusCode).toBe(403);
    expect((await importJson({ authorization: `Bearer ${both.key}` }, rows)).statusCode).toBe(200);
  });

  it('imports 10,000 rows in one request (time printed, not asserted)', async () => {
    const { owner, tenantId } = await tenantWithRoles('BigCo');
    const rows = Array.from({ length: 10_000 }, (_, i) => ({
      user_email: `user${Math.floor(i / 2)}@bigco.test`,
      user_name: `User ${Math.floor(i / 2)}`,
      roles: i % 2 === 0 ? ['engineer'] : ['engineer', 'sales'],
      device_id: `big-${i}`,
      device_name: `device ${i}`,
      device_os: i % 3 === 0 ? 'ios' : 'android',
    }));
    const started = performance.now();
    const res = await importJson(owner, rows);
    const firstMs = performance.now() - started;
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(json<ImportReply>(res)).toMatchObject({ users: { created: 5000, unchanged: 5000 }, devices: { created: 10_000 }, role_assignments: { created: 10_000, unchanged: 5000 } });
    const againStarted = performance.now();
    const again = await importJson(owner, rows);
    const againMs = performance.now() - againStarted;
    expect(json<ImportReply>(again).devices.unchanged).toBe(10_000);
    expect((await h.store.dashboard(tenantId)).devices).toBe(10_000);
    console.log(
      `onboarding import: 10,000 rows (5,000 users, 10,000 devices, 10,000 role assignments) in ${Math.round(firstMs)} ms; ` +
        `the same file again (all unchanged) in ${Math.round(againMs)} ms`,
    );
  });
});
