/**
 * Audit: resource exhaustion through the HTTP and WebSocket surface of a real control plane
 * (`startEmbedded` on loopback), with raw sockets where a polite client would not misbehave.
 *
 * Found and fixed: Fastify 5 left Node's request timeout and the socket idle timeout off and capped
 * no connection count, so a client that sent headers but never its body (or went silent mid
 * request) held its connection forever, and nothing bounded how many were open. Now
 * --http-request-timeout-ms, --http-idle-timeout-ms and --http-max-connections
 * (api/http-server-limits.ts). Also found and fixed: once the API began to stop, Node stopped
 * checking those deadlines and waited for every such connection, so one silent or trickling client
 * held the API's stop (and the components stopping after it) until the process was killed at
 * --shutdown-timeout-ms. Held, kept as regressions: body limit, deep JSON, oversized
 * URLs/query strings/header sets, gzip bodies (never inflated), unauthenticated upgrades, inbound
 * frame size and the per-tenant feed cap. A feed client that stops reading is dropped at 1 MiB
 * buffered: api/feeds.test.ts ('drops a client that stops reading') on a listening server.
 */
import { once } from 'node:events';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HTTP_CONNECTIONS_REFUSED_COUNTER } from '../../api/http-server-limits.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

/** What the server sent on a raw connection it closed (the test never closes one). */
interface RawExchange {
  text: string;
  closedByServer: true;
  /** Bytes of the request written before the server closed. */
  written: number;
}

/**
 * Writes `request` on a raw connection, all at once or one byte per `trickleMs`, and resolves when
 * the server closes it. The test's own timeout bounds a server that never does.
 */
function rawExchange(port: number, request: string | Buffer, opts: { trickleMs?: number } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const bytes = Buffer.isBuffer(request) ? request : Buffer.from(request, 'latin1');
    const chunks: Buffer[] = [];
    let written = 0;
    let trickle: NodeJS.Timeout | null = null;
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (trickle) clearInterval(trickle);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closedByServer: true, written });
    });
    socket.on('connect', () => {
      if (opts.trickleMs === undefined) {
        socket.write(bytes);
        written = bytes.length;
        return;
      }
      trickle = setInterval(() => {
        if (written < bytes.length && !socket.destroyed) socket.write(bytes.subarray(written, ++written));
      }, opts.trickleMs);
    });
  });
}

const statusOf = (text: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
/** The error code of a raw answer's body, in the API's error shape. */
const errorCodeOf = (text: string): string | undefined => (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error?: { code?: string } }).error?.code;

const UPGRADE_HEADERS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe('slow clients, bodies and feeds (request timeout 400 ms)', () => {
  let t: TestControlPlane;
  let port: number;
  let base: string;
  let owner: string;

  beforeAll(async () => {
    t = await startTestControlPlane({ config: { http_request_timeout_ms: 400, rate_limit_per_min: 100_000 } });
    base = t.cp.httpUrl;
    port = Number(new URL(base).port);
    const email = 'owner@exhaust.test';
    const password = 'a-long-password-123';
    await t.operator.post('/api/v1/tenants', { name: 'exhaust', owner: { email, password } });
    owner = await login(email, password);
  });

  let stopped = false;
  afterAll(async () => {
    if (!stopped) await t?.destroy();
  });

  async function login(email: string, password: string): Promise<string> {
    const res = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    return ((await res.json()) as { access_token: string }).access_token;
  }

  async function stillServing(): Promise<void> {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  }

  describe('Slowloris', () => {
    it('headers trickled one byte at a time: 408 and closed before they are complete', async () => {
      const request = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(2000)}\r\n\r\n`;
      const r = await rawExchange(port, request, { trickleMs: 20 });
      expect(statusOf(r.text)).toBe(408);
      expect(r.closedByServer).toBe(true);
      expect(r.written).toBeLessThan(request.length);
    }, 15_000);

    it('a body that never finishes: 408 and closed', async () => {
      const r = await rawExchange(
        port,
        'POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email"',
      );
      expect(statusOf(r.text)).toBe(408);
      expect(r.closedByServer).toBe(true);
      await stillServing();
    }, 15_000);

    it('a connection that never sends anything: 408 and closed', async () => {
      const r = await rawExchange(port, '');
      expect(statusOf(r.text)).toBe(408);
      expect(errorCodeOf(r.text)).toBe('REQUEST_TIMEOUT');
      expect(r.closedByServer).toBe(true);
    }, 15_000);
  });

  describe('large and complex requests', () => {
    const post = (body: string | Uint8Array, headers: Record<string, string> = {}) =>
      fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

    it('a body over the 1 MiB limit: 413', async () => {
      const res = await post(JSON.stringify({ email: 'a@b.test', password: 'x'.repeat(2 * 1024 * 1024) }));
      expect(res.status).toBe(413);
      await stillServing();
    });

    it('100,000 levels of nesting (arrays, objects): 400, no stack overflow', async () => {
      const depth = 100_000;
      const arrays = `{"email":"a@b.test","password":"x","x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const objects = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      // Unclosed: the parser must refuse it rather than recurse to its end.
      const unclosed = '['.repeat(depth);
      for (const body of [arrays, objects, unclosed, `{"constructor":{"prototype":1},"x":${'['.repeat(depth)}${']'.repeat(depth)}}`]) {
        const res = await post(body);
        expect(res.status, body.slice(0, 20)).toBe(400);
        expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/^(BAD_REQUEST|VALIDATION_FAILED)$/);
      }
      await stillServing();
    });

    it('thousands of query parameters, an over-long URL, thousands of headers: 4xx, never 5xx', async () => {
      const manyParams = await fetch(`${base}/healthz?${Array.from({ length: 1500 }, (_, i) => `p${i}=1`).join('&')}`);
      expect(manyParams.status).toBeLessThan(500);
      const repeated = await fetch(`${base}/api/v1/devices?${'limit=1&'.repeat(1500)}`, { headers: { authorization: `Bearer ${owner}` } });
      expect(repeated.status).toBe(400);
      const longUrl = await rawExchange(port, `GET /api/v1/devices/${'x'.repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      expect(statusOf(longUrl.text)).toBe(431);
      expect(errorCodeOf(longUrl.text)).toBe('HEADERS_TOO_LARGE');
      expect(longUrl.closedByServer).toBe(true);
      const headers = Array.from({ length: 3000 }, (_, i) => `X-H${i}: 1\r\n`).join('');
      const manyHeaders = await rawExchange(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
      expect(statusOf(manyHeaders.text)).toBe(431);
      await stillServing();
    });

    it('a request Node cannot parse: 400 in the API error shape, and closed', async () => {
      const r = await rawExchange(port, 'NOT-HTTP\r\n\r\n');
      expect(statusOf(r.text)).toBe(400);
      expect(errorCodeOf(r.text)).toBe('BAD_REQUEST');
      expect(r.closedByServer).toBe(true);
      await stillServing();
    });

    it('a gzip bomb as a request body is not inflated: 400', async () => {
      // 64 MiB of spaces in ~64 KB: were it inflated, it would pass the body limit a thousand times.
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
      const res = await post(bomb, { 'content-encoding': 'gzip' });
      expect(res.status).toBe(400);
      await stillServing();
    });
  });

  describe('WebSocket feeds', () => {
    function openFeed(token: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
      const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws/alerts`, ['bearer', token]);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      return new Promise((resolve, reject) => {
        ws.once('message', () => resolve({ ws, closed }));
        ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
        ws.once('close', (code) => resolve({ ws, closed: Promise.resolve(code) }));
      });
    }

    async function hubEmpty(): Promise<void> {
      while (t.cp.app.feeds.size > 0) await once(t.cp.app.feeds, 'closed');
    }

    it('an unauthenticated upgrade is answered 401 and its socket closed, before any handshake', async () => {
      for (const path of ['/ws/alerts', '/api/v1/stream', '/ws/alerts?access_token=not-a-token', '/nowhere']) {
        const r = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE_HEADERS}\r\n`);
        expect(statusOf(r.text), path).toBe(path === '/nowhere' ? 404 : 401);
        expect(r.closedByServer, path).toBe(true);
      }
      expect(t.cp.app.feeds.size).toBe(0);
      expect(t.cp.app.websocketServer.clients.size).toBe(0);
    });

    it('an inbound frame over 4 KiB closes the feed (1009) and frees it', async () => {
      const { ws, closed } = await openFeed(owner);
      expect(t.cp.app.feeds.size).toBe(1);
      ws.send('x'.repeat(64 * 1024));
      expect(await closed).toBe(1009);
      await hubEmpty();
    });

    it('feeds beyond the per-tenant cap are closed with 4429', async () => {
      const limits = t.cp.app.feeds.limits;
      const before = limits.maxConnectionsPerTenant;
      limits.maxConnectionsPerTenant = 2;
      try {
        const held = [await openFeed(owner), await openFeed(owner)];
        const third = await openFeed(owner);
        expect(await third.closed).toBe(4429);
        expect(t.cp.app.feeds.size).toBe(2);
        for (const f of held) f.ws.close();
        await hubEmpty();
      } finally {
        limits.maxConnectionsPerTenant = before;
      }
    });
  });

  describe('shutdown', () => {
    it('a silent, a trickling and a never-finishing client do not hold the API’s stop; a feed gets 1001', async () => {
      let arrived = 0;
      t.cp.app.server.on('connection', () => arrived++);
      const silent = rawExchange(port, '');
      const trickling = rawExchange(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(5000)}\r\n\r\n`, { trickleMs: 20 });
      const bodiless = rawExchange(port, 'POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
      const feed = new WebSocket(`${base.replace(/^http/, 'ws')}/ws/alerts`, ['bearer', owner]);
      const feedClosed = new Promise<number>((resolve) => feed.once('close', (code) => resolve(code)));
      await once(feed, 'message');
      // Each of them has reached the server before it stops.
      while (arrived < 4) await once(t.cp.app.server, 'connection');
      stopped = true;
      await t.destroy();
      for (const r of await Promise.all([silent, trickling, bodiless])) expect(r.closedByServer).toBe(true);
      expect(await feedClosed).toBe(1001);
    }, 20_000);
  });
});

describe('idle connections and the connection cap (idle timeout 2 s, 6 connections)', () => {
  const MAX = 6;
  let t: TestControlPlane;
  let port: number;

  beforeAll(async () => {
    t = await startTestControlPlane({ config: { http_idle_timeout_ms: 2_000, http_max_connections: MAX, rate_limit_per_min: 100_000 } });
    port = Number(new URL(t.cp.httpUrl).port);
  });

  afterAll(async () => {
    await t?.destroy();
  });

  it('a connection that goes silent mid-request is closed at the idle timeout', async () => {
    const r = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    expect(r.closedByServer).toBe(true);
    expect(r.text).toBe('');
  }, 15_000);

  it('connections beyond --http-max-connections are closed on accept and counted; the server serves again once they go', async () => {
    const server = t.cp.app.server;
    const serverSide = new Set<net.Socket>();
    server.on('connection', (s: net.Socket) => serverSide.add(s));
    /** A keep-alive connection that got its answer (held open), or null if closed unanswered. */
    const hold = (): Promise<net.Socket | null> =>
      new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        let text = '';
        socket.on('error', () => {});
        socket.on('data', (d) => {
          text += d.toString('latin1');
          if (text.includes('\r\n\r\n')) resolve(socket);
        });
        socket.on('close', () => resolve(null));
        socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
    const held: net.Socket[] = [];
    let refused = 0;
    // Connections of the harness (its sign-in) may still be open: fill up to the cap, whatever it holds.
    for (let i = 0; i < MAX + 3 && refused === 0; i++) {
      const socket = await hold();
      if (socket) held.push(socket);
      else refused++;
    }
    expect(refused).toBe(1);
    expect(held.length).toBeLessThanOrEqual(MAX);
    expect(t.cp.counters.get(HTTP_CONNECTIONS_REFUSED_COUNTER)).toBe(1);
    const ours = new Set(held.map((s) => s.localPort));
    const gone = [...serverSide].filter((s) => !s.destroyed && ours.has(s.remotePort)).map((s) => once(s, 'close'));
    expect(gone).toHaveLength(held.length);
    for (const s of held) s.destroy();
    await Promise.all(gone);
    const again = await hold();
    expect(again).not.toBeNull();
    again?.destroy();
  }, 15_000);
});
