/**
 * Opens the store named by `--store-url`: `sqlite:<file>` (embedded default) or `mongodb://…`.
 * (Provisional: the MongoDB adapter lands with the distributed mode's store work.)
 */
import type { IdFactory } from '../ids.js';
import type { Store, StoreHooks } from './port.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

export interface OpenStoreOptions {
  now?: () => number;
  newId?: IdFactory;
  hooks?: StoreHooks;
}

export function openStore(url: string, opts: OpenStoreOptions = {}): Store {
  if (url.startsWith('sqlite:')) {
    return new SqliteStore({ file: url.slice('sqlite:'.length), ...opts });
  }
  throw new Error(`--store-url: unsupported store ${JSON.stringify(url.split(':')[0])}`);
}
