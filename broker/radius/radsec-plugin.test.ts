/**
 * The RadSec listener (RADIUS/TLS, RFC 6614) over real TLS sockets, with a PKI made by openssl:
 * mutual authentication, the peer's certificate identity bound to the RADIUS clients it may
 * report for (another carrier's proxy cannot report for a tower it does not serve), the stream
 * framing (packets split anywhere, several per write, a Length that cannot be a packet), the
 * answer only after the sink accepted, a connection closed when a request could not be recorded
 * and the resend answered on the next one, backpressure instead of drops, and the bounds on
 * handshakes and connections. Third-party peers (radsecproxy carrying radclient) are in
 * test/e2e/radsec.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OPENSSL_SKIP_LINE, makeTestCa, type PemPair, type TestCa } from '../../test/support/pki.js';
import { createIdFactory } from '../../shared/ids.js';
import { PluginCounters } from '../../shared/ingest/plugin.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import type { UplinkMessage, UplinkSink } from '../../shared/mqtt/transport.js';
import type { RadiusClientRecord } from './accounting-requests.js';
import { ATTR, CODE, encodeAccountingRequest, intValue, STATUS_TYPE } from './codec.js';
import { RadiusAccountingPlugin } from './radius-plugin.js';
import { peerIdentities, RadSecAccountingPlugin, type RadSecPluginOptions } from './radsec-plugin.js';

const RADSEC = Buffer.from('radsec');
const OPENSSL_REQUIRED = process.env['CI'] === 'true';

/** A sink whose accepts wait until the test releases (or fails) them, unless it is open. */
class GateSink implements UplinkSink {
  readonly pending: Array<{ msg: UplinkMessage; resolve: () => void; reject: (e: Error) => void }> = [];
  readonly accepted: UplinkMessage[] = [];
  open = false;
  #waiters: Array<() => void> = [];
  accept(msg: UplinkMessage): Promise<void> {
    if (this.open) {
      this.accepted.push(msg);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.pending.push({
        msg,
        resolve: () => {
          this.accepted.push(msg);
          resolve();
        },
        reject,
      });
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  async waitFor(n: number): Promise<void> {
    while (this.pending.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }
}

const CLIENTS: Record<string, RadiusClientRecord> = {
  'nas-a': { id: 'ca', nas_identifier: 'nas-a', tower_id: 'TA', radsec_identity: 'Proxy-A.carrier.test', secret: 'udp-secret-of-nas-a-0', created_at: 0, updated_at: 0 },
  'nas-b': { id: 'cb', nas_identifier: 'nas-b', tower_id: 'TB', radsec_identity: 'proxy-b.other.test', secret: 'udp-secret-of-nas-b-0', created_at: 0, updated_at: 0 },
  'nas-cn': { id: 'cc', nas_identifier: 'nas-cn', tower_id: 'TC', radsec_identity: 'nas-cn-only', secret: 'udp-secret-of-nas-cn0', created_at: 0, updated_at: 0 },
  'nas-udp': { id: 'cu', nas_identifier: 'nas-udp', tower_id: 'TU', radsec_identity: null, secret: 'udp-secret-of-nas-udp', created_at: 0, updated_at: 0 },
};

function request(id: number, nas: string, opts: { secret?: Buffer; session?: string } = {}): Buffer {
  return encodeAccountingRequest(
    id,
    [
      { type: ATTR.NAS_IDENTIFIER, value: Buffer.from(nas) },
      { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.START) },
      { type: ATTR.ACCT_SESSION_ID, value: Buffer.from(opts.session ?? `s-${id}`) },
      { type: ATTR.CALLING_STATION_ID, value: Buffer.from('dev-1') },
    ],
    opts.secret ?? RADSEC,
  );
}

/** Reads whole RADIUS packets off a stream (each as long as its Length field). */
class PacketReader {
  readonly packets: Buffer[] = [];
  closed = false;
  #buf = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      while (this.#buf.length >= 4 && this.#buf.length >= this.#buf.readUInt16BE(2)) {
        const len = this.#buf.readUInt16BE(2);
        this.packets.push(this.#buf.subarray(0, len));
        this.#buf = this.#buf.subarray(len);
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }
  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
  async count(n: number): Promise<void> {
    while (this.packets.length < n && !this.closed) await new Promise<void>((r) => this.#waiters.push(r));
    expect(this.packets.length).toBeGreaterThanOrEqual(n);
  }
  async close(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.#waiters.push(r));
  }
}

/** The Response Authenticator [RFC 2866 §3] of `response` to `req`, computed with "radsec". */
function responseVerifies(response: Buffer, req: Buffer): boolean {
  const copy = Buffer.from(response);
  req.copy(copy, 4, 4, 20);
  const expected = createHash('md5').update(copy).update(RADSEC).digest();
  return expected.equals(response.subarray(4, 20));
}

const dirs: string[] = [];
let ca: TestCa | null = null;
let server: PemPair;
let proxyA: PemPair;
let proxyB: PemPair;
let cnOnly: PemPair;
let stranger: PemPair;

const hasOpenssl = await (async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-radsec-pki-'));
  dirs.push(dir);
  ca = await makeTestCa(dir);
  return ca !== null;
})();
if (!hasOpenssl && !OPENSSL_REQUIRED) console.log(`RadSec listener tests skipped: ${OPENSSL_SKIP_LINE}`);

let plugin: RadSecAccountingPlugin | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await plugin?.stop();
  plugin = null;
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function start(sink: UplinkSink, opts: Partial<RadSecPluginOptions> = {}) {
  const counters = new Counters();
  plugin = new RadSecAccountingPlugin(
    { sink, counters: new PluginCounters(counters, 'radsec'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
    { host: '127.0.0.1', port: 0, cert: server.cert, key: server.key, ca: ca!.cert, clients: { findByNasIdentifier: async (nas) => CLIENTS[nas] ?? null }, ...opts },
  );
  await plugin.start();
  return {
    counters,
    outcome: (o: string) => counters.get('radius_requests_total', { outcome: o, plugin: 'radsec' }),
    connection: (o: string) => counters.get('radsec_connections_total', { outcome: o, plugin: 'radsec' }),
  };
}

/** A TLS connection to the listener presenting `identity` (or no certificate). */
async function peer(identity: PemPair | null): Promise<{ socket: TLSSocket; reader: PacketReader }> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: plugin!.port,
    ca: ca!.cert,
    servername: 'localhost',
    ...(identity ? { cert: identity.cert, key: identity.key } : {}),
  });
  sockets.push(socket);
  const reader = new PacketReader(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, reader };
}

/** Resolves once `check` holds (counters move as the listener handles what it read). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise<void>((r) => setImmediate(r));
}

describe.skipIf(!hasOpenssl && !OPENSSL_REQUIRED)('RadSec (RADIUS/TLS) accounting listener', () => {
  beforeAll(async () => {
    expect(ca, `openssl is required under CI=true (${OPENSSL_SKIP_LINE})`).not.toBeNull();
    server = await ca!.issue('server', { cn: 'localhost', dns: ['localhost'], ip: ['127.0.0.1'] });
    proxyA = await ca!.issue('proxy-a', { cn: 'ignored when there are DNS names', dns: ['proxy-a.carrier.test'] });
    proxyB = await ca!.issue('proxy-b', { cn: 'proxy-b', dns: ['proxy-b.other.test'] });
    cnOnly = await ca!.issue('cn-only', { cn: 'NAS-CN-Only' });
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-radsec-other-'));
    dirs.push(dir);
    const otherCa = await makeTestCa(dir, 'other-ca');
    stranger = await otherCa!.issue('stranger', { cn: 'proxy-a.carrier.test', dns: ['proxy-a.carrier.test'] });
  });

  it('reads identities from DNS subjectAltNames, else the CN, lowercased; quoted entries are not DNS names', () => {
    expect(peerIdentities({ subject: { CN: 'x' }, subjectaltname: 'DNS:A.example, IP Address:127.0.0.1, DNS:b.example' })).toEqual(['a.example', 'b.example']);
    expect(peerIdentities({ subject: { CN: 'Only-CN' }, subjectaltname: 'IP Address:127.0.0.1' })).toEqual(['only-cn']);
    expect(peerIdentities({ subject: { CN: ['one', 'Two'] } })).toEqual(['one', 'two']);
    expect(peerIdentities({ subjectaltname: 'DNS:"a, b", URI:https://x' })).toEqual([]);
    expect(peerIdentities(null)).toEqual([]);
  });

  it('answers each request once the sink accepted it, with packets split anywhere and several in one write', async () => {
    const sink = new GateSink();
    const t = await start(sink);
    const { socket, reader } = await peer(proxyA);
    const [r1, r2, r3] = [request(1, 'nas-a'), request(2, 'nas-a'), request(3, 'nas-a')];
    // The first packet one byte at a time, then the second and third in one write.
    for (let i = 0; i < r1.length; i++) socket.write(r1.subarray(i, i + 1));
    socket.write(Buffer.concat([r2, r3]));
    await sink.waitFor(3);
    expect(reader.packets).toHaveLength(0);
    expect(sink.pending.map((p) => p.msg.topic)).toEqual(['towers/TA/sessions', 'towers/TA/sessions', 'towers/TA/sessions']);
    for (const p of sink.pending) p.resolve();
    await reader.count(3);
    const byId = new Map(reader.packets.map((p) => [p[1], p]));
    for (const req of [r1, r2, r3]) {
      const res = byId.get(req[1]!)!;
      expect(res[0]).toBe(CODE.ACCOUNTING_RESPONSE);
      expect(responseVerifies(res, req)).toBe(true);
    }
    expect(t.outcome('recorded')).toBe(3);
    expect(t.connection('accepted')).toBe(1);
    const sent = JSON.parse(sink.accepted[0]!.payload.toString()) as { source: string };
    expect(sent.source).toBe('radius');
  });

  it("refuses a peer's requests for a NAS another identity carries, or a UDP-only NAS, and one signed with another secret than radsec", async () => {
    const sink = new GateSink();
    sink.open = true;
    const t = await start(sink);
    const a = await peer(proxyA);
    a.socket.write(request(1, 'nas-b'));
    a.socket.write(request(2, 'nas-udp'));
    a.socket.write(request(3, 'nas-a', { secret: Buffer.from(CLIENTS['nas-a']!.secret) }));
    a.socket.write(request(4, 'nobody'));
    await until(() => t.outcome('identity_mismatch') === 1 && t.outcome('wrong_transport') === 1 && t.outcome('bad_authenticator') === 1 && t.outcome('unknown_nas') === 1);
    expect(sink.accepted).toEqual([]);
    // The connection stays usable: its own NAS is answered, and only that reached the sink.
    a.socket.write(request(5, 'nas-a'));
    await a.reader.count(1);
    expect(a.reader.packets.map((p) => p[1])).toEqual([5]);
    // The other carrier's proxy reports for its own NAS, not for proxy A's.
    const b = await peer(proxyB);
    b.socket.write(request(6, 'nas-a'));
    b.socket.write(request(7, 'nas-b'));
    await b.reader.count(1);
    expect(b.reader.packets.map((p) => p[1])).toEqual([7]);
    expect(t.outcome('identity_mismatch')).toBe(2);
    expect(sink.accepted.map((m) => m.tower_id)).toEqual(['TA', 'TB']);
  });

  it('takes the subject CN as the identity of a certificate without DNS names', async () => {
    const sink = new GateSink();
    sink.open = true;
    await start(sink);
    const c = await peer(cnOnly);
    c.socket.write(request(9, 'nas-cn'));
    await c.reader.count(1);
    expect(sink.accepted.map((m) => m.tower_id)).toEqual(['TC']);
  });

  it('completes no handshake without a client certificate, or with one another CA issued', async () => {
    const sink = new GateSink();
    sink.open = true;
    const t = await start(sink);
    for (const identity of [null, stranger]) {
      // TLS 1.3 reports the refusal after the client's side of the handshake: either the connect
      // fails or the connection is closed before a request is answered.
      const attempt = await peer(identity).then(
        async ({ socket, reader }) => {
          socket.write(request(1, 'nas-a'));
          await reader.close();
          return reader.packets.length;
        },
        () => 0,
      );
      expect(attempt).toBe(0);
    }
    await until(() => t.connection('handshake_failed') === 2);
    expect(t.connection('accepted')).toBe(0);
    expect(sink.accepted).toEqual([]);
  });

  it('closes a connection whose Length field cannot be a packet, without touching other connections', async () => {
    const sink = new GateSink();
    sink.open = true;
    const t = await start(sink);
    const good = await peer(proxyA);
    for (const length of [19, 4097]) {
      const bad = await peer(proxyA);
      const header = Buffer.alloc(20);
      header[0] = CODE.ACCOUNTING_REQUEST;
      header.writeUInt16BE(length, 2);
      bad.socket.write(header);
      await bad.reader.close();
    }
    expect(t.outcome('malformed')).toBe(2);
    good.socket.write(request(1, 'nas-a'));
    await good.reader.count(1);
  });

  it('sends no response for a request the sink refused, ends that connection once the others are answered, and answers the resend on the next', async () => {
    const sink = new GateSink();
    const t = await start(sink);
    const first = await peer(proxyA);
    first.socket.write(request(1, 'nas-a'));
    first.socket.write(request(2, 'nas-a'));
    await sink.waitFor(2);
    sink.pending[0]!.reject(new Error('queue unavailable'));
    // Still open: request 2 is in flight.
    await until(() => t.outcome('sink_failed') === 1);
    expect(first.reader.closed).toBe(false);
    sink.pending[1]!.resolve();
    await first.reader.close();
    expect(first.reader.packets.map((p) => p[1])).toEqual([2]);
    // The peer resends what was not answered on a new connection.
    const second = await peer(proxyA);
    second.socket.write(request(1, 'nas-a'));
    await sink.waitFor(3);
    sink.pending[2]!.resolve();
    await second.reader.count(1);
    expect(second.reader.packets.map((p) => p[1])).toEqual([1]);
  });

  it('stops reading a connection at its in-flight bound instead of dropping, and answers every request as the sink catches up', async () => {
    const sink = new GateSink();
    const t = await start(sink, { maxInflightPerConnection: 2 });
    const { socket, reader } = await peer(proxyA);
    socket.write(Buffer.concat(Array.from({ length: 10 }, (_, i) => request(i + 1, 'nas-a'))));
    await sink.waitFor(2);
    // Let the listener read whatever it would: it holds at two.
    await new Promise<void>((r) => setImmediate(r));
    expect(sink.pending).toHaveLength(2);
    for (let released = 0; released < 10; released++) {
      await sink.waitFor(released + 1);
      sink.pending[released]!.resolve();
    }
    await reader.count(10);
    expect(reader.packets.map((p) => p[1]).sort((x, y) => x! - y!)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(t.outcome('recorded')).toBe(10);
    expect(t.outcome('overloaded')).toBe(0);
  });

  it('closes a TCP connection whose handshake is not done in time', async () => {
    const sink = new GateSink();
    sink.open = true;
    const t = await start(sink, { handshakeTimeoutMs: 200 });
    const silent = netConnect(plugin!.port, '127.0.0.1');
    sockets.push(silent);
    silent.on('error', () => {});
    await new Promise<void>((r) => silent.once('close', () => r()));
    expect(t.connection('handshake_timeout')).toBe(1);
    expect(t.connection('handshake_failed')).toBe(0);
  });

  it('ends a connection that sends nothing for the idle timeout once it has answered what it read', async () => {
    const sink = new GateSink();
    sink.open = true;
    await start(sink, { idleTimeoutMs: 100 });
    const { socket, reader } = await peer(proxyA);
    socket.write(request(1, 'nas-a'));
    await reader.close();
    expect(reader.packets.map((p) => p[1])).toEqual([1]);
    // The listener's side closes too (its place is free).
    await until(() => plugin!.connections === 0);
  });

  it('closes connections beyond the cap at accept, and takes one again once a place is free', async () => {
    const sink = new GateSink();
    sink.open = true;
    // The default handshake deadline (10 s) keeps the silent connection's place.
    const t = await start(sink, { maxConnections: 1 });
    const silent = netConnect(plugin!.port, '127.0.0.1');
    sockets.push(silent);
    silent.on('error', () => {});
    await new Promise<void>((r) => silent.once('connect', () => r()));
    await until(() => plugin!.connections === 1);
    const beyond = netConnect(plugin!.port, '127.0.0.1');
    sockets.push(beyond);
    beyond.on('error', () => {});
    await new Promise<void>((r) => beyond.once('close', () => r()));
    expect(t.connection('refused_capacity')).toBe(1);
    silent.destroy();
    await until(() => plugin!.connections === 0);
    const { socket, reader } = await peer(proxyA);
    socket.write(request(1, 'nas-a'));
    await reader.count(1);
  });

  it('answers what it already handed to the sink before it stops', async () => {
    const sink = new GateSink();
    await start(sink);
    const { socket, reader } = await peer(proxyA);
    socket.write(request(1, 'nas-a'));
    await sink.waitFor(1);
    const stopping = plugin!.stop();
    sink.pending[0]!.resolve();
    await stopping;
    plugin = null;
    await reader.close();
    expect(reader.packets.map((p) => p[1])).toEqual([1]);
  });
});

describe('RADIUS/UDP and RadSec clients', () => {
  it('refuses over UDP a NAS that reports over RadSec, even with its right secret', async () => {
    const counters = new Counters();
    const sink = new GateSink();
    sink.open = true;
    const udp = new RadiusAccountingPlugin(
      { sink, counters: new PluginCounters(counters, 'radius'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
      { host: '127.0.0.1', port: 0, clients: { findByNasIdentifier: async (nas) => CLIENTS[nas] ?? null } },
    );
    await udp.start();
    const { createSocket } = await import('node:dgram');
    const sock = createSocket('udp4');
    try {
      const replies: Buffer[] = [];
      sock.on('message', (m) => replies.push(m));
      sock.send(request(1, 'nas-a', { secret: Buffer.from(CLIENTS['nas-a']!.secret) }), udp.port, '127.0.0.1');
      sock.send(request(2, 'nas-udp', { secret: Buffer.from(CLIENTS['nas-udp']!.secret) }), udp.port, '127.0.0.1');
      await until(() => replies.length === 1 && counters.get('radius_requests_total', { outcome: 'wrong_transport', plugin: 'radius' }) === 1);
      expect(replies[0]![1]).toBe(2);
      expect(sink.accepted.map((m) => m.tower_id)).toEqual(['TU']);
    } finally {
      sock.close();
      await udp.stop();
    }
  });
});
