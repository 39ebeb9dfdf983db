/**
 * StoreFaults: a full store is counted on every refusal and logged once per episode; other
 * errors are left to the caller.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import { Counters } from '../metrics.js';
import { LogCapture } from '../../test/support/log-lines.js';
import { isStoreFull, StoreFaults } from './store-faults.js';

const sqliteFull = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });

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

describe('StoreFaults', () => {
  it('logs one line when an episode opens and one when it closes, counting every refusal', () => {
    const { capture, counters, faults, tick } = setup();
    faults.writable();
    expect(capture.lines).toEqual([]);
    for (let i = 0; i < 50; i++) expect(faults.refused(sqliteFull, i % 2 ? 'ingest' : 'api')).toBe(true);
    expect(faults.full).toBe(true);
    expect(counters.get('store_full_errors_total', { source: 'ingest' })).toBe(25);
    expect(counters.get('store_full_errors_total', { source: 'api' })).toBe(25);
    expect(capture.events('store_full')).toEqual([expect.objectContaining({ level: 50, source: 'api', code: 'SQLITE_FULL' })]);
    tick(5_000);
    faults.writable();
    faults.writable();
    expect(faults.full).toBe(false);
    expect(capture.events('store_writable')).toEqual([expect.objectContaining({ refused: 50, sources: ['api', 'ingest'], duration_ms: 5_000 })]);
    // A later episode is logged again.
    faults.refused(sqliteFull, 'audit');
    expect(capture.events('store_full')).toHaveLength(2);
    expect(capture.lines).toHaveLength(3);
  });

  it('leaves other errors to the caller: not counted, not logged, no episode', () => {
    const { capture, counters, faults } = setup();
    expect(faults.refused(new Error('boom'), 'api')).toBe(false);
    expect(faults.full).toBe(false);
    expect(counters.total('store_full_errors_total')).toBe(0);
    expect(capture.lines).toEqual([]);
  });
});
