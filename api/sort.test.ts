import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let owner: Session;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Sorting'));
});
afterAll(async () => {
  await h.close();
});

interface ErrorBody {
  error: { code: string; issues?: Array<{ field: string; message: string }> };
}

const get = (session: Session, url: string) => h.app.inject({ method: 'GET', url, headers: session.headers });

/** Walks every page of `url` (which must already carry a query string), collecting `key` items. */
async function walkAll<T>(session: Session, url: string, key: string): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 100; guard++) {
    const res = await get(session, cursor === null ? url : `${url}&cursor=${encodeURIComponent(cursor)}`);
    expect(res.statusCode, res.body).toBe(200);
    const body = json<Record<string, unknown> & { next_cursor: string | null }>(res);
    out.push(...(body[key] as T[]));
    if (body.next_cursor === null) return out;
    cursor = body.next_cursor;
  }
  throw new Error('pagination did not terminate');
}

describe('sort query parameter', () => {
  it('sorts devices by name ascending and descending across pages, ties by id', async () => {
    const names = ['kilo', 'alpha', 'kilo', 'bravo', 'alpha', 'zulu'];
    for (const [i, name] of names.entries()) await post(h.app, owner, '/api/v1/devices', { id: `dev-sort-${i}`, name });
    const asc = await walkAll<{ id: string; name: string }>(owner, '/api/v1/devices?limit=2&sort=name', 'devices');
    expect(asc.map((d) => `${d.name}:${d.id}`)).toEqual([
      'alpha:dev-sort-1',
      'alpha:dev-sort-4',
      'bravo:dev-sort-3',
      'kilo:dev-sort-0',
      'kilo:dev-sort-2',
      'zulu:dev-sort-5',
    ]);
    const desc = await walkAll<{ id: string; name: string }>(owner, '/api/v1/devices?limit=4&sort=-name', 'devices');
    expect(desc.map((d) => d.id)).toEqual(asc.map((d) => d.id).reverse());
    // page= walks the same sorted cursor chain.
    const page2 = json<{ devices: Array<{ id: string }> }>(await get(owner, '/api/v1/devices?limit=2&page=2&sort=name'));
    expect(page2.devices.map((d) => d.id)).toEqual(['dev-sort-3', 'dev-sort-0']);
    // Without sort the default order (by id) is unchanged.
    const plain = await walkAll<{ id: string }>(owner, '/api/v1/devices?limit=5', 'devices');
    expect(plain.map((d) => d.id)).toEqual(asc.map((d) => d.id).sort());
  });

  it('sorts users and (operator) tenants and towers', async () => {
    for (const name of ['Zed', 'Amy', 'Moe']) await post(h.app, owner, '/api/v1/users', { name });
    const users = await walkAll<{ name: string }>(owner, '/api/v1/users?limit=1&sort=-name', 'users');
    expect(users.map((u) => u.name)).toEqual(['Zed', 'Moe', 'Amy']);

    await createTenant(h.app, operator, 'Aardvark');
    const tenants = await walkAll<{ name: string }>(operator, '/api/v1/tenants?limit=1&sort=name', 'tenants');
    expect(tenants.map((t) => t.name)).toEqual([...tenants.map((t) => t.name)].sort());
    expect(tenants.map((t) => t.name)).toContain('Aardvark');

    for (const [id, name] of [['twr-s1', 'Nord'], ['twr-s2', 'Est'], ['twr-s3', 'Sud']] as const) {
      await post(h.app, operator, '/api/v1/towers', { id, name });
    }
    const towers = await walkAll<{ name: string }>(operator, '/api/v1/towers?limit=2&sort=-name', 'towers');
    expect(towers.map((t) => t.name)).toEqual(['Sud', 'Nord', 'Est']);
  });

  it('rejects an unknown sort field with 400 naming query.sort', async () => {
    for (const url of ['/api/v1/devices?sort=os', '/api/v1/devices?sort=--name', '/api/v1/users?sort=updated_at', '/api/v1/app-usage?sort=-name']) {
      const res = await get(owner, url);
      expect(res.statusCode, url).toBe(400);
      const body = json<ErrorBody>(res);
      expect(body.error.code).toBe('VALIDATION_FAILED');
      expect(body.error.issues?.map((i) => i.field)).toContain('query.sort');
    }
  });

  it('rejects a cursor from a different sort with 400 on cursor', async () => {
    const first = json<{ next_cursor: string | null }>(await get(owner, '/api/v1/devices?limit=1&sort=name'));
    expect(first.next_cursor).not.toBeNull();
    const cursor = encodeURIComponent(first.next_cursor ?? '');
    for (const url of [`/api/v1/devices?sort=-name&cursor=${cursor}`, `/api/v1/devices?cursor=${cursor}`]) {
      const res = await get(owner, url);
      expect(res.statusCode, url).toBe(400);
      const body = json<ErrorBody>(res);
      expect(body.error.code).toBe('VALIDATION_FAILED');
      expect(JSON.stringify(body.error.issues)).toContain('cursor');
    }
  });

  it('every declared field walks every row exactly once in both directions', async () => {
    await post(h.app, operator, '/api/v1/towers', { id: 'twr-walk', name: 'Walk' });
    const events = ['mail', 'chat', 'maps', 'docs', 'news'].map((app) => ({ device_id: 'dev-sort-0', app, action: 'open', effect: 'allow' as const }));
    await seedUsage(h.store, tenantId, 'twr-walk', events.slice(0, 3), h.clock.now);
    await seedUsage(h.store, tenantId, 'twr-walk', events.slice(3), h.clock.now + 1000);
    const routes: Array<[Session, string, string, string[]]> = [
      [owner, '/api/v1/devices', 'devices', ['name', 'created_at', 'updated_at']],
      [owner, '/api/v1/users', 'users', ['name', 'created_at']],
      [owner, '/api/v1/roles', 'roles', ['name', 'created_at']],
      [owner, '/api/v1/policies', 'policies', ['name', 'created_at']],
      [owner, '/api/v1/policy-rules', 'rules', ['created_at']],
      [owner, '/api/v1/towers', 'towers', ['name', 'last_seen', 'state']],
      [operator, '/api/v1/towers', 'towers', ['name', 'last_seen', 'state']],
      [owner, '/api/v1/dashboard/alerts', 'alerts', ['last_seen', 'count', 'severity', 'first_seen']],
      [owner, '/api/v1/app-usage', 'usage', ['ts', 'received_at']],
      [owner, '/api/v1/audit', 'records', ['at']],
      [owner, '/api/v1/remedial-actions', 'commands', ['created_at', 'updated_at', 'status']],
      [operator, '/api/v1/tenants', 'tenants', ['name', 'created_at']],
      [owner, '/api/v1/apps', 'apps', ['key']],
      [owner, '/api/v1/actions', 'actions', ['key']],
    ];
    for (const [session, path, key, fields] of routes) {
      const probe = await get(session, `${path}?limit=1`);
      expect(probe.statusCode, `${path}: ${probe.body}`).toBe(200);
      const itemsKey = key in json(probe) ? key : Object.keys(json(probe)).find((k) => Array.isArray(json(probe)[k])) ?? key;
      const all = (await walkAll<{ id: string }>(session, `${path}?limit=1000`, itemsKey)).map((r) => r.id).sort();
      for (const field of fields) {
        for (const sort of [field, `-${field}`]) {
          const walked = (await walkAll<{ id: string }>(session, `${path}?limit=2&sort=${sort}`, itemsKey)).map((r) => r.id);
          expect(walked.slice().sort(), `${path} sort=${sort}`).toEqual(all);
        }
      }
    }
  });
});
