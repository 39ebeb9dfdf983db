import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../errors.js';
import { MongoStore } from './mongodb/mongo-store.js';
import { openStore, sqliteFileOf } from './open-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

describe('openStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-open-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens SQLite from sqlite:<file>, relative or absolute, and the store works', async () => {
    expect(sqliteFileOf('sqlite:data/edgeplane.db')).toBe(resolve('data/edgeplane.db'));
    expect(sqliteFileOf('sqlite:/var/lib/edgeplane.db')).toBe('/var/lib/edgeplane.db');
    expect(sqliteFileOf('sqlite:///var/lib/edgeplane.db')).toBe('/var/lib/edgeplane.db');
    const store = openStore(`sqlite:${join(dir, 'store.db')}`, { now: () => 7 });
    expect(store).toBeInstanceOf(SqliteStore);
    expect(store.kind).toBe('sqlite');
    await store.init();
    try {
      expect(await store.tenants.create({ name: 'a' })).toMatchObject({ created_at: 7 });
    } finally {
      await store.close();
    }
  });

  it('builds a MongoDB store for mongodb:// and mongodb+srv:// without connecting', () => {
    for (const url of ['mongodb://localhost:27017/edgeplane?replicaSet=rs0', 'mongodb+srv://u:p@cluster.example.net/prod']) {
      const store = openStore(url);
      expect(store).toBeInstanceOf(MongoStore);
      expect(store.kind).toBe('mongodb');
      // Nothing was opened: the constructor does no I/O.
      expect(() => store.tenants).toThrow(/init/);
    }
  });

  it('refuses anything else naming --store-url, without echoing credentials', () => {
    for (const url of ['postgres://admin:s3cret@db/edgeplane', 'store.db', '', 'sqlite:', 'sqlite://', 'mongodb:/x', 'redis://localhost']) {
      let err: unknown = null;
      try {
        openStore(url);
      } catch (e) {
        err = e;
      }
      expect(isEdgeplaneError(err), url).toBe(true);
      if (!isEdgeplaneError(err)) continue;
      expect(err.code).toBe('VALIDATION_FAILED');
      expect(err.message, url).toContain('--store-url');
      expect(err.message).toContain('sqlite:<file>');
      expect(err.message).not.toContain('s3cret');
    }
  });
});
