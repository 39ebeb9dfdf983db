/**
 * What the store acknowledges must survive a primary's crash or a failover: the driver's client
 * asks every write (and transaction commit) for a majority and the journal, whatever the server's
 * default write concern and whatever the URL says. No server runs here: the real driver builds
 * its client and Db, and only its connect() is stubbed (nothing to connect to).
 */
import { Db, MongoClient } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import { connectWithDriver } from './mongo-store.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('connectWithDriver', () => {
  it('writes with w: majority and the journal, even when the URL asks for w=1', async () => {
    const connect = vi.spyOn(MongoClient.prototype, 'connect').mockImplementation(async function (this: MongoClient) {
      return this;
    });
    const connection = await connectWithDriver('mongodb://127.0.0.1:1/edgeplane?w=1', 'edgeplane');
    expect(connect).toHaveBeenCalledTimes(1);
    try {
      expect(connection.db).toBeInstanceOf(Db);
      const { writeConcern } = connection.db as unknown as Db;
      expect(writeConcern).toMatchObject({ w: 'majority', journal: true });
    } finally {
      await connection.close();
    }
  });

  it('refuses a URL that turns the journal off, before connecting, without echoing the URL', async () => {
    const connect = vi.spyOn(MongoClient.prototype, 'connect').mockRejectedValue(new Error('no server here'));
    const err = await connectWithDriver('mongodb://user:s3cret@127.0.0.1:1/edgeplane?journal=false', 'edgeplane').then(
      () => null,
      (e: unknown) => e,
    );
    expect(isEdgeplaneError(err) && err.code).toBe('VALIDATION_FAILED');
    expect((err as Error).message).toMatch(/journal/);
    expect((err as Error).message).not.toMatch(/s3cret/);
    expect(connect).not.toHaveBeenCalled();
  });
});
