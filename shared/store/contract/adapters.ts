/**
 * Both store adapters for a test that must hold on each (outside the contract suite): SQLite on a
 * fresh file, and MongoDB over the in-memory boundary double. `tag` names the temp dir and the
 * double's database.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryMongo } from '../mongodb/memory-mongo-double.js';
import { MongoStore } from '../mongodb/mongo-store.js';
import type { Store } from '../port.js';
import { SqliteStore } from '../sqlite/sqlite-store.js';

export interface OpenedStore {
  store: Store;
  close: () => Promise<void>;
}

export function bothAdapters(tag: string): Array<{ name: string; open: () => Promise<OpenedStore> }> {
  return [
    {
      name: 'sqlite',
      open: async () => {
        const dir = await mkdtemp(join(tmpdir(), `edgeplane-${tag}-`));
        const store = new SqliteStore({ file: join(dir, 'store.db') });
        await store.init();
        return {
          store,
          close: async () => {
            await store.close();
            await rm(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      name: 'mongodb (boundary double)',
      open: async () => {
        const store = new MongoStore({ url: `mongodb://double/${tag}`, connector: new MemoryMongo().connector });
        await store.init();
        return { store, close: () => store.close() };
      },
    },
  ];
}
