/**
 * The RADIUS accounting listener under packets a careless or hostile NAS sends, over a real UDP
 * socket on 127.0.0.1 (framing errors, wrong secrets, unknown NAS and retransmissions are covered
 * by codec.test.ts and test/e2e/radius.test.ts):
 * - a Message-Authenticator that does not verify is discarded [RFC 3579 §3.2], and FreeRADIUS'
 *   radclient, which signs with one when asked, is still answered;
 * - counters whose Gigawords take them past 2^53 are discarded as malformed instead of answered:
 *   the pipeline's schema refuses such a record, so the answer acknowledged what was never stored.
 * Each hostile packet is followed by a good one: once the good one is answered, the hostile one
 * (handled first, its lookup resolving earlier) has been dropped or answered.
 */
import { createHash, createHmac } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { udpNas } from '../../test/support/udp-nas.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../shared/ids.js';
import { PluginCounters } from '../../shared/ingest/plugin.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import type { UplinkMessage, UplinkSink } from '../../shared/mqtt/transport.js';
import { RADCLIENT, RADCLIENT_REQUIRED, radclient } from '../../test/support/radclient.js';
import { ATTR, encodeAccountingRequest, intValue, STATUS_TYPE } from './codec.js';
import { RadiusAccountingPlugin } from './radius-plugin.js';

const SECRET = 'audit-shared-secret-0123';

class RecordingSink implements UplinkSink {
  readonly messages: UplinkMessage[] = [];
  accept(msg: UplinkMessage): Promise<void> {
    this.messages.push(msg);
    return Promise.resolve();
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

async function setup() {
  const counters = new Counters();
  const sink = new RecordingSink();
  plugin = new RadiusAccountingPlugin(
    { sink, counters: new PluginCounters(counters, 'radius'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
    {
      host: '127.0.0.1',
      port: 0,
      clients: { findByNasIdentifier: async (nas) => (nas === 'nas-1' ? { id: 'c1', nas_identifier: 'nas-1', tower_id: 'T1', secret: SECRET, radsec_identity: null, created_at: 0, updated_at: 0 } : null) },
    },
  );
  await plugin.start();
  const port = plugin.port;
  const nas = await udpNas(port);
  client = nas.sock;
  return {
    counters,
    sink,
    replies: nas.replies,
    port,
    send: nas.send,
    replyTo: nas.replyTo,
    outcome: (o: string) => counters.get('radius_requests_total', { outcome: o, plugin: 'radius' }),
  };
}

const attrs = (session: string, extra: Array<{ type: number; value: Buffer }> = []) => [
  { type: ATTR.NAS_IDENTIFIER, value: Buffer.from('nas-1') },
  { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.START) },
  { type: ATTR.ACCT_SESSION_ID, value: Buffer.from(session) },
  { type: ATTR.CALLING_STATION_ID, value: Buffer.from('dev-1') },
  ...extra,
];

/** An Accounting-Request signed with a Message-Authenticator as FreeRADIUS signs it (vector zeroed), or with `mac` as is. */
function signed(id: number, session: string, mac?: Buffer): Buffer {
  const packet = encodeAccountingRequest(id, attrs(session, [{ type: ATTR.MESSAGE_AUTHENTICATOR, value: Buffer.alloc(16) }]), Buffer.from(SECRET));
  const at = packet.length - 16;
  packet.fill(0, 4, 20);
  (mac ?? createHmac('md5', SECRET).update(packet).digest()).copy(packet, at);
  createHash('md5').update(packet).update(SECRET).digest().copy(packet, 4);
  return packet;
}

describe('RADIUS accounting listener, adversarial', () => {
  it('discards a request whose Message-Authenticator does not verify, even with a valid Request Authenticator', async () => {
    const t = await setup();
    // Request Authenticators are valid on all three (only someone holding the secret made them).
    t.send(signed(1, 's-forged-mac', Buffer.alloc(16, 0xab)));
    t.send(encodeAccountingRequest(2, attrs('s-short-mac', [{ type: ATTR.MESSAGE_AUTHENTICATOR, value: Buffer.alloc(4) }]), Buffer.from(SECRET)));
    t.send(signed(3, 's-good-mac'));
    await t.replyTo(3);
    expect(t.replies).toEqual([3]);
    expect(t.sink.messages).toHaveLength(1);
    expect(t.outcome('bad_authenticator')).toBe(2);
    expect(t.outcome('recorded')).toBe(1);
  });

  it('discards, uncounted as recorded, counters past 2^53 that the pipeline would refuse after the answer', async () => {
    const t = await setup();
    const huge = [
      { type: ATTR.ACCT_INPUT_GIGAWORDS, value: intValue(2 ** 21) },
      { type: ATTR.ACCT_INPUT_OCTETS, value: intValue(1) },
    ];
    t.send(encodeAccountingRequest(1, attrs('s-huge', huge), Buffer.from(SECRET)));
    const fits = [
      { type: ATTR.ACCT_INPUT_GIGAWORDS, value: intValue(2 ** 21 - 1) },
      { type: ATTR.ACCT_INPUT_OCTETS, value: intValue(2 ** 32 - 1) },
    ];
    t.send(encodeAccountingRequest(2, attrs('s-fits', fits), Buffer.from(SECRET)));
    await t.replyTo(2);
    expect(t.replies).toEqual([2]);
    expect(t.outcome('malformed')).toBe(1);
    expect(t.sink.messages).toHaveLength(1);
    const batch = JSON.parse(t.sink.messages[0]!.payload.toString()) as { records: Array<{ input_octets: number }> };
    expect(batch.records[0]!.input_octets).toBe(Number.MAX_SAFE_INTEGER);
  });

  describe.skipIf(!RADCLIENT && !RADCLIENT_REQUIRED)('with radclient', () => {
    it("answers radclient's requests signed with a Message-Authenticator, and only with the right secret", async () => {
      expect(RADCLIENT, 'radclient is required under CI=true (apt-get install -y freeradius-utils)').not.toBeNull();
      const t = await setup();
      const packet = ['NAS-Identifier = "nas-1"', 'Acct-Status-Type = Start', 'Acct-Session-Id = "rc-1"', 'Calling-Station-Id = "00:11:22:33:44:55"', 'Message-Authenticator = 0x00'];
      const res = await radclient(t.port, SECRET, [packet]);
      expect(res.out, res.out).toContain('Received Accounting-Response');
      expect(res.out).toContain('Message-Authenticator');
      expect(t.outcome('recorded')).toBe(1);
      const wrong = await radclient(t.port, 'not-the-secret-0123456', [packet], { expectReply: false });
      expect(wrong.out).not.toContain('Received Accounting-Response');
      expect(t.outcome('bad_authenticator')).toBe(1);
      expect(t.sink.messages).toHaveLength(1);
    });

    it('answers a Status-Server (RFC 5997) on the accounting port, signed, recording nothing; one with the wrong secret is dropped', async () => {
      const t = await setup();
      // Status-Server "MUST" carry a Message-Authenticator (else anyone could forge it); radclient
      // computes one when the packet names it.
      const status = ['NAS-Identifier = "nas-1"', 'Message-Authenticator = 0x00'];
      const alive = await radclient(t.port, SECRET, [status], { command: 'status' });
      // radclient checks the answer's Response Authenticator and Message-Authenticator.
      expect(alive.out, alive.out).toContain('Received Accounting-Response');
      expect(alive.code).toBe(0);
      expect(t.outcome('status_server')).toBe(1);
      const wrong = await radclient(t.port, 'not-the-secret-0123456', [status], { command: 'status', expectReply: false });
      expect(wrong.out).not.toContain('Received Accounting-Response');
      const unsigned = await radclient(t.port, SECRET, [['NAS-Identifier = "nas-1"']], { command: 'status', expectReply: false });
      expect(unsigned.out).not.toContain('Received Accounting-Response');
      expect(t.outcome('bad_authenticator')).toBe(2);
      expect(t.outcome('status_server')).toBe(1);
      expect(t.sink.messages).toHaveLength(0);
    });

    it('answers authentic requests it has no use for (so the NAS does not resend them forever), records none, and drops one without Acct-Session-Id', async () => {
      const t = await setup();
      const failed = await radclient(t.port, SECRET, [['NAS-Identifier = "nas-1"', 'Acct-Status-Type = Failed', 'Acct-Session-Id = "s-failed"', 'Calling-Station-Id = "dev-1"']]);
      expect(failed.out, failed.out).toContain('Received Accounting-Response');
      const tunnel = await radclient(t.port, SECRET, [['NAS-Identifier = "nas-1"', 'Acct-Status-Type = Tunnel-Start', 'Acct-Session-Id = "s-tunnel"']]);
      expect(tunnel.out, tunnel.out).toContain('Received Accounting-Response');
      const nobody = await radclient(t.port, SECRET, [['NAS-Identifier = "nas-1"', 'Acct-Status-Type = Start', 'Acct-Session-Id = "s-nobody"', 'Calling-Station-Id = "not a device id!"']]);
      expect(nobody.out, nobody.out).toContain('Received Accounting-Response');
      const noSession = await radclient(t.port, SECRET, [['NAS-Identifier = "nas-1"', 'Acct-Status-Type = Start', 'Calling-Station-Id = "dev-1"']], { expectReply: false });
      expect(noSession.out).not.toContain('Received Accounting-Response');
      expect(t.outcome('unsupported_status')).toBe(2);
      expect(t.outcome('no_device')).toBe(1);
      expect(t.outcome('no_session_id')).toBe(1);
      expect(t.sink.messages).toHaveLength(0);
    });
  });
});
