/**
 * The listener's contract with its sink, over a real UDP socket: the Accounting-Response leaves
 * only after `sink.accept` resolved ("acknowledged means durable"); a request the sink refuses
 * gets no response (the NAS retransmits); packets beyond the in-flight bound are dropped and
 * counted, never queued; stop() answers what it already handed over before closing.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../shared/ids.js';
import { PluginCounters } from '../../shared/ingest/plugin.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import type { UplinkMessage, UplinkSink } from '../../shared/mqtt/transport.js';
import { ATTR, encodeAccountingRequest, intValue, STATUS_TYPE } from './codec.js';
import { RadiusAccountingPlugin } from './radius-plugin.js';

const SECRET = 'plugin-secret-0123456789';

/** A sink whose accepts wait until the test releases (or fails) them. */
class GateSink implements UplinkSink {
  readonly pending: Array<{ msg: UplinkMessage; resolve: () => void; reject: (e: Error) => void }> = [];
  #waiters: Array<() => void> = [];
  accept(msg: UplinkMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ msg, resolve, reject });
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  async waitFor(n: number): Promise<void> {
    while (this.pending.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }
}

let plugin: RadiusAccountingPlugin | null = null;
let client: Socket | null = null;
afterEach(async () => {
  await plugin?.stop();
  client?.close();
  plugin = null;
  client = null;
});

async function setup(sink: UplinkSink, maxInflight = 8) {
  const counters = new Counters();
  plugin = new RadiusAccountingPlugin(
    { sink, counters: new PluginCounters(counters, 'radius'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
    { host: '127.0.0.1', port: 0, maxInflight, clients: { findByNasIdentifier: async (nas) => (nas === 'nas-1' ? { id: 'c1', nas_identifier: 'nas-1', tower_id: 'T1', secret: SECRET, radsec_identity: null, created_at: 0, updated_at: 0 } : null) } },
  );
  await plugin.start();
  const sock = createSocket('udp4');
  client = sock;
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const replies: Buffer[] = [];
  const replyWaiters: Array<() => void> = [];
  sock.on('message', (m) => {
    replies.push(m);
    for (const w of replyWaiters.splice(0)) w();
  });
  const port = plugin.port;
  return {
    counters,
    replies,
    send: (id: number) =>
      sock.send(
        encodeAccountingRequest(
          id,
          [
            { type: ATTR.NAS_IDENTIFIER, value: Buffer.from('nas-1') },
            { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.START) },
            { type: ATTR.ACCT_SESSION_ID, value: Buffer.from(`s-${id}`) },
            { type: ATTR.CALLING_STATION_ID, value: Buffer.from('dev-1') },
          ],
          Buffer.from(SECRET),
        ),
        port,
        '127.0.0.1',
      ),
    nextReply: () => new Promise<void>((r) => replyWaiters.push(r)),
    replyCount: async (n: number) => {
      while (replies.length < n) await new Promise<void>((r) => replyWaiters.push(r));
    },
    /** Resolves once `outcome` was counted `n` times (the listener counts as it drops). */
    counted: async (outcome: string, n: number) => {
      while (counters.get('radius_requests_total', { outcome, plugin: 'radius' }) < n) await new Promise<void>((r) => setImmediate(r));
    },
  };
}

describe('RADIUS accounting listener', () => {
  it('answers only once the sink accepted, and not at all when it refused', async () => {
    const sink = new GateSink();
    const t = await setup(sink);
    t.send(1);
    await sink.waitFor(1);
    expect(t.replies).toHaveLength(0);
    expect(sink.pending[0]!.msg).toMatchObject({ topic: 'towers/T1/sessions', tower_id: 'T1', parsed: { kind: 'sessions', towerId: 'T1' } });
    const replied = t.nextReply();
    sink.pending[0]!.resolve();
    await replied;
    expect(t.replies[0]![1]).toBe(1);

    t.send(2);
    await sink.waitFor(2);
    sink.pending[1]!.reject(new Error('store down'));
    t.send(3);
    await sink.waitFor(3);
    const third = t.nextReply();
    sink.pending[2]!.resolve();
    await third;
    // Replies arrive in order on loopback: 3 was answered, 2 never was.
    expect(t.replies.map((r) => r[1])).toEqual([1, 3]);
    expect(t.counters.get('radius_requests_total', { outcome: 'sink_failed', plugin: 'radius' })).toBe(1);
  });

  it('drops packets beyond the in-flight bound instead of queueing them, and drains on stop', async () => {
    const sink = new GateSink();
    const t = await setup(sink, 2);
    t.send(1);
    t.send(2);
    await sink.waitFor(2);
    t.send(3);
    t.send(4);
    // The two extra datagrams arrive while two are in flight; a fifth that the sink sees would fail waitFor below.
    await t.counted('overloaded', 2);
    expect(sink.pending).toHaveLength(2);
    const stopping = plugin!.stop();
    for (const p of sink.pending) p.resolve();
    await stopping;
    await t.replyCount(2);
    expect(t.replies.map((r) => r[1]).sort()).toEqual([1, 2]);
    plugin = null;
  });
});
