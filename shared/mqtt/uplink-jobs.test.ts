/**
 * Plugin messages cross the distributed mode's uplink queue like tower uplinks: a `sessions`
 * message from the RADIUS plugin (broker role) unpacks to the same message in the worker, and a
 * job naming a tower other than its topic's is refused.
 */
import { describe, expect, it } from 'vitest';
import { packUplink, unpackUplink } from './uplink-jobs.js';
import { topics } from './topics.js';

describe('uplink jobs', () => {
  it('carry a sessions message unchanged and refuse a forged tower', () => {
    const msg = {
      topic: topics.sessions('T1'),
      parsed: { kind: 'sessions' as const, towerId: 'T1' },
      payload: Buffer.from([0, 1, 2, 255]),
      tower_id: 'T1',
      received_at: 42,
    };
    expect(unpackUplink(packUplink(msg))).toEqual(msg);
    expect(unpackUplink({ ...packUplink(msg), tower_id: 'T2' })).toBeNull();
    expect(unpackUplink({ ...packUplink(msg), topic: topics.carrierTowers('C1') })).toBeNull();
  });
});
