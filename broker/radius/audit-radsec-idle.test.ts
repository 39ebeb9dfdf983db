/**
 * The RadSec listener's idle timeout when it fires while the connection still has work: a request
 * the sink has not recorded yet (a slow store or queue). The connection must still be closed by a
 * later idle period once it holds nothing; `socket.setTimeout(ms, callback)` registers its
 * callback with `once`, so a first timeout that found work in flight used to disarm the idle
 * close for good, and a peer that then went silent (or a half-open TCP connection) held one of
 * the listener's places for ever. Over real TLS sockets with a PKI made by openssl.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { makeTestCa, OPENSSL_SKIP_LINE, type PemPair, type TestCa } from '../../test/support/pki.js';
import { createIdFactory } from '../../shared/ids.js';
import { PluginCounters } from '../../shared/ingest/plugin.js';
import { silentLogger } from '../../shared/logger.js';
import { Counters } from '../../shared/metrics.js';
import type { UplinkMessage, UplinkSink } from '../../shared/mqtt/transport.js';
import type { RadiusClientLookup, RadiusClientRecord } from './accounting-requests.js';
import { ATTR, encodeAccountingRequest, intValue, STATUS_TYPE } from './codec.js';
import { RadSecAccountingPlugin } from './radsec-plugin.js';

const OPENSSL_REQUIRED = process.env['CI'] === 'true';

/** A sink whose accepts wait until the test releases them. */
class GateSink implements UplinkSink {
  readonly pending: Array<() => void> = [];
  #waiters: Array<() => void> = [];
  accept(_msg: UplinkMessage): Promise<void> {
    return new Promise((resolve) => {
      this.pending.push(resolve);
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  async waitFor(n: number): Promise<void> {
    while (this.pending.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }
}

const dirs: string[] = [];
let ca: TestCa | null = null;
const hasOpenssl = await (async () => {
  const dir = await mkdtemp(join(tmpdir(), 'edgeplane-radsec-idle-'));
  dirs.push(dir);
  ca = await makeTestCa(dir);
  return ca !== null;
})();
if (!hasOpenssl && !OPENSSL_REQUIRED) console.log(`RadSec idle-timeout tests skipped: ${OPENSSL_SKIP_LINE}`);

let plugin: RadSecAccountingPlugin | null = null;
let sink: GateSink | null = null;
const sockets: TLSSocket[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of sockets.splice(0)) s.destroy();
  for (const release of sink?.pending ?? []) release();
  await plugin?.stop();
  plugin = null;
  sink = null;
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const NAS_A: RadiusClientRecord = { id: 'ca', nas_identifier: 'nas-a', tower_id: 'TA', radsec_identity: 'proxy-a.carrier.test', secret: 'udp-secret-of-nas-a-0', created_at: 0, updated_at: 0 };

/** The listener with `sink` on a fresh port, and each idle timeout of its side of a connection. */
async function setup(gate: UplinkSink, clients: RadiusClientLookup = { findByNasIdentifier: async (nas) => (nas === 'nas-a' ? NAS_A : null) }) {
  const server: PemPair = await ca!.issue('server', { cn: 'localhost', dns: ['localhost'], ip: ['127.0.0.1'] });
  const proxy: PemPair = await ca!.issue('proxy-a', { cn: 'proxy-a', dns: ['proxy-a.carrier.test'] });
  plugin = new RadSecAccountingPlugin(
    { sink: gate, counters: new PluginCounters(new Counters(), 'radsec'), logger: silentLogger(), now: () => 1_000_000, newId: createIdFactory() },
    {
      host: '127.0.0.1',
      port: 0,
      cert: server.cert,
      key: server.key,
      ca: ca!.cert,
      idleTimeoutMs: 100,
      clients,
    },
  );
  await plugin.start();
  const port = plugin.port;

  // Each idle timeout of the listener's side of the connection: whether that socket was being
  // ended once its listeners ran.
  const timeouts: Array<{ ending: boolean }> = [];
  const timeoutWaiters: Array<() => void> = [];
  const emit = TLSSocket.prototype.emit as (this: TLSSocket, event: string | symbol, ...args: unknown[]) => boolean;
  vi.spyOn(TLSSocket.prototype, 'emit').mockImplementation(function (this: TLSSocket, event: string | symbol, ...args: unknown[]) {
    const handled = emit.call(this, event, ...args);
    if (event === 'timeout' && this.localPort === port) {
      timeouts.push({ ending: this.writableEnded || this.destroyed });
      for (const w of timeoutWaiters.splice(0)) w();
    }
    return handled;
  });
  const timeout = async (n: number): Promise<{ ending: boolean }> => {
    while (timeouts.length < n) await new Promise<void>((r) => timeoutWaiters.push(r));
    return timeouts[n - 1]!;
  };

  const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca!.cert, servername: 'localhost', cert: proxy.cert, key: proxy.key });
  sockets.push(socket);
  socket.on('error', () => undefined);
  let closed = false;
  const closeWaiters: Array<() => void> = [];
  socket.on('close', () => {
    closed = true;
    for (const w of closeWaiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const closedNow = async (): Promise<void> => {
    while (!closed) await new Promise<void>((r) => closeWaiters.push(r));
    // The listener's side closes too (its place is free).
    while (plugin!.connections !== 0) await new Promise<void>((r) => setImmediate(r));
  };
  return { socket, timeout, closedNow, isClosed: () => closed };
}

const request = (id: number) =>
  encodeAccountingRequest(
    id,
    [
      { type: ATTR.NAS_IDENTIFIER, value: Buffer.from('nas-a') },
      { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.START) },
      { type: ATTR.ACCT_SESSION_ID, value: Buffer.from(`s-${id}`) },
      { type: ATTR.CALLING_STATION_ID, value: Buffer.from('dev-1') },
    ],
    Buffer.from('radsec'),
  );

describe.skipIf(!hasOpenssl && !OPENSSL_REQUIRED)('RadSec listener, idle timeout', () => {
  it('still closes an idle connection after a first idle timeout found a request in flight', async () => {
    expect(ca, `openssl is required under CI=true (${OPENSSL_SKIP_LINE})`).not.toBeNull();
    sink = new GateSink();
    const c = await setup(sink);
    const responses: number[] = [];
    const wake: Array<() => void> = [];
    c.socket.on('data', (chunk: Buffer) => {
      responses.push(chunk[1]!);
      for (const w of wake.splice(0)) w();
    });
    c.socket.write(request(1));
    await sink.waitFor(1);
    // The sink is slower than the idle timeout: the first one finds the request in flight and
    // keeps the connection.
    expect((await c.timeout(1)).ending).toBe(false);
    expect(c.isClosed()).toBe(false);
    sink.pending[0]!();
    while (responses.length === 0 && !c.isClosed()) await new Promise<void>((r) => wake.push(r));
    expect(responses).toEqual([1]);
    // Answered, and the peer says nothing more: the next idle timeout ends the connection.
    expect((await c.timeout(2)).ending).toBe(true);
    await c.closedNow();
  });

  it('also when the request that kept it open ends without an answer (nothing written re-arms the timer)', async () => {
    expect(ca, `openssl is required under CI=true (${OPENSSL_SKIP_LINE})`).not.toBeNull();
    sink = new GateSink();
    // A slow lookup that finds no such NAS: the request is dropped, nothing is written back.
    const lookups: Array<() => void> = [];
    const looking: Array<() => void> = [];
    const c = await setup(sink, {
      findByNasIdentifier: () =>
        new Promise((resolve) => {
          lookups.push(() => resolve(null));
          for (const w of looking.splice(0)) w();
        }),
    });
    c.socket.write(request(1));
    while (lookups.length === 0) await new Promise<void>((r) => looking.push(r));
    expect((await c.timeout(1)).ending).toBe(false);
    lookups[0]!();
    expect((await c.timeout(2)).ending).toBe(true);
    await c.closedNow();
    expect(sink.pending).toHaveLength(0);
  });
});
