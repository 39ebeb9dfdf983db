/**
 * StoreFaults: a full or busy store is counted on every refusal and logged once per episode;
 * other errors are left to the caller.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import { Counters } from '../metrics.js';
import { LogCapture } from '../../test/support/log-lines.js';
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { isStoreFull, isStoreUnreachable, storeFaultKind, StoreFaults } from './store-faults.js';

const sqliteFull = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
const sqliteBusy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });

function setup() {
  const capture = new LogCapture();
  const counters = new Counters();
  let clock = 1_000;
  const faults = new StoreFaults({ logger: createLogger('info', capture), counters, now: () => clock });
  return { capture, counters, faults, tick: (ms: number) => (clock += ms) };
}

describe('isStoreFull', () => {
  it('knows SQLite and MongoDB running out of space, and nothing else', () => {
    expect(isStoreFull(sqliteFull)).toBe(true);
    expect(isStoreFull(Object.assign(new Error('x'), { code: 14031 }))).toBe(true);
    expect(isStoreFull(Object.assign(new Error('x'), { codeName: 'OutOfDiskSpace' }))).toBe(true);
    expect(isStoreFull(Object.assign(new Error('busy'), { code: 'SQLITE_BUSY' }))).toBe(false);
    expect(isStoreFull(new Error('database or disk is full'))).toBe(false);
    expect(isStoreFull(null)).toBe(false);
    expect(isStoreFull('SQLITE_FULL')).toBe(false);
  });
});

describe('isStoreUnreachable', () => {
  it("knows the MongoDB driver's errors for servers it cannot reach and a replica set without a primary", () => {
    expect(isStoreUnreachable(new MongoNetworkError('connect ECONNREFUSED 127.0.0.1:27017'))).toBe(true);
    expect(isStoreUnreachable(new MongoServerSelectionError('Server selection timed out after 30000 ms', {} as never))).toBe(true);
    expect(isStoreUnreachable(new MongoServerError({ code: 10107, codeName: 'NotWritablePrimary', errmsg: 'not primary' }))).toBe(true);
    expect(isStoreUnreachable(new MongoServerError({ code: 189, codeName: 'PrimarySteppedDown', errmsg: 'stepped down' }))).toBe(true);
    // Errors of the request, not of reaching the store.
    expect(isStoreUnreachable(new MongoServerError({ code: 11000, codeName: 'DuplicateKey', errmsg: 'E11000' }))).toBe(false);
    expect(isStoreUnreachable(new MongoServerError({ code: 2, codeName: 'BadValue', errmsg: 'bad' }))).toBe(false);
    expect(isStoreUnreachable(new Error('ECONNREFUSED'))).toBe(false);
    expect(isStoreUnreachable(null)).toBe(false);
  });

  it('is its own kind of episode, counted per source and closed by a write that succeeds', () => {
    const { capture, counters, faults } = setup();
    const down = new MongoNetworkError('connection closed');
    expect(faults.refused(down, 'api')).toBe('unreachable');
    expect(faults.refused(down, 'ingest')).toBe('unreachable');
    expect(storeFaultKind(down)).toBe('unreachable');
    expect(faults.unreachable).toBe(true);
    expect(counters.get('store_unreachable_errors_total', { source: 'api' })).toBe(1);
    expect(counters.get('store_unreachable_errors_total', { source: 'ingest' })).toBe(1);
    expect(capture.events('store_unreachable')).toEqual([expect.objectContaining({ level: 50, source: 'api' })]);
    faults.writable();
    expect(faults.unreachable).toBe(false);
    expect(capture.events('store_writable')).toEqual([expect.objectContaining({ kind: 'unreachable', refused: 2 })]);
  });
});

describe('StoreFaults', () => {
  it('logs one line when an episode opens and one when it closes, counting every refusal', () => {
    const { capture, counters, faults, tick } = setup();
    faults.writable();
    expect(capture.lines).toEqual([]);
    for (let i = 0; i < 50; i++) expect(faults.refused(sqliteFull, i % 2 ? 'ingest' : 'api')).toBe('full');
    expect(faults.full).toBe(true);
    expect(counters.get('store_full_errors_total', { source: 'ingest' })).toBe(25);
    expect(counters.get('store_full_errors_total', { source: 'api' })).toBe(25);
    expect(capture.events('store_full')).toEqual([expect.objectContaining({ level: 50, source: 'api', code: 'SQLITE_FULL' })]);
    tick(5_000);
    faults.writable();
    faults.writable();
    expect(faults.full).toBe(false);
    expect(capture.events('store_writable')).toEqual([expect.objectContaining({ kind: 'full', refused: 50, sources: ['api', 'ingest'], duration_ms: 5_000 })]);
    // A later episode is logged again.
    faults.refused(sqliteFull, 'audit');
    expect(capture.events('store_full')).toHaveLength(2);
    expect(capture.lines).toHaveLength(3);
  });

  it('leaves other errors to the caller: not counted, not logged, no episode', () => {
    const { capture, counters, faults } = setup();
    expect(faults.refused(new Error('boom'), 'api')).toBeNull();
    expect(faults.refused(Object.assign(new Error('constraint'), { code: 'SQLITE_CONSTRAINT_UNIQUE' }), 'api')).toBeNull();
    expect(faults.full).toBe(false);
    expect(faults.busy).toBe(false);
    expect(counters.total('store_full_errors_total')).toBe(0);
    expect(counters.total('store_busy_errors_total')).toBe(0);
    expect(capture.lines).toEqual([]);
  });

  it('a busy store (another process holds the write lock) is its own episode: one warn line, every refusal counted', () => {
    const { capture, counters, faults, tick } = setup();
    for (let i = 0; i < 30; i++) expect(faults.refused(Object.assign(new Error('locked'), { code: i % 3 ? 'SQLITE_BUSY' : 'SQLITE_BUSY_TIMEOUT' }), i % 2 ? 'ingest' : 'audit')).toBe('busy');
    expect(faults.busy).toBe(true);
    expect(faults.full).toBe(false);
    expect(counters.get('store_busy_errors_total', { source: 'ingest' })).toBe(15);
    expect(counters.get('store_busy_errors_total', { source: 'audit' })).toBe(15);
    expect(counters.total('store_full_errors_total')).toBe(0);
    expect(capture.events('store_busy')).toEqual([expect.objectContaining({ level: 40, source: 'audit', code: 'SQLITE_BUSY_TIMEOUT' })]);
    // A full store meanwhile opens its own episode; one success closes both, one line each.
    faults.refused(sqliteFull, 'api');
    tick(2_000);
    faults.writable();
    expect(faults.busy).toBe(false);
    expect(capture.events('store_writable')).toEqual([
      expect.objectContaining({ kind: 'busy', refused: 30, sources: ['audit', 'ingest'], duration_ms: 2_000 }),
      expect.objectContaining({ kind: 'full', refused: 1, sources: ['api'], duration_ms: 2_000 }),
    ]);
    expect(capture.lines).toHaveLength(4);
  });
});

describe('storeFaultKind', () => {
  it('names full and busy stores, and nothing else', () => {
    expect(storeFaultKind(sqliteFull)).toBe('full');
    expect(storeFaultKind(sqliteBusy)).toBe('busy');
    expect(storeFaultKind(Object.assign(new Error('x'), { code: 'SQLITE_LOCKED' }))).toBe('busy');
    expect(storeFaultKind(new Error('database is locked'))).toBeNull();
    expect(storeFaultKind(undefined)).toBeNull();
  });
});
