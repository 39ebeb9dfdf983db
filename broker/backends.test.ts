/**
 * deliverOutOfOrderPackets: aedes' per-client duplicate filter is replaced by one that keeps
 * nothing (delivery itself is tested end to end in session-persistence.test.ts, "many concurrent
 * downlinks to one tower"). It keeps nothing, so one object serves every client: a connection
 * no longer pays for a Proxy, its target, handler and two closures (bench j).
 */
import { describe, expect, it } from 'vitest';
import { deliverOutOfOrderPackets } from './backends.js';

describe('deliverOutOfOrderPackets', () => {
  it('installs a filter that forgets every counter aedes writes, shared by all clients', () => {
    const a: { duplicates?: Record<string, number> } = {};
    const b: { duplicates?: Record<string, number> } = {};
    deliverOutOfOrderPackets(a);
    deliverOutOfOrderPackets(b);
    const filter = a.duplicates!;
    // What aedes' dedupe does: read the last counter of a broker id, then store the new one.
    expect(filter['broker-1']).toBeUndefined();
    filter['broker-1'] = 42;
    expect(filter['broker-1']).toBeUndefined();
    expect(b.duplicates!['broker-1']).toBeUndefined();
    expect(b.duplicates).toBe(filter);
  });
});
