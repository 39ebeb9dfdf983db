/**
 * Audit: an uplink refused because ingest failed (in distributed mode, Redis away) is logged once
 * per tower per refusal-log interval, with the count at its end. A line for every refusal flooded
 * the log exactly when every tower resends after every reconnect.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createLogger } from '../shared/logger.js';
import { topics } from '../shared/mqtt/topics.js';
import { LogCapture } from '../test/support/log-lines.js';
import { closed, startHarness, type Harness } from './test-support.js';

let h: Harness;
let log: LogCapture;

beforeEach(async () => {
  log = new LogCapture();
  h = await startHarness({ logger: createLogger('info', log), refusalLogIntervalMs: 3_600_000 });
});
afterEach(async () => h?.close());

const lines = (msg: string) => log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === msg);

it('logs the first refusal of a tower at error, and the rest as one count when the interval ends', async () => {
  h.sink.impl = () => Promise.reject(new Error('Redis did not answer'));
  const login = await h.createTower('T1');
  for (let i = 0; i < 3; i++) {
    const c = await h.connectTower(login, { reconnectPeriod: 0 });
    const gone = closed(c);
    c.publish(topics.acks('tenantA', 'T1'), Buffer.from('{}'), { qos: 1 }, () => undefined);
    await gone;
  }
  expect(h.counters.get('ingest_errors_total', { stage: 'broker', reason: 'sink_failed' })).toBe(3);
  const first = lines('uplink refused: ingest failed');
  expect(first).toHaveLength(1);
  expect(first[0]).toMatchObject({ level: 50, reason: 'ingest_failed', tower_id: 'T1', err: { message: 'Redis did not answer' } });
  await h.close();
  expect(lines('more refusals in the interval')).toEqual([expect.objectContaining({ reason: 'ingest_failed', count: 2, level: 50 })]);
});
