/**
 * A standalone mongod refuses every transaction, and every write of the adapter is one: the store
 * must refuse to start there, with an error naming the fix, instead of starting and then failing
 * each write. The boundary double plays the standalone server (MemoryMongo standalone option).
 */
import { describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import { MemoryMongo } from './memory-mongo-double.js';
import { MongoStore } from './mongo-store.js';

describe('MongoStore on a standalone server', () => {
  it('fails init() with a clear UNAVAILABLE error asking for a replica set, and stays closed', async () => {
    const server = new MemoryMongo({ standalone: true });
    let closed = 0;
    const store = new MongoStore({
      url: 'mongodb://double/standalone',
      connector: async (url, db) => {
        const connection = await server.connector(url, db);
        return { db: connection.db, close: async () => void closed++ };
      },
    });

    const err = await store.init().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isEdgeplaneError(err) && err.code).toBe('UNAVAILABLE');
    expect((err as Error).message).toMatch(/replica set/);
    expect(closed).toBe(1);
    // Nothing was set up on a server the store cannot use.
    expect(server.documentCount('standalone', 'plans')).toBe(0);
  });

  it('starts on a replica set (the same double without the option)', async () => {
    const store = new MongoStore({ url: 'mongodb://double/rs', connector: new MemoryMongo().connector });
    await store.init();
    // A write: one transaction.
    const tenant = await store.tenants.create({ name: 'Acme' });
    expect(await store.tenants.get(tenant.id)).toMatchObject({ name: 'Acme' });
    await store.close();
  });
});
