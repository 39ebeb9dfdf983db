/**
 * Contract: optional `sort` on list endpoints. Keyset pages on (field, id): ordered by the field
 * in the requested direction, ties broken by id, NULL keys below every value, every row exactly
 * once across pages, and clear errors for an unsupported field or a cursor from another sort.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { ListOptions, Page, Store } from '../port.js';
import { T0, expectError, ids, walk, type ContractState } from './harness.js';

interface Keyed {
  id: string;
}

/** The expected order: by key (NULL lowest), then id, both in `dir`. */
function expectedOrder<T extends Keyed>(rows: T[], key: (r: T) => string | number | null, dir: 'asc' | 'desc'): string[] {
  const sign = dir === 'asc' ? 1 : -1;
  const cmp = (a: string | number | null, b: string | number | null): number => {
    if (a === b) return 0;
    if (a === null) return -1;
    if (b === null) return 1;
    return a < b ? -1 : 1;
  };
  return [...rows]
    .sort((a, b) => sign * (cmp(key(a), key(b)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)))
    .map((r) => r.id);
}

async function walkSorted<T extends Keyed>(
  list: (opts: ListOptions) => Promise<Page<T>>,
  sort: NonNullable<ListOptions['sort']>,
  limit: number,
): Promise<T[]> {
  return walk((cursor) => list({ limit, cursor, sort }));
}

export function describeSortingContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  describe('sorting', () => {
    it('sorts devices by name asc/desc, breaks ties by id, and walks every row exactly once', async () => {
      const t = await store.tenants.create({ name: 'sorting' });
      const names = ['delta', 'alpha', 'charlie', 'alpha', 'bravo', 'delta', 'alpha', 'echo'];
      const created = [];
      for (const name of names) created.push(await store.devices.create(t.id, { name }));
      const list = (o: ListOptions) => store.devices.list(t.id, o);

      for (const dir of ['asc', 'desc'] as const) {
        const want = expectedOrder(created, (d) => d.name, dir);
        const single = await list({ limit: 100, sort: { field: 'name', dir } });
        expect(ids(single.items)).toEqual(want);
        expect(single.next_cursor).toBeNull();
        for (const limit of [1, 2, 3]) {
          const walked = await walkSorted(list, { field: 'name', dir }, limit);
          expect(ids(walked)).toEqual(want);
          expect(new Set(ids(walked)).size).toBe(created.length);
        }
      }
      // The default order is unchanged: ascending id.
      expect(ids((await list({ limit: 100 })).items)).toEqual(ids(created).sort());
    });

    it('stays stable when rows are inserted behind the cursor', async () => {
      const t = await store.tenants.create({ name: 'stable' });
      for (const name of ['b', 'c', 'd', 'e']) await store.devices.create(t.id, { name });
      const first = await store.devices.list(t.id, { limit: 2, sort: { field: 'name', dir: 'asc' } });
      expect(first.items.map((d) => d.name)).toEqual(['b', 'c']);
      await store.devices.create(t.id, { name: 'a' });
      const second = await store.devices.list(t.id, { limit: 2, cursor: first.next_cursor, sort: { field: 'name', dir: 'asc' } });
      expect(second.items.map((d) => d.name)).toEqual(['d', 'e']);
    });

    it('orders NULL keys consistently (towers by last_seen) in both directions', async () => {
      const towers = [];
      for (let i = 0; i < 7; i++) towers.push(await store.towers.create({ id: `sort-tower-${i}`, name: `t${i % 3}` }));
      const at = [500, null, 300, 500, null, 100, 300];
      for (const [i, tower] of towers.entries()) {
        const when = at[i];
        if (when !== null && when !== undefined) {
          await store.towers.setStatus(tower.id, { state: 'online', agent_version: null, at: when });
        }
      }
      const all = await Promise.all(towers.map(async (tw) => (await store.towers.get(tw.id)) ?? tw));
      const list = (o: ListOptions) => store.towers.list(o);
      for (const dir of ['asc', 'desc'] as const) {
        const want = expectedOrder(all, (tw) => tw.last_seen, dir);
        for (const limit of [1, 2, 4, 100]) {
          expect(ids(await walkSorted(list, { field: 'last_seen', dir }, limit))).toEqual(want);
        }
        expect(ids(await walkSorted(list, { field: 'name', dir }, 2))).toEqual(expectedOrder(all, (tw) => tw.name, dir));
      }
    });

    it('rejects an unsupported field on `sort` and a cursor from a different sort on `cursor`', async () => {
      const t = await store.tenants.create({ name: 'errors' });
      for (const name of ['a', 'b', 'c']) await store.devices.create(t.id, { name });
      await expectError(store.devices.list(t.id, { sort: { field: 'os', dir: 'asc' } }), 'VALIDATION_FAILED', 'sort');
      await expectError(store.devices.list(t.id, { sort: { field: 'id; DROP TABLE devices', dir: 'asc' } }), 'VALIDATION_FAILED', 'sort');
      await expectError(store.webhooks.list(t.id, { sort: { field: 'name', dir: 'asc' } }), 'VALIDATION_FAILED', 'sort');

      const byName = await store.devices.list(t.id, { limit: 1, sort: { field: 'name', dir: 'asc' } });
      const unsorted = await store.devices.list(t.id, { limit: 1 });
      const cursor = byName.next_cursor;
      expect(cursor).not.toBeNull();
      await expectError(store.devices.list(t.id, { cursor, sort: { field: 'name', dir: 'desc' } }), 'VALIDATION_FAILED', 'cursor');
      await expectError(store.devices.list(t.id, { cursor, sort: { field: 'created_at', dir: 'asc' } }), 'VALIDATION_FAILED', 'cursor');
      await expectError(store.devices.list(t.id, { cursor }), 'VALIDATION_FAILED', 'cursor');
      await expectError(
        store.devices.list(t.id, { cursor: unsorted.next_cursor, sort: { field: 'name', dir: 'asc' } }),
        'VALIDATION_FAILED',
        'cursor',
      );
    });

    it('sorts the other declared lists (tenants, users, roles, policies, apps, audit)', async () => {
      const t = await store.tenants.create({ name: 'zz-many' });
      for (const [i, name] of ['m', 'k', 'm', 'a'].entries()) {
        await store.users.create(t.id, { name });
        // Role and policy names are unique (natural keys): users carry the ties.
        await store.roles.create(t.id, { name: `${name}${i}` });
        await store.policies.create(t.id, { name: `${name}${i}` });
      }
      for (const key of ['zoom', 'chat', 'mail']) await store.apps.create(t.id, { key, name: key });
      for (const [i, action] of ['x.one', 'x.two', 'x.three', 'x.four'].entries()) {
        await store.audit.record({
          tenant_id: t.id,
          actor_kind: 'console_user',
          actor_id: 'cu-1',
          actor_label: 'owner@a.test',
          action,
          resource_type: 'thing',
          resource_id: null,
          method: 'POST',
          path: '/api/v1/things',
          status_code: 201,
          ip: null,
          user_agent: null,
          before: null,
          after: null,
          at: T0 + [30, 10, 30, 20][i]!,
        });
      }

      const users = (await store.users.list(t.id, { limit: 100 })).items;
      expect(ids(await walkSorted((o) => store.users.list(t.id, o), { field: 'name', dir: 'desc' }, 3))).toEqual(
        expectedOrder(users, (u) => u.name, 'desc'),
      );
      const roles = (await store.roles.list(t.id, { limit: 100 })).items;
      expect(ids(await walkSorted((o) => store.roles.list(t.id, o), { field: 'name', dir: 'asc' }, 1))).toEqual(
        expectedOrder(roles, (r) => r.name, 'asc'),
      );
      const policies = (await store.policies.list(t.id, { limit: 100 })).items;
      expect(ids(await walkSorted((o) => store.policies.list(t.id, o), { field: 'created_at', dir: 'desc' }, 2))).toEqual(
        expectedOrder(policies, (p) => p.created_at, 'desc'),
      );
      const apps = (await store.apps.list(t.id, { limit: 100 })).items;
      expect((await walkSorted((o) => store.apps.list(t.id, o), { field: 'key', dir: 'asc' }, 2)).map((a) => a.key)).toEqual([
        'chat',
        'mail',
        'zoom',
      ]);
      expect(ids(apps).length).toBe(3);
      const tenants = (await store.tenants.list({ limit: 100 })).items;
      expect(ids(await walkSorted((o) => store.tenants.list(o), { field: 'name', dir: 'asc' }, 1))).toEqual(
        expectedOrder(tenants, (x) => x.name, 'asc'),
      );
      const audit = (await store.audit.list(t.id, { limit: 100 })).items;
      expect(ids(await walkSorted((o) => store.audit.list(t.id, o), { field: 'at', dir: 'asc' }, 2))).toEqual(
        expectedOrder(audit, (a) => a.at, 'asc'),
      );
    });
  });
}
