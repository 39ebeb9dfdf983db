/**
 * Store selection from one URL (`--store-url` / EDGEPLANE_STORE_URL): `sqlite:<file>` for the
 * embedded mode, `mongodb://…` or `mongodb+srv://…` for the distributed one. Returns the store
 * unopened (constructors do no I/O): the caller runs init() and close() as part of its start/stop.
 */
import { resolve } from 'node:path';
import type { Durability } from '../config.js';
import { createError } from '../errors.js';
import type { IdFactory } from '../ids.js';
import { MongoStore } from './mongodb/mongo-store.js';
import type { Store, StoreHooks } from './port.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

export interface OpenStoreOptions {
  now?: () => number;
  newId?: IdFactory;
  hooks?: StoreHooks;
  /**
   * SQLite: whether a commit is fsync'ed (`power`) or only written (`process`, the default); see
   * SqliteStore. MongoDB takes its durability from the write concern (the URL's `w`, `journal`).
   */
  durability?: Durability;
}

const USAGE = 'use sqlite:<file> (relative or absolute path) or mongodb://… / mongodb+srv://…';

function refuse(reason: string): Error {
  const message = `${reason}; ${USAGE}`;
  return createError('VALIDATION_FAILED', `--store-url: ${message}`, [{ field: 'store_url', message }]);
}

/**
 * `sqlite:data/edgeplane.db` and `sqlite:/var/lib/edgeplane.db` name a file directly;
 * `sqlite://…` is read the URL way, so `sqlite:///var/lib/edgeplane.db` is the absolute path.
 * Relative paths resolve against the working directory.
 */
export function sqliteFileOf(url: string): string {
  let path = url.slice('sqlite:'.length);
  if (path.startsWith('//')) path = path.slice(2);
  if (path === '') throw refuse('sqlite: needs a file path');
  return resolve(path);
}

export function openStore(url: string, opts: OpenStoreOptions = {}): Store {
  const trimmed = url.trim();
  if (trimmed.startsWith('sqlite:')) return new SqliteStore({ file: sqliteFileOf(trimmed), backgroundCheckpoints: true, ...opts });
  if (trimmed.startsWith('mongodb://') || trimmed.startsWith('mongodb+srv://')) {
    const { durability: _, ...mongoOpts } = opts;
    return new MongoStore({ url: trimmed, ...mongoOpts });
  }
  // Only the scheme is echoed: a store URL may carry credentials.
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(trimmed)?.[1];
  throw refuse(scheme === undefined ? 'not a store URL' : `unsupported scheme "${scheme}:"`);
}
