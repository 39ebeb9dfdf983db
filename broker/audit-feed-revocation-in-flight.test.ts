/**
 * A carrier feed published over MQTT and still being applied stops at the revocation of the
 * session's credential, against a real broker and SQLite store: the feed is held inside the store
 * right after one record, the credential is revoked, the feed is let go, and no record after the
 * held one is applied (those before, exactly once), the rest counted as cut and the PUBLISH never
 * acknowledged. Revocation learnt from the bus cuts at the next record; one whose announcement was
 * lost is found by re-reading the credential, within a second of the broker's clock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_RECHECK } from '../shared/auth/bounded-recheck.js';
import { createIdFactory } from '../shared/ids.js';
import { topics } from '../shared/mqtt/topics.js';
import { startHarness, type Harness } from './test-support.js';
import { holdTowerFeedAfter as holdAfter, feedTowers } from '../test/support/hold-carrier-feed.js';

const newId = createIdFactory();
const towers = (n: number) => feedTowers(n, 'mq-cut-');


/** Resolves with the outcome label of the first record count the ingest reports (applied or cut). */
function feedFinished(h: Harness): Promise<string> {
  const inc = h.counters.inc.bind(h.counters);
  return new Promise((resolve) => {
    h.counters.inc = (name, labels, by) => {
      inc(name, labels, by);
      if (name === 'carrier_feed_records_total' && (labels?.outcome === 'cut' || labels?.outcome === 'applied')) resolve(String(labels.outcome));
    };
  });
}

describe('an MQTT carrier feed in progress stops at its revocation', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  async function start(heldAt: string, n: number) {
    const carrier = await h.createCarrier('Cutco');
    const client = await h.connectCarrier(carrier);
    client.on('error', () => {});
    const hold = holdAfter(h.store, heldAt);
    const finished = feedFinished(h);
    let acked = false;
    client.publish(topics.carrierTowers(carrier.carrierId), Buffer.from(JSON.stringify({ v: 1, id: newId(), records: towers(n) })), { qos: 1 }, (err) => {
      if (!err) acked = true;
    });
    await hold.held;
    return { carrier, client, hold, finished, acked: () => acked };
  }

  async function stored(n: number): Promise<boolean[]> {
    return Promise.all(Array.from({ length: n }, async (_, i) => (await h.store.towers.get(`mq-cut-${i}`)) !== null));
  }

  it('revoked and announced on the bus: cut at the next record', async () => {
    const { carrier, hold, finished, acked } = await start('mq-cut-1', 5);
    await h.store.carrierCredentials.revoke(carrier.credentialId, h.clock.now);
    h.bus.publish('carrier-credential.revoked', { carrier_id: carrier.carrierId, credential_id: carrier.credentialId });
    hold.release();
    expect(await finished).toBe('cut');
    expect(hold.appliedIds).toEqual(['mq-cut-0', 'mq-cut-1']);
    expect(await stored(5)).toEqual([true, true, false, false, false]);
    expect(h.counters.get('carrier_feed_records_total', { kind: 'towers', outcome: 'cut' })).toBe(3);
    expect(acked()).toBe(false);
  });

  it('revoked with the announcement lost: cut once the credential is read again', async () => {
    const { carrier, client, hold, finished, acked } = await start('mq-cut-2', 6);
    await h.store.carrierCredentials.revoke(carrier.credentialId, h.clock.now);
    h.clock.now += DEFAULT_RECHECK.intervalMs;
    hold.release();
    expect(await finished).toBe('cut');
    expect(hold.appliedIds).toEqual(['mq-cut-0', 'mq-cut-1', 'mq-cut-2']);
    expect(await stored(6)).toEqual([true, true, true, false, false, false]);
    expect(acked()).toBe(false);
    await client.endAsync(true);
  });
});
